// Child processes for the tests (camgate, the gst camera): started with their output in log
// files, waited for (port and/or a stdout line), and always killed at the end.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { config, camgateArgs, cameraArgs } from './config.mjs';

const running = new Set();

// Last resort: never leave a child behind, even when the test process dies of an exception.
process.on('exit', () => {
  for (const child of running) {
    try { process.kill(child.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
});

export function makeLogDir(prefix = 'camgate-browser-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export async function waitForPort(port, { host = config.host, timeoutMs = 15000, child } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && child.exitCode !== null) {
      throw new Error(`${child.name} exited with ${child.exitCode} before listening on ${port}`);
    }
    const ok = await new Promise((resolve) => {
      const sock = net.connect({ host, port });
      sock.once('connect', () => { sock.destroy(); resolve(true); });
      sock.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

export class Child {
  constructor(name, command, args, logDir, env = {}) {
    this.name = name;
    this.logFile = path.join(logDir, `${name}.log`);
    const log = fs.openSync(this.logFile, 'a');
    this.proc = spawn(command, args, {
      stdio: ['ignore', 'pipe', log],
      env: { ...process.env, ...env },
    });
    this.pid = this.proc.pid;
    this.exitCode = null;
    this.stdout = '';
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        this.exitCode = code ?? signal;
        running.delete(this);
        fs.closeSync(log);
        resolve(this.exitCode);
      });
    });
    this.proc.once('error', (err) => fs.appendFileSync(this.logFile, `spawn error: ${err.message}\n`));
    this.proc.stdout.on('data', (chunk) => {
      this.stdout += chunk;
      fs.appendFileSync(this.logFile, chunk);
    });
    running.add(this);
    fs.appendFileSync(this.logFile, `$ ${command} ${args.join(' ')}\n`);
  }

  async waitForLine(pattern, timeoutMs = 15000) {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.stdout)) {
      if (this.exitCode !== null) throw new Error(`${this.name} exited with ${this.exitCode}\n${this.tail()}`);
      if (Date.now() > deadline) throw new Error(`${this.name}: no ${pattern} after ${timeoutMs} ms\n${this.tail()}`);
      await sleep(50);
    }
  }

  tail(lines = 40) {
    let text = '';
    try { text = fs.readFileSync(this.logFile, 'utf8'); } catch { /* no log */ }
    return text.split('\n').slice(-lines).join('\n');
  }

  async stop(timeoutMs = 3000) {
    if (this.exitCode !== null) return this.exitCode;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

export async function startCamgate(logDir) {
  if (!fs.existsSync(config.camgateBin)) {
    throw new Error(`${config.camgateBin} missing: run cargo build --release -p camgate (or set CAMGATE_BIN)`);
  }
  const child = new Child('camgate', config.camgateBin, camgateArgs(), logDir, { RUST_BACKTRACE: '1' });
  try {
    await waitForPort(config.httpPort, { child });
    await waitForPort(config.wsPort, { child });
    await waitForPort(config.demoPort, { child });
  } catch (err) {
    await child.stop();
    err.message += `\n--- camgate log (${child.logFile}) ---\n${child.tail()}`;
    throw err;
  }
  return child;
}

export async function startCamera(logDir, options = {}) {
  const name = options.name || 'camera';
  const child = new Child(name, config.python, cameraArgs(options), logDir);
  try {
    await child.waitForLine(/^READY /m);
    await waitForPort(options.port || config.cameraPort, { host: options.address || config.host, child });
  } catch (err) {
    await child.stop();
    throw err;
  }
  return child;
}
