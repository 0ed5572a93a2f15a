// Admin token vs viewer tokens (docs/SECURITY.md) with real peers: camgate runs with
// --auth-token and --viewer-token-secret. The UNMODIFIED Flashphoner Web SDK carries a viewer
// token in createSession({custom: {token}}) or in the stream options' custom; camgate's own page
// takes it from ?token=. A valid token plays (frames decoded); expired, other-stream, tampered
// and missing tokens get FAILED with distinct reasons. Then 1,000 wrong tokens from another
// address (127.0.0.2) are refused and throttled while the viewer keeps decoding at full rate.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import WebSocket from 'ws';

import { grantMedia, newPage, videoStats, waitForFrames } from './lib/browser.mjs';
import { cameraUrl, config, pageUrl, wsUrl } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { openPlayerAt, waitForStatus } from './lib/player.mjs';
import { SDK_API_PAGE, serveSdk } from './lib/sdk.mjs';

const ADMIN = crypto.randomBytes(16).toString('hex');
const SECRET = crypto.randomBytes(32).toString('hex');
process.env.CAMGATE_EXTRA_ARGS = `${process.env.CAMGATE_EXTRA_ARGS || ''} --auth-token ${ADMIN} --viewer-token-secret ${SECRET}`;

// The Node snippet of docs/SECURITY.md (with the expiry given, for expired tokens).
function mintViewerToken(secret, stream, ttlSecs) {
  const expiry = Math.floor(Date.now() / 1000) + ttlSecs;
  const body = 'v1.' + Buffer.from(`${expiry}:${stream}`).toString('base64url');
  const mac = crypto.createHmac('sha256', secret).update(body).digest('base64url');
  return `${body}.${mac}`;
}

// The first payload character changed: another expiry under the same MAC.
function tamper(token) {
  const [v, payload, mac] = token.split('.');
  return [v, (payload[0] === 'A' ? 'B' : 'A') + payload.slice(1), mac].join('.');
}

const REASONS = {
  expired: 'Unauthorized: token expired',
  otherStream: 'Forbidden: token is for another stream',
  tampered: 'Unauthorized: bad token signature',
  missing: 'Unauthorized: missing token',
};

const env = useEnvironment();
let web;
let tokens;

before(async () => { web = await serveSdk(); });
after(async () => { await web?.close(); });

// The tokens, minted once camgate runs (the environment's before() may still be starting it
// when this file's hooks run).
async function ensureTokens() {
  if (tokens) return;
  const camera = cameraUrl();
  // A valid token from the admin's REST call; the rest minted as a backend would.
  const res = await fetch(pageUrl('rest-api/token/mint'), {
    method: 'POST',
    headers: { Authorization: `Bearer ${ADMIN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ stream: camera, ttl_secs: 600 }),
  });
  assert.equal(res.status, 200);
  const valid = (await res.json()).token;
  tokens = {
    valid,
    expired: mintViewerToken(SECRET, camera, -5),
    otherStream: mintViewerToken(SECRET, 'rtsp://127.0.0.1:9/other', 600),
    tampered: tamper(valid),
    missing: undefined,
  };
}

// Plays `name` through the SDK API with these createSession / createStream options; resolves
// { status: 'PLAYING' } or { status: 'FAILED', info } (the stream's), or the session's FAILED.
async function sdkPlay(page, name, sessionOptions, streamOptions) {
  return page.evaluate(([urlServer, name, sessionOptions, streamOptions]) => new Promise((resolve) => {
    const C = Flashphoner.constants;
    if (!window.__sdkInit) {
      Flashphoner.init({});
      window.__sdkInit = true;
    }
    const display = document.createElement('div');
    display.style.width = '320px';
    display.style.height = '180px';
    document.getElementById('displays').appendChild(display);
    Flashphoner.createSession({ urlServer, ...sessionOptions }).on(C.SESSION_STATUS.ESTABLISHED, (session) => {
      const stream = session.createStream({ name, display, ...streamOptions });
      window.__stream = stream;
      stream.on(C.STREAM_STATUS.PLAYING, () => resolve({ status: 'PLAYING' }));
      stream.on(C.STREAM_STATUS.FAILED, () => resolve({ status: 'FAILED', info: stream.getInfo() }));
      stream.play();
    }).on(C.SESSION_STATUS.FAILED, () => resolve({ status: 'SESSION FAILED' }));
  }), [wsUrl(), name, sessionOptions, streamOptions]);
}

async function sdkPage() {
  const page = await newPage(env.browser);
  await page.goto(web.url(SDK_API_PAGE));
  await page.waitForFunction(() => typeof window.Flashphoner !== 'undefined');
  await grantMedia(page);
  return page;
}

test('the SDK plays with a viewer token in createSession custom or in the stream options', { timeout: 60000 }, async () => {
  await ensureTokens();
  for (const [where, sessionOptions, streamOptions] of [
    ['createSession({custom})', { custom: { token: tokens.valid } }, {}],
    ['createStream({custom})', {}, { custom: { token: tokens.valid } }],
  ]) {
    const page = await sdkPage();
    await env.run([page], async () => {
      const got = await sdkPlay(page, cameraUrl(), sessionOptions, streamOptions);
      assert.deepEqual(got, { status: 'PLAYING' }, where);
      const stats = await waitForFrames(page, { which: 'last', minFrames: 10 });
      assert.equal(stats.video.frameWidth, 640);
      console.log(`# SDK, token in ${where}: ${stats.video.framesDecoded} frames decoded`);
    });
    await page.context().close();
  }
});

test('the SDK gets FAILED with the reason for expired, other-stream, tampered and missing tokens', { timeout: 60000 }, async () => {
  await ensureTokens();
  const page = await sdkPage();
  await env.run([page], async () => {
    for (const [name, reason] of Object.entries(REASONS)) {
      const token = tokens[name];
      const got = await sdkPlay(page, cameraUrl(), token ? { custom: { token } } : {}, {});
      assert.deepEqual(got, { status: 'FAILED', info: reason }, name);
    }
    // A valid token for another stream does not play this one from the stream options either.
    const got = await sdkPlay(page, 'rtsp://127.0.0.1:9/other', {}, { custom: { token: tokens.valid } });
    assert.deepEqual(got, { status: 'FAILED', info: REASONS.otherStream });
  });
  await page.context().close();
});

test("camgate's page plays with ?token= and shows the reason for bad ones", { timeout: 60000 }, async () => {
  await ensureTokens();
  // The token is the page script's, from the URL: the served HTML never holds it.
  const html = await (await fetch(pageUrl(`?token=${encodeURIComponent(tokens.valid)}`))).text();
  assert.ok(!html.includes(tokens.valid.split('.')[2]), 'the token is not in the HTML');
  for (const [name, reason] of Object.entries({ valid: null, ...REASONS })) {
    const query = `?url=${encodeURIComponent(cameraUrl())}${tokens[name] ? `&token=${encodeURIComponent(tokens[name])}` : ''}`;
    const page = await openPlayerAt(env.browser, pageUrl(query));
    await env.run([page], async () => {
      await page.click('#start');
      if (reason === null) {
        await waitForStatus(page, 'PLAYING');
        const stats = await waitForFrames(page, { which: 'camgate', minFrames: 10 });
        console.log(`# page ?token=: ${stats.video.framesDecoded} frames decoded`);
      } else {
        const status = await waitForStatus(page, 'FAILED');
        assert.equal(status.info, reason, name);
        assert.match(await page.locator('#status').innerText(), new RegExp(reason));
      }
    });
    await page.context().close();
  }
});

// One HTTP request from `localAddress`; resolves the status.
function requestFrom(localAddress, method, path, headers, body = '') {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: config.host, port: config.httpPort, method, path, localAddress,
      headers: { ...headers, 'Content-Length': Buffer.byteLength(body) },
      agent: false,
    }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
    req.on('error', reject);
    req.end(body);
  });
}

// A signaling session from `localAddress` with `token`: 'closed' when camgate closes it, else
// the first FAILED info of a play.
function wsPlayFrom(localAddress, token) {
  return new Promise((resolve) => {
    const ws = new WebSocket(wsUrl(), { localAddress });
    ws.on('open', () => {
      ws.send(JSON.stringify({ message: 'connection', data: [{ appKey: 'defaultApp', custom: { token } }] }));
      ws.send(JSON.stringify({ message: 'playStream', data: [{ mediaSessionId: 'x', name: cameraUrl(), sdp: 'v=0' }] }));
    });
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data));
      if (msg.message === 'notifyStreamStatusEvent' && msg.data[0].status === 'FAILED') {
        ws.close();
        resolve(msg.data[0].info);
      }
    });
    ws.on('close', () => resolve('closed'));
    ws.on('error', () => resolve('closed'));
  });
}

test('1,000 wrong tokens from one address are throttled while a viewer keeps playing at full rate', { timeout: 120000 }, async () => {
  await ensureTokens();
  const page = await sdkPage();
  await env.run([page], async () => {
    const got = await sdkPlay(page, cameraUrl(), { custom: { token: tokens.valid } }, {});
    assert.deepEqual(got, { status: 'PLAYING' });
    await waitForFrames(page, { which: 'last', minFrames: 30 });
    // framesDecoded sampled every 250 ms through the flood.
    const samples = [];
    let flooding = true;
    const sampler = (async () => {
      while (flooding) {
        const s = await videoStats(page, 'last');
        samples.push({ t: Date.now(), frames: s.video.framesDecoded });
        await sleep(250);
      }
    })();
    // The same viewer's rate without the flood, for comparison (a loaded 2-core box may not
    // keep the camera's nominal 30 fps either way).
    await sleep(4000);
    const attacker = '127.0.0.2';
    const statuses = {};
    const started = Date.now();
    const path = `/whep/${encodeURIComponent(cameraUrl())}`;
    for (let i = 0; i < 1000; i++) {
      const guess = i % 2 ? mintViewerToken(`guess-${i}`, cameraUrl(), 600) : `guess-${i}`;
      const status = await requestFrom(attacker, 'POST', path,
        { Authorization: `Bearer ${guess}`, 'Content-Type': 'application/sdp' }, 'v=0\r\n');
      statuses[status] = (statuses[status] || 0) + 1;
    }
    // Blocked signaling too, even with the valid token, from that address only.
    const blockedWs = await wsPlayFrom(attacker, tokens.valid);
    await sleep(1000);
    flooding = false;
    await sampler;
    const ended = Date.now();
    const floodMs = ended - started;
    assert.deepEqual(statuses, { 401: 20, 429: 980 });
    assert.equal(blockedWs, 'closed');
    // The viewer's rate before and through the flood (the camera sends 30 fps).
    const rate = (from, to) => {
      const inside = samples.filter((x) => x.t >= from && x.t <= to);
      const [a, b] = [inside[0], inside.at(-1)];
      return ((b.frames - a.frames) * 1000) / (b.t - a.t);
    };
    const baseline = rate(started - 3500, started);
    const during = rate(started, ended);
    let stall = 0;
    let longestStall = 0;
    for (let i = 1; i < samples.length; i++) {
      stall = samples[i].frames === samples[i - 1].frames ? stall + samples[i].t - samples[i - 1].t : 0;
      longestStall = Math.max(longestStall, stall);
    }
    console.log(`# 1,000 wrong tokens in ${floodMs} ms (${JSON.stringify(statuses)}); viewer ${baseline.toFixed(1)} fps before, ${during.toFixed(1)} fps during, longest stall ${longestStall} ms`);
    assert.ok(baseline >= 20, `the viewer played ${baseline.toFixed(1)} fps before the flood`);
    assert.ok(during >= 0.9 * baseline, `the viewer dropped from ${baseline.toFixed(1)} to ${during.toFixed(1)} fps`);
    assert.ok(longestStall < 600, `the viewer stalled ${longestStall} ms`);
    // Other addresses are unaffected: a wrong token from 127.0.0.3 is judged, not throttled.
    assert.equal(await wsPlayFrom('127.0.0.3', tokens.tampered), REASONS.tampered);
    // The counters say so (the admin reads them).
    const metrics = await (await fetch(pageUrl('metrics'), { headers: { Authorization: `Bearer ${ADMIN}` } })).text();
    const counter = (name) => Number(metrics.match(new RegExp(`^${name} (\\d+)`, 'm'))?.[1]);
    assert.ok(counter('camgate_auth_refused_total') >= 981, metrics);
  });
  await page.context().close();
});
