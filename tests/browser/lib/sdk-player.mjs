// The unmodified Flashphoner Web SDK Player example (lib/sdk.mjs serves it) driven from a
// Playwright page: #url, #streamName, #playBtn (Start, then Stop), #status, #info, #remoteVideo.

import assert from 'node:assert/strict';

import { grantMedia, newPage, waitForFrames } from './browser.mjs';
import { wsUrl } from './config.mjs';
import { PLAYER } from './sdk.mjs';

export async function openSdkPlayer(browser, web) {
  const page = await newPage(browser);
  await page.goto(web.url(PLAYER));
  await page.waitForFunction(() => typeof window.Flashphoner !== 'undefined' && document.querySelector('#playBtn'));
  await page.waitForFunction(() => document.querySelector('#playBtn').textContent.trim() === 'Start');
  await grantMedia(page);
  return page;
}

export async function waitForSdkStatus(page, want, timeoutMs = 20000) {
  await page.waitForFunction(
    ([w]) => {
      const s = document.querySelector('#status').textContent.trim();
      // The Player keeps the last status text (STOPPED) until the next one, so only FAILED
      // ends a wait for another status early.
      return s === w || (s === 'FAILED' && w !== 'FAILED');
    },
    [want],
    { timeout: timeoutMs, polling: 50 },
  );
  const status = (await page.locator('#status').textContent()).trim();
  const info = (await page.locator('#info').textContent()).trim();
  assert.equal(status, want, `Player #status ${status}, #info "${info}"`);
  return { status, info };
}

export async function play(page, streamName) {
  await page.fill('#url', wsUrl());
  await page.fill('#streamName', streamName);
  await page.click('#playBtn');
  await waitForSdkStatus(page, 'PLAYING');
  const stats = await waitForFrames(page, { which: 'last', minFrames: 5 });
  assert.equal(stats.video.mimeType, 'video/H264', JSON.stringify(stats));
  assert.equal(stats.video.frameWidth, 640, JSON.stringify(stats));
  assert.equal(stats.video.frameHeight, 360, JSON.stringify(stats));
  const video = page.locator('#remoteVideo video');
  assert.equal(await video.evaluate((v) => v.videoWidth), 640);
  return stats;
}

export async function stop(page) {
  await page.waitForFunction(() => {
    const b = document.querySelector('#playBtn');
    return b.textContent.trim() === 'Stop' && !b.disabled;
  });
  await page.click('#playBtn');
  await waitForSdkStatus(page, 'STOPPED', 10000);
  await page.waitForFunction(() => document.querySelector('#playBtn').textContent.trim() === 'Start');
}
