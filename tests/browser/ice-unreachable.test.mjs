// A viewer whose browser cannot reach camgate's media ports: the unmodified Flashphoner SDK
// Player must show FAILED with the reason (what camgate offered, and that no check arrived)
// within the ICE timeout (10 s by default), not sit there with no picture; a viewer whose path
// is open keeps playing.
//
// The block: a firewall rule (iptables, Debian `iptables`) in the test's own network namespace
// that drops NEW flows to camgate's media ports (20000-20063, UDP and TCP). The first viewer's
// flow is already established, so only the second viewer's checks are dropped: the same
// browser, two pages, one blocked.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';

import { waitForFrames } from './lib/browser.mjs';
import { cameraUrl, config, wsUrl } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { serveSdk } from './lib/sdk.mjs';
import { openSdkPlayer, play, stop, waitForSdkStatus } from './lib/sdk-player.mjs';

const env = useEnvironment();
let web;

before(async () => { web = await serveSdk(); });
after(async () => { await web?.close(); });

const ICE_TIMEOUT_MS = 10000;
const ports = `${config.webrtcPort}:${config.webrtcPort + 63}`;
const rules = ['udp', 'tcp'].map((proto) => [
  'INPUT', '-p', proto, '--dport', ports, '-m', 'conntrack', '--ctstate', 'NEW', '-j', 'DROP',
]);
const iptables = (op) => {
  for (const rule of rules) execFileSync('iptables', [op, ...rule]);
};

test('a viewer whose media ports are blocked gets FAILED with the reason; the other plays on', { timeout: 90000 }, async () => {
  const open = await openSdkPlayer(env.browser, web);
  const blocked = await openSdkPlayer(env.browser, web);
  await env.run([open, blocked], async () => {
    await play(open, cameraUrl());
    iptables('-A');
    try {
      await blocked.fill('#url', wsUrl());
      await blocked.fill('#streamName', cameraUrl());
      const started = Date.now();
      await blocked.click('#playBtn');
      const { info } = await waitForSdkStatus(blocked, 'FAILED', ICE_TIMEOUT_MS + 10000);
      const ms = Date.now() - started;
      console.log(`# FAILED after ${ms} ms: ${info}`);
      assert.match(info, /^no ICE connectivity: camgate's UDP 127\.0\.0\.1:20000\b.* got no check from the browser within 10 s/);
      assert.ok(ms >= ICE_TIMEOUT_MS - 500 && ms < ICE_TIMEOUT_MS + 3000, `FAILED after ${ms} ms`);
      const dropped = execFileSync('iptables', ['-L', 'INPUT', '-v', '-n', '-x']).toString();
      console.log(`# firewall:\n${dropped.replace(/^/gm, '#   ')}`);

      // The first viewer never noticed: its frames keep coming.
      const before = (await waitForFrames(open, { which: 'last' })).video.framesDecoded;
      await open.waitForTimeout(1000);
      const now = (await waitForFrames(open, { which: 'last' })).video.framesDecoded;
      console.log(`# open viewer: ${before} -> ${now} frames in 1 s`);
      assert.ok(now >= before + 15, `the open viewer stalled: ${before} -> ${now}`);
      assert.equal((await open.locator('#status').textContent()).trim(), 'PLAYING');
    } finally {
      iptables('-D');
    }
    // Unblocked, the same page plays. (The Player shows its last status until the next one:
    // clear the old FAILED so that waiting for PLAYING does not end on it.)
    await blocked.waitForFunction(() => document.querySelector('#playBtn').textContent.trim() === 'Start');
    await blocked.evaluate(() => { document.querySelector('#status').textContent = ''; });
    await play(blocked, cameraUrl());
    await stop(blocked);
    await stop(open);
  });
  for (const page of [open, blocked]) await page.context().close();
});
