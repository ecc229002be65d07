// Locks: both strategies, by name and by number, lock ids, queueing and
// release on close.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'

import { canhazdb, startServer, rejection, sleep } from './helpers.mjs'

/** Whether `promise` is still pending after `ms`. */
async function pendingAfter (promise, ms) {
  const marker = Symbol('pending')
  const outcome = await Promise.race([promise.then(() => 'settled', () => 'settled'), sleep(ms).then(() => marker)])
  return outcome === marker
}

describe('locks', { timeout: 60_000 }, () => {
  let started
  let holder
  let other

  before(async () => {
    started = await startServer()
    holder = await canhazdb.createClient({ port: started.server.port })
    other = await canhazdb.createClient({ port: started.server.port })
  })

  after(async () => {
    await holder?.close()
    await other?.close()
    await started?.stop()
  })

  it('exports the strategy numbers', () => {
    assert.equal(canhazdb.LOCK_STRATEGY_FAIL, 64)
    assert.equal(canhazdb.LOCK_STRATEGY_WAIT, 65)
    assert.equal(canhazdb.STATUS_LOCKED, 127)
  })

  it("fails writes at once with lockStrategy 'fail' (and 64)", async () => {
    const doc = await other.post('failing', { n: 1 })
    const lockId = await holder.lock('failing')
    assert.equal(typeof lockId, 'string')
    try {
      for (const lockStrategy of ['fail', canhazdb.LOCK_STRATEGY_FAIL]) {
        for (const write of [
          () => other.post('failing', { n: 2 }, { lockStrategy }),
          () => other.put('failing', { n: 3 }, { query: { id: doc.id }, lockStrategy }),
          () => other.patch('failing', { n: 4 }, { lockStrategy }),
          () => other.delete('failing', { lockStrategy })
        ]) {
          const error = await rejection(write())
          assert.equal(error.status, canhazdb.STATUS_LOCKED)
          assert.equal(error.code, 'STATUS_LOCKED')
        }
      }
      // Reads are never blocked.
      assert.equal(await other.count('failing'), 1)
      // The holder writes with its lock id.
      await holder.post('failing', { n: 5 }, { lockId, lockStrategy: 'fail' })
      assert.deepEqual(await holder.patch('failing', { seen: true }, { query: { id: doc.id }, lockId }), [doc.id])
    } finally {
      assert.equal(await holder.unlock(lockId), lockId)
    }
    // Unlocked: the same write goes through.
    await other.post('failing', { n: 6 }, { lockStrategy: 'fail' })
    assert.equal(await other.count('failing'), 3)
  })

  it("makes writes wait with lockStrategy 'wait' (and 65, and by default)", async () => {
    for (const options of [{ lockStrategy: 'wait' }, { lockStrategy: canhazdb.LOCK_STRATEGY_WAIT }, {}]) {
      const lockId = await holder.lock('waiting')
      const write = other.post('waiting', { options: JSON.stringify(options) }, options)
      assert.equal(await pendingAfter(write, 300), true, `write with ${JSON.stringify(options)} waits`)
      await holder.unlock(lockId)
      const stored = await write
      assert.equal(stored.options, JSON.stringify(options))
    }
    assert.equal(await other.count('waiting'), 3)
  })

  it('grants a lock to one holder at a time', async () => {
    const first = await holder.lock('queue')
    const second = other.lock('queue')
    assert.equal(await pendingAfter(second, 300), true)
    await holder.unlock(first)
    const secondId = await second
    assert.notEqual(secondId, first)
    await other.unlock(secondId)
  })

  it('releases the locks of a client that closes', async () => {
    const leaving = await canhazdb.createClient({ port: started.server.port })
    await leaving.lock('abandoned')
    const write = other.post('abandoned', { n: 1 })
    assert.equal(await pendingAfter(write, 200), true)
    await leaving.close()
    await write
    await other.post('abandoned', { n: 2 }, { lockStrategy: 'fail' })
  })

  it('refuses a lock id that is not held', async () => {
    const error = await rejection(other.unlock('not-a-lock'))
    assert.equal(error.status, canhazdb.STATUS_NOT_FOUND)
  })
})
