// Certificates for the TLS tests, made with the server binary's own
// `canhazdb cert` commands (the same files an operator would make), and
// WebSockets that present a client certificate (the `ws` package: neither
// Node.js's global WebSocket nor a page's can be given one).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { WebSocket as WsWebSocket } from 'ws';
import { serverBinary } from './server.mjs';

const cert = (...args) => execFileSync(serverBinary, ['cert', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });

/**
 * A fresh CA in a temporary directory with a node certificate for 127.0.0.1
 * and a client certificate `clientName`; `remove()` deletes it all.
 * Resolves to { dir, ca, client: { cert, key, certPath, keyPath }, remove() }
 * (PEM strings; `dir` is a server's --certs-dir).
 */
export async function makeCertificates(clientName = 'browser') {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'canhazdb-wasm-certs-'));
  try {
    cert('create-ca', '--certs-dir', dir);
    cert('create-node', '--certs-dir', dir, '127.0.0.1', 'localhost');
    cert('create-client', '--certs-dir', dir, clientName);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`canhazdb cert failed: ${error.stderr ?? error.message}`);
  }
  const certPath = path.join(dir, `${clientName}.crt`);
  const keyPath = path.join(dir, `${clientName}.key`);
  return {
    dir,
    ca: readFileSync(path.join(dir, 'ca.crt'), 'utf8'),
    client: { cert: readFileSync(certPath, 'utf8'), key: readFileSync(keyPath, 'utf8'), certPath, keyPath },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/**
 * A WebSocket class, shaped like the browser's (`new WebSocket(url, protocols)`),
 * whose connections use `tlsOptions` (`{ ca, cert, key }`): what the wasm
 * client's `connect()` calls when it stands in for `globalThis.WebSocket`.
 */
export function webSocketWith(tlsOptions) {
  return class TlsWebSocket extends WsWebSocket {
    constructor(url, protocols) {
      super(url, protocols, tlsOptions);
    }
  };
}

/** Runs `body` with `globalThis.WebSocket` replaced by `Replacement`. */
export async function withWebSocket(Replacement, body) {
  const original = globalThis.WebSocket;
  globalThis.WebSocket = Replacement;
  try {
    return await body();
  } finally {
    globalThis.WebSocket = original;
  }
}
