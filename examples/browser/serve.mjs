#!/usr/bin/env node
// A small static file server for the example page and the wasm package:
//
//   node examples/browser/serve.mjs [--port 8080] [--host 127.0.0.1]
//
// serves this folder at / and wasm/pkg at /pkg/, so index.html can
// `import { connect } from './pkg/canhazdb_wasm.js'`. The tests import
// `createStaticServer` to serve the same files (and their test page).
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.ts': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/** URL prefixes and the folders they serve. */
export const defaultRoutes = {
  '/pkg/': path.join(root, 'wasm', 'pkg'),
  '/': here,
};

/**
 * A static file server for `routes` (URL prefix → folder; the longest
 * prefix wins). Resolves to the listening http.Server.
 */
export function createStaticServer({ routes = defaultRoutes, port = 0, host = '127.0.0.1' } = {}) {
  const prefixes = Object.keys(routes).sort((a, b) => b.length - a.length);
  const server = http.createServer(async (request, response) => {
    const url = new URL(request.url, 'http://localhost');
    const pathname = decodeURIComponent(url.pathname);
    const prefix = prefixes.find((p) => pathname.startsWith(p));
    const folder = prefix && routes[prefix];
    let file = folder && path.join(folder, pathname.slice(prefix.length));
    if (!file || !file.startsWith(folder)) {
      response.writeHead(404).end('not found');
      return;
    }
    try {
      if ((await stat(file)).isDirectory()) file = path.join(file, 'index.html');
      await stat(file);
    } catch {
      response.writeHead(404, { 'content-type': 'text/plain' }).end(`not found: ${pathname}`);
      return;
    }
    response.writeHead(200, {
      'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'cache-control': 'no-store',
    });
    createReadStream(file).pipe(response);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const option = (name, fallback) => {
    const at = process.argv.indexOf(`--${name}`);
    return at > 0 ? process.argv[at + 1] : fallback;
  };
  const host = option('host', '127.0.0.1');
  const server = await createStaticServer({ port: Number(option('port', 8080)), host });
  const { port } = server.address();
  console.log(`canhazdb example: http://${host}:${port}/?server=ws://127.0.0.1:7061`);
  console.log('(start the database with: canhazdb --ws-port 7061)');
}
