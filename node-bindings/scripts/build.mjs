#!/usr/bin/env node
// Builds the addon: `napi build` (release) → canhazdb.linux-x64-gnu.node and
// the generated index.d.ts.
//
//   node scripts/build.mjs               build (cargo is incremental)
//   node scripts/build.mjs --if-missing  only when an artifact is missing or
//                                        older than the Rust sources (prepack)
//
// Installs the npm dev dependencies first when they are missing (a fresh
// clone). Cargo's target directory: $CARGO_TARGET_DIR, else ../target-node.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const workspace = resolve(root, '..')
const artifacts = ['canhazdb.linux-x64-gnu.node', 'index.d.ts']
const ifMissing = process.argv.includes('--if-missing')

function run (command, args, options = {}) {
  console.error(`> ${command} ${args.join(' ')}`)
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', ...options })
  if (result.error) throw result.error
  if (result.status !== 0) process.exit(result.status ?? 1)
}

/** The newest modification time among the sources the addon is built from. */
function newestSource () {
  let newest = 0
  const visit = (path) => {
    if (!existsSync(path)) return
    const stat = statSync(path)
    if (stat.isDirectory()) {
      for (const entry of readdirSync(path)) visit(join(path, entry))
    } else if (/\.(rs|toml)$/.test(path) || path.endsWith('dts-header.d.ts') || path.endsWith('Cargo.lock')) {
      newest = Math.max(newest, stat.mtimeMs)
    }
  }
  for (const path of ['Cargo.toml', 'Cargo.lock', 'core/src', 'core/Cargo.toml', 'native/src', 'native/Cargo.toml']) {
    visit(join(workspace, path))
  }
  for (const path of ['src', 'Cargo.toml', 'build.rs', 'dts-header.d.ts']) visit(join(root, path))
  return newest
}

function upToDate () {
  const paths = artifacts.map((name) => join(root, name))
  if (!paths.every((path) => existsSync(path))) return false
  const oldest = Math.min(...paths.map((path) => statSync(path).mtimeMs))
  return oldest >= newestSource()
}

if (ifMissing && upToDate()) {
  console.error('canhazdb: the addon and index.d.ts are up to date; not rebuilding')
  process.exit(0)
}

if (!existsSync(join(root, 'node_modules', '@napi-rs', 'cli'))) {
  run('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'])
}

const targetDir = process.env.CARGO_TARGET_DIR || join(workspace, 'target-node')
run(process.execPath, [
  join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js'),
  'build',
  '--platform',
  '--release',
  '--strip',
  '--no-js',
  '--dts', 'index.d.ts',
  '--target-dir', targetDir,
  '--manifest-path', join(root, 'Cargo.toml'),
  '--package-json-path', join(root, 'package.json')
])

for (const name of artifacts) {
  if (!existsSync(join(root, name))) {
    console.error(`canhazdb: the build did not produce ${name}`)
    process.exit(1)
  }
}
