// camgate's own player page (server/static) against camgate, the gst camera and the demo camera.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { videoStats, waitForFrames } from './lib/browser.mjs';
import { cameraUrl, demoCameraUrl } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { openPlayer, statusText, waitForStatus } from './lib/player.mjs';

const env = useEnvironment();

async function playAndCheck(page, expectedUrl) {
  assert.equal(await page.inputValue('#url'), expectedUrl);
  await page.click('#start');
  await waitForStatus(page, 'PLAYING');
  assert.match(await statusText(page), /PLAYING/);
  const stats = await waitForFrames(page, { which: 'camgate', minFrames: 5 });
  assert.equal(stats.video.frameWidth, 640, JSON.stringify(stats));
  assert.equal(stats.video.frameHeight, 360, JSON.stringify(stats));
  assert.equal(stats.video.mimeType, 'video/H264', JSON.stringify(stats));
  assert.equal(await page.locator('#video').evaluate((v) => v.videoWidth), 640);
  // Still running a moment later (not just one keyframe).
  const before = stats.video.framesDecoded;
  await page.waitForTimeout(1000);
  const later = await videoStats(page, 'camgate');
  assert.ok(later.video.framesDecoded >= before + 10, `frames stalled: ${before} -> ${JSON.stringify(later)}`);
  return later;
}

async function stopAndCheck(page) {
  await page.click('#stop');
  await waitForStatus(page, 'STOPPED', 10000);
  const status = await page.evaluate(() => window.camgate.status);
  assert.notEqual(status.info, 'not confirmed by the server', 'STOPPED must come from the server');
  assert.equal(await page.evaluate(() => window.camgate.pc), null);
  assert.equal(await page.isEnabled('#start'), true);
}

test('plays the gst camera given in ?url=, then stops', { timeout: 60000 }, async () => {
  const page = await openPlayer(env.browser, cameraUrl());
  await env.run([page], async () => {
    const stats = await playAndCheck(page, cameraUrl());
    console.log(`# gst camera: ${JSON.stringify(stats.video)}; first frame after ${await page.evaluate(() => window.camgate.firstFrameMs)} ms`);
    await stopAndCheck(page);
  });
  await page.context().close();
});

test('plays the built-in demo camera by default', { timeout: 60000 }, async () => {
  const page = await openPlayer(env.browser);
  await env.run([page], async () => {
    const stats = await playAndCheck(page, demoCameraUrl());
    console.log(`# demo camera: ${JSON.stringify(stats.video)}`);
    // Start again on the same page (same signaling session) after a stop.
    await stopAndCheck(page);
    await page.click('#start');
    await waitForStatus(page, 'PLAYING');
    await waitForFrames(page, { which: 'camgate', minFrames: 1 });
    await stopAndCheck(page);
  });
  await page.context().close();
});

test('a closed camera port fails with "Failed to connect"', { timeout: 60000 }, async () => {
  const url = 'rtsp://127.0.0.1:1/x';
  const page = await openPlayer(env.browser, url);
  await env.run([page], async () => {
    await page.click('#start');
    const status = await waitForStatus(page, 'FAILED');
    assert.match(status.info, /Failed to connect/);
    assert.match(await statusText(page), /FAILED: .*Failed to connect/);
    assert.equal(await page.isEnabled('#start'), true);
  });
  await page.context().close();
});

test('a malformed URL fails with "Bad URI"', { timeout: 60000 }, async () => {
  const page = await openPlayer(env.browser, 'not a url');
  await env.run([page], async () => {
    await page.click('#start');
    const status = await waitForStatus(page, 'FAILED');
    assert.match(status.info, /Bad URI/);
    assert.match(await statusText(page), /FAILED: .*Bad URI/);
  });
  await page.context().close();
});

test('answers the server ping with pong and keeps playing', { timeout: 60000 }, async () => {
  const page = await openPlayer(env.browser, cameraUrl());
  await env.run([page], async () => {
    await page.click('#start');
    await waitForStatus(page, 'PLAYING');
    // camgate pings every 15 s.
    await page.waitForFunction(
      () => window.camgate.log.some((f) => f.dir === 'in' && JSON.parse(f.frame).message === 'ping'),
      null,
      { timeout: 40000, polling: 200 },
    );
    await page.waitForTimeout(200);
    const frames = await page.evaluate(() => window.camgate.log.map((f) => [f.dir, JSON.parse(f.frame)]));
    const ping = frames.findIndex(([dir, f]) => dir === 'in' && f.message === 'ping');
    const pong = frames.slice(ping).find(([dir, f]) => dir === 'out' && f.message === 'pong');
    assert.ok(pong, 'no pong after the ping');
    assert.deepEqual(pong[1].data, [null]);
    assert.equal((await page.evaluate(() => window.camgate.status)).stream, 'PLAYING');
    await waitForFrames(page, { which: 'camgate', minFrames: 300 });
    await page.click('#stop');
    await waitForStatus(page, 'STOPPED', 10000);
  });
  await page.context().close();
});
