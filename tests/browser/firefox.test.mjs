// Headless Firefox ESR (puppeteer-core over WebDriver BiDi, lib/firefox.mjs) plays gst cameras
// through camgate's own player page: H.264 constrained baseline / Main / High, VP8, with audio.
// Firefox offers H.264 only as profile-level-id 42e01f / 42001f: camgate must answer with a payload
// type the browser offered (it adds 42e01f/42001f/4d001f/64001f fallbacks besides the camera's
// profile) and Firefox must decode the Main/High stream that arrives unchanged.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { config } from './lib/config.mjs';
import {
  firefoxAvailable,
  firefoxSdpVideoLines,
  firefoxStats,
  openFirefoxPlayer,
  useFirefoxEnvironment,
  waitForFirefoxAudio,
  waitForFirefoxFrames,
  waitForFirefoxStatus,
} from './lib/firefox.mjs';
import { startCamera } from './lib/procs.mjs';
import { PROFILE_LEVEL_IDS } from './lib/profiles.mjs';

const skip = firefoxAvailable() ? false : 'no /usr/bin/firefox-esr (apt-get install firefox-esr)';
const env = skip ? null : useFirefoxEnvironment({ cameras: [] });

const url = (port) => `rtsp://${config.host}:${port}/cam`;

// One camera per case, started for its own test only (lib/profiles.mjs: Main/High really are
// Main/High). `profile`: the camera's profile-level-id, which camgate's PLAYING info names.
// `audio`: what Firefox must receive (AAC arrives transcoded to Opus).
const CASES = [
  { name: 'h264-cbp-opus', extra: ['--h264-profile', 'constrained-baseline', '--audio', 'opus'], video: 'video/H264', profile: PROFILE_LEVEL_IDS['constrained-baseline'], audio: 'audio/opus' },
  { name: 'h264-main', extra: ['--h264-profile', 'main'], video: 'video/H264', profile: PROFILE_LEVEL_IDS.main },
  { name: 'h264-high-aac', extra: ['--h264-profile', 'high', '--audio', 'aac', '--aac-encoder', 'avenc_aac'], video: 'video/H264', profile: PROFILE_LEVEL_IDS.high, audio: 'audio/opus' },
  { name: 'vp8-opus', extra: ['--video', 'vp8', '--audio', 'opus'], video: 'video/VP8', audio: 'audio/opus' },
];

CASES.forEach((c, i) => {
  test(`Firefox: camera ${c.extra.join(' ')} plays through the player page`, { timeout: 60000, skip, todo: c.todo }, async () => {
    const port = config.cameraPort + 40 + i;
    const camera = await startCamera(env.logDir, { name: c.name, port, extra: c.extra });
    env.cameras[c.name] = camera; // its log is printed on failure
    const page = await openFirefoxPlayer(env.browser, url(port));
    try {
      await env.run([page], async () => {
        await page.click('#start');
        const status = await waitForFirefoxStatus(page, 'PLAYING');
        const sdp = await firefoxSdpVideoLines(page);
        assert.equal(status.stream, 'PLAYING',
          `stream status ${JSON.stringify(status)}\n--- offer video ---\n${sdp.offer}\n--- answer video ---\n${sdp.answer}`);
        if (c.profile) assert.match(status.info, new RegExp(`H264 ${c.profile}`), 'the camera must send this profile');
        const first = await waitForFirefoxFrames(page, { minFrames: 3 });
        const t0 = Date.now();
        await new Promise((r) => setTimeout(r, 2000));
        const stats = c.audio ? await waitForFirefoxAudio(page) : await firefoxStats(page, 'camgate');
        const fps = ((stats.video.framesDecoded - first.video.framesDecoded) * 1000) / (Date.now() - t0);
        console.log(`# firefox ${c.name}: info "${status.info}"; measured ${fps.toFixed(1)} fps; ${JSON.stringify(stats)}`);
        console.log(`# firefox ${c.name} answer video:\n#   ${sdp.answer.split('\n').join('\n#   ')}`);
        assert.equal(stats.video.mimeType, c.video, JSON.stringify(stats));
        assert.equal(stats.video.frameWidth, 640);
        assert.equal(stats.video.frameHeight, 360);
        assert.ok(fps > 5, `video stalled: ${fps.toFixed(1)} fps (a live 30 fps camera; the threshold is low so a loaded CI machine does not fail it)`);
        if (c.audio) {
          assert.equal(stats.audio.mimeType, c.audio);
          assert.ok(stats.audio.packetsReceived > 10, JSON.stringify(stats.audio));
          assert.ok(stats.audio.totalAudioEnergy > 0, `silence: ${JSON.stringify(stats.audio)}`);
        }
        await page.click('#stop');
        const stopped = await waitForFirefoxStatus(page, 'STOPPED', 10000);
        assert.equal(stopped.stream, 'STOPPED');
      });
    } finally {
      await page.closeContext();
      await camera.stop();
    }
  });
});
