// Issue 15: the audio codecs intercoms and doorbells send play with SOUND through the unmodified
// Flashphoner Web SDK (its Player example and its API), with a GStreamer camera
// (tests/rtsp_server.py, H.264 + the codec): G.722 passed through to Chromium (which offers
// G722), G.722 transcoded to Opus for an offer without G722, and L16 transcoded to Opus.
// Sound = lib/browser.mjs `waitForAudio`: packets, samples played out and audio energy, growing.
// Own file: node's per-file time limit holds the other SDK sound tests already.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { streamEntry } from './lib/api.mjs';
import { grantMedia, newPage, waitForAudio, waitForFrames } from './lib/browser.mjs';
import { config, wsUrl } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { startCamera } from './lib/procs.mjs';
import { SDK_API_PAGE, sdkApiPlay, sdkApiStop, serveSdk } from './lib/sdk.mjs';
import { openSdkPlayer, play, stop } from './lib/sdk-player.mjs';

const env = useEnvironment({ cameras: [] });
let web;

before(async () => { web = await serveSdk(); });
after(async () => { await web?.close(); });

// One camera at a time (the machine may have 2 cores), started for its test only.
async function withCamera(name, audio, offset, fn) {
  const port = config.cameraPort + 50 + offset;
  const camera = await startCamera(env.logDir, { name, port, extra: ['--audio', audio] });
  env.cameras[name] = camera; // its log is printed on failure
  try {
    return await fn(`rtsp://${config.host}:${port}/cam`);
  } finally {
    await camera.stop();
  }
}

const PLAYER_CASES = [
  { audio: 'g722', mime: 'audio/G722', info: /audio G722 8000 Hz \(passed through\)/ },
  { audio: 'l16', mime: 'audio/opus', info: /audio L16 16000 Hz → opus 48000 Hz/ },
];

PLAYER_CASES.forEach((c, i) => {
  test(`the SDK Player plays sound from a --audio ${c.audio} camera (${c.mime})`, { timeout: 60000 }, async () => {
    await withCamera(`sdk-player-${c.audio}`, c.audio, i, async (url) => {
      const page = await openSdkPlayer(env.browser, web);
      try {
        await env.run([page], async () => {
          await play(page, url);
          const stats = await waitForAudio(page, { which: 'last' });
          console.log(`# SDK Player, ${c.audio}: ${JSON.stringify(stats.audio)}`);
          assert.equal(stats.audio.mimeType, c.mime);
          const entry = await streamEntry(url);
          assert.match(entry?.info || '', c.info, JSON.stringify(entry));
          await stop(page);
        });
      } finally {
        await page.context().close();
      }
    });
  });
});

// The SDK's own createStream option stripCodecs cuts G722 from the offer sent to camgate (as an
// application would for a codec it does not want): camgate sends Opus made from the G.722.
test('the SDK API gets a G.722 camera as Opus when its offer has no G722, with sound', { timeout: 60000 }, async () => {
  await withCamera('sdk-api-g722-opus', 'g722', 5, async (url) => {
    const page = await newPage(env.browser);
    try {
      await env.run([page], async () => {
        await page.goto(web.url(SDK_API_PAGE));
        await page.waitForFunction(() => typeof window.Flashphoner !== 'undefined');
        await grantMedia(page);
        await sdkApiPlay(page, [wsUrl(), url, 'G722']);
        await waitForFrames(page, { which: 'last', minFrames: 3 });
        const stats = await waitForAudio(page, { which: 'last' });
        console.log(`# SDK API, G.722 with G722 stripped from the offer: ${JSON.stringify(stats.audio)}`);
        assert.equal(stats.audio.mimeType, 'audio/opus');
        const entry = await streamEntry(url);
        assert.match(entry?.info || '', /G722 8000 Hz .*→ opus 48000 Hz/, JSON.stringify(entry));
        await sdkApiStop(page, url);
      });
    } finally {
      await page.context().close();
    }
  });
});
