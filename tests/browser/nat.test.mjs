// camgate behind a home router that forwards only its web ports (NAT, nothing for media):
// with `stun_servers` it learns its public address from coturn, answers with it as a
// server-reflexive candidate and runs full ICE, so its own checks open the router's mapping
// toward the browser. Then the same with the browser forced through coturn as TURN
// (`iceTransportPolicy: "relay"`) with time-limited credentials camgate minted for the page.
//
// Topology (namespaces made here, inside the run's private one; documentation ranges only):
//
//   this namespace = "internet": Chromium, coturn     203.0.113.10/24 on in0
//        | in0 -- rt0
//   "router" (unshare --net):  rt0 203.0.113.1/24 (WAN), rt1 192.0.2.1/24 (LAN)
//        iptables: MASQUERADE out of rt0; DNAT TCP 8080, 8081 -> 192.0.2.10; FORWARD from
//        the WAN only for connections the NAT knows (no forward of UDP 20000)
//        | rt1 -- st0
//   "site" (unshare --net):    st0 192.0.2.10/24, default via 192.0.2.1: camgate + demo camera

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';

import { config, CHROMIUM_FLAGS } from './lib/config.mjs';
import { videoStats, waitForFrames } from './lib/browser.mjs';
import { Child, makeLogDir, waitForPort } from './lib/procs.mjs';
import { waitForStatus } from './lib/player.mjs';

const INTERNET_IP = '203.0.113.10';
const ROUTER_WAN = '203.0.113.1';
const ROUTER_LAN = '192.0.2.1';
const CAMGATE_IP = '192.0.2.10';
const SECRET = 'nat-test-secret';
const PAGE = `http://${ROUTER_WAN}:8081/`;

const logDir = makeLogDir('camgate-nat-');
const children = [];
let browser = null;
let userDataDir = null;
let camgate = null;

const sh = (cmd, args) => execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
// A command inside the namespace of process `pid`.
const inNs = (pid, cmd, args) => sh('nsenter', [`--net=/proc/${pid}/ns/net`, cmd, ...args]);

// A process that only holds a fresh network namespace (no global name: parallel runs can't clash).
function holder(name) {
  const child = new Child(name, 'unshare', ['--net', '--', 'sleep', '1000000'], logDir);
  children.push(child);
  return child;
}

async function nsReady(child) {
  // unshare has exec'ed sleep once its namespace differs from ours.
  const ours = fs.readlinkSync('/proc/self/ns/net');
  for (let i = 0; i < 100; i++) {
    try {
      if (fs.readlinkSync(`/proc/${child.pid}/ns/net`) !== ours) return;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${child.name}: no namespace`);
}

before(async () => {
  const router = holder('router-ns');
  const site = holder('site-ns');
  await Promise.all([nsReady(router), nsReady(site)]);
  const r = router.pid;
  const s = site.pid;
  // internet <-> router WAN
  sh('ip', ['link', 'add', 'in0', 'type', 'veth', 'peer', 'name', 'rt0']);
  sh('ip', ['link', 'set', 'rt0', 'netns', String(r)]);
  sh('ip', ['addr', 'add', `${INTERNET_IP}/24`, 'dev', 'in0']);
  sh('ip', ['link', 'set', 'in0', 'up']);
  // A default route, so Chromium finds its "default" address (it probes one).
  sh('ip', ['route', 'add', 'default', 'dev', 'in0']);
  // router LAN <-> site
  inNs(r, 'ip', ['link', 'add', 'rt1', 'type', 'veth', 'peer', 'name', 'st0']);
  inNs(r, 'ip', ['link', 'set', 'st0', 'netns', String(s)]);
  for (const [dev, addr] of [['rt0', `${ROUTER_WAN}/24`], ['rt1', `${ROUTER_LAN}/24`]]) {
    inNs(r, 'ip', ['addr', 'add', addr, 'dev', dev]);
    inNs(r, 'ip', ['link', 'set', dev, 'up']);
  }
  inNs(r, 'ip', ['link', 'set', 'lo', 'up']);
  inNs(r, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
  const ipt = (...args) => inNs(r, 'iptables', args);
  ipt('-t', 'nat', '-A', 'POSTROUTING', '-o', 'rt0', '-j', 'MASQUERADE');
  ipt('-t', 'nat', '-A', 'PREROUTING', '-i', 'rt0', '-p', 'tcp', '-m', 'multiport',
    '--dports', '8080,8081', '-j', 'DNAT', '--to-destination', CAMGATE_IP);
  ipt('-A', 'FORWARD', '-i', 'rt0', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED,DNAT', '-j', 'ACCEPT');
  ipt('-A', 'FORWARD', '-i', 'rt0', '-j', 'DROP');
  inNs(s, 'ip', ['link', 'set', 'lo', 'up']);
  inNs(s, 'ip', ['addr', 'add', `${CAMGATE_IP}/24`, 'dev', 'st0']);
  inNs(s, 'ip', ['link', 'set', 'st0', 'up']);
  inNs(s, 'ip', ['route', 'add', 'default', 'via', ROUTER_LAN]);

  // coturn: STUN for camgate, TURN (REST API credentials) for the relay-only browser.
  const turn = new Child('coturn', 'turnserver', [
    '-n', '--listening-ip', INTERNET_IP, '--relay-ip', INTERNET_IP, '--listening-port', '3478',
    '--use-auth-secret', '--static-auth-secret', SECRET, '--realm', 'camgate.test',
    '--no-tls', '--no-dtls', '--no-cli', '--fingerprint', '--min-port', '49152', '--max-port', '49999',
    '--pidfile', path.join(logDir, 'turnserver.pid'), '--userdb', path.join(logDir, 'turndb'),
    '--log-file', 'stdout', '--simple-log', '--verbose',
  ], logDir);
  children.push(turn);
  await turn.waitForLine(/listener opened on|IPv4. UDP listener opened/i, 15000);

  const toml = path.join(logDir, 'camgate.toml');
  fs.writeFileSync(toml, [
    `stun_servers = ["stun:${INTERNET_IP}:3478"]`,
    '',
    '[[ice_servers]]',
    `urls = ["turn:${INTERNET_IP}:3478?transport=udp"]`,
    `auth_secret = "${SECRET}"`,
    'credential_ttl_secs = 600',
    '',
  ].join('\n'));
  const args = [
    `--net=/proc/${s}/ns/net`, config.camgateBin, '--config', toml,
    '--bind', '0.0.0.0', '--http-port', '8081', '--ws-port', '8080', '--no-tls',
    '--webrtc-port', '20000', '--rtsp-server', '127.0.0.1:8554',
    '--log', 'info,camgate=debug,camgate_core=debug,str0m=info',
  ];
  if (process.env.NAT_TEST_NO_STUN) {
    // The same network without stun_servers (ICE-lite, as before): the check that this test
    // can fail.
    fs.writeFileSync(toml, '');
  }
  camgate = new Child('camgate', 'nsenter', args, logDir, { RUST_BACKTRACE: '1' });
  children.push(camgate);
  await waitForPort(8081, { host: ROUTER_WAN, child: camgate });
  if (!process.env.NAT_TEST_NO_STUN) {
    await camgate.waitForLine(/public address for UDP 20000: \S+ via stun:/, 15000);
  }

  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'camgate-chromium-'));
  browser = await chromium.launch({
    executablePath: config.chromium,
    ignoreDefaultArgs: true,
    // The page is on plain http from a non-local address: let it capture (media permission
    // makes Chromium gather on every interface, not just the default route's).
    args: [...CHROMIUM_FLAGS, `--unsafely-treat-insecure-origin-as-secure=${PAGE}`,
      `--user-data-dir=${userDataDir}`, '--remote-debugging-pipe', '--no-startup-window'],
    timeout: 30000,
  });
}, { timeout: 60000 });

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  for (const c of children.reverse()) await c.stop();
  try { sh('ip', ['link', 'del', 'in0']); } catch { /* gone with the router */ }
  console.log(`# logs kept in ${logDir}`);
}, { timeout: 30000 });

// Opens the player from the internet side; `relay`: every RTCPeerConnection gets
// iceTransportPolicy "relay" (the page's own iceServers, with camgate's credentials, stay).
async function play({ relay }) {
  const context = await browser.newContext();
  await context.addInitScript((relay) => {
    const Native = window.RTCPeerConnection;
    window.__pcs = [];
    window.RTCPeerConnection = new Proxy(Native, {
      construct(target, [conf = {}, ...rest], newTarget) {
        window.__iceServers = conf.iceServers;
        const pc = Reflect.construct(target, [relay ? { ...conf, iceTransportPolicy: 'relay' } : conf, ...rest], newTarget);
        window.__pcs.push(pc);
        return pc;
      },
    });
  }, relay);
  const page = await context.newPage();
  page.consoleLines = [];
  page.on('console', (msg) => page.consoleLines.push(`[${msg.type()}] ${msg.text()}`));
  await page.goto(`${PAGE}?url=${encodeURIComponent('rtsp://127.0.0.1:8554/demo')}`);
  await page.waitForFunction(() => window.camgate !== undefined);
  await page.evaluate(async () => {
    window.__gum = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  });
  await page.click('#start');
  return page;
}

// The candidate pair the browser uses: local and remote candidate types and addresses
// (polled: the transport's selected pair can lag the first frames).
async function selectedPair(page) {
  for (let i = 0; i < 50; i++) {
    const pair = await readSelectedPair(page);
    if (pair) return pair;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('no selected candidate pair in getStats');
}

async function readSelectedPair(page) {
  return page.evaluate(async () => {
    const pc = window.__pcs.at(-1);
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    if (!pair) return null;
    const local = stats.get(pair.localCandidateId);
    const remote = stats.get(pair.remoteCandidateId);
    return {
      local: `${local.candidateType} ${local.address}:${local.port}`,
      remote: `${remote.candidateType} ${remote.address}:${remote.port}`,
    };
  });
}

async function dump(page, err) {
  const lines = [`\n===== logs in ${logDir} =====`];
  for (const c of children) lines.push(`--- ${c.name} ---`, c.tail(40));
  lines.push('--- page console ---', (page?.consoleLines || []).join('\n'));
  console.error(lines.join('\n'));
  throw err;
}

test('behind a NAT forwarding only the web ports: camgate learns its public address and the browser plays', async () => {
  let page;
  try {
    page = await play({ relay: false });
    await waitForStatus(page, 'PLAYING', 30000);
    const stats = await waitForFrames(page, { minFrames: 10, timeoutMs: 20000 });
    const pair = await selectedPair(page);
    const firstFrameMs = await page.evaluate(() => window.camgate.firstFrameMs);
    console.log(`# NAT: first frame ${Math.round(firstFrameMs)} ms after Start; ${stats.video.framesDecoded} frames ${stats.video.frameWidth}x${stats.video.frameHeight}, pair ${JSON.stringify(pair)}`);
    // Chromium hides a peer-reflexive candidate's address in getStats: a prflx remote is
    // camgate seen through the router when the router mapped camgate's own check to another
    // port than the STUN request (it does when the browser's check came first).
    assert.match(pair.remote, /^(srflx|prflx) /, JSON.stringify(pair));
    const learned = camgate.stdout.match(/public address for UDP 20000: (\S+) via stun:/);
    assert.ok(learned, 'camgate logged its public address');
    assert.equal(learned[1].split(':')[0], ROUTER_WAN, 'the router\'s WAN address, as coturn saw it');
    const answer = await page.evaluate(() => window.__pcs.at(-1).remoteDescription.sdp);
    assert.match(answer, new RegExp(`${ROUTER_WAN.replaceAll('.', '\\.')} \\d+ typ srflx`), answer);
    await page.context().close();
  } catch (err) {
    await dump(page, err);
  }
});

test('relay only: through coturn as TURN with credentials camgate minted for the page', async () => {
  let page;
  try {
    page = await play({ relay: true });
    // Read once the page made its RTCPeerConnection (after its signaling session is up).
    await page.waitForFunction(() => window.__iceServers !== undefined);
    const servers = await page.evaluate(() => window.__iceServers);
    const turn = servers.find((s) => s.urls.some((u) => u.startsWith('turn:')));
    assert.match(turn.username, /^\d+:camgate-[0-9a-f]+$/, 'a time-limited TURN REST username');
    const expiry = Number(turn.username.split(':')[0]);
    const now = Date.now() / 1000;
    assert.ok(expiry > now + 500 && expiry < now + 700, `expires in credential_ttl_secs (600): ${expiry - now}`);
    await waitForStatus(page, 'PLAYING', 30000);
    const stats = await waitForFrames(page, { minFrames: 10, timeoutMs: 25000 });
    const pair = await selectedPair(page);
    const firstFrameMs = await page.evaluate(() => window.camgate.firstFrameMs);
    console.log(`# relay: first frame ${Math.round(firstFrameMs)} ms after Start; ${stats.video.framesDecoded} frames, pair ${JSON.stringify(pair)}`);
    assert.match(pair.local, new RegExp(`^relay ${INTERNET_IP.replaceAll('.', '\\.')}:`), JSON.stringify(pair));
    // camgate counts the viewer as relayed: media goes to the browser's TURN relay candidate.
    const metrics = await (await fetch(`http://${ROUTER_WAN}:8081/metrics`)).text();
    assert.match(metrics, /^camgate_viewers_by_transport\{transport="relay"\} 1$/m, metrics);
    assert.ok(!/auth_secret|nat-test-secret/.test(fs.readFileSync(camgate.logFile, 'utf8').replace(/^\$ .*\n/, '')),
      'the secret is not in camgate\'s log');
    await page.context().close();
  } catch (err) {
    await dump(page, err);
  }
});

// A WHEP client gets the same servers as Link headers, with its own credentials.
test('WHEP answers carry the ICE servers as Link headers', async () => {
  const offer = await (async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(PAGE);
    const sdp = await page.evaluate(async () => {
      const pc = new RTCPeerConnection();
      pc.addTransceiver('video', { direction: 'recvonly' });
      await pc.setLocalDescription(await pc.createOffer());
      return pc.localDescription.sdp;
    });
    await context.close();
    return sdp;
  })();
  const res = await fetch(`http://${ROUTER_WAN}:8081/whep/${encodeURIComponent('rtsp://127.0.0.1:8554/demo')}`, {
    method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: offer,
  });
  assert.equal(res.status, 201, await res.clone().text());
  const link = res.headers.get('link');
  assert.match(link, /<turn:203\.0\.113\.10:3478\?transport=udp>; rel="ice-server"; username="\d+:camgate-[0-9a-f]+"; credential="[A-Za-z0-9+/=]+"; credential-type="password"/);
  const location = res.headers.get('location');
  await fetch(`http://${ROUTER_WAN}:8081${location}`, { method: 'DELETE' });
});
