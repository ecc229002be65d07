// canhazdb for browsers and Node.js: the entry point of wasm/pkg.
//
//   import { connect } from './pkg/canhazdb_wasm.js';
//   const db = await connect('ws://127.0.0.1:7061');
//
// The wasm-bindgen glue (canhazdb_wasm_bindings.js) needs its .wasm loaded
// before any call; this module does that once, with top-level await, so
// importers can call `connect` straight away. Browsers fetch the .wasm next to
// this file; Node.js reads it from disk.
import init from './canhazdb_wasm_bindings.js';

const wasmUrl = new URL('./canhazdb_wasm_bindings_bg.wasm', import.meta.url);
const isNode = typeof process !== 'undefined' && process.versions != null && process.versions.node != null;

if (isNode) {
  const { readFile } = await import('node:fs/promises');
  await init({ module_or_path: await readFile(wasmUrl) });
} else {
  await init({ module_or_path: wasmUrl });
}

export { connect, Database } from './canhazdb_wasm_bindings.js';
