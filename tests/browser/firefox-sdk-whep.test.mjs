// Headless Firefox (lib/firefox.mjs) through the other two ways in: the UNMODIFIED Flashphoner Web
// SDK Player example (served from the npm package root, as in flashphoner-sdk.test.mjs) and WHEP
// (RFC 9725) from a plain RTCPeerConnection. Cameras send real H.264 High / Main profile
// (lib/profiles.mjs), which Firefox (offering only 42e01f/42001f) must still get.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { api, streamEntry } from './lib/api.mjs';
import { AUDIO_CAMERAS } from './lib/audio-cameras.mjs';
import { config, pageUrl, wsUrl } from './lib/config.mjs';
import {
  firefoxAvailable,
  firefoxCapture,
  firefoxStats,
  newFirefoxPage,
  useFirefoxEnvironment,
  waitForFirefoxAudio,
  waitForFirefoxFrames,
} from './lib/firefox.mjs';
import { startCamera } from './lib/procs.mjs';
import { PROFILE_LEVEL_IDS } from './lib/profiles.mjs';
import { PLAYER, SDK_API_PAGE, sdkApiPlay, sdkApiStop, serveSdk } from './lib/sdk.mjs';

const skip = firefoxAvailable() ? false : 'no /usr/bin/firefox-esr (apt-get install firefox-esr)';
const env = skip ? null : useFirefoxEnvironment({ cameras: [] });
const url = (port) => `rtsp://${config.host}:${port}/cam`;
let web;

before(async () => { if (!skip) web = await serveSdk(); });
after(async () => { await web?.close(); });

async function withCamera(name, port, extra, fn) {
  const camera = await startCamera(env.logDir, { name, port, extra });
  env.cameras[name] = camera; // its log is printed on failure
  try {
    return await fn(url(port));
  } finally {
    await camera.stop();
  }
}

const sdkStatus = (page) => page.evaluate(() => ({
  status: document.querySelector('#status').textContent.trim(),
  info: document.querySelector('#info').textContent.trim(),
}));

async function waitForSdkStatus(page, want, timeoutMs = 20000) {
  await page.waitForFunction(
    (w) => {
      const s = document.querySelector('#status').textContent.trim();
      return s === w || (s === 'FAILED' && w !== 'FAILED');
    },
    { timeout: timeoutMs, polling: 50 },
    want,
  );
  const got = await sdkStatus(page);
  assert.equal(got.status, want, `Player #status ${got.status}, #info "${got.info}"`);
  return got;
}

const setValue = (page, selector, value) =>
  page.$eval(selector, (el, v) => { el.value = v; el.dispatchEvent(new Event('input', { bubbles: true })); }, value);

async function openSdkPlayer() {
  const page = await newFirefoxPage(env.browser);
  await page.goto(web.url(PLAYER));
  await page.waitForFunction(() => typeof window.Flashphoner !== 'undefined'
    && document.querySelector('#playBtn')?.textContent.trim() === 'Start');
  await firefoxCapture(page);
  return page;
}

async function playerStop(page) {
  await page.waitForFunction(() => {
    const b = document.querySelector('#playBtn');
    return b.textContent.trim() === 'Stop' && !b.disabled;
  });
  await page.click('#playBtn');
  await waitForSdkStatus(page, 'STOPPED', 10000);
}

test('Firefox: the Flashphoner SDK Player plays an H.264 High + AAC camera and stops', { timeout: 60000, skip }, async () => {
  await withCamera('sdk-high-aac', config.cameraPort + 60, ['--h264-profile', 'high', '--audio', 'aac', '--aac-encoder', 'avenc_aac'], async (cam) => {
    const page = await openSdkPlayer();
    try {
      await env.run([page], async () => {
        await setValue(page, '#url', wsUrl());
        await setValue(page, '#streamName', cam);
        await page.click('#playBtn');
        await waitForSdkStatus(page, 'PLAYING');
        const first = await waitForFirefoxFrames(page, { which: 'last', minFrames: 3 });
        const t0 = Date.now();
        await sleep(2000);
        const stats = await waitForFirefoxAudio(page, { which: 'last' });
        const fps = ((stats.video.framesDecoded - first.video.framesDecoded) * 1000) / (Date.now() - t0);
        const entry = await streamEntry(cam);
        console.log(`# firefox SDK Player, High+AAC: measured ${fps.toFixed(1)} fps; ${JSON.stringify(stats)}; /api/streams ${JSON.stringify(entry)}`);
        assert.match(JSON.stringify(entry), new RegExp(PROFILE_LEVEL_IDS.high), 'the camera must send High profile');
        assert.equal(stats.video.mimeType, 'video/H264');
        assert.equal(stats.video.frameWidth, 640);
        assert.equal(stats.video.frameHeight, 360);
        assert.ok(fps > 5, `video stalled: ${fps.toFixed(1)} fps (a live 30 fps camera; the threshold is low so a loaded CI machine does not fail it)`);
        assert.equal(stats.audio.mimeType, 'audio/opus');
        assert.equal(await page.$eval('#remoteVideo video', (v) => v.videoWidth), 640);
        await playerStop(page);
      });
    } finally {
      await page.closeContext();
    }
  });
});

test('Firefox: WHEP plays an H.264 Main camera, DELETE ends the session', { timeout: 60000, skip }, async () => {
  await withCamera('whep-main', config.cameraPort + 61, ['--h264-profile', 'main', '--audio', 'opus'], async (cam) => {
    const page = await newFirefoxPage(env.browser);
    try {
      await env.run([page], async () => {
        await page.goto(pageUrl('')); // same origin as the WHEP endpoint
        await firefoxCapture(page);
        const res = await page.evaluate(async (endpoint) => {
          const pc = new RTCPeerConnection();
          window.__whep = { pc };
          // As WHEP players do (and the Flashphoner SDK): the element plays the stream of the
          // newest track, so audio is heard only when it shares that stream with the video.
          const video = document.createElement('video');
          video.autoplay = true;
          document.body.appendChild(video);
          pc.ontrack = (e) => { video.srcObject = e.streams[0]; };
          pc.addTransceiver('video', { direction: 'recvonly' });
          pc.addTransceiver('audio', { direction: 'recvonly' });
          const offer = await pc.createOffer();
          await pc.setLocalDescription(offer);
          const r = await fetch(endpoint, {
            method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: pc.localDescription.sdp,
          });
          const answer = await r.text();
          let error = null;
          if (r.status === 201) {
            try { await pc.setRemoteDescription({ type: 'answer', sdp: answer }); } catch (e) { error = e.message; }
          }
          const h264 = (sdp) => sdp.split(/\r?\n/).filter((l) => /^a=fmtp:\d+ .*profile-level-id/.test(l)).join('\n');
          return {
            status: r.status, location: r.headers.get('Location'), error,
            offerFmtp: h264(pc.localDescription.sdp), answerFmtp: h264(answer),
          };
        }, pageUrl(`whep/${encodeURIComponent(cam)}`));
        assert.equal(res.status, 201, JSON.stringify(res));
        assert.equal(res.error, null, `answer rejected: ${res.error}\noffer:\n${res.offerFmtp}\nanswer:\n${res.answerFmtp}`);
        assert.match(res.location, /^\/whep\/session\//);
        const first = await waitForFirefoxFrames(page, { which: 'last', minFrames: 3 });
        const t0 = Date.now();
        await sleep(2000);
        const stats = await waitForFirefoxAudio(page, { which: 'last' });
        const fps = ((stats.video.framesDecoded - first.video.framesDecoded) * 1000) / (Date.now() - t0);
        const entry = await streamEntry(cam);
        console.log(`# firefox WHEP, Main+Opus: measured ${fps.toFixed(1)} fps; ${JSON.stringify(stats)}; answer H.264 fmtp:\n#   ${res.answerFmtp.split('\n').join('\n#   ')}`);
        assert.match(JSON.stringify(entry), new RegExp(PROFILE_LEVEL_IDS.main), 'the camera must send Main profile');
        assert.equal(stats.video.mimeType, 'video/H264');
        assert.equal(stats.video.frameWidth, 640);
        assert.ok(fps > 5, `video stalled: ${fps.toFixed(1)} fps (a live 30 fps camera; the threshold is low so a loaded CI machine does not fail it)`);
        assert.equal(stats.audio.mimeType, 'audio/opus');
        const del = await api('DELETE', res.location);
        assert.equal(del.status, 200, del.text);
        await page.evaluate(() => window.__whep.pc.close());
        assert.equal((await api('DELETE', res.location)).status, 404);
      });
    } finally {
      await page.closeContext();
    }
  });
});

// Sound through the SDK, for every audio codec a camera may send: the Player example and the
// SDK API (createSession → createStream → play), one camera at a time.
AUDIO_CAMERAS.forEach((c, i) => {
  const port = config.cameraPort + 70 + i;
  test(`Firefox: the SDK Player plays sound from a ${c.extra.join(' ')} camera (${c.mime})`, { timeout: 60000, skip }, async () => {
    await withCamera(`sdk-player-${c.name}`, port, c.extra, async (cam) => {
      const page = await openSdkPlayer();
      try {
        await env.run([page], async () => {
          await setValue(page, '#url', wsUrl());
          await setValue(page, '#streamName', cam);
          await page.click('#playBtn');
          await waitForSdkStatus(page, 'PLAYING');
          await waitForFirefoxFrames(page, { which: 'last', minFrames: 3 });
          const stats = await waitForFirefoxAudio(page, { which: 'last' });
          console.log(`# firefox SDK Player, ${c.name}: ${JSON.stringify(stats.audio)}`);
          assert.equal(stats.audio.mimeType, c.mime);
          await playerStop(page);
        });
      } finally {
        await page.closeContext();
      }
    });
  });

  test(`Firefox: the SDK API plays sound from a ${c.extra.join(' ')} camera (${c.mime})`, { timeout: 60000, skip }, async () => {
    await withCamera(`sdk-api-${c.name}`, port, c.extra, async (cam) => {
      const page = await newFirefoxPage(env.browser);
      try {
        await env.run([page], async () => {
          await page.goto(web.url(SDK_API_PAGE));
          await page.waitForFunction(() => typeof window.Flashphoner !== 'undefined');
          await firefoxCapture(page);
          await sdkApiPlay(page, [wsUrl(), cam]);
          await waitForFirefoxFrames(page, { which: 'last', minFrames: 3 });
          const stats = await waitForFirefoxAudio(page, { which: 'last' });
          console.log(`# firefox SDK API, ${c.name}: ${JSON.stringify(stats.audio)}`);
          assert.equal(stats.audio.mimeType, c.mime);
          await sdkApiStop(page, cam);
        });
      } finally {
        await page.closeContext();
      }
    });
  });
});

// G.722 passes through to Firefox too (it offers G722), with sound.
test('Firefox: the SDK API plays sound from a --audio g722 camera (audio/G722)', { timeout: 60000, skip }, async () => {
  await withCamera('sdk-api-g722', config.cameraPort + 69, ['--audio', 'g722'], async (cam) => {
    const page = await newFirefoxPage(env.browser);
    try {
      await env.run([page], async () => {
        await page.goto(web.url(SDK_API_PAGE));
        await page.waitForFunction(() => typeof window.Flashphoner !== 'undefined');
        await firefoxCapture(page);
        await sdkApiPlay(page, [wsUrl(), cam]);
        await waitForFirefoxFrames(page, { which: 'last', minFrames: 3 });
        const stats = await waitForFirefoxAudio(page, { which: 'last' });
        console.log(`# firefox SDK API, g722: ${JSON.stringify(stats.audio)}`);
        assert.equal(stats.audio.mimeType, 'audio/G722');
        await sdkApiStop(page, cam);
      });
    } finally {
      await page.closeContext();
    }
  });
});
