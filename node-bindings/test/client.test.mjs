// An embedded server and the native client: documents, queries, options and
// errors.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'

import { canhazdb, startPair, startServer, rejection } from './helpers.mjs'

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

describe('embedded server and client', { timeout: 60_000 }, () => {
  let pair
  let client

  before(async () => {
    pair = await startPair()
    client = pair.client
  })

  after(async () => {
    await pair?.stop()
  })

  it('exposes the server address and the client connection', () => {
    assert.equal(typeof pair.server.port, 'number')
    assert.ok(pair.server.port > 0)
    assert.equal(pair.server.host, '127.0.0.1')
    assert.match(pair.server.nodeName, /^test-/)
    assert.equal(pair.server.dataDir, pair.dataDir)
    assert.equal(pair.server.wsPort, null)
    assert.equal(client.port, pair.server.port)
    assert.equal(client.host, '127.0.0.1')
    assert.equal(client.closed, false)
  })

  it('posts a document and assigns a uuid', async () => {
    const stored = await client.post('people', { name: 'Ada', born: 1815 })
    assert.match(stored.id, UUID_V4)
    assert.deepEqual(stored, { id: stored.id, name: 'Ada', born: 1815 })
    const found = await client.getOne('people', { query: { id: stored.id } })
    assert.deepEqual(found, stored)
  })

  it('keeps an id given by the caller, and refuses it twice', async () => {
    const stored = await client.post('given', { id: 'doc-1', a: 1 })
    assert.equal(stored.id, 'doc-1')
    const error = await rejection(client.post('given', { id: 'doc-1', a: 2 }))
    assert.ok(error instanceof Error)
    assert.equal(error.status, canhazdb.STATUS_BAD_REQUEST)
    assert.equal(error.code, 'STATUS_BAD_REQUEST')
    assert.match(error.message, /doc-1|exists/)
  })

  it('round-trips documents as plain JavaScript values', async () => {
    const document = {
      text: 'héllo \u0001 "quoted" \n',
      integer: 42,
      negative: -7,
      float: 1.5,
      big: 2 ** 40,
      yes: true,
      no: false,
      nothing: null,
      list: [1, 'two', { three: 3 }, [4]],
      nested: { deeper: { deepest: 'x' } }
    }
    const stored = await client.post('shapes', document)
    assert.deepEqual(stored, { ...document, id: stored.id })
    const [again] = await client.get('shapes', { query: { id: stored.id } })
    assert.deepEqual(again, stored)
    assert.equal(Object.getPrototypeOf(again), Object.prototype)
    assert.ok(Array.isArray(again.list))
  })

  it('serialises like JSON.stringify: undefined is left out, a Date becomes a string', async () => {
    const when = new Date('2020-01-02T03:04:05.000Z')
    const stored = await client.post('json', {
      gone: undefined,
      fn () {},
      when,
      list: [undefined, NaN, Infinity],
      custom: { toJSON: () => 'custom' }
    })
    assert.deepEqual(stored, { id: stored.id, when: when.toISOString(), list: [null, null, null], custom: 'custom' })
  })

  it('refuses values JSON cannot hold', async () => {
    const cyclic = { a: 1 }
    cyclic.self = cyclic
    let error = await rejection(client.post('json', cyclic))
    assert.equal(error.status, 121)
    assert.match(error.message, /nested|cyclic/)
    error = await rejection(client.post('json', { n: 10n }))
    assert.equal(error.status, 121)
    assert.match(error.message, /BigInt/)
  })

  describe('queries and read options', () => {
    const names = ['a', 'b', 'c', 'd', 'e']
    before(async () => {
      for (const [index, name] of names.entries()) {
        await client.post('items', {
          name,
          rank: index + 1,
          group: index % 2 === 0 ? 'odd' : 'even',
          meta: { size: 10 * (index + 1) },
          ...(index === 4 ? {} : { tag: `t${index}` })
        })
      }
    })

    it('gets every document', async () => {
      const all = await client.get('items')
      assert.equal(all.length, 5)
      assert.deepEqual(all.map((item) => item.name).sort(), names)
    })

    it('matches equality, operators, dotted keys and $and/$or', async () => {
      const byName = (documents) => documents.map((item) => item.name).sort()
      assert.deepEqual(byName(await client.get('items', { query: { group: 'odd' } })), ['a', 'c', 'e'])
      assert.deepEqual(byName(await client.get('items', { query: { rank: { $gt: 3 } } })), ['d', 'e'])
      assert.deepEqual(byName(await client.get('items', { query: { rank: { $gte: 2, $lt: 4 } } })), ['b', 'c'])
      assert.deepEqual(byName(await client.get('items', { query: { name: { $in: ['a', 'e', 'z'] } } })), ['a', 'e'])
      assert.deepEqual(byName(await client.get('items', { query: { name: { $nin: ['a', 'b'] } } })), ['c', 'd', 'e'])
      assert.deepEqual(byName(await client.get('items', { query: { name: { $ne: 'a' }, group: 'odd' } })), ['c', 'e'])
      assert.deepEqual(byName(await client.get('items', { query: { 'meta.size': 30 } })), ['c'])
      assert.deepEqual(byName(await client.get('items', { query: { tag: { $exists: false } } })), ['e'])
      assert.deepEqual(
        byName(await client.get('items', { query: { $or: [{ name: 'a' }, { rank: 5 }] } })),
        ['a', 'e']
      )
      assert.deepEqual(
        byName(await client.get('items', { query: { $and: [{ group: 'even' }, { rank: { $lt: 3 } }] } })),
        ['b']
      )
      assert.deepEqual(await client.get('items', { query: { name: 'nobody' } }), [])
    })

    it('orders, limits and picks fields', async () => {
      const descending = await client.get('items', { order: 'desc(rank)' })
      assert.deepEqual(descending.map((item) => item.rank), [5, 4, 3, 2, 1])
      const ascending = await client.get('items', { order: ['asc(group)', 'desc(rank)'] })
      assert.deepEqual(ascending.map((item) => item.name), ['d', 'b', 'e', 'c', 'a'])
      const limited = await client.get('items', { order: 'asc(rank)', limit: 2 })
      assert.deepEqual(limited.map((item) => item.name), ['a', 'b'])
      const fields = await client.get('items', { query: { name: 'c' }, fields: ['name', 'meta.size'] })
      assert.equal(fields.length, 1)
      assert.deepEqual(Object.keys(fields[0]).sort(), ['id', 'meta', 'name'])
      assert.deepEqual(fields[0].meta, { size: 30 })
    })

    it('gets one document, or null', async () => {
      const first = await client.getOne('items', { order: 'desc(rank)' })
      assert.equal(first.name, 'e')
      const picked = await client.getOne('items', { query: { name: 'b' }, fields: ['rank'] })
      assert.deepEqual(picked, { id: picked.id, rank: 2 })
      assert.equal(await client.getOne('items', { query: { name: 'nobody' } }), null)
    })

    it('counts, with and without a query', async () => {
      assert.equal(await client.count('items'), 5)
      assert.equal(await client.count('items', { query: { group: 'even' } }), 2)
      assert.equal(await client.count('items', { query: { rank: { $gt: 10 } } }), 0)
      assert.equal(await client.count('no-such-collection'), 0)
    })

    it('reads the system collections', async () => {
      const collections = await client.get('system.collections', { query: { collectionId: 'items' } })
      assert.equal(collections.length, 1)
      assert.equal(collections[0].documentCount, 5)
    })
  })

  describe('writes', () => {
    it('puts: replaces matching documents, keeping their ids', async () => {
      const one = await client.post('writes', { kind: 'x', value: 1, extra: true })
      const two = await client.post('writes', { kind: 'x', value: 2 })
      await client.post('writes', { kind: 'y', value: 3 })
      const ids = await client.put('writes', { kind: 'x', value: 10 }, { query: { kind: 'x' } })
      assert.deepEqual([...ids].sort(), [one.id, two.id].sort())
      assert.deepEqual(await client.getOne('writes', { query: { id: one.id } }), { id: one.id, kind: 'x', value: 10 })
    })

    it('patches: merges top-level fields', async () => {
      const doc = await client.post('patches', { a: 1, b: { c: 2 } })
      const ids = await client.patch('patches', { b: { d: 3 }, e: 4 }, { query: { id: doc.id } })
      assert.deepEqual(ids, [doc.id])
      assert.deepEqual(await client.getOne('patches', { query: { id: doc.id } }), { id: doc.id, a: 1, b: { d: 3 }, e: 4 })
      assert.deepEqual(await client.patch('patches', { z: 1 }, { query: { a: 999 } }), [])
    })

    it('deletes matching documents, then all', async () => {
      const keep = await client.post('deletes', { n: 1 })
      const gone = await client.post('deletes', { n: 2 })
      assert.deepEqual(await client.delete('deletes', { query: { n: 2 } }), [gone.id])
      assert.deepEqual((await client.get('deletes')).map((doc) => doc.id), [keep.id])
      await client.post('deletes', { n: 3 })
      assert.equal((await client.delete('deletes')).length, 2)
      assert.equal(await client.count('deletes'), 0)
    })

    it('runs many requests at once on one connection', async () => {
      const posted = await Promise.all(Array.from({ length: 200 }, (_, n) => client.post('parallel', { n })))
      assert.equal(new Set(posted.map((doc) => doc.id)).size, 200)
      assert.equal(await client.count('parallel'), 200)
    })
  })

  describe('errors', () => {
    const expectStatus = async (promise, status, message) => {
      const error = await rejection(promise)
      assert.ok(error instanceof Error, `${error} is an Error`)
      assert.equal(error.status, status, `status of ${error.message}`)
      if (message) assert.match(error.message, message)
      return error
    }

    it('rejects bad requests with status 121 and the reason', async () => {
      await expectStatus(client.post('bad id!', { a: 1 }), 121, /collection/i)
      await expectStatus(client.get('items', { query: { rank: { $foo: 1 } } }), 121, /\$foo/)
      await expectStatus(client.post('items', [1, 2]), 121, /document must be an object/)
      await expectStatus(client.post('items', 'text'), 121, /document must be an object/)
      await expectStatus(client.patch('items', null), 121, /patch must be an object/)
      await expectStatus(client.get('items', { query: [1] }), 121, /query must be an object/)
      await expectStatus(client.get('items', { limit: -1 }), 121, /limit/)
      await expectStatus(client.get('items', { limit: 1.5 }), 121, /limit/)
      await expectStatus(client.post('items', { a: 1 }, { lockStrategy: 'sometimes' }), 121, /lockStrategy/)
      await expectStatus(client.post('system.collections', { a: 1 }), 121)
      const error = await expectStatus(client.on('(unclosed', () => {}), 121)
      assert.equal(error.code, 'STATUS_BAD_REQUEST')
    })

    it('throws at once for arguments of the wrong JavaScript type', () => {
      assert.throws(() => client.get(42), { code: 'StringExpected' })
      assert.throws(() => client.get('items', { limit: 'ten' }), /limit/)
      assert.throws(() => client.on('x'), { code: 'FunctionExpected', message: /handler must be a function/ })
      assert.throws(() => client.off('x', 'not a function'), { code: 'FunctionExpected' })
      assert.throws(() => canhazdb.createServer({ port: '7060' }), /port/)
    })

    it('rejects an unlock of a lock not held with status 122', async () => {
      const error = await expectStatus(client.unlock('no-such-lock'), canhazdb.STATUS_NOT_FOUND)
      assert.equal(error.code, 'STATUS_NOT_FOUND')
    })

    it('rejects when nothing listens', async () => {
      const port = await new Promise((resolve) => {
        const probe = net.createServer().listen(0, '127.0.0.1', () => {
          const { port } = probe.address()
          probe.close(() => resolve(port))
        })
      })
      const error = await rejection(canhazdb.createClient({ host: '127.0.0.1', port }))
      assert.equal(error.code, 'ECONNREFUSED')
      assert.equal(error.status, undefined)
    })

    it('rejects a server whose port is taken, or whose options are wrong', async () => {
      const error = await rejection(startServer({ port: pair.server.port }))
      assert.equal(error.code, 'EADDRINUSE')
      const bad = await rejection(canhazdb.createServer({ port: 70000 }))
      assert.equal(bad.code, 'ERR_INVALID_ARG_VALUE')
      const noReplicas = await rejection(canhazdb.createServer({ port: 0, replicas: 0 }))
      assert.match(noReplicas.message, /replicas/)
    })

    it('rejects every call on a closed client', async () => {
      const other = await canhazdb.createClient({ port: pair.server.port })
      await other.close()
      assert.equal(other.closed, true)
      const error = await rejection(other.get('items'))
      assert.equal(error.code, 'ERR_CANHAZDB_CLOSED')
      assert.equal(error.status, undefined)
      await other.close() // closing twice is fine
    })
  })
})
