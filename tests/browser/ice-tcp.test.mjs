// ICE over TCP (RFC 6544 passive candidates, RFC 4571 framing): browsers that cannot reach
// camgate over UDP play through its TCP listener on the WebRTC port.
//
// An nftables rule in this test's own network namespace (the runner's `unshare --net`) drops every
// UDP packet to camgate's WebRTC ports; its counter proves the browser did try UDP. Chromium and
// Firefox then play through ICE-TCP: the selected candidate pair (getStats) is TCP on both ends,
// frames decode and the audio has energy; camgate's metrics and log name the transport. With the
// rule gone the same page plays over UDP (UDP candidates are preferred), and the Flashphoner SDK's
// `transport: "TCP"` gets an answer with TCP candidates only.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { after, before, test } from 'node:test';

import { grantMedia, newPage, waitForAudio, waitForFrames } from './lib/browser.mjs';
import { cameraUrl, config, pageUrl, wsUrl } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import {
  firefoxAvailable,
  launchFirefox,
  openFirefoxPlayer,
  waitForFirefoxAudio,
  waitForFirefoxFrames,
  waitForFirefoxStatus,
} from './lib/firefox.mjs';
import { openPlayer, waitForStatus } from './lib/player.mjs';
import { SDK_API_PAGE, sdkApiPlay, sdkApiStop, serveSdk } from './lib/sdk.mjs';

const env = useEnvironment({ cameras: [{ name: 'camera', extra: ['--audio', 'opus'] }] });

const TABLE = 'camgate_ice_tcp_test';

// Drops UDP to camgate's WebRTC ports (any worker's), counting what it drops.
function blockUdp() {
  const rules = `table inet ${TABLE} {
  chain out {
    type filter hook output priority 0; policy accept;
    udp dport ${config.webrtcPort}-${config.webrtcPort + 63} counter drop
  }
}
`;
  execFileSync('nft', ['-f', '-'], { input: rules });
}

function unblockUdp() {
  try { execFileSync('nft', ['delete', 'table', 'inet', TABLE], { stdio: 'ignore' }); } catch { /* not there */ }
}

// UDP packets the rule dropped so far.
function droppedUdp() {
  const text = execFileSync('nft', ['list', 'table', 'inet', TABLE]).toString();
  return Number(/counter packets (\d+)/.exec(text)?.[1] ?? NaN);
}

let web;
before(async () => { web = await serveSdk(); });
after(async () => {
  unblockUdp();
  if (web) await web.close();
});

// The selected ICE candidate pair of the page's camgate connection (`which`: 'camgate' for the
// player page, 'last' for the newest RTCPeerConnection). Chromium names it in the transport
// stats; Firefox marks the pair `selected`.
async function selectedPair(page, which) {
  return page.evaluate(async (which) => {
    const pc = which === 'camgate'
      ? window.camgate && window.camgate.pc
      : (window.__pcs || []).filter((p) => p.connectionState !== 'closed').at(-1);
    if (!pc) return null;
    const report = await pc.getStats();
    let pair = null;
    report.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId);
    });
    if (!pair) {
      report.forEach((s) => {
        if (s.type === 'candidate-pair' && (s.selected || (s.nominated && s.state === 'succeeded'))) pair = pair || s;
      });
    }
    if (!pair) return null;
    const cand = (c) => c && { protocol: c.protocol, type: c.candidateType, address: c.address, port: c.port, tcpType: c.tcpType };
    return { local: cand(report.get(pair.localCandidateId)), remote: cand(report.get(pair.remoteCandidateId)) };
  }, which);
}

// The camgate candidates of the answer a page applied.
async function answerCandidates(page, which) {
  return page.evaluate((which) => {
    const pc = which === 'camgate'
      ? window.camgate && window.camgate.pc
      : (window.__pcs || []).filter((p) => p.connectionState !== 'closed').at(-1);
    return (pc?.remoteDescription?.sdp || '').split(/\r?\n/).filter((l) => l.startsWith('a=candidate:'));
  }, which);
}

async function transportGauge(transport) {
  const text = await (await fetch(pageUrl('metrics'))).text();
  const m = new RegExp(`^camgate_viewers_by_transport\\{transport="${transport}"\\} (\\d+)`, 'm').exec(text);
  return Number(m?.[1] ?? NaN);
}

// Waits until camgate's gauge of `transport` viewers reads `want` (it follows the log by a moment).
async function waitForGauge(transport, want, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  let got;
  while ((got = await transportGauge(transport)) !== want && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(got, want, `camgate_viewers_by_transport{transport="${transport}"}`);
}

const playingLines = () => fs.readFileSync(env.camgate.logFile, 'utf8')
  .split('\n').filter((l) => l.includes('viewer playing'));

test('Chromium plays through ICE-TCP when UDP to camgate is dropped', { timeout: 60000 }, async () => {
  blockUdp();
  const page = await openPlayer(env.browser, cameraUrl());
  try {
    await env.run([page], async () => {
      await page.click('#start');
      await waitForStatus(page, 'PLAYING');
      const stats = await waitForFrames(page, { which: 'camgate', minFrames: 30 });
      const audio = await waitForAudio(page, { which: 'camgate' });
      const pair = await selectedPair(page, 'camgate');
      const dropped = droppedUdp();
      console.log(`# pair ${JSON.stringify(pair)}; UDP dropped ${dropped}; video ${JSON.stringify(stats.video)}; audio ${JSON.stringify(audio.audio)}`);
      assert.ok(dropped > 0, 'the browser tried UDP and the rule dropped it');
      assert.equal(pair?.local?.protocol, 'tcp', `selected pair ${JSON.stringify(pair)}`);
      assert.equal(pair?.remote?.protocol, 'tcp');
      assert.equal(pair.remote.port, config.webrtcPort, 'camgate\'s ICE-TCP port is its WebRTC port');
      assert.equal(stats.video.frameWidth, 640);
      assert.ok(audio.audio.totalAudioEnergy > 0);
      await waitForGauge('tcp', 1);
      assert.match(playingLines().at(-1) || '', /transport="?tcp/, 'the log line names the transport');
      await page.click('#stop');
      await waitForStatus(page, 'STOPPED', 10000);
      await waitForGauge('tcp', 0);
    });
  } finally {
    unblockUdp();
    await page.context().close();
  }
});

test('with UDP open the same page plays over UDP: UDP candidates are preferred', { timeout: 60000 }, async () => {
  const page = await openPlayer(env.browser, cameraUrl());
  try {
    await env.run([page], async () => {
      await page.click('#start');
      await waitForStatus(page, 'PLAYING');
      await waitForFrames(page, { which: 'camgate', minFrames: 10 });
      const candidates = await answerCandidates(page, 'camgate');
      const pair = await selectedPair(page, 'camgate');
      console.log(`# answer candidates ${JSON.stringify(candidates)}; pair ${JSON.stringify(pair)}`);
      assert.ok(candidates.some((c) => / udp /i.test(c)), 'a UDP candidate');
      assert.ok(candidates.some((c) => / tcp .*tcptype passive/i.test(c)), 'a passive TCP candidate');
      assert.equal(pair?.local?.protocol, 'udp', `selected pair ${JSON.stringify(pair)}`);
      await waitForGauge('udp', 1);
      await page.click('#stop');
      await waitForStatus(page, 'STOPPED', 10000);
    });
  } finally {
    await page.context().close();
  }
});

test('the Flashphoner SDK with transport: "TCP" gets TCP candidates only and plays', { timeout: 60000 }, async () => {
  const page = await newPage(env.browser);
  try {
    await env.run([page], async () => {
      await page.goto(web.url(SDK_API_PAGE));
      await grantMedia(page);
      await sdkApiPlay(page, [wsUrl(), cameraUrl(), undefined, { transport: 'TCP' }]);
      const stats = await waitForFrames(page, { minFrames: 10 });
      const audio = await waitForAudio(page);
      const candidates = await answerCandidates(page, 'last');
      const pair = await selectedPair(page, 'last');
      console.log(`# answer candidates ${JSON.stringify(candidates)}; pair ${JSON.stringify(pair)}; video ${JSON.stringify(stats.video)}`);
      assert.ok(candidates.length > 0);
      for (const c of candidates) assert.match(c, / tcp .*tcptype passive/i, 'TCP candidates only');
      assert.equal(pair?.local?.protocol, 'tcp', `selected pair ${JSON.stringify(pair)}`);
      assert.ok(audio.audio.totalAudioEnergy > 0);
      await sdkApiStop(page, cameraUrl());
    });
  } finally {
    await page.context().close();
  }
});

test('Firefox plays through ICE-TCP when UDP to camgate is dropped', {
  timeout: 90000,
  skip: firefoxAvailable() ? false : 'no /usr/bin/firefox-esr',
}, async () => {
  const firefox = await launchFirefox();
  blockUdp();
  let page;
  try {
    page = await openFirefoxPlayer(firefox.browser, cameraUrl());
    await env.run([page], async () => {
      await page.click('#start');
      const status = await waitForFirefoxStatus(page, 'PLAYING');
      assert.equal(status.stream, 'PLAYING', JSON.stringify(status));
      const stats = await waitForFirefoxFrames(page, { minFrames: 30 });
      const audio = await waitForFirefoxAudio(page);
      const pair = await selectedPair(page, 'camgate');
      const dropped = droppedUdp();
      console.log(`# Firefox pair ${JSON.stringify(pair)}; UDP dropped ${dropped}; video ${JSON.stringify(stats.video)}; audio ${JSON.stringify(audio.audio)}`);
      assert.ok(dropped > 0, 'Firefox tried UDP and the rule dropped it');
      assert.equal(pair?.local?.protocol, 'tcp', `selected pair ${JSON.stringify(pair)}`);
      assert.equal(pair?.remote?.protocol, 'tcp');
      assert.ok(audio.audio.totalAudioEnergy > 0);
      await waitForGauge('tcp', 1);
    });
  } finally {
    unblockUdp();
    if (page) await page.closeContext();
    await firefox.close();
  }
});
