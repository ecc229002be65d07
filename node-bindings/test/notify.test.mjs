// Notifications: all four methods, several handlers, off(), and nothing
// after close().
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'

import { canhazdb, startServer, waitFor, sleep } from './helpers.mjs'

/** A handler that records its calls. */
function recorder () {
  const calls = []
  const handler = (...args) => calls.push(args)
  return { calls, handler }
}

describe('notify', { timeout: 60_000 }, () => {
  let started
  let listener
  let writer

  before(async () => {
    started = await startServer()
    listener = await canhazdb.createClient({ port: started.server.port })
    writer = await canhazdb.createClient({ port: started.server.port })
  })

  after(async () => {
    await listener?.close()
    await writer?.close()
    await started?.stop()
  })

  it('delivers POST, PUT, PATCH and DELETE with the path, ids and pattern', async () => {
    const { calls, handler } = recorder()
    const pattern = '^[A-Z]+:/notes/'
    await listener.on(pattern, handler)
    const doc = await writer.post('notes', { text: 'hi' })
    await writer.put('notes', { text: 'replaced' }, { query: { id: doc.id } })
    await writer.patch('notes', { extra: 1 }, { query: { id: doc.id } })
    await writer.delete('notes', { query: { id: doc.id } })
    await waitFor(() => calls.length >= 4, { what: 'four notifications' })
    assert.deepEqual(calls, ['POST', 'PUT', 'PATCH', 'DELETE'].map((method) => [
      `${method}:/notes/${doc.id}`, 'notes', doc.id, pattern
    ]))
    await listener.off(pattern, handler)
  })

  it('notifies once per changed document and only for matching paths', async () => {
    const { calls, handler } = recorder()
    await listener.on('^PATCH:/many/', handler)
    const docs = await Promise.all([1, 2, 3].map((n) => writer.post('many', { n })))
    await writer.post('other', { n: 0 })
    await writer.patch('many', { touched: true })
    await waitFor(() => calls.length >= 3, { what: 'three PATCH notifications' })
    await sleep(100)
    assert.equal(calls.length, 3)
    assert.deepEqual(calls.map(([, , id]) => id).sort(), docs.map((doc) => doc.id).sort())
    assert.ok(calls.every(([path]) => path.startsWith('PATCH:/many/')))
    await listener.off('^PATCH:/many/')
  })

  it("also tells the writer about its own changes", async () => {
    const { calls, handler } = recorder()
    await writer.on('^POST:/mine/', handler)
    const doc = await writer.post('mine', { n: 1 })
    await waitFor(() => calls.length === 1, { what: 'own notification' })
    assert.equal(calls[0][0], `POST:/mine/${doc.id}`)
    await writer.off('^POST:/mine/', handler)
  })

  it('calls every handler of a pattern; off(pattern, handler) removes one, off(pattern) all', async () => {
    const first = recorder()
    const second = recorder()
    const pattern = 'POST:/shared/'
    await listener.on(pattern, first.handler)
    await listener.on(pattern, second.handler)
    await writer.post('shared', { n: 1 })
    await waitFor(() => first.calls.length === 1 && second.calls.length === 1, { what: 'both handlers' })

    await listener.off(pattern, first.handler)
    await writer.post('shared', { n: 2 })
    await waitFor(() => second.calls.length === 2, { what: 'the remaining handler' })
    await sleep(100)
    assert.equal(first.calls.length, 1, 'the removed handler is not called')

    await listener.off(pattern)
    await writer.post('shared', { n: 3 })
    await sleep(200)
    assert.equal(second.calls.length, 2, 'off(pattern) removed every handler')
  })

  it('does not call a handler once off() was called, even for queued notifications', async () => {
    const { calls, handler } = recorder()
    await listener.on('^POST:/burst/', handler)
    const writes = Promise.all(Array.from({ length: 100 }, (_, n) => writer.post('burst', { n })))
    await waitFor(() => calls.length > 0, { what: 'the first notification' })
    const off = listener.off('^POST:/burst/', handler)
    const seen = calls.length
    await off
    await writes
    await sleep(200)
    assert.equal(calls.length, seen)
  })

  it('keeps handlers of different clients apart and stops at close()', async () => {
    const other = await canhazdb.createClient({ port: started.server.port })
    const mine = recorder()
    const theirs = recorder()
    await listener.on('^DELETE:/', mine.handler)
    await other.on('^DELETE:/', theirs.handler)
    await writer.post('closing', { n: 1 })
    await writer.delete('closing')
    await waitFor(() => mine.calls.length === 1 && theirs.calls.length === 1, { what: 'both clients' })
    await other.close()
    await writer.post('closing', { n: 2 })
    await writer.delete('closing')
    await waitFor(() => mine.calls.length === 2, { what: 'the open client' })
    await sleep(100)
    assert.equal(theirs.calls.length, 1, 'a closed client calls no handler')
    await listener.off('^DELETE:/')
  })
})
