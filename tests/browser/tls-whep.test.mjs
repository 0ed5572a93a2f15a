// Issue 5: camgate's other ways in. (a) The player page over HTTPS with signaling over WSS, both
// on camgate's self-signed certificate; (b) WHEP (RFC 9725) from a plain RTCPeerConnection:
// POST offer → 201 + Location + answer, frames decoded, DELETE → the viewer is gone.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { streamEntry } from './lib/api.mjs';
import { waitForFrames } from './lib/browser.mjs';
import { cameraUrl, config, httpsPageUrl, pageUrl, wssUrl } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { openPlayer, openPlayerAt, waitForStatus } from './lib/player.mjs';
import { waitForPort } from './lib/procs.mjs';

const env = useEnvironment();

test('HTTPS player page + WSS signaling with the self-signed certificate play the camera', { timeout: 60000 }, async () => {
  await waitForPort(config.httpsPort, { child: env.camgate });
  await waitForPort(config.wssPort, { child: env.camgate });
  const query = `?url=${encodeURIComponent(cameraUrl())}&ws=${encodeURIComponent(wssUrl())}`;
  const page = await openPlayerAt(env.browser, httpsPageUrl(query), { ignoreHTTPSErrors: true });
  await env.run([page], async () => {
    assert.equal(await page.evaluate(() => location.protocol), 'https:');
    assert.equal(await page.inputValue('#url'), cameraUrl());
    await page.click('#start');
    await waitForStatus(page, 'PLAYING');
    // The signaling really went over wss (the page's WebSocket URL).
    const wsUrlUsed = await page.evaluate(() => window.camgate.ws?.url ?? null);
    assert.match(wsUrlUsed || '', new RegExp(`^wss://${config.host.replace(/\./g, '\\.')}:${config.wssPort}`));
    const stats = await waitForFrames(page, { which: 'camgate', minFrames: 10 });
    assert.equal(stats.video.mimeType, 'video/H264');
    assert.equal(stats.video.frameWidth, 640);
    console.log(
      `# https+wss: first frame after ${await page.evaluate(() => window.camgate.firstFrameMs)} ms; ` +
        `${JSON.stringify(stats.video)}; ws ${wsUrlUsed}`,
    );
    await page.click('#stop');
    await waitForStatus(page, 'STOPPED', 10000);
  });
  await page.context().close();
});

// In the page: a recvonly video+audio RTCPeerConnection, offer POSTed to camgate's WHEP endpoint.
async function whepPlay(page, endpoint) {
  return page.evaluate(async (endpoint) => {
    const pc = new RTCPeerConnection();
    window.__whep = { pc };
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const video = document.createElement('video');
    video.muted = true;
    video.autoplay = true;
    document.body.append(video);
    pc.ontrack = (e) => {
      video.srcObject = e.streams[0] ?? new MediaStream([e.track]);
    };
    // Time to the first decoded frame: getStats polled every 20 ms.
    const poll = setInterval(async () => {
      const report = await pc.getStats();
      report.forEach((st) => {
        if (st.type === 'inbound-rtp' && st.kind === 'video' && st.framesDecoded > 0 && window.__whep.firstFrameMs == null) {
          window.__whep.firstFrameMs = Math.round(performance.now() - window.__whep.started);
          clearInterval(poll);
        }
      });
    }, 20);
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const started = performance.now();
    window.__whep.started = started;
    const res = await fetch(endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp' },
      body: offer.sdp,
    });
    const answer = await res.text();
    const result = {
      status: res.status,
      location: res.headers.get('Location'),
      contentType: res.headers.get('Content-Type'),
      answer,
      postMs: Math.round(performance.now() - started),
    };
    if (res.status === 201) {
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      window.__whep.location = new URL(result.location, res.url).href;
      result.locationUrl = window.__whep.location;
    }
    return result;
  }, endpoint);
}

test('WHEP: a plain RTCPeerConnection plays the camera, DELETE ends the viewer', { timeout: 60000 }, async () => {
  // Any camgate page gives a secure origin with media permission (loopback ICE candidates).
  const page = await openPlayer(env.browser, cameraUrl());
  await env.run([page], async () => {
    const endpoint = pageUrl(`whep/${encodeURIComponent(cameraUrl())}`);
    const post = await whepPlay(page, endpoint);
    assert.equal(post.status, 201, `POST ${endpoint}: ${post.status} ${post.answer}`);
    assert.match(post.location || '', /^\/whep\/session\/\S+/, `Location: ${post.location}`);
    assert.match(post.contentType || '', /^application\/sdp/);
    assert.match(post.answer, /^v=0/);

    const stats = await waitForFrames(page, { which: 'last', minFrames: 10 });
    const firstFrameMs = await page.evaluate(() => window.__whep.firstFrameMs ?? null);
    assert.equal(stats.video.mimeType, 'video/H264', JSON.stringify(stats));
    assert.equal(stats.video.frameWidth, 640);
    assert.equal(await page.evaluate(() => window.__whep.pc.connectionState), 'connected');

    const during = await streamEntry(cameraUrl());
    assert.ok(during, 'the camera is listed in /api/streams');
    assert.equal(during.viewers, 1, `/api/streams while playing: ${JSON.stringify(during)}`);
    console.log(
      `# WHEP: POST answered ${post.status} after ${post.postMs} ms; first frame ${firstFrameMs} ms after the POST; ` +
        `${JSON.stringify(stats.video)}; stream ${JSON.stringify(during)}`,
    );

    // DELETE the session (from the page, like a WHEP player would).
    const del = await page.evaluate(async () => {
      const r = await fetch(window.__whep.location, { method: 'DELETE' });
      return { status: r.status, body: await r.text() };
    });
    assert.ok(del.status === 200 || del.status === 204, `DELETE: ${JSON.stringify(del)}`);

    // The viewer count drops (the stream may linger a few seconds without viewers, or be gone).
    const deadline = Date.now() + 5000;
    let after;
    for (;;) {
      after = await streamEntry(cameraUrl());
      if (!after || after.viewers === 0) break;
      assert.ok(Date.now() < deadline, `/api/streams still shows the viewer after DELETE: ${JSON.stringify(after)}`);
      await page.waitForTimeout(100);
    }
    console.log(`# WHEP: after DELETE ${del.status}: ${JSON.stringify(after ?? 'stream gone')}`);

    // The session is gone: a second DELETE is 404.
    const again = await page.evaluate(async () => (await fetch(window.__whep.location, { method: 'DELETE' })).status);
    assert.equal(again, 404);
    await page.evaluate(() => window.__whep.pc.close());
  });
  await page.context().close();
});
