// The package's TypeScript declarations: `tsc --strict` accepts typed use of
// the whole API and refuses misuse (each @ts-expect-error line in
// types/usage.ts must be an error, or tsc fails).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';

const tests = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

it('the .d.ts types the API precisely (tsc --strict)', { timeout: 120_000 }, () => {
  const tsc = path.join(tests, 'node_modules', 'typescript', 'bin', 'tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', path.join(tests, 'types', 'tsconfig.json')], {
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, `tsc failed:\n${result.stdout}${result.stderr}`);
});

it('the .d.ts has no `any` in the API', async () => {
  const declarations = await readFile(path.join(tests, '..', 'pkg', 'canhazdb_wasm_bindings.d.ts'), 'utf8');
  // The API part: everything before wasm-bindgen's loader types.
  const api = declarations.split('export type InitInput')[0];
  assert.doesNotMatch(api, /[:<|,(]\s*any\b|\bany\[\]/);
});
