// RTSPS cameras (RTSP over TLS) through the unmodified Flashphoner Web SDK Player: gst-rtsp-server
// serving rtsps:// with a self-signed certificate (made here with openssl), played as named
// streams of a config file. Pinned: frames decoded in Chromium. Unpinned (rtsps_verify default
// pinned-or-system): FAILED, and #info names the certificate's fingerprint so it can be pinned.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { grantMedia, newPage, waitForFrames } from './lib/browser.mjs';
import { config, wsUrl } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { PLAYER, serveSdk } from './lib/sdk.mjs';

const USER = 'admin';
const PASSWORD = 'tls-s3cret';
const pinnedPort = config.cameraPort + 40;
const unpinnedPort = config.cameraPort + 41;

// The certificate, and camgate's config, exist before useEnvironment's before() starts the
// camera and camgate (which reads CAMGATE_EXTRA_ARGS then).
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'camgate-rtsps-'));
const cert = path.join(dir, 'cert.pem');
const key = path.join(dir, 'key.pem');
execFileSync('openssl', [
  'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
  '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=camera.test',
  '-addext', 'subjectAltName=DNS:camera.test',
], { stdio: 'ignore' });
// "AB:CD:..." as openssl and operators print it; camgate reports "sha256:abcd...".
const colons = new crypto.X509Certificate(fs.readFileSync(cert)).fingerprint256;
const reported = `sha256:${colons.replaceAll(':', '').toLowerCase()}`;
const configFile = path.join(dir, 'camgate.toml');
fs.writeFileSync(configFile, `
[streams.pinned]
uri = "rtsps://${USER}:${PASSWORD}@${config.host}:${pinnedPort}/cam"
tls_fingerprint = "${colons}"

[streams.unpinned]
uri = "rtsps://${USER}:${PASSWORD}@${config.host}:${unpinnedPort}/cam"
`);
process.env.CAMGATE_EXTRA_ARGS = `${process.env.CAMGATE_EXTRA_ARGS || ''} --config ${configFile}`;

const tls = ['--tls-cert', cert, '--tls-key', key, '--user', USER, '--password', PASSWORD];
const env = useEnvironment({
  cameras: [
    { name: 'rtsps', port: pinnedPort, extra: tls },
    { name: 'rtsps-unpinned', port: unpinnedPort, extra: tls },
  ],
});
let web;

before(async () => { web = await serveSdk(); });
after(async () => {
  await web?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function sdkPlay(streamName, want) {
  const page = await newPage(env.browser);
  await page.goto(web.url(PLAYER));
  await page.waitForFunction(() => typeof window.Flashphoner !== 'undefined' && document.querySelector('#playBtn'));
  await page.waitForFunction(() => document.querySelector('#playBtn').textContent.trim() === 'Start');
  await grantMedia(page);
  await page.fill('#url', wsUrl());
  await page.fill('#streamName', streamName);
  await page.click('#playBtn');
  await page.waitForFunction(
    ([w]) => {
      const s = document.querySelector('#status').textContent.trim();
      return s === w || s === 'FAILED';
    },
    [want],
    { timeout: 20000, polling: 50 },
  );
  const status = (await page.locator('#status').textContent()).trim();
  const info = (await page.locator('#info').textContent()).trim();
  assert.equal(status, want, `Player #status ${status}, #info "${info}"`);
  return { page, info };
}

test('a pinned rtsps camera plays in the SDK Player', { timeout: 60000 }, async () => {
  const { page } = await sdkPlay('pinned', 'PLAYING');
  await env.run([page], async () => {
    const stats = await waitForFrames(page, { which: 'last', minFrames: 5 });
    console.log(`# SDK Player, rtsps camera: ${JSON.stringify(stats.video)}`);
    assert.equal(stats.video.mimeType, 'video/H264', JSON.stringify(stats));
    assert.equal(stats.video.frameWidth, 640, JSON.stringify(stats));
  });
  await page.context().close();
});

test('an unpinned self-signed rtsps camera fails with its fingerprint in #info', { timeout: 60000 }, async () => {
  const { page, info } = await sdkPlay('unpinned', 'FAILED');
  await env.run([page], async () => {
    assert.ok(info.includes(reported), `#info "${info}" names ${reported}`);
    assert.match(info, /not trusted/);
    assert.ok(!info.includes(PASSWORD), info);
  });
  await page.context().close();
});

test('the camera password is in no camgate log line', { timeout: 10000 }, async () => {
  const log = fs.readFileSync(env.camgate.logFile, 'utf8');
  assert.ok(log.includes('rtsps://'), 'the log mentions the rtsps camera');
  assert.ok(!log.includes(PASSWORD), 'password in the camgate log');
});
