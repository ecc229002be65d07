// Lifecycle: closing keeps data, in-flight requests settle, the process
// exits by itself after close(), and a process that never closes neither
// hangs (once unref'd) nor crashes on exit.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'

import { canhazdb, packageDir, tempDir, removeDir, startServer } from './helpers.mjs'

const fixtures = join(packageDir, 'test', 'fixtures')

/** Runs a fixture script in its own Node.js process, bounded by `timeout`. */
function runFixture (name, args, { timeout = 30_000, node = [] } = {}) {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const child = spawn(process.execPath, [...node, join(fixtures, name), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk) => { stdout += chunk })
    child.stderr.on('data', (chunk) => { stderr += chunk })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${name} did not exit within ${timeout} ms\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, timeout)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started })
    })
  })
}

describe('lifecycle', { timeout: 120_000 }, () => {
  it('keeps what was written across close() and a restart on the same data directory', async () => {
    const dataDir = tempDir()
    // A restarted node keeps its name: the data directory remembers it.
    const nodeName = 'durable'
    try {
      let started = await startServer({ dataDir, nodeName })
      let client = await canhazdb.createClient({ port: started.server.port })
      const stored = await Promise.all(Array.from({ length: 50 }, (_, n) => client.post('durable', { n })))
      await client.close()
      await started.stop()

      started = await startServer({ dataDir, nodeName })
      client = await canhazdb.createClient({ port: started.server.port })
      assert.equal(await client.count('durable'), 50)
      const again = await client.get('durable', { order: 'asc(n)' })
      assert.deepEqual(again.map((doc) => doc.id), stored.map((doc) => doc.id))
      await client.close()
      await started.stop()
    } finally {
      removeDir(dataDir)
    }
  })

  it('settles every request in flight when the server closes', async () => {
    const dataDir = tempDir()
    const nodeName = 'inflight'
    try {
      let started = await startServer({ dataDir, nodeName })
      let client = await canhazdb.createClient({ port: started.server.port })
      const writes = Array.from({ length: 300 }, (_, n) => client.post('inflight', { n }))
      const settled = Promise.allSettled(writes)
      await writes[0]
      await started.server.close()
      const outcomes = await settled
      const stored = outcomes.filter((outcome) => outcome.status === 'fulfilled').map((outcome) => outcome.value.id)
      for (const outcome of outcomes) {
        if (outcome.status === 'rejected') assert.ok(outcome.reason instanceof Error)
      }
      assert.ok(stored.length >= 1)
      await client.close()
      await started.server.close() // closing again resolves too

      // Every acknowledged write survived.
      started = await startServer({ dataDir, nodeName })
      client = await canhazdb.createClient({ port: started.server.port })
      const ids = new Set((await client.get('inflight')).map((doc) => doc.id))
      for (const id of stored) assert.ok(ids.has(id), `acknowledged ${id} is stored`)
      await client.close()
      await started.stop()
    } finally {
      removeDir(dataDir)
    }
  })

  it('lets a client see the server go away', async () => {
    const started = await startServer()
    const client = await canhazdb.createClient({ port: started.server.port })
    await started.stop()
    const error = await client.count('x').catch((error) => error)
    assert.ok(error instanceof Error)
    assert.equal(client.closed, true)
    await client.close()
  })

  it('exits by itself once everything is closed (CommonJS)', async () => {
    const dataDir = tempDir()
    try {
      const result = await runFixture('exits-after-close.cjs', [dataDir], { timeout: 30_000 })
      assert.equal(result.signal, null, result.stderr)
      assert.equal(result.code, 0, result.stderr)
      assert.match(result.stdout, /closed after 2 notifications/)
    } finally {
      removeDir(dataDir)
    }
  })

  it('does not crash when the process exits with everything still open', async () => {
    for (let round = 0; round < 3; round++) {
      const dataDir = tempDir()
      try {
        const result = await runFixture('forgets-to-close.mjs', [dataDir])
        assert.equal(result.signal, null, `round ${round}: ${result.stderr}`)
        assert.equal(result.code, 0, `round ${round}: ${result.stderr}`)
        assert.match(result.stdout, /exiting with \d+ notifications heard/)
        assert.doesNotMatch(result.stderr, /panic|fatal|Segmentation|Abort/i)
      } finally {
        removeDir(dataDir)
      }
    }
  })

  it('ends a process whose server and client are unref()ed, flushing storage (ESM)', async () => {
    const dataDir = tempDir()
    try {
      const result = await runFixture('unref.mjs', [dataDir])
      assert.equal(result.signal, null, result.stderr)
      assert.equal(result.code, 0, result.stderr)
      assert.match(result.stdout, /unrefed/)
      const started = await startServer({ dataDir, nodeName: 'unref' })
      const client = await canhazdb.createClient({ port: started.server.port })
      assert.equal(await client.count('kept'), 20)
      await client.close()
      await started.stop({ keepData: true })
    } finally {
      removeDir(dataDir)
    }
  })

  it('keeps delivering to a client that was garbage-collected while open', async () => {
    const dataDir = tempDir()
    try {
      const result = await runFixture('gc.mjs', [dataDir], { node: ['--expose-gc'] })
      assert.equal(result.signal, null, result.stderr)
      assert.equal(result.code, 0, result.stderr)
      assert.deepEqual(JSON.parse(result.stdout), { collected: true, heard: 1 })
    } finally {
      removeDir(dataDir)
    }
  })

  it('reports an exception thrown by a handler like any uncaught exception', async () => {
    const dataDir = tempDir()
    try {
      const result = await runFixture('throws.mjs', [dataDir])
      assert.equal(result.signal, null, result.stderr)
      assert.equal(result.code, 1)
      assert.match(result.stderr, /handler failed for boom/)
    } finally {
      removeDir(dataDir)
    }
  })
})
