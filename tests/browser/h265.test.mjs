// Issue 15: an H.265 camera (tests/rtsp_server.py --video h265: x265enc + rtph265pay) against
// Chromium, which here decodes no H.265 (its getCapabilities lists none). camgate must refuse
// the browser with the reason and what to do, never send it a picture it can't decode: FAILED
// with that info in the unmodified Flashphoner SDK Player, a 406 with it from WHEP. The camera
// itself is pulled and described (`find_all` info: profile, level, size).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { api } from './lib/api.mjs';
import { grantMedia, newPage } from './lib/browser.mjs';
import { cameraUrl, pageUrl, wsUrl } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { PLAYER, serveSdk } from './lib/sdk.mjs';

const env = useEnvironment({ cameras: [{ name: 'camera', video: 'h265' }] });
let web;

before(async () => { web = await serveSdk(); });
after(async () => { await web?.close(); });

// What camgate tells a browser without H.265 (core/src/viewer.rs ViewerError::NoH265).
const REFUSAL = /^No common codecs: camera sends H\.265 Main; this browser decodes (?!.*H265)[^:]*H264[^:]*: use the camera's H\.264 sub-stream/;

test('Chromium here offers no H.265 (the premise of the refusal tests)', async () => {
  const page = await newPage(env.browser);
  const codecs = await page.evaluate(() => RTCRtpReceiver.getCapabilities('video').codecs.map((c) => c.mimeType));
  console.log(`# Chromium video codecs: ${[...new Set(codecs)].join(', ')}`);
  assert.ok(!codecs.includes('video/H265'), `${codecs}`);
  assert.ok(codecs.includes('video/H264'));
  await page.context().close();
});

test('the SDK Player gets FAILED with the reason and what to do', { timeout: 60000 }, async () => {
  const page = await newPage(env.browser);
  await env.run([page], async () => {
    await page.goto(web.url(PLAYER));
    await page.waitForFunction(() => typeof window.Flashphoner !== 'undefined' && document.querySelector('#playBtn'));
    await page.waitForFunction(() => document.querySelector('#playBtn').textContent.trim() === 'Start');
    await grantMedia(page);
    await page.fill('#url', wsUrl());
    await page.fill('#streamName', cameraUrl());
    await page.click('#playBtn');
    await page.waitForFunction(() => ['FAILED', 'PLAYING'].includes(document.querySelector('#status').textContent.trim()), null, { timeout: 20000, polling: 50 });
    const status = (await page.locator('#status').textContent()).trim();
    const info = (await page.locator('#info').textContent()).trim();
    console.log(`# SDK Player: ${status}: ${info}`);
    assert.equal(status, 'FAILED', info);
    assert.match(info, REFUSAL);
  });
  await page.context().close();
});

test('WHEP answers 406 with the reason', { timeout: 60000 }, async () => {
  const page = await newPage(env.browser);
  await env.run([page], async () => {
    await page.goto(pageUrl());
    const endpoint = pageUrl(`whep/${encodeURIComponent(cameraUrl())}`);
    const res = await page.evaluate(async (endpoint) => {
      const pc = new RTCPeerConnection();
      pc.addTransceiver('video', { direction: 'recvonly' });
      pc.addTransceiver('audio', { direction: 'recvonly' });
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      const r = await fetch(endpoint, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: offer.sdp });
      pc.close();
      return { status: r.status, body: await r.text() };
    }, endpoint);
    console.log(`# WHEP: ${res.status} ${res.body}`);
    assert.equal(res.status, 406, res.body);
    assert.match(JSON.parse(res.body).error, REFUSAL);
  });
  await page.context().close();
});

test('the camera is pulled and described: H265 Main, level, 640x360', { timeout: 60000 }, async () => {
  const uri = cameraUrl();
  await env.run([], async () => {
    assert.equal((await api('POST', '/rest-api/rtsp/startup', { uri })).status, 200);
    let entry;
    for (let i = 0; i < 100; i++) {
      const all = await api('GET', '/rest-api/rtsp/find_all');
      entry = all.json?.find((s) => s.uri === uri);
      if (entry?.status === 'PLAYING' && /H265/.test(entry.info)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    console.log(`# find_all: ${JSON.stringify(entry)}`);
    assert.equal(entry?.status, 'PLAYING', JSON.stringify(entry));
    assert.match(entry.info, /^video H265 Main L[0-9.]+ 640x360$/);
    assert.equal((await api('POST', '/rest-api/rtsp/terminate', { uri })).status, 200);
  });
});
