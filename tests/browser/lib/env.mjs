// Per-file test environment: camgate + gst cameras + one Chromium, torn down in after() even
// when tests fail. Wrap test bodies in env.run(pages, fn) to get every log on failure.
//
//   const env = useEnvironment();                       // camgate + the default camera
//   const env = useEnvironment({ cameras: [             // several cameras (tests/rtsp_server.py)
//     { name: 'auth', port: 8556, extra: ['--user', 'admin', '--password', 'x'] }] });

import { after, before } from 'node:test';

import { launchBrowser } from './browser.mjs';
import { makeLogDir, startCamera, startCamgate } from './procs.mjs';

// `launch` starts the browser (Chromium by default; lib/firefox.mjs passes Firefox), and
// `logPrefix` names the log directory.
export function useEnvironment({ cameras = [{ name: 'camera' }], launch = launchBrowser, logPrefix } = {}) {
  const env = {
    logDir: logPrefix ? makeLogDir(logPrefix) : makeLogDir(),
    camgate: null,
    cameras: {}, // by name
    browser: null,
    closeBrowser: null,
    get camera() { return env.cameras.camera; },
    children() { return [env.camgate, ...Object.values(env.cameras)].filter(Boolean); },
    // Runs a test body; on failure prints the tails of every log (processes and pages).
    async run(pages, fn) {
      try {
        return await fn();
      } catch (err) {
        await env.dumpLogs(pages);
        throw err;
      }
    },
    async dumpLogs(pages = []) {
      const out = [`\n===== logs in ${env.logDir} =====`];
      for (const child of env.children()) {
        out.push(`--- ${child.name} (${child.logFile}, exit ${child.exitCode}) ---`, child.tail(60));
      }
      for (const [i, page] of pages.entries()) {
        out.push(`--- page ${i} console ---`, (page.consoleLines || []).slice(-40).join('\n'));
        // camgate's player keeps its signaling frames (SDP bodies shortened).
        const frames = await page
          .evaluate(() => (window.camgate ? window.camgate.log.map((f) => `${f.dir} ${f.frame}`) : []))
          .catch(() => []);
        if (frames.length) {
          const short = frames.map((f) => f.replace(/v=0[^"]*/g, '<sdp>'));
          out.push(`--- page ${i} signaling ---`, short.slice(-30).join('\n'));
        }
      }
      console.error(out.join('\n'));
    },
  };

  before(async () => {
    try {
      const started = await Promise.allSettled([
        startCamgate(env.logDir),
        ...cameras.map((c) => startCamera(env.logDir, c)),
      ]);
      env.camgate = started[0].value || null;
      cameras.forEach((c, i) => { env.cameras[c.name] = started[i + 1].value || null; });
      const failed = started.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
      ({ browser: env.browser, close: env.closeBrowser } = await launch());
    } catch (err) {
      await env.dumpLogs();
      throw err;
    }
  }, { timeout: 60000 });

  after(async () => {
    if (env.closeBrowser) await env.closeBrowser();
    await Promise.all(env.children().map((c) => c.stop()));
    console.log(`# logs kept in ${env.logDir}`);
  }, { timeout: 30000 });

  return env;
}
