// Chromium plays cameras that really send H.264 Main (4d401e) and High (64001e) profile
// (lib/profiles.mjs) through camgate's player page: camgate answers with a payload type Chromium
// offered and sends the camera's stream unchanged. firefox.test.mjs does the same in Firefox.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { videoStats, waitForAudio, waitForFrames } from './lib/browser.mjs';
import { config } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { openPlayer, waitForStatus } from './lib/player.mjs';
import { startCamera } from './lib/procs.mjs';
import { PROFILE_LEVEL_IDS } from './lib/profiles.mjs';

const env = useEnvironment({ cameras: [] });

const url = (port) => `rtsp://${config.host}:${port}/cam`;

const CASES = [
  { name: 'h264-main', extra: ['--h264-profile', 'main'], profile: PROFILE_LEVEL_IDS.main },
  { name: 'h264-high-opus', extra: ['--h264-profile', 'high', '--audio', 'opus'], profile: PROFILE_LEVEL_IDS.high, audio: 'audio/opus' },
];

// The H.264 rtpmap/fmtp lines of the pc's offer and answer.
const videoLines = (page) => page.evaluate(() => {
  const pc = window.camgate.pc;
  const lines = (sdp = '') => (sdp.split(/(?=^m=)/m).find((m) => m.startsWith('m=video')) || '')
    .split(/\r?\n/).filter((l) => /^a=(rtpmap|fmtp):\d+ (H264|profile-level-id|[a-z-]+=.*profile-level-id)/.test(l)).join('\n');
  return { offer: lines(pc?.localDescription?.sdp), answer: lines(pc?.remoteDescription?.sdp) };
});

CASES.forEach((c, i) => {
  test(`Chromium: camera ${c.extra.join(' ')} (${c.profile}) plays through the player page`, { timeout: 60000 }, async () => {
    const port = config.cameraPort + 50 + i;
    const camera = await startCamera(env.logDir, { name: c.name, port, extra: c.extra });
    env.cameras[c.name] = camera; // its log is printed on failure
    const page = await openPlayer(env.browser, url(port));
    try {
      await env.run([page], async () => {
        await page.click('#start');
        const playing = await waitForStatus(page, 'PLAYING');
        assert.match(playing.info, new RegExp(`H264 ${c.profile}`), 'the camera must send this profile');
        const first = await waitForFrames(page, { which: 'camgate', minFrames: 3 });
        const t0 = Date.now();
        await sleep(2000);
        const stats = c.audio ? await waitForAudio(page, { which: 'camgate' }) : await videoStats(page, 'camgate');
        const fps = ((stats.video.framesDecoded - first.video.framesDecoded) * 1000) / (Date.now() - t0);
        const sdp = await videoLines(page);
        console.log(`# chromium ${c.name}: info "${playing.info}"; measured ${fps.toFixed(1)} fps; ${JSON.stringify(stats)}`);
        console.log(`# chromium ${c.name} answer H.264:\n#   ${sdp.answer.split('\n').join('\n#   ')}`);
        assert.equal(stats.video.mimeType, 'video/H264');
        assert.equal(stats.video.frameWidth, 640);
        assert.equal(stats.video.frameHeight, 360);
        assert.ok(fps > 5, `video stalled: ${fps.toFixed(1)} fps (a live 30 fps camera; the threshold is low so a loaded CI machine does not fail it)`);
        if (c.audio) {
          assert.equal(stats.audio.mimeType, c.audio);
          assert.ok(stats.audio.totalAudioEnergy > 0, `silence: ${JSON.stringify(stats.audio)}`);
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
