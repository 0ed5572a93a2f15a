// The UNMODIFIED Flashphoner Web SDK Player example (npm @flashphoner/websdk) against camgate:
// served as is from the package root, it loads ../../../../flashphoner.js.
// Its elements (examples/demo/streaming/player/player.html): #url (WCS URL), #streamName,
// #playBtn (Start, then Stop), #status (session, then stream status), #info (reason on FAILED),
// #remoteVideo (the SDK puts its <video> in there).
// Sound: for every audio codec a camera may send, the Player and the SDK API (createSession →
// createStream → play) must play it audibly (lib/browser.mjs `waitForAudio`): the SDK attaches
// only one MediaStream to its <video>, so audio and video must come in one.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { AUDIO_CAMERAS } from './lib/audio-cameras.mjs';
import { grantMedia, newPage, waitForAudio, waitForFrames } from './lib/browser.mjs';
import { cameraUrl, config, demoCameraUrl, wsUrl } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { startCamera } from './lib/procs.mjs';
import { SDK_API_PAGE, sdkApiPlay, sdkApiStop, serveSdk } from './lib/sdk.mjs';
import { openSdkPlayer, play, stop, waitForSdkStatus } from './lib/sdk-player.mjs';

const env = useEnvironment();
let web;

before(async () => { web = await serveSdk(); });
after(async () => { await web?.close(); });

test('the SDK Player plays the gst camera and stops', { timeout: 60000 }, async () => {
  const page = await openSdkPlayer(env.browser, web);
  await env.run([page], async () => {
    const stats = await play(page, cameraUrl());
    console.log(`# SDK Player, gst camera: ${JSON.stringify(stats.video)}`);
    await stop(page);
    // The Player reuses its session for a second play of the same server URL.
    await play(page, cameraUrl());
    await stop(page);
  });
  await page.context().close();
});

test('the SDK Player plays the built-in demo camera', { timeout: 60000 }, async () => {
  const page = await openSdkPlayer(env.browser, web);
  await env.run([page], async () => {
    const stats = await play(page, demoCameraUrl());
    console.log(`# SDK Player, demo camera: ${JSON.stringify(stats.video)}`);
    await stop(page);
  });
  await page.context().close();
});

test('the SDK Player shows the failure reason in #info', { timeout: 60000 }, async () => {
  const page = await openSdkPlayer(env.browser, web);
  await env.run([page], async () => {
    await page.fill('#url', wsUrl());
    await page.fill('#streamName', 'rtsp://127.0.0.1:1/x');
    await page.click('#playBtn');
    const { info } = await waitForSdkStatus(page, 'FAILED');
    assert.match(info, /Failed to connect/);
  });
  await page.context().close();
});

// One camera per audio codec, started for its own test only (the machine may have 2 cores).
async function withAudioCamera(c, i, fn) {
  const port = config.cameraPort + 30 + i;
  const camera = await startCamera(env.logDir, { name: `sdk-${c.name}`, port, extra: c.extra });
  env.cameras[`sdk-${c.name}`] = camera; // its log is printed on failure
  try {
    return await fn(`rtsp://${config.host}:${port}/cam`);
  } finally {
    await camera.stop();
  }
}

AUDIO_CAMERAS.forEach((c, i) => {
  test(`the SDK Player plays sound from a ${c.extra.join(' ')} camera (${c.mime})`, { timeout: 60000 }, async () => {
    await withAudioCamera(c, i, async (url) => {
      const page = await openSdkPlayer(env.browser, web);
      try {
        await env.run([page], async () => {
          await play(page, url);
          const stats = await waitForAudio(page, { which: 'last' });
          console.log(`# SDK Player, ${c.name}: ${JSON.stringify(stats.audio)}`);
          assert.equal(stats.audio.mimeType, c.mime);
          await stop(page);
        });
      } finally {
        await page.context().close();
      }
    });
  });

  test(`the SDK API plays sound from a ${c.extra.join(' ')} camera (${c.mime})`, { timeout: 60000 }, async () => {
    await withAudioCamera(c, i, async (url) => {
      const page = await newPage(env.browser);
      try {
        await env.run([page], async () => {
          await page.goto(web.url(SDK_API_PAGE));
          await page.waitForFunction(() => typeof window.Flashphoner !== 'undefined');
          await grantMedia(page);
          await sdkApiPlay(page, [wsUrl(), url]);
          await waitForFrames(page, { which: 'last', minFrames: 3 });
          const stats = await waitForAudio(page, { which: 'last' });
          console.log(`# SDK API, ${c.name}: ${JSON.stringify(stats.audio)}`);
          assert.equal(stats.audio.mimeType, c.mime);
          await sdkApiStop(page, url);
        });
      } finally {
        await page.context().close();
      }
    });
  });
});
