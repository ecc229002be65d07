// Shared helpers of the tests: temporary data directories, servers on free
// loopback ports, and waiting with a bound.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRequire } from 'node:module'

export const packageDir = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
/** The package under test, as CommonJS sees it. */
export const canhazdb = require(packageDir)

/** A fresh temporary directory, removed by `cleanup()`. */
export function tempDir (prefix = 'canhazdb-node-') {
  return mkdtempSync(join(tmpdir(), prefix))
}

export function removeDir (dir) {
  rmSync(dir, { recursive: true, force: true })
}

let serial = 0

/**
 * Starts an embedded server on a free loopback port with a temporary data
 * directory. `stop()` closes it and removes the directory.
 */
export async function startServer (options = {}) {
  const dataDir = options.dataDir ?? tempDir()
  serial += 1
  let server
  try {
    server = await canhazdb.createServer({
      host: '127.0.0.1',
      port: 0,
      nodeName: `test-${process.pid}-${serial}`,
      dataDir,
      ...options
    })
  } catch (error) {
    if (!options.dataDir) removeDir(dataDir)
    throw error
  }
  return {
    server,
    dataDir,
    async stop ({ keepData = false } = {}) {
      await server.close()
      if (!keepData && !options.dataDir) removeDir(dataDir)
    }
  }
}

/** A server and a client connected to it. */
export async function startPair (options = {}) {
  const started = await startServer(options)
  const client = await canhazdb.createClient({ host: '127.0.0.1', port: started.server.port })
  return {
    ...started,
    client,
    async stop () {
      await client.close()
      await started.stop()
    }
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `check` until it returns a truthy value, for at most `timeout` ms. */
export async function waitFor (check, { timeout = 5000, interval = 10, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`)
    await sleep(interval)
  }
}

/** Resolves with the rejection of `promise` (and fails if it resolves). */
export async function rejection (promise) {
  try {
    const value = await promise
    throw Object.assign(new Error(`expected a rejection, got ${JSON.stringify(value)}`), { unexpected: true })
  } catch (error) {
    if (error.unexpected) throw error
    return error
  }
}
