// Headless Debian Firefox ESR (/usr/bin/firefox-esr) driven by puppeteer-core 24 over WebDriver
// BiDi (never a downloaded browser; puppeteer-core 25 needs Node 22). The prefs are the ones a
// loopback-only network namespace needs (see the shared browser-testing notes, "Firefox as a
// second browser"):
// - ICE: loopback candidates, real host addresses (no mDNS), and the page keeps a fake
//   getUserMedia({audio: true}) capture running (a page that is not capturing gathers only
//   default-route addresses, and the namespace has none);
// - audio: the mock cubeb context (no sound device, else audio stays suspended);
// - H.264 without OpenH264: the "hardware" path, which decodes with Debian's libavcodec.
//
//   const env = useFirefoxEnvironment({ cameras: [...] });   // camgate + cameras + Firefox
//   const page = await openFirefoxPlayer(env.browser, url);   // camgate's player page
//   await page.click('#start'); await waitForFirefoxStatus(page, 'PLAYING');
//   const stats = await waitForFirefoxFrames(page, { minFrames: 5 });

import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import puppeteer from 'puppeteer-core';

import { videoStats, waitForAudio } from './browser.mjs';
import { pageUrl } from './config.mjs';
import { useEnvironment } from './env.mjs';

export const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';

export const FIREFOX_PREFS = {
  'media.peerconnection.ice.loopback': true,
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  'media.peerconnection.ice.default_address_only': false,
  'media.navigator.permission.disabled': true,
  'media.navigator.streams.fake': true,
  'media.navigator.permission.fake': true,
  'media.cubeb.force_mock_context': true,
  'media.webrtc.hw.h264.enabled': true,
  'gfx.blacklist.webrtc.hw.acceleration.h264': 1,
  'media.ffmpeg.enabled': true,
  'media.autoplay.default': 0,
  'media.autoplay.blocking_policy': 0,
  'media.block-autoplay-until-in-foreground': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'browser.safebrowsing.update.enabled': false,
  'app.update.enabled': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'toolkit.telemetry.enabled': false,
};

export const firefoxAvailable = () => fs.existsSync(FIREFOX);

export async function launchFirefox({ prefs = {} } = {}) {
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    extraPrefsFirefox: { ...FIREFOX_PREFS, ...prefs },
    timeout: 30000,
    protocolTimeout: 30000,
  });
  return { browser, close: () => browser.close().catch(() => {}) };
}

// Runs in every page before its own scripts: remembers each RTCPeerConnection (window.__pcs).
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

// A page in a fresh browser context, with console capture (`page.consoleLines`) and
// RTCPeerConnection recording. Close it with `page.closeContext()`.
export async function newFirefoxPage(browser) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  page.consoleLines = [];
  page.on('console', (msg) => page.consoleLines.push(`[${msg.type()}] ${msg.text()}`));
  page.on('pageerror', (err) => page.consoleLines.push(`[pageerror] ${err.message}`));
  page.setDefaultTimeout(20000);
  await page.evaluateOnNewDocument(recordPeerConnections);
  page.closeContext = () => context.close().catch(() => {});
  return page;
}

// Firefox gathers loopback candidates only while the page captures: keep a fake microphone open.
export async function firefoxCapture(page) {
  await page.evaluate(async () => {
    window.__gum = await navigator.mediaDevices.getUserMedia({ audio: true });
  });
}

// camgate's player page (`/?url=`) in Firefox, capturing.
export async function openFirefoxPlayer(browser, streamUrl) {
  const page = await newFirefoxPage(browser);
  const query = streamUrl === undefined ? '' : `?url=${encodeURIComponent(streamUrl)}`;
  await page.goto(pageUrl(query));
  await page.waitForFunction(() => window.camgate !== undefined);
  await firefoxCapture(page);
  return page;
}

// Waits for the player's stream status; ends early on FAILED/STOPPED and returns the status
// object either way ({session, stream, info}): the caller asserts.
export async function waitForFirefoxStatus(page, status, timeoutMs = 20000) {
  await page.waitForFunction(
    (want) => {
      const s = window.camgate.status.stream;
      return s === want || s === 'FAILED' || s === 'STOPPED';
    },
    { timeout: timeoutMs, polling: 50 },
    status,
  );
  return page.evaluate(() => window.camgate.status);
}

// getStats() in the page: the same reader as Chromium's (page.evaluate has one shape in both).
export const firefoxStats = videoStats;

// Polls getStats until `minFrames` video frames are decoded; returns the last stats.
export async function waitForFirefoxFrames(page, { which = 'camgate', minFrames = 1, timeoutMs = 20000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let stats = null;
  for (;;) {
    stats = await firefoxStats(page, which).catch((err) => ({ error: err.message }));
    if (stats?.video && stats.video.framesDecoded >= minFrames && stats.video.frameWidth > 0) return stats;
    if (Date.now() > deadline) {
      throw new Error(`Firefox: no ${minFrames} decoded frames after ${timeoutMs} ms; last stats: ${JSON.stringify(stats)}`);
    }
    await sleep(100);
  }
}

// Audible audio, as in Chromium (lib/browser.mjs `waitForAudio`: energy and played samples
// that keep growing).
export const waitForFirefoxAudio = (page, { which = 'camgate', ...rest } = {}) => waitForAudio(page, { which, ...rest });

// The H.264 (or any video) rtpmap/fmtp lines of the local offer and the remote answer of a pc.
export async function firefoxSdpVideoLines(page, which = 'camgate') {
  return page.evaluate((which) => {
    const pc = which === 'camgate'
      ? window.camgate && window.camgate.pc
      : (window.__pcs || []).at(-1);
    // The pc is closed (and gone) once the player fails: read its signaling log too.
    const frames = (window.camgate?.log || []).map((f) => { try { return JSON.parse(f.frame); } catch { return {}; } });
    const logOffer = frames.filter((f) => f.message === 'playStream').map((f) => f.data?.[0]?.sdp).filter(Boolean).at(-1);
    const logAnswer = frames.filter((f) => f.message === 'setRemoteSDP').map((f) => f.data?.[1]).filter(Boolean).at(-1);
    const offer = pc?.localDescription?.sdp || logOffer || '';
    const answer = pc?.remoteDescription?.sdp || logAnswer || '';
    const video = (sdp) => (sdp.split(/(?=^m=)/m).find((m) => m.startsWith('m=video')) || '')
      .split(/\r?\n/).filter((l) => /^(m=video|a=rtpmap|a=fmtp)/.test(l)).join('\n');
    return { offer: video(offer), answer: video(answer) };
  }, which);
}

// Per-file environment (lib/env.mjs) with Firefox instead of Chromium.
export function useFirefoxEnvironment({ cameras = [{ name: 'camera' }] } = {}) {
  return useEnvironment({ cameras, launch: () => launchFirefox(), logPrefix: 'camgate-firefox-' });
}
