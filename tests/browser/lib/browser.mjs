// Headless Debian Chromium driven by playwright-core (never a downloaded browser).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

import { config, CHROMIUM_FLAGS } from './config.mjs';

// Runs in every page before its own scripts: remembers each RTCPeerConnection (window.__pcs) so
// tests can read getStats() from pages whose code they don't control (the Flashphoner Player).
function recordPeerConnections() {
  const Native = window.RTCPeerConnection;
  if (!Native || window.__pcs) return;
  window.__pcs = [];
  window.RTCPeerConnection = new Proxy(Native, {
    construct(target, args, newTarget) {
      const pc = Reflect.construct(target, args, newTarget);
      window.__pcs.push(pc);
      return pc;
    },
  });
}

export async function launchBrowser() {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'camgate-chromium-'));
  const browser = await chromium.launch({
    executablePath: config.chromium,
    ignoreDefaultArgs: true,
    args: [...CHROMIUM_FLAGS, `--user-data-dir=${userDataDir}`, '--remote-debugging-pipe', '--no-startup-window'],
    timeout: 30000,
  });
  const close = async () => {
    await browser.close().catch(() => {});
    fs.rmSync(userDataDir, { recursive: true, force: true });
  };
  return { browser, close };
}

// A fresh context + page with console capture. `page.consoleLines` keeps the page's log.
export async function newPage(browser) {
  const context = await browser.newContext();
  await context.addInitScript(recordPeerConnections);
  const page = await context.newPage();
  page.consoleLines = [];
  page.on('console', (msg) => page.consoleLines.push(`[${msg.type()}] ${msg.text()}`));
  page.on('pageerror', (err) => page.consoleLines.push(`[pageerror] ${err.message}`));
  page.setDefaultTimeout(20000);
  return page;
}

// Chromium gathers 127.0.0.1 candidates only for pages with media permission.
export async function grantMedia(page) {
  await page.evaluate(async () => {
    window.__gum = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  });
}

// getStats() of a peer connection in the page: `which` is 'camgate' (window.camgate.pc) or
// 'last' (the newest recorded RTCPeerConnection). Works with Playwright and Puppeteer pages.
export async function videoStats(page, which = 'last') {
  return page.evaluate(async (which) => {
    const pc = which === 'camgate'
      ? window.camgate && window.camgate.pc
      : (window.__pcs || []).filter((p) => p.connectionState !== 'closed').at(-1);
    if (!pc) return null;
    const report = await pc.getStats();
    let video = null;
    let audio = null;
    const codecs = new Map();
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') video = s;
      if (s.type === 'inbound-rtp' && s.kind === 'audio') audio = s;
      if (s.type === 'codec') codecs.set(s.id, s);
    });
    return {
      connectionState: pc.connectionState,
      iceConnectionState: pc.iceConnectionState,
      video: video && {
        framesDecoded: video.framesDecoded || 0,
        timestamp: video.timestamp, // ms, the browser's clock when the stats were taken
        frameWidth: video.frameWidth || 0,
        frameHeight: video.frameHeight || 0,
        framesPerSecond: video.framesPerSecond || 0,
        packetsReceived: video.packetsReceived || 0,
        packetsLost: video.packetsLost || 0,
        mimeType: codecs.get(video.codecId)?.mimeType || null,
        sdpFmtpLine: codecs.get(video.codecId)?.sdpFmtpLine || null,
      },
      audio: audio && {
        packetsReceived: audio.packetsReceived || 0,
        totalAudioEnergy: audio.totalAudioEnergy || 0,
        // Samples played out: 0 while the track is attached to no playing element, whatever
        // arrived (how a silent Flashphoner Player shows).
        totalSamplesReceived: audio.totalSamplesReceived || 0,
        hasTotalAudioEnergy: 'totalAudioEnergy' in audio,
        audioLevel: audio.audioLevel || 0,
        mimeType: codecs.get(audio.codecId)?.mimeType || null,
      },
    };
  }, which);
}

// Polls getStats until `minFrames` video frames are decoded; returns the last stats.
export async function waitForFrames(page, { which = 'last', minFrames = 1, timeoutMs = 20000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let stats = null;
  for (;;) {
    stats = await videoStats(page, which).catch((err) => ({ error: err.message }));
    if (stats?.video && stats.video.framesDecoded >= minFrames && stats.video.frameWidth > 0) return stats;
    if (Date.now() > deadline) {
      throw new Error(`no ${minFrames} decoded frames after ${timeoutMs} ms; last stats: ${JSON.stringify(stats)}`);
    }
    await sleep(100);
  }
}

// Like newPage, with browser context options (e.g. `{ ignoreHTTPSErrors: true }` for camgate's
// self-signed certificate on https/wss).
export async function newPageWith(browser, contextOptions = {}) {
  const context = await browser.newContext(contextOptions);
  await context.addInitScript(recordPeerConnections);
  const page = await context.newPage();
  page.consoleLines = [];
  page.on('console', (msg) => page.consoleLines.push(`[${msg.type()}] ${msg.text()}`));
  page.on('pageerror', (err) => page.consoleLines.push(`[pageerror] ${err.message}`));
  page.setDefaultTimeout(20000);
  return page;
}

// Sound, the way a listener meets it: waits until audio packets arrive and the browser plays
// them out with energy (`totalAudioEnergy` > 0, `totalSamplesReceived` > 0), then checks that
// both still grow over `growMs` (sound goes on, not one burst). Returns the last stats, with
// `audio.samplesPerSecond` measured over that span. Packets alone prove nothing: a track that
// no element plays receives packets and plays no sample. Works on Playwright and Puppeteer
// pages (Chromium and Firefox).
export async function waitForAudio(page, { which = 'last', minPackets = 10, timeoutMs = 15000, growMs = 1000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let stats = null;
  for (;;) {
    stats = await videoStats(page, which).catch((err) => ({ error: err.message }));
    const a = stats?.audio;
    if (a && a.packetsReceived >= minPackets && a.totalAudioEnergy > 0 && a.totalSamplesReceived > 0) break;
    if (Date.now() > deadline) {
      throw new Error(`no audible audio after ${timeoutMs} ms; last stats: ${JSON.stringify(stats)}`);
    }
    await sleep(100);
  }
  const first = stats.audio;
  const t0 = Date.now();
  await sleep(growMs);
  const later = await videoStats(page, which);
  const a = later?.audio;
  if (!a || a.totalSamplesReceived <= first.totalSamplesReceived || a.totalAudioEnergy <= first.totalAudioEnergy) {
    throw new Error(`audio stopped playing: ${JSON.stringify(first)} then, ${growMs} ms later, ${JSON.stringify(a)}`);
  }
  a.samplesPerSecond = Math.round(((a.totalSamplesReceived - first.totalSamplesReceived) * 1000) / (Date.now() - t0));
  return later;
}
