// camgate's player against cameras with other settings: credentials (Basic, Digest) and audio.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { videoStats, waitForFrames } from './lib/browser.mjs';
import { config } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { openPlayer, waitForStatus } from './lib/player.mjs';

const USER = 'admin';
const PASSWORD = 's3cr:t@pw'; // needs percent-encoding in a URL
const basicPort = config.cameraPort + 1;
const digestPort = config.cameraPort + 2;
const audioPort = config.cameraPort + 3;

const env = useEnvironment({
  cameras: [
    { name: 'basic', port: basicPort, extra: ['--user', USER, '--password', PASSWORD, '--auth', 'basic'] },
    { name: 'digest', port: digestPort, extra: ['--user', USER, '--password', PASSWORD, '--auth', 'digest'] },
    { name: 'pcmu', port: audioPort, extra: ['--audio', 'pcmu'] },
  ],
});

const url = (port, creds = '') => `rtsp://${creds}${config.host}:${port}/cam`;
const creds = (user, password) => `${encodeURIComponent(user)}:${encodeURIComponent(password)}@`;

// Every frame the server sent to the page, as text.
const serverFrames = (page) =>
  page.evaluate(() => window.camgate.log.filter((f) => f.dir === 'in').map((f) => f.frame).join('\n'));

for (const [method, port] of [['Basic', basicPort], ['Digest', digestPort]]) {
  test(`${method} auth: the right credentials play, the password never comes back`, { timeout: 60000 }, async () => {
    const page = await openPlayer(env.browser, url(port, creds(USER, PASSWORD)));
    await env.run([page], async () => {
      await page.click('#start');
      await waitForStatus(page, 'PLAYING');
      await waitForFrames(page, { which: 'camgate', minFrames: 5 });
      await page.click('#stop');
      await waitForStatus(page, 'STOPPED', 10000);
      const frames = await serverFrames(page);
      for (const secret of [PASSWORD, encodeURIComponent(PASSWORD)]) {
        assert.ok(!frames.includes(secret), `server echoed the password:\n${frames.slice(0, 2000)}`);
      }
    });
    await page.context().close();
  });

  test(`${method} auth: no or wrong credentials fail with 401`, { timeout: 60000 }, async () => {
    for (const target of [url(port), url(port, creds(USER, 'wrong'))]) {
      const page = await openPlayer(env.browser, target);
      await env.run([page], async () => {
        await page.click('#start');
        const status = await waitForStatus(page, 'FAILED');
        assert.match(status.info, /401|Unauthorized/i, `for ${target}`);
        assert.ok(!(await serverFrames(page)).includes('wrong'), 'server echoed the wrong password');
      });
      await page.context().close();
    }
  });
}

test('a camera with PCMU audio: video and sound reach the browser', { timeout: 60000 }, async () => {
  const page = await openPlayer(env.browser, url(audioPort));
  await env.run([page], async () => {
    await page.click('#start');
    await waitForStatus(page, 'PLAYING');
    await waitForFrames(page, { which: 'camgate', minFrames: 5 });
    await page.waitForTimeout(1500);
    const stats = await videoStats(page, 'camgate');
    console.log(`# PCMU camera: ${JSON.stringify(stats)}`);
    const answerAudio = await page.evaluate(
      () => (window.camgate.pc.remoteDescription?.sdp || '').split(/(?=^m=)/m).find((m) => m.startsWith('m=audio')),
    );
    assert.ok(stats.audio, `no inbound audio: ${JSON.stringify(stats)}\nanswer audio section:\n${answerAudio}`);
    assert.ok(stats.audio.packetsReceived > 10, `audio packets: ${JSON.stringify(stats.audio)}`);
    assert.equal(stats.audio.mimeType, 'audio/PCMU');
    assert.ok(stats.audio.totalAudioEnergy > 0, `silence: ${JSON.stringify(stats.audio)}`);
    await page.click('#stop');
    await waitForStatus(page, 'STOPPED', 10000);
  });
  await page.context().close();
});
