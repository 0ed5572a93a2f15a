// camgate's player against cameras with other settings: credentials (Basic, Digest), codecs.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { videoStats, waitForAudio, waitForFrames } from './lib/browser.mjs';
import { startCamera } from './lib/procs.mjs';
import { config, pageUrl } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { openPlayer, waitForStatus } from './lib/player.mjs';

const USER = 'admin';
const PASSWORD = 's3cr:t@pw'; // needs percent-encoding in a URL
const basicPort = config.cameraPort + 1;
const digestPort = config.cameraPort + 2;

const env = useEnvironment({
  cameras: [
    { name: 'basic', port: basicPort, extra: ['--user', USER, '--password', PASSWORD, '--auth', 'basic'] },
    { name: 'digest', port: digestPort, extra: ['--user', USER, '--password', PASSWORD, '--auth', 'digest'] },
  ],
});

const url = (port, creds = '') => `rtsp://${creds}${config.host}:${port}/cam`;
const creds = (user, password) => `${encodeURIComponent(user)}:${encodeURIComponent(password)}@`;

// Every frame the server sent to the page, as text.
const serverFrames = (page) =>
  page.evaluate(() => window.camgate.log.filter((f) => f.dir === 'in').map((f) => f.frame).join('\n'));

for (const [method, port] of [['Basic', basicPort], ['Digest', digestPort]]) {
  test(`${method} auth: the right credentials play, the password never comes back`, { timeout: 60000 }, async () => {
    const page = await openPlayer(env.browser, url(port, creds(USER, PASSWORD)));
    await env.run([page], async () => {
      await page.click('#start');
      await waitForStatus(page, 'PLAYING');
      await waitForFrames(page, { which: 'camgate', minFrames: 5 });
      await page.click('#stop');
      await waitForStatus(page, 'STOPPED', 10000);
      const frames = await serverFrames(page);
      for (const secret of [PASSWORD, encodeURIComponent(PASSWORD)]) {
        assert.ok(!frames.includes(secret), `server echoed the password:\n${frames.slice(0, 2000)}`);
      }
    });
    await page.context().close();
  });

  test(`${method} auth: no or wrong credentials fail with 401`, { timeout: 60000 }, async () => {
    for (const target of [url(port), url(port, creds(USER, 'wrong'))]) {
      const page = await openPlayer(env.browser, target);
      await env.run([page], async () => {
        await page.click('#start');
        const status = await waitForStatus(page, 'FAILED');
        assert.match(status.info, /401|Unauthorized/i, `for ${target}`);
        assert.ok(!(await serverFrames(page)).includes('wrong'), 'server echoed the wrong password');
      });
      await page.context().close();
    }
  });
}

// One camera per codec, started for its own test only (the machine may have 2 cores).
// audio: what the browser must receive (AAC, Speex and L16 arrive transcoded to Opus).
const CODECS = [
  { name: 'vp8', extra: ['--video', 'vp8'], video: 'video/VP8' },
  {
    name: 'h264-bframes',
    extra: ['--h264-profile', 'high', '--bframes', '2'],
    video: 'video/H264',
    // B-slices show up after the keyframe: camgate sends PLAYING again with the warning.
    info: /B-frames/,
  },
  { name: 'pcmu', extra: ['--audio', 'pcmu'], audio: 'audio/PCMU' },
  { name: 'pcma', extra: ['--audio', 'pcma'], audio: 'audio/PCMA' },
  { name: 'opus', extra: ['--audio', 'opus'], audio: 'audio/opus' },
  // Each AAC camera names its encoder: libavcodec's (avenc_aac) ends its AudioSpecificConfig with
  // the sync extension 0x2b7, VisualOn's (voaacenc) does not. Here one of each (a camera test costs
  // about 8 s); codecs.test.mjs plays all four encoder x payload format pairs.
  { name: 'aac-voaacenc', extra: ['--audio', 'aac', '--aac-encoder', 'voaacenc'], audio: 'audio/opus', info: /MPEG4-GENERIC 16000 Hz → opus/ },
  { name: 'aac-latm-avenc', extra: ['--audio', 'aac-latm', '--aac-encoder', 'avenc_aac'], audio: 'audio/opus', info: /MP4A-LATM 16000 Hz → opus/ },
  { name: 'speex', extra: ['--audio', 'speex'], audio: 'audio/opus' },
  // G.722 passes through (Chromium offers G722); L16 is transcoded.
  { name: 'g722', extra: ['--audio', 'g722'], audio: 'audio/G722', info: /G722 8000 Hz \(passed through\)/ },
  { name: 'l16', extra: ['--audio', 'l16'], audio: 'audio/opus', info: /L16 16000 Hz → opus/ },
];

CODECS.forEach((c, i) => {
  const what = [c.extra.join(' '), c.audio && `(browser gets ${c.audio})`].filter(Boolean).join(' ');
  test(`camera ${what}: plays in the browser`, { timeout: 60000, todo: c.todo }, async () => {
    const port = config.cameraPort + 10 + i;
    const camera = await startCamera(env.logDir, { name: c.name, port, extra: c.extra });
    env.cameras[c.name] = camera; // its log is printed on failure
    const page = await openPlayer(env.browser, url(port));
    try {
      await env.run([page], async () => {
        await page.click('#start'); // unmutes the video: Chromium plays the audio out and measures it
        const playing = await waitForStatus(page, 'PLAYING');
        const first = await waitForFrames(page, { which: 'camgate', minFrames: 3 });
        await page.waitForTimeout(500);
        // With audio: sound that keeps playing (waitForAudio waits 1 s more to see it grow).
        const stats = c.audio
          ? await waitForAudio(page, { which: 'camgate' }).catch(async (err) => {
            const answerAudio = await page.evaluate(() => (window.camgate.pc.remoteDescription?.sdp || '')
              .split(/(?=^m=)/m).find((m) => m.startsWith('m=audio')));
            err.message += `\nanswer audio section:\n${answerAudio}`;
            throw err;
          })
          : await (async () => { await page.waitForTimeout(1000); return videoStats(page, 'camgate'); })();
        console.log(`# ${c.name}: info "${playing.info}"; ${JSON.stringify(stats)}`);
        if (c.video) assert.equal(stats.video.mimeType, c.video);
        assert.equal(stats.video.frameWidth, 640);
        assert.equal(stats.video.frameHeight, 360);
        assert.ok(stats.video.framesDecoded > first.video.framesDecoded, 'video stalled');
        if (c.audio) assert.equal(stats.audio.mimeType, c.audio);
        if (c.info) {
          const api = await (await fetch(pageUrl('api/streams'))).text();
          assert.ok(c.info.test(playing.info) || c.info.test(api),
            `no ${c.info} in PLAYING info "${playing.info}" nor in /api/streams ${api}`);
          assert.match(await page.locator('#stream-info').innerText(), /video H264/);
        }
        await page.click('#stop');
        await waitForStatus(page, 'STOPPED', 10000);
      });
    } finally {
      await page.context().close();
      await camera.stop();
    }
  });
});

// What camgate cannot play gets a clear answer. MJPEG (static PT 26, which WebRTC cannot carry):
// FAILED naming it, even with audio camgate could play. G.726 audio: the video plays, and the
// info names the left-out track and why.
test('camera --video mjpeg --audio pcmu: FAILED naming MJPEG', { timeout: 60000 }, async () => {
  const port = config.cameraPort + 25;
  const camera = await startCamera(env.logDir, { name: 'mjpeg', port, video: 'mjpeg', extra: ['--audio', 'pcmu'] });
  env.cameras.mjpeg = camera;
  const page = await openPlayer(env.browser, url(port));
  try {
    await env.run([page], async () => {
      await page.click('#start');
      const failed = await waitForStatus(page, 'FAILED');
      console.log(`# mjpeg: FAILED "${failed.info}"`);
      assert.match(failed.info || '', /Camera video MJPEG \(JPEG\) cannot be played over WebRTC/);
    });
  } finally {
    await page.context().close();
    await camera.stop();
  }
});

test('camera --audio g726: the video plays, the info names the left-out G.726 track', { timeout: 60000 }, async () => {
  const port = config.cameraPort + 26;
  const camera = await startCamera(env.logDir, { name: 'g726', port, extra: ['--audio', 'g726'] });
  env.cameras.g726 = camera;
  const page = await openPlayer(env.browser, url(port));
  try {
    await env.run([page], async () => {
      await page.click('#start');
      const playing = await waitForStatus(page, 'PLAYING');
      const first = await waitForFrames(page, { which: 'camgate', minFrames: 3 });
      await page.waitForTimeout(1000);
      const stats = await videoStats(page, 'camgate');
      assert.ok(stats.video.framesDecoded > first.video.framesDecoded, 'video stalled');
      assert.ok(!stats.audio || stats.audio.packetsReceived === 0, JSON.stringify(stats));
      console.log(`# g726: PLAYING info "${playing.info}"`);
      assert.match(playing.info || '', /left out: audio g726-32: camera audio G726-32 cannot be played/);
      await page.click('#stop');
      await waitForStatus(page, 'STOPPED', 10000);
    });
  } finally {
    await page.context().close();
    await camera.stop();
  }
});
