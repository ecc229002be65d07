// Interoperability: tcpocket, the framing library of the original v8
// ecosystem (from npm, used as-is), talks to an embedded server with the
// frames of shared/spec/protocol.md and gets the spec's answers.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'

import { canhazdb, startServer, waitFor } from './helpers.mjs'

const require = createRequire(import.meta.url)
const tcpocket = require('tcpocket')

// The spec's numbers.
const c = {
  SYSTEM: '3',
  COLLECTION_ID: '10',
  DATA: '20',
  INFO: 30,
  COUNT: 31,
  GET: 32,
  POST: 33,
  PUT: 34,
  PATCH: 35,
  DELETE: 36,
  QUERY: '40',
  FIELDS: '41',
  LIMIT: '42',
  ORDER: '43',
  NOTIFY: 50,
  NOTIFY_ON: 51,
  NOTIFY_OFF: 52,
  NOTIFY_PATH: '53',
  LOCK: 60,
  UNLOCK: 61,
  LOCK_ID: '62',
  LOCK_STRATEGY: '63',
  LOCK_STRATEGY_FAIL: 64,
  LOCK_KEY: '66',
  ERROR: '100',
  READY: 160,
  STATUS_OK: 120,
  STATUS_BAD_REQUEST: 121,
  STATUS_NOT_FOUND: 122,
  STATUS_CREATED: 123,
  STATUS_LOCKED: 127
}

describe('a tcpocket (v8) client against an embedded server', { timeout: 60_000 }, () => {
  let started
  let connection
  const pushed = []

  before(async () => {
    started = await startServer()
    connection = tcpocket.createClient({ host: '127.0.0.1', port: started.server.port })
    connection.on('message', (message) => pushed.push(message))
    await connection.waitUntilConnected()
  })

  after(async () => {
    await connection?.close()
    await started?.stop()
  })

  it('receives READY (command 160, no payload) on connect', async () => {
    await waitFor(() => pushed.find((message) => message.command === c.READY), { what: 'READY' })
    const ready = pushed.find((message) => message.command === c.READY)
    assert.equal(ready.data, undefined)
  })

  it('answers INFO with SYSTEM', async () => {
    const reply = await connection.send(c.INFO, { [c.SYSTEM]: true })
    assert.equal(reply.command, c.STATUS_OK)
    const info = reply.json()[c.DATA]
    assert.equal(info.nodeName, started.server.nodeName)
    assert.equal(info.status, 'healthy')
    assert.ok(Array.isArray(info.nodes))
  })

  it('stores, reads, counts, changes and deletes documents', async () => {
    const posted = await connection.send(c.POST, { [c.COLLECTION_ID]: 'tests', [c.DATA]: { name: 'kitty', lives: 9 } })
    assert.equal(posted.command, c.STATUS_CREATED)
    const stored = posted.json()[c.DATA]
    assert.equal(stored.name, 'kitty')
    assert.equal(typeof stored.id, 'string')

    const second = await connection.send(c.POST, { [c.COLLECTION_ID]: 'tests', [c.DATA]: { name: 'doggo', lives: 1 } })
    assert.equal(second.command, c.STATUS_CREATED)

    const got = await connection.send(c.GET, {
      [c.COLLECTION_ID]: 'tests',
      [c.QUERY]: { lives: { $gt: 0 } },
      [c.FIELDS]: ['name'],
      [c.ORDER]: 'desc(lives)',
      [c.LIMIT]: 1
    })
    assert.equal(got.command, c.STATUS_OK)
    assert.deepEqual(got.json()[c.DATA], [{ id: stored.id, name: 'kitty' }])

    const counted = await connection.send(c.COUNT, { [c.COLLECTION_ID]: 'tests', [c.QUERY]: { name: 'doggo' } })
    assert.equal(counted.command, c.STATUS_OK)
    assert.equal(counted.json()[c.DATA], 1)

    const patched = await connection.send(c.PATCH, {
      [c.COLLECTION_ID]: 'tests', [c.QUERY]: { id: stored.id }, [c.DATA]: { lives: 8 }
    })
    assert.equal(patched.command, c.STATUS_OK)
    assert.deepEqual(patched.json()[c.DATA], [stored.id])

    const put = await connection.send(c.PUT, {
      [c.COLLECTION_ID]: 'tests', [c.QUERY]: { id: stored.id }, [c.DATA]: { name: 'cat' }
    })
    assert.equal(put.command, c.STATUS_OK)
    assert.deepEqual(put.json()[c.DATA], [stored.id])

    // What tcpocket wrote, the native client reads.
    const client = await canhazdb.createClient({ port: started.server.port })
    assert.deepEqual(await client.getOne('tests', { query: { id: stored.id } }), { id: stored.id, name: 'cat' })
    await client.close()

    const deleted = await connection.send(c.DELETE, { [c.COLLECTION_ID]: 'tests' })
    assert.equal(deleted.command, c.STATUS_OK)
    assert.equal(deleted.json()[c.DATA].length, 2)
  })

  it('answers bad requests with STATUS_BAD_REQUEST and a string ERROR, unknown commands with NOT_FOUND', async () => {
    const bad = await connection.send(c.POST, { [c.COLLECTION_ID]: 'no spaces allowed', [c.DATA]: {} })
    assert.equal(bad.command, c.STATUS_BAD_REQUEST)
    assert.equal(typeof bad.json()[c.ERROR], 'string')

    const badQuery = await connection.send(c.GET, { [c.COLLECTION_ID]: 'tests', [c.QUERY]: { a: { $nope: 1 } } })
    assert.equal(badQuery.command, c.STATUS_BAD_REQUEST)
    assert.match(badQuery.json()[c.ERROR], /\$nope/)

    const notJson = await connection.send(c.GET, Buffer.from('{not json'))
    assert.equal(notJson.command, c.STATUS_BAD_REQUEST)

    const unknown = await connection.send(99, { [c.COLLECTION_ID]: 'tests' })
    assert.equal(unknown.command, c.STATUS_NOT_FOUND)
    assert.equal(unknown.data, undefined)

    // The connection stays usable.
    const counted = await connection.send(c.COUNT, { [c.COLLECTION_ID]: 'tests' })
    assert.equal(counted.command, c.STATUS_OK)
  })

  it('locks and unlocks, and refuses a foreign write with LOCK_STRATEGY_FAIL', async () => {
    const locked = await connection.send(c.LOCK, { [c.LOCK_KEY]: 'guarded' })
    assert.equal(locked.command, c.STATUS_OK)
    const lockId = locked.json()[c.LOCK_ID]
    assert.equal(typeof lockId, 'string')

    const client = await canhazdb.createClient({ port: started.server.port })
    const refused = await client.post('guarded', { a: 1 }, { lockStrategy: 'fail' }).catch((error) => error)
    assert.equal(refused.status, c.STATUS_LOCKED)

    const own = await connection.send(c.POST, {
      [c.COLLECTION_ID]: 'guarded', [c.DATA]: { a: 2 }, [c.LOCK_ID]: lockId, [c.LOCK_STRATEGY]: c.LOCK_STRATEGY_FAIL
    })
    assert.equal(own.command, c.STATUS_CREATED)

    const unlocked = await connection.send(c.UNLOCK, { [c.LOCK_ID]: lockId })
    assert.equal(unlocked.command, c.STATUS_OK)
    assert.equal(unlocked.json()[c.LOCK_ID], lockId)

    const again = await connection.send(c.UNLOCK, { [c.LOCK_ID]: lockId })
    assert.equal(again.command, c.STATUS_NOT_FOUND)

    await client.post('guarded', { a: 3 }, { lockStrategy: 'fail' })
    await client.close()
  })

  it('pushes NOTIFY frames (id 2) for changes made by the native client', async () => {
    const on = await connection.send(c.NOTIFY_ON, { [c.NOTIFY_PATH]: '^POST:/watched/' })
    assert.equal(on.command, c.STATUS_OK)

    const client = await canhazdb.createClient({ port: started.server.port })
    const doc = await client.post('watched', { a: 1 })
    await client.post('unwatched', { a: 1 })
    await waitFor(() => pushed.find((message) => message.command === c.NOTIFY), { what: 'NOTIFY' })
    const notifications = pushed.filter((message) => message.command === c.NOTIFY)
    assert.equal(notifications.length, 1)
    assert.deepEqual(notifications[0].json(), { [c.DATA]: `POST:/watched/${doc.id}` })

    const off = await connection.send(c.NOTIFY_OFF, { [c.NOTIFY_PATH]: '^POST:/watched/' })
    assert.equal(off.command, c.STATUS_OK)
    await client.post('watched', { a: 2 })
    await client.close()

    const invalid = await connection.send(c.NOTIFY_ON, { [c.NOTIFY_PATH]: '(' })
    assert.equal(invalid.command, c.STATUS_BAD_REQUEST)
    assert.equal(pushed.filter((message) => message.command === c.NOTIFY).length, 1)
  })
})
