// Driving camgate's own player page (server/static): open it, wait for stream statuses.

import assert from 'node:assert/strict';

import { grantMedia, newPage, newPageWith } from './browser.mjs';
import { pageUrl } from './config.mjs';

export async function openPlayer(browser, streamUrl) {
  const page = await newPage(browser);
  const query = streamUrl === undefined ? '' : `?url=${encodeURIComponent(streamUrl)}`;
  await page.goto(pageUrl(query));
  await page.waitForFunction(() => window.camgate !== undefined);
  await grantMedia(page);
  return page;
}

export const statusText = (page) => page.locator('#status').innerText();

// Waits until the page's stream status is `status`; ends early on another final state
// (FAILED, STOPPED) and then fails with the status line.
export async function waitForStatus(page, status, timeoutMs = 20000) {
  await page.waitForFunction(
    ([want]) => {
      const s = window.camgate.status.stream;
      return s === want || s === 'FAILED' || s === 'STOPPED';
    },
    [status],
    { timeout: timeoutMs, polling: 50 },
  );
  const got = await page.evaluate(() => window.camgate.status);
  assert.equal(got.stream, status, `stream status ${JSON.stringify(got)}; #status: ${await statusText(page)}`);
  return got;
}

// Opens camgate's player at a full page URL (e.g. https://...?url=...&ws=wss://...) in a context
// with `contextOptions` (e.g. `{ ignoreHTTPSErrors: true }`), with media permission.
export async function openPlayerAt(browser, fullPageUrl, contextOptions = {}) {
  const page = await newPageWith(browser, contextOptions);
  await page.goto(fullPageUrl);
  await page.waitForFunction(() => window.camgate !== undefined);
  await grantMedia(page);
  return page;
}
