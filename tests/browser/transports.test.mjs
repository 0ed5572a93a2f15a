// RTSP lower transports (issue 4): camgate's default `auto` asks for UDP first and falls back to
// TCP-interleaved; cameras restricted to one transport both play, and camgate's log says which
// one it used (`rtsp playing url=... transport=Udp|Tcp`). Credentials over both paths: Digest,
// Basic with a percent-encoded password holding '@' and ':', and a wrong password → 401.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { videoStats, waitForFrames } from './lib/browser.mjs';
import { config } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { openPlayer, waitForStatus } from './lib/player.mjs';

const USER = 'admin';
const PASSWORD = 'p@ss:word';
const ENCODED = 'p%40ss%3Aword';
const udpPort = config.cameraPort + 30;
const tcpPort = config.cameraPort + 31;
const digestPort = config.cameraPort + 32;
const basicPort = config.cameraPort + 33;

const env = useEnvironment({
  cameras: [
    { name: 'udp-only', port: udpPort, extra: ['--protocols', 'udp'] },
    { name: 'tcp-only', port: tcpPort, extra: ['--protocols', 'tcp'] },
    { name: 'digest', port: digestPort, extra: ['--user', USER, '--password', PASSWORD, '--auth', 'digest'] },
    { name: 'basic', port: basicPort, extra: ['--user', USER, '--password', PASSWORD, '--auth', 'basic'] },
  ],
});

const url = (port, creds = '') => `rtsp://${creds}${config.host}:${port}/cam`;

// The transports camgate's log reports for the camera on `port`, in order.
function loggedTransports(port) {
  const log = fs.readFileSync(env.camgate.logFile, 'utf8');
  const re = new RegExp(`rtsp playing.*url=\\S*${config.host}:${port}/\\S*.*transport=(\\w+)`, 'g');
  return [...log.matchAll(re)].map((m) => m[1]);
}

// Plays `target` in a fresh player page until frames keep coming; returns {stats, ms}.
async function play(target) {
  const page = await openPlayer(env.browser, target);
  try {
    return await env.run([page], async () => {
      const t0 = Date.now();
      await page.click('#start');
      await waitForStatus(page, 'PLAYING');
      const first = await waitForFrames(page, { which: 'camgate', minFrames: 3 });
      const ms = Date.now() - t0;
      await sleep(1000);
      const stats = await videoStats(page, 'camgate');
      assert.equal(stats.video.mimeType, 'video/H264');
      assert.equal(stats.video.frameWidth, 640);
      assert.ok(stats.video.framesDecoded > first.video.framesDecoded, `video stalled: ${JSON.stringify(stats)}`);
      await page.click('#stop');
      await waitForStatus(page, 'STOPPED', 10000);
      return { stats, ms };
    });
  } finally {
    await page.context().close();
  }
}

test('UDP-only camera plays over UDP with the default auto transport', { timeout: 60000 }, async () => {
  const { stats, ms } = await play(url(udpPort));
  const used = loggedTransports(udpPort);
  console.log(`# udp-only: first frames after ${ms} ms; transports logged ${JSON.stringify(used)}; ${JSON.stringify(stats.video)}`);
  assert.deepEqual(used, ['Udp'], `camgate log: ${env.camgate.tail(30)}`);
});

test('TCP-only camera plays over TCP after the UDP SETUP is refused', { timeout: 60000 }, async () => {
  const { stats, ms } = await play(url(tcpPort));
  const used = loggedTransports(tcpPort);
  console.log(`# tcp-only: first frames after ${ms} ms; transports logged ${JSON.stringify(used)}; ${JSON.stringify(stats.video)}`);
  assert.deepEqual(used, ['Tcp'], `camgate log: ${env.camgate.tail(30)}`);
  const log = fs.readFileSync(env.camgate.logFile, 'utf8');
  const fallback = log.split('\n').filter((l) => l.includes(`:${tcpPort}/`) && /461|fall|tcp/i.test(l) && !/rtsp playing/.test(l));
  console.log(`# tcp-only fallback lines:\n${fallback.slice(0, 5).map((l) => `#   ${l}`).join('\n')}`);
  assert.ok(fallback.some((l) => /from=Udp to=Tcp/.test(l)), 'no UDP → TCP switch logged');
});

test('Digest auth over UDP plays', { timeout: 60000 }, async () => {
  const { ms } = await play(url(digestPort, `${USER}:${ENCODED}@`));
  const used = loggedTransports(digestPort);
  console.log(`# digest: first frames after ${ms} ms; transports ${JSON.stringify(used)}`);
  assert.deepEqual(used, ['Udp']);
});

test("Basic auth with '@' and ':' in the password (percent-encoded) plays", { timeout: 60000 }, async () => {
  assert.equal(encodeURIComponent(PASSWORD), ENCODED);
  const { ms } = await play(url(basicPort, `${USER}:${ENCODED}@`));
  const used = loggedTransports(basicPort);
  console.log(`# basic: first frames after ${ms} ms; transports ${JSON.stringify(used)}`);
  assert.deepEqual(used, ['Udp']);
  const log = fs.readFileSync(env.camgate.logFile, 'utf8');
  assert.ok(!log.includes(ENCODED) && !log.includes(PASSWORD), 'camgate logged the password');
});

test('a wrong password fails with 401 Unauthorized', { timeout: 60000 }, async () => {
  for (const port of [basicPort, digestPort]) {
    const page = await openPlayer(env.browser, url(port, `${USER}:p%40ss%3Awrong@`));
    try {
      await env.run([page], async () => {
        await page.click('#start');
        const status = await waitForStatus(page, 'FAILED');
        console.log(`# wrong password on :${port}: FAILED "${status.info}"`);
        assert.match(status.info, /401 Unauthorized/);
      });
    } finally {
      await page.context().close();
    }
  }
});
