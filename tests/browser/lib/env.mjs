// Per-file test environment: camgate + the gst camera + one Chromium, torn down in after()
// even when tests fail. Wrap test bodies in env.run(page?, fn) to get logs on failure.

import { after, before } from 'node:test';

import { launchBrowser } from './browser.mjs';
import { makeLogDir, startCamera, startCamgate } from './procs.mjs';

export function useEnvironment({ camera = true } = {}) {
  const env = {
    logDir: makeLogDir(),
    camgate: null,
    camera: null,
    browser: null,
    closeBrowser: null,
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
      for (const child of [env.camgate, env.camera]) {
        if (child) out.push(`--- ${child.name} (${child.logFile}, exit ${child.exitCode}) ---`, child.tail(60));
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
      const [camgate, cam] = await Promise.allSettled([
        startCamgate(env.logDir),
        camera ? startCamera(env.logDir) : null,
      ]);
      env.camgate = camgate.value || null;
      env.camera = cam.value || null;
      if (camgate.status === 'rejected') throw camgate.reason;
      if (cam.status === 'rejected') throw cam.reason;
      ({ browser: env.browser, close: env.closeBrowser } = await launchBrowser());
    } catch (err) {
      await env.dumpLogs();
      throw err;
    }
  }, { timeout: 60000 });

  after(async () => {
    if (env.closeBrowser) await env.closeBrowser();
    await Promise.all([env.camgate?.stop(), env.camera?.stop()]);
    console.log(`# logs kept in ${env.logDir}`);
  }, { timeout: 30000 });

  return env;
}
