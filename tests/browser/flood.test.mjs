// Isolation (issue #7): a flood of WebSocket and HTTP connections must not stall viewers that are
// playing. Chromium plays the built-in demo camera through the player page while this process
// opens idle half-finished requests on both web ports, WebSocket sessions that send garbage, an
// oversized frame or nothing, and a burst of API requests. The viewer's framesDecoded is sampled
// every 250 ms meanwhile. Then the same past camgate's open files limit (lowered with prlimit on
// the running process): the viewer keeps playing and camgate accepts again once the flood is gone.
// Every loop is bounded and every socket is closed at the end. Figures: docs/SOAK.md.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { api } from './lib/api.mjs';
import { videoStats, waitForFrames } from './lib/browser.mjs';
import { config } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { openPlayer, waitForStatus } from './lib/player.mjs';

const env = useEnvironment({ cameras: [] }); // the built-in demo camera (30 fps)

// The longest a playing viewer may go without a new decoded frame during a flood. Generous for a
// loaded 2-core machine: this is a no-stall test, not a benchmark.
const MAX_STALL_MS = 1500;
const SAMPLE_EVERY_MS = 250;

// ---- the flood (all sockets go into `sockets`, closed by closeAll) ----

// One TCP connection, or null when it is not established in `timeoutMs` (a full listen queue:
// the kernel drops the SYN) or fails.
function connect(port, sockets, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: config.host, port });
    sockets.push(sock);
    sock.on('error', () => {}); // resets when camgate closes a slow client
    sock.on('data', () => {});
    const timer = setTimeout(() => { sock.destroy(); resolve(null); }, timeoutMs);
    sock.once('connect', () => { clearTimeout(timer); resolve(sock); });
    sock.once('close', () => { clearTimeout(timer); resolve(null); });
  });
}

// Runs `count` jobs, at most `parallel` at a time.
async function pool(count, parallel, job) {
  let next = 0;
  const worker = async () => {
    while (next < count) await job(next++);
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, worker));
}

// Slowloris: connections that send part of a request head and never finish it.
async function idleConnections(port, count, sockets, parallel = 50) {
  let opened = 0;
  await pool(count, parallel, async () => {
    const sock = await connect(port, sockets);
    if (!sock) return;
    opened++;
    sock.write(`GET /api/streams HTTP/1.1\r\nHost: ${config.host}\r\nX-Slow: `);
  });
  return opened;
}

// A masked client frame (RFC 6455): `opcode`, `payload`, and the length it declares.
function wsFrame(opcode, payload, declared = payload.length) {
  const mask = crypto.randomBytes(4);
  let head;
  if (declared < 126) head = Buffer.from([0x80 | opcode, 0x80 | declared]);
  else if (declared < 65536) {
    head = Buffer.alloc(4);
    head.writeUInt16BE(declared, 2);
    head[0] = 0x80 | opcode; head[1] = 0x80 | 126;
  } else {
    head = Buffer.alloc(10);
    head.writeBigUInt64BE(BigInt(declared), 2);
    head[0] = 0x80 | opcode; head[1] = 0x80 | 127;
  }
  const body = Buffer.from(payload).map((b, i) => b ^ mask[i % 4]);
  return Buffer.concat([head, mask, body]);
}

// WebSocket sessions that complete the upgrade, then by turns: send nothing; a frame with a
// reserved opcode; a frame declaring 1 TiB; a 200 KiB text message that is not JSON.
async function hostileWebSockets(count, sockets, parallel = 50) {
  const result = { upgraded: 0, closedByServer: 0 };
  await pool(count, parallel, async (i) => {
    const sock = await connect(config.wsPort, sockets);
    if (!sock) return;
    const upgraded = await new Promise((resolve) => {
      let got = '';
      const timer = setTimeout(() => resolve(false), 5000);
      sock.on('data', function onData(chunk) {
        got += chunk.toString('latin1');
        if (got.includes('\r\n\r\n')) {
          clearTimeout(timer);
          sock.off('data', onData);
          resolve(got.startsWith('HTTP/1.1 101'));
        }
      });
      sock.once('close', () => { clearTimeout(timer); resolve(false); });
      sock.write(`GET / HTTP/1.1\r\nHost: ${config.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
        + `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\n\r\n`);
    });
    if (!upgraded) return;
    result.upgraded++;
    sock.once('close', () => { result.closedByServer++; });
    switch (i % 4) {
      case 0: break; // nothing
      case 1: sock.write(wsFrame(0x3, crypto.randomBytes(64))); break;
      case 2: sock.write(wsFrame(0x2, crypto.randomBytes(16), 2 ** 40)); break;
      default: sock.write(wsFrame(0x1, Buffer.alloc(200 * 1024, 'x'))); break;
    }
  });
  return result;
}

// `count` GET /api/streams, each on its own connection, `parallel` at a time.
async function apiBurst(count, parallel = 50) {
  let answered = 0;
  let failed = 0;
  await pool(count, parallel, () => new Promise((resolve) => {
    const req = http.get(
      { host: config.host, port: config.httpPort, path: '/api/streams', agent: false, timeout: 10000 },
      (res) => {
        res.resume();
        res.on('end', () => { if (res.statusCode === 200) answered++; else failed++; resolve(); });
        res.on('error', () => { failed++; resolve(); });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => { failed++; resolve(); });
  }));
  return { answered, failed };
}

function closeAll(sockets) {
  for (const sock of sockets) sock.destroy();
  sockets.length = 0;
}

// ---- the viewer ----

// Samples the viewer's framesDecoded every 250 ms until stop() (at most `maxMs`). The stall is
// measured on the browser's stats clock, so a busy test process cannot fake one: the longest time
// framesDecoded was seen not to move.
function sampleFrames(page, maxMs = 60000) {
  const samples = [];
  let stopped = false;
  const done = (async () => {
    const end = Date.now() + maxMs;
    while (!stopped && Date.now() < end) {
      const stats = await videoStats(page, 'camgate').catch(() => null);
      if (stats?.video) samples.push({ t: stats.video.timestamp, frames: stats.video.framesDecoded });
      await sleep(SAMPLE_EVERY_MS);
    }
  })();
  return {
    async stop() {
      stopped = true;
      await done;
      let stall = 0;
      let since = samples[0]?.t;
      let longestSample = 0;
      for (let i = 1; i < samples.length; i++) {
        longestSample = Math.max(longestSample, samples[i].t - samples[i - 1].t);
        if (samples[i].frames > samples[i - 1].frames) since = samples[i].t;
        else stall = Math.max(stall, samples[i].t - since);
      }
      const frames = samples.length ? samples.at(-1).frames - samples[0].frames : 0;
      const seconds = samples.length ? (samples.at(-1).t - samples[0].t) / 1000 : 0;
      return { samples: samples.length, stall: Math.round(stall), longestSample: Math.round(longestSample), frames, seconds };
    },
  };
}

async function startViewer() {
  const page = await openPlayer(env.browser); // pre-filled with the demo camera
  await page.click('#start');
  await waitForStatus(page, 'PLAYING');
  await waitForFrames(page, { which: 'camgate', minFrames: 10 });
  return page;
}

function checkPlayed(name, viewer) {
  console.log(`# ${name}: ${viewer.frames} frames decoded in ${viewer.seconds.toFixed(1)} s of flood `
    + `(${viewer.samples} samples, longest gap between samples ${viewer.longestSample} ms); `
    + `longest time without a new frame ${viewer.stall} ms`);
  assert.ok(viewer.samples >= 8, `only ${viewer.samples} samples`);
  assert.ok(viewer.stall <= MAX_STALL_MS, `the viewer saw no new frame for ${viewer.stall} ms`);
  assert.ok(viewer.frames >= viewer.seconds * 10, `${viewer.frames} frames in ${viewer.seconds} s`);
}

// A second viewer starts and plays after the flood, and the API answers.
async function secondViewerPlays(pages) {
  const started = Date.now();
  const page = await startViewer();
  pages.push(page);
  const ms = Date.now() - started;
  assert.equal((await api('GET', '/api/streams')).status, 200);
  const stats = await videoStats(page, 'camgate');
  assert.equal(stats.video.frameWidth, 640);
  return ms;
}

test('a flood of WebSocket and HTTP connections does not stall a playing viewer', { timeout: 90000 }, async () => {
  const pages = [await startViewer()];
  const sockets = [];
  await env.run(pages, async () => {
    const sampler = sampleFrames(pages[0]);
    const floodStart = Date.now();
    try {
      const [idleWs, idleHttp, ws, burst] = await Promise.all([
        idleConnections(config.wsPort, 250, sockets),
        idleConnections(config.httpPort, 250, sockets),
        hostileWebSockets(200, sockets),
        apiBurst(2000),
      ]);
      // Hold the idle connections a little (camgate drops an unfinished request after 10 s).
      const held = Math.max(0, 6000 - (Date.now() - floodStart));
      await sleep(held);
      const opened = sockets.length;
      const viewer = await sampler.stop();
      closeAll(sockets);
      console.log(`# flood: ${opened + 2000} connections opened in ${((Date.now() - floodStart) / 1000).toFixed(1)} s, `
        + `${opened} of them held open: ${idleWs} idle on the WebSocket port, ${idleHttp} idle on the HTTP port, `
        + `${ws.upgraded} WebSocket sessions upgraded (${ws.closedByServer} closed by camgate for garbage or size), `
        + `${burst.answered} of 2000 API requests answered 200 (${burst.failed} failed)`);
      assert.equal(idleWs + idleHttp, 500);
      assert.equal(ws.upgraded, 200);
      assert.equal(burst.answered, 2000);
      checkPlayed('viewer during the flood', viewer);
      const ms = await secondViewerPlays(pages);
      console.log(`# after the flood: a second viewer played after ${ms} ms`);
    } finally {
      await sampler.stop();
      closeAll(sockets);
    }
  });
  for (const page of pages) await page.context().close();
});

test('past the open files limit the viewer keeps playing, and camgate accepts again after', { timeout: 90000 }, async () => {
  const pid = String(env.camgate.pid);
  const soft = execFileSync('prlimit', ['--pid', pid, '--nofile', '--raw', '--noheadings', '--output', 'SOFT'])
    .toString().trim();
  const LIMIT = 256;
  const pages = [await startViewer()];
  const sockets = [];
  await env.run(pages, async () => {
    execFileSync('prlimit', ['--pid', pid, `--nofile=${LIMIT}:`]);
    const sampler = sampleFrames(pages[0]);
    const floodStart = Date.now();
    try {
      // More than the limit: camgate takes what it can, both listen queues (128 each) fill, and
      // further connects time out.
      const [idleWs, idleHttp] = await Promise.all([
        idleConnections(config.wsPort, 400, sockets),
        idleConnections(config.httpPort, 400, sockets),
      ]);
      await env.camgate.waitForLine(new RegExp(`accept failed.*open files limit ${LIMIT}`), 10000);
      await sleep(Math.max(0, 5000 - (Date.now() - floodStart)));
      const viewer = await sampler.stop();
      closeAll(sockets);
      const warnings = (env.camgate.stdout.match(/accept failed/g) || []).length;
      console.log(`# flood past ulimit -n ${LIMIT}: ${idleWs + idleHttp} of 800 connections established `
        + `(${idleWs} WebSocket port, ${idleHttp} HTTP port); camgate logged ${warnings} accept warning(s)`);
      assert.ok(idleWs + idleHttp > LIMIT, `only ${idleWs + idleHttp} connections: the limit was not reached`);
      checkPlayed('viewer past the fd limit', viewer);
      // Still at the lowered limit: the queued dead connections are taken and new ones served.
      const ms = await secondViewerPlays(pages);
      await env.camgate.waitForLine(/accepting connections again/, 5000);
      console.log(`# after the flood (limit still ${LIMIT}): a second viewer played after ${ms} ms`);
    } finally {
      await sampler.stop();
      closeAll(sockets);
      execFileSync('prlimit', ['--pid', pid, `--nofile=${soft}:`]);
    }
  });
  for (const page of pages) await page.context().close();
});
