// IPv6 end to end: camgate runs dual stack (`--bind ::`, no announce_ips: it binds and announces
// every address of the namespace, IPv4 and IPv6), Chromium opens its page at http://[::1]:8081
// and its media flows over IPv6 (the selected ICE pair is IPv6 on both ends), and the camera is a
// gst-rtsp-server listening on ::1 only, reached at an IPv6 literal with Digest credentials
// (rtsp://admin:…@[::1]:8555/cam).
//
// Chromium gathers no ICE candidate on ::1 itself (with only ::1 announced the viewer gets FAILED
// "no ICE connectivity: camgate's UDP [::1]:20000 got no check …"), so the namespace gets a ULA
// (fd00:c::1) on an `ifb` device (as browser-testing.md does for 127.0.0.2): every packet is
// still delivered locally.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, test } from 'node:test';

import { videoStats, waitForFrames } from './lib/browser.mjs';
import { config, urlHost } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { openPlayer, waitForStatus } from './lib/player.mjs';

const ULA = 'fd00:c::1';
execFileSync('ip', ['link', 'add', 'v6ula', 'type', 'ifb']);
execFileSync('ip', ['addr', 'add', `${ULA}/64`, 'dev', 'v6ula', 'nodad']);
execFileSync('ip', ['link', 'set', 'v6ula', 'up']);

after(() => execFileSync('ip', ['link', 'del', 'v6ula']));

config.host = '::1';
config.bind = '::';
config.announce = '';
const PASSWORD = 'v6-s3cret';
const camera = `rtsp://admin:${PASSWORD}@${urlHost()}:${config.cameraPort}/cam`;

const env = useEnvironment({
  cameras: [{ name: 'camera', address: '::1', extra: ['--user', 'admin', '--password', PASSWORD, '--auth', 'digest'] }],
});

// The ICE pair the page's connection uses: [local address, remote address:port].
const selectedPair = (page) => page.evaluate(async () => {
  const stats = await window.camgate.pc.getStats();
  const byId = new Map([...stats.values()].map((s) => [s.id, s]));
  const transport = [...stats.values()].find((s) => s.type === 'transport');
  const pair = byId.get(transport.selectedCandidatePairId);
  const local = byId.get(pair.localCandidateId);
  const remote = byId.get(pair.remoteCandidateId);
  return { local: local.address, remote: remote.address, port: remote.port, protocol: remote.protocol };
});

test('Chromium plays an IPv6 camera from camgate over ::1', { timeout: 60000 }, async () => {
  const page = await openPlayer(env.browser, camera);
  await env.run([page], async () => {
    assert.equal(new URL(page.url()).hostname, '[::1]');
    await page.click('#start');
    await waitForStatus(page, 'PLAYING');
    const stats = await waitForFrames(page, { which: 'camgate', minFrames: 10 });
    assert.equal(stats.video.frameWidth, 640, JSON.stringify(stats));
    assert.equal(stats.video.mimeType, 'video/H264', JSON.stringify(stats));
    const before = stats.video.framesDecoded;
    await page.waitForTimeout(1000);
    const later = (await videoStats(page, 'camgate')).video.framesDecoded;
    assert.ok(later >= before + 15, `frames stalled: ${before} -> ${later}`);
    const pair = await selectedPair(page);
    console.log(`# IPv6: ${later - before} frames in 1 s, selected pair ${JSON.stringify(pair)}`);
    // Chromium prefers IPv6 pairs; before camgate bound IPv6 with `bind = "::"` it had only
    // IPv4 candidates to offer.
    assert.ok(pair.local.includes(':') && pair.remote.includes(':'), JSON.stringify(pair));
    assert.deepEqual([pair.port, pair.protocol], [config.webrtcPort, 'udp']);
    // The camera URL reached camgate with its IPv6 literal, password masked in the log.
    assert.match(env.camgate.tail(400), /rtsp playing.*rtsp:\/\/admin:\*\*\*@\[::1\]:8555\/cam/);
    assert.doesNotMatch(env.camgate.tail(400), new RegExp(PASSWORD));
  });
  await page.context().close();
});

test('with --bind :: the web listeners take IPv4 too', { timeout: 20000 }, async () => {
  const res = await fetch(`http://127.0.0.1:${config.httpPort}/api/streams`);
  assert.equal(res.status, 200);
  const v6 = await fetch(`http://[::1]:${config.httpPort}/api/streams`);
  assert.equal(v6.status, 200);
});
