// The official Flashphoner Web SDK (npm @flashphoner/websdk), unmodified, in a page: its Player
// example and a bare page that loads flashphoner.js for the SDK API. The same calls work on
// Playwright (Chromium) and Puppeteer (Firefox) pages: page.evaluate with one argument only.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { BROWSER_DIR } from './config.mjs';
import { serveStatic } from './static-server.mjs';

export const SDK_ROOT = path.join(BROWSER_DIR, 'node_modules', '@flashphoner', 'websdk');
export const PLAYER = 'examples/demo/streaming/player/player.html';
export const SDK_API_PAGE = 'sdk-api.html';

// A page with one display <div> per stream, and the SDK's flashphoner.js.
const PAGE = '<!doctype html><html><body><div id="displays"></div>'
  + '<script src="flashphoner.js"></script></body></html>';

// Serves the SDK's examples as they ship (the Player loads ../../../../flashphoner.js) and the
// bare SDK API page, from one origin. Returns { url(path), close() }.
export async function serveSdk() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'camgate-sdk-web-'));
  fs.writeFileSync(path.join(dir, SDK_API_PAGE), PAGE);
  for (const entry of ['flashphoner.js', 'examples']) {
    fs.symlinkSync(path.join(SDK_ROOT, entry), path.join(dir, entry));
  }
  const web = await serveStatic(dir);
  return {
    url: web.url,
    close: async () => {
      await web.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Plays `name` through the SDK API (createSession → createStream → play) in a page opened on
// SDK_API_PAGE; resolves on PLAYING, rejects with the stream's info on FAILED. Each stream gets
// its own display <div>; statuses go to window.__sdk[name]. `stripCodecs` (e.g. 'G722') is the
// SDK's own createStream option: those codecs are cut from the offer sent to the server.
// `options`: more createStream options (e.g. `{ transport: 'TCP' }`).
export async function sdkApiPlay(page, [urlServer, name, stripCodecs, options = {}]) {
  await page.evaluate(([urlServer, name, stripCodecs, options]) => new Promise((resolve, reject) => {
    const C = Flashphoner.constants;
    if (!window.__sdkInit) {
      Flashphoner.init({});
      window.__sdkInit = true;
      window.__sdk = {};
    }
    const display = document.createElement('div');
    display.style.width = '320px';
    display.style.height = '180px';
    document.getElementById('displays').appendChild(display);
    const record = { statuses: [] };
    window.__sdk[name] = record;
    Flashphoner.createSession({ urlServer }).on(C.SESSION_STATUS.ESTABLISHED, (session) => {
      const stream = session.createStream({ name, display, ...(stripCodecs ? { stripCodecs } : {}), ...options });
      record.stream = stream;
      record.session = session;
      stream.on(C.STREAM_STATUS.PLAYING, () => { record.statuses.push('PLAYING'); resolve(); });
      stream.on(C.STREAM_STATUS.STOPPED, () => record.statuses.push('STOPPED'));
      stream.on(C.STREAM_STATUS.FAILED, () => {
        record.statuses.push('FAILED');
        reject(new Error(`stream FAILED: ${stream.getInfo()}`));
      });
      stream.play();
    }).on(C.SESSION_STATUS.FAILED, () => reject(new Error('session FAILED')));
  }), [urlServer, name, stripCodecs, options]);
}

// Stops a stream played with sdkApiPlay and waits for the server's STOPPED; closes its session.
export async function sdkApiStop(page, name) {
  await page.evaluate((name) => new Promise((resolve, reject) => {
    const record = window.__sdk[name];
    const timer = setTimeout(() => reject(new Error(`no STOPPED: ${record.statuses}`)), 10000);
    record.stream.on(Flashphoner.constants.STREAM_STATUS.STOPPED, () => {
      clearTimeout(timer);
      record.session.disconnect();
      resolve();
    });
    record.stream.stop();
  }), name);
}
