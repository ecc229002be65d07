// Starts a real `canhazdb` server (TCP and WebSocket on free loopback ports,
// a temporary data directory) for one test file, and stops it again.
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** The server binary: $CANHAZDB_BIN, or the debug build. */
export const serverBinary =
  process.env.CANHAZDB_BIN ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(root, 'target'), 'debug', 'canhazdb');

const running = new Set();
const killAll = () => {
  for (const child of running) child.kill('SIGKILL');
};
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    killAll();
    process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
  });
}

/** scripts/wasm.sh kills the servers listed here if a test run dies without stopping them. */
const pidDir = process.env.CANHAZDB_TEST_PID_DIR;
const remember = (child) => pidDir && writeFileSync(path.join(pidDir, String(child.pid)), '');
const forget = (child) => pidDir && rmSync(path.join(pidDir, String(child.pid)), { force: true });

/** A free loopback port (the OS picks it; a later bind may still race, see `startServer`). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function launch({ maxFrameBytes, certsDir, dataDir }) {
  const port = await freePort();
  const wsPort = await freePort();
  const args = [
    '--host', '127.0.0.1',
    '--port', String(port),
    '--ws-port', String(wsPort),
    '--data-dir', dataDir,
    '--node-name', `wasm-test-${wsPort}`,
    '--replicas', '1',
  ];
  if (maxFrameBytes) args.push('--max-frame-bytes', String(maxFrameBytes));
  if (certsDir) args.push('--certs-dir', certsDir);
  const started = await spawnListening(args, [port, wsPort]);
  return { ...started, port, wsPort };
}

/**
 * Runs the server with `args` until it listens on every one of `ports`:
 * `{ child, exited, log() }`, or `{ child: null, log, state }` when it
 * exited first.
 */
async function spawnListening(args, ports) {
  const child = spawn(serverBinary, args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  running.add(child);
  remember(child);
  let log = '';
  child.stderr.on('data', (chunk) => {
    log += chunk;
    if (process.env.CANHAZDB_TEST_LOG) process.stderr.write(chunk);
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.once('exit', () => {
    running.delete(child);
    forget(child);
  });
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const state = await Promise.race([exited, sleep(50).then(() => null)]);
    if (state) return { child: null, log, state };
    const listening = await Promise.all(ports.map(canConnect));
    if (listening.every(Boolean)) return { child, exited, log: () => log };
  }
  child.kill('SIGKILL');
  throw new Error(`canhazdb did not start listening within 30 s:\n${log}`);
}

/**
 * Starts a server; resolves to `{ wsUrl, port, wsPort, kill(), stop() }`.
 * `stop()` ends it (SIGTERM, then SIGKILL after 5 s) and removes its data.
 * With `certsDir` (ca.crt, node.crt, node.key; see lib/tls.mjs) every
 * listener speaks only mutual TLS and `wsUrl` is `wss://`.
 */
export async function startServer({ maxFrameBytes, certsDir } = {}) {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'canhazdb-wasm-test-'));
  let started;
  for (let attempt = 0; attempt < 3; attempt++) {
    started = await launch({ maxFrameBytes, certsDir, dataDir });
    if (started.child) break;
  }
  if (!started.child) {
    await rm(dataDir, { recursive: true, force: true });
    throw new Error(`canhazdb exited at start (${JSON.stringify(started.state)}):\n${started.log}`);
  }
  const { child, port, wsPort, exited } = started;
  const ends = ender(child, exited);
  return {
    port,
    wsPort,
    wsUrl: `${certsDir ? 'wss' : 'ws'}://127.0.0.1:${wsPort}`,
    log: started.log,
    /** Kills the server at once (a dropped connection for its clients). */
    kill: () => ends('SIGKILL', 5_000),
    async stop() {
      await ends('SIGTERM', 5_000);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Ends `child` with `signal`, and with SIGKILL if it is still running after `grace` ms. */
function ender(child, exited) {
  return async (signal, grace) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      const done = await Promise.race([exited, sleep(grace).then(() => null)]);
      if (!done) {
        child.kill('SIGKILL');
        await exited;
      }
    }
  };
}

/**
 * Starts a cluster of `count` nodes on loopback, each joining every node
 * (itself included), with TCP, WebSocket and HTTP ports, and waits until
 * every node is ready (GET /health/ready answers 200). Resolves to
 * `{ nodes: [{ name, port, wsPort, httpPort, wsUrl, httpUrl, kill() }], stop() }`.
 */
export async function startCluster(count) {
  const nodes = [];
  for (let index = 0; index < count; index++) {
    const [port, wsPort, httpPort] = [await freePort(), await freePort(), await freePort()];
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'canhazdb-wasm-cluster-'));
    nodes.push({ name: `n${index}`, port, wsPort, httpPort, dataDir });
  }
  const joins = nodes.flatMap((node) => ['--join', `127.0.0.1:${node.port}`]);
  const stop = async () => {
    await Promise.allSettled(nodes.map((node) => node.ends?.('SIGTERM', 5_000)));
    await Promise.allSettled(nodes.map((node) => rm(node.dataDir, { recursive: true, force: true })));
  };
  try {
    await Promise.all(
      nodes.map(async (node) => {
        const args = [
          '--host', '127.0.0.1',
          '--port', String(node.port),
          '--ws-port', String(node.wsPort),
          '--http-port', String(node.httpPort),
          '--data-dir', node.dataDir,
          '--node-name', node.name,
          ...joins,
        ];
        const started = await spawnListening(args, [node.port, node.wsPort, node.httpPort]);
        if (!started.child) throw new Error(`${node.name} exited at start (${JSON.stringify(started.state)}):\n${started.log}`);
        node.ends = ender(started.child, started.exited);
        node.kill = () => node.ends('SIGKILL', 5_000);
        node.log = started.log;
        node.wsUrl = `ws://127.0.0.1:${node.wsPort}`;
        node.httpUrl = `http://127.0.0.1:${node.httpPort}`;
      }),
    );
    const deadline = Date.now() + 60_000;
    for (const node of nodes) {
      while (!(await fetch(`${node.httpUrl}/health/ready`).then((r) => r.ok, () => false))) {
        if (Date.now() > deadline) throw new Error(`${node.name} is not ready within 60 s:\n${node.log()}`);
        await sleep(100);
      }
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { nodes, stop };
}

/** Rejects after `ms` with `what` in the message: keeps a hung await from hanging the run. */
export function within(ms, promise, what = 'operation') {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export { root, sleep };
