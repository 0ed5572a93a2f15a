// A second RTSP server implementation (issue 8.4): VLC 3.0's RTSP output (`#rtp{sdp=rtsp://...}`,
// Debian vlc-bin + vlc-plugin-base) serving an H.264 + AAC MP4 made with GStreamer at test time.
// VLC sends RTP over UDP only (a TCP-interleaved SETUP gets 461), so camgate's default `auto`
// transport must end up on UDP. VLC refuses to run as root: it runs as nobody (setpriv).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { videoStats, waitForAudio, waitForFrames } from './lib/browser.mjs';
import { streamEntry } from './lib/api.mjs';
import { config } from './lib/config.mjs';
import { useEnvironment } from './lib/env.mjs';
import { Child, waitForPort } from './lib/procs.mjs';
import { openPlayer, waitForStatus } from './lib/player.mjs';

const VLC = '/usr/bin/vlc';
const port = config.cameraPort + 50;
const vlcUrl = `rtsp://${config.host}:${port}/vlc`;

// camgate and Chromium only: VLC is started below, after its clip is made.
const env = useEnvironment({ cameras: [] });
let mediaDir = null;

// The Debian package's version (`vlc --version` refuses to run as root, too).
function vlcVersion() {
  try {
    return execFileSync('dpkg-query', ['-W', '-f', '${Version}', 'vlc-bin']).toString();
  } catch {
    return '?';
  }
}

before(async () => {
  assert.ok(fs.existsSync(VLC), `${VLC} missing: apt-get install vlc-bin vlc-plugin-base (scripts/test.sh does)`);
  // 10 s of 640x360 30 fps H.264 (1 s GOP, no B-frames) + 48 kHz stereo AAC 440 Hz, in MP4.
  mediaDir = fs.mkdtempSync(path.join(os.tmpdir(), 'camgate-vlc-'));
  fs.chmodSync(mediaDir, 0o755); // VLC runs as nobody
  const clip = path.join(mediaDir, 'clip.mp4');
  execFileSync('gst-launch-1.0', ['-q',
    'videotestsrc', 'num-buffers=300', 'pattern=ball', '!', 'video/x-raw,format=I420,width=640,height=360,framerate=30/1',
    '!', 'timeoverlay', '!', 'x264enc', 'bframes=0', 'key-int-max=30', 'speed-preset=ultrafast',
    '!', 'h264parse', '!', 'mp4mux', 'name=m', '!', 'filesink', `location=${clip}`,
    'audiotestsrc', 'num-buffers=470', 'wave=sine', 'freq=440', 'volume=0.3',
    '!', 'audio/x-raw,rate=48000,channels=2', '!', 'audioconvert', '!', 'voaacenc', '!', 'aacparse', '!', 'm.',
  ], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 30000 });
  fs.chmodSync(clip, 0o644);

  // setpriv execs VLC in place (the child's pid is VLC's: stop() signals VLC itself).
  const vlc = new Child('vlc', 'setpriv', [
    '--reuid=65534', '--regid=65534', '--clear-groups',
    VLC, '-I', 'dummy', '--no-dbus', clip, '--loop',
    '--sout', `#rtp{sdp=rtsp://${config.host}:${port}/vlc}`, '--sout-keep',
  ], env.logDir, { HOME: mediaDir });
  env.cameras.vlc = vlc; // its log is printed on failure and it is stopped in after()
  await waitForPort(port, { child: vlc, timeoutMs: 20000 });
}, { timeout: 60000 });

after(() => {
  if (mediaDir) fs.rmSync(mediaDir, { recursive: true, force: true });
});

test('VLC 3 RTSP output (UDP only) plays in the browser: H.264 video and AAC audio as Opus', { timeout: 60000 }, async () => {
  const page = await openPlayer(env.browser, vlcUrl);
  try {
    await env.run([page], async () => {
      const t0 = Date.now();
      await page.click('#start'); // unmutes the video: Chromium plays the audio out and measures it
      const playing = await waitForStatus(page, 'PLAYING', 20000);
      const first = await waitForFrames(page, { which: 'camgate', minFrames: 3 });
      const firstMs = Date.now() - t0;
      await sleep(1500);
      const stats = await videoStats(page, 'camgate');
      const entry = await streamEntry(vlcUrl);
      const log = fs.readFileSync(env.camgate.logFile, 'utf8').split('\n')
        .filter((l) => l.includes(`:${port}/`) || /audio:|track left out|SETUP/.test(l));
      console.log(`# VLC: vlc-bin ${vlcVersion()}`);
      console.log(`# PLAYING info "${playing.info}"; first frames after ${firstMs} ms; /api/streams ${JSON.stringify(entry)}`);
      console.log(`# ${JSON.stringify(stats)}`);
      console.log(`# camgate log:\n${log.slice(0, 20).map((l) => `#   ${l}`).join('\n')}`);

      assert.equal(stats.video.mimeType, 'video/H264');
      assert.equal(stats.video.frameWidth, 640);
      assert.equal(stats.video.frameHeight, 360);
      assert.ok(stats.video.framesDecoded > first.video.framesDecoded, `video stalled: ${JSON.stringify(stats)}`);
      assert.ok(log.some((l) => /rtsp playing.*transport=Udp/.test(l)), 'camgate did not log transport=Udp for VLC');

      // VLC sends the MP4's AAC: camgate transcodes it to Opus and the page hears the tone.
      const answerAudio = await page.evaluate(() => (window.camgate.pc.remoteDescription?.sdp || '')
        .split(/(?=^m=)/m).find((m) => m.startsWith('m=audio')));
      assert.ok(stats.audio, `no inbound audio; dropped tracks ${JSON.stringify(entry?.dropped_tracks)}; answer:\n${answerAudio}`);
      const audio = await waitForAudio(page, { which: 'camgate', minPackets: 20 });
      console.log(`# audio: ${JSON.stringify(audio.audio)}`);
      assert.equal(audio.audio.mimeType, 'audio/opus');

      await page.click('#stop');
      await waitForStatus(page, 'STOPPED', 10000);
    });
  } finally {
    await page.context().close();
  }
});

// One RTSP request at a time over a plain TCP connection: `send(method, url, headers)` →
// {status, headers, body}.
async function rtspConnection() {
  const sock = net.connect({ host: config.host, port });
  await new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
  let buf = '';
  let cseq = 0;
  sock.setEncoding('latin1');
  sock.on('data', (d) => { buf += d; });
  const send = async (method, url, headers = {}) => {
    cseq += 1;
    const lines = [`${method} ${url} RTSP/1.0`, `CSeq: ${cseq}`, 'User-Agent: camgate-test',
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
    buf = '';
    sock.write(`${lines.join('\r\n')}\r\n\r\n`);
    const deadline = Date.now() + 5000;
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end >= 0) {
        const head = buf.slice(0, end).split('\r\n');
        const hdrs = Object.fromEntries(head.slice(1).map((l) => [l.split(':')[0].toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
        const len = Number(hdrs['content-length'] || 0);
        if (buf.length >= end + 4 + len) {
          return { status: Number(head[0].split(' ')[1]), line: head[0], headers: hdrs, body: buf.slice(end + 4, end + 4 + len) };
        }
      }
      if (Date.now() > deadline) throw new Error(`no answer to ${method} ${url}; got ${JSON.stringify(buf)}`);
      await sleep(20);
    }
  };
  return { send, close: () => sock.destroy() };
}

test('VLC answers a TCP-interleaved SETUP with 461 (why camgate must use UDP for it)', { timeout: 30000 }, async () => {
  const rtsp = await rtspConnection();
  try {
    const describe = await rtsp.send('DESCRIBE', vlcUrl, { Accept: 'application/sdp' });
    assert.equal(describe.status, 200, describe.line);
    const controls = [...describe.body.matchAll(/^a=control:(\S+)/gm)].map((m) => m[1]);
    console.log(`# VLC SDP media: ${describe.body.split('\n').filter((l) => /^(m=|a=rtpmap|a=control)/.test(l)).map((l) => l.trim()).join(' | ')}`);
    const track = controls.find((c) => /trackID|track/i.test(c)) || controls.at(-1);
    const trackUrl = /^rtsp:/.test(track) ? track : `${describe.headers['content-base'] || `${vlcUrl}/`}${track}`;
    const setup = await rtsp.send('SETUP', trackUrl, { Transport: 'RTP/AVP/TCP;unicast;interleaved=0-1' });
    console.log(`# SETUP ${trackUrl} over TCP: ${setup.line}`);
    assert.equal(setup.status, 461, setup.line);
  } finally {
    rtsp.close();
  }
});
