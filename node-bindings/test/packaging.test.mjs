// Packaging: `npm pack` in node-bindings/ of a fresh clone builds what is
// missing (the prepack script: npm dev dependencies, the release addon and
// index.d.ts) and produces a complete tarball; installed into an empty
// project, the package starts a server and a client, from CommonJS and ESM.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'

import { packageDir, tempDir, removeDir } from './helpers.mjs'

const repository = resolve(packageDir, '..')

/** Runs a command, failing the test with its output if it fails. */
function run (command, args, options) {
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options })
  assert.equal(result.status, 0, `${command} ${args.join(' ')} failed (${result.status ?? result.signal}):\n${result.stdout}\n${result.stderr}`)
  return result
}

/** What a fresh clone holds: the files git tracks or would track. */
function cloneLike (destination) {
  const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], {
    cwd: repository, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024
  }).split('\0').filter(Boolean)
  assert.ok(files.includes('node-bindings/package.json'))
  for (const file of files) {
    const source = join(repository, file)
    if (!existsSync(source)) continue // deleted in the work tree
    mkdirSync(dirname(join(destination, file)), { recursive: true })
    cpSync(source, join(destination, file))
  }
}

const CONSUMER_CJS = `'use strict'
const { mkdtempSync, rmSync } = require('node:fs')
const { tmpdir } = require('node:os')
const { join } = require('node:path')
const { createServer, createClient, STATUS_LOCKED } = require('canhazdb')

async function main () {
  const dataDir = mkdtempSync(join(tmpdir(), 'canhazdb-consumer-'))
  const server = await createServer({ host: '127.0.0.1', port: 0, dataDir, nodeName: 'consumer' })
  const client = await createClient({ host: '127.0.0.1', port: server.port })
  const heard = []
  await client.on('^POST:/packaged/', (path) => heard.push(path))
  const stored = await client.post('packaged', { from: 'tarball' })
  const found = await client.getOne('packaged', { query: { from: 'tarball' } })
  while (heard.length === 0) await new Promise((resolve) => setTimeout(resolve, 10))
  await client.close()
  await server.close()
  rmSync(dataDir, { recursive: true, force: true })
  console.log(JSON.stringify({ cjs: found.id === stored.id, heard: heard[0] === 'POST:/packaged/' + stored.id, STATUS_LOCKED }))
}

main().catch((error) => { console.error(error); process.exit(1) })
`

const CONSUMER_ESM = `import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import canhazdb, { createServer, createClient } from 'canhazdb'

const dataDir = mkdtempSync(join(tmpdir(), 'canhazdb-consumer-'))
const server = await createServer({ port: 0, dataDir, nodeName: 'consumer-esm' })
const client = await createClient({ port: server.port })
await client.post('packaged', { n: 1 })
const count = await client.count('packaged')
await client.close()
await server.close()
rmSync(dataDir, { recursive: true, force: true })
console.log(JSON.stringify({ esm: count === 1, default: canhazdb.createServer === createServer }))
`

describe('npm pack from a fresh clone', { timeout: 1_800_000 }, () => {
  let scratch
  let tarball

  before(() => {
    scratch = tempDir('canhazdb-pack-')
  })

  after(() => {
    if (scratch) removeDir(scratch)
  })

  it('builds what is missing and packs a complete tarball', () => {
    const clone = join(scratch, 'clone')
    cloneLike(clone)
    const bindings = join(clone, 'node-bindings')
    for (const generated of ['node_modules', 'canhazdb.linux-x64-gnu.node', 'index.d.ts']) {
      assert.equal(existsSync(join(bindings, generated)), false, `a fresh clone has no ${generated}`)
    }
    const packed = join(scratch, 'packed')
    mkdirSync(packed)
    run('npm', ['pack', '--pack-destination', packed, '--loglevel', 'warn'], {
      cwd: bindings,
      env: {
        ...process.env,
        // Share the compiled dependencies of the main build.
        CARGO_TARGET_DIR: process.env.CARGO_TARGET_DIR || join(repository, 'target-node')
      }
    })
    const tarballs = readdirSync(packed).filter((name) => name.endsWith('.tgz'))
    assert.deepEqual(tarballs, ['canhazdb-0.1.0.tgz'])
    tarball = join(packed, tarballs[0])
    const listing = run('tar', ['tzf', tarball]).stdout.split('\n').filter(Boolean).sort()
    assert.deepEqual(listing, [
      'package/README.md',
      'package/canhazdb.linux-x64-gnu.node',
      'package/index.d.ts',
      'package/index.js',
      'package/index.mjs',
      'package/package.json'
    ])
  })

  it('installs into an empty project and runs there (CommonJS and ESM)', () => {
    assert.ok(tarball, 'the tarball was packed')
    const project = join(scratch, 'consumer')
    mkdirSync(project)
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true }))
    run('npm', ['install', '--no-audit', '--no-fund', '--loglevel', 'warn', tarball], { cwd: project })
    writeFileSync(join(project, 'check.cjs'), CONSUMER_CJS)
    writeFileSync(join(project, 'check.mjs'), CONSUMER_ESM)

    const cjs = run(process.execPath, ['check.cjs'], { cwd: project, timeout: 60_000 })
    assert.deepEqual(JSON.parse(cjs.stdout), { cjs: true, heard: true, STATUS_LOCKED: 127 })
    const esm = run(process.execPath, ['check.mjs'], { cwd: project, timeout: 60_000 })
    assert.deepEqual(JSON.parse(esm.stdout), { esm: true, default: true })
  })
})
