// Three embedded servers in one process form a cluster: a client of one
// node sees the writes made through another, and notifications cross nodes.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'

import { canhazdb, startServer, waitFor } from './helpers.mjs'

describe('three embedded servers', { timeout: 90_000 }, () => {
  it('form a cluster that shares documents and notifications', async () => {
    const nodes = []
    const clients = []
    try {
      const first = await startServer({ replicas: 2 })
      nodes.push(first)
      const seed = `127.0.0.1:${first.server.port}`
      nodes.push(await startServer({ replicas: 2, join: [seed] }))
      nodes.push(await startServer({ replicas: 2, join: seed }))
      assert.equal(new Set(nodes.map(({ server }) => server.port)).size, 3)
      for (const { server } of nodes) {
        clients.push(await canhazdb.createClient({ port: server.port }))
      }
      const [a, b, c] = clients

      // Every node comes to know every other node, and sees it serving
      // (healthy): until then a read may be refused as possibly incomplete.
      for (const client of clients) {
        await waitFor(async () => {
          const known = await client.get('system.nodes')
          return known.length === 3 && known.every((node) => node.online && node.status === 'healthy')
        }, { timeout: 20_000, interval: 100, what: 'three online, healthy nodes' })
      }

      // Notifications cross nodes: b listens, c writes.
      const heard = []
      await b.on('^POST:/shared/', (path, collectionId, documentId) => heard.push({ path, collectionId, documentId }))

      // Writes through one node are read through the others.
      const posted = []
      for (let n = 0; n < 12; n++) posted.push(await c.post('shared', { n }))
      for (const client of clients) {
        assert.equal(await client.count('shared'), 12)
        const all = await client.get('shared', { order: 'asc(n)' })
        assert.deepEqual(all.map((doc) => doc.id), posted.map((doc) => doc.id))
      }
      await waitFor(() => heard.length === 12, { timeout: 10_000, what: 'notifications from another node' })
      assert.deepEqual(heard.map((event) => event.documentId).sort(), posted.map((doc) => doc.id).sort())
      assert.ok(heard.every((event) => event.collectionId === 'shared'))

      // Updates and deletes report each document once, wherever they run.
      const patched = await a.patch('shared', { seen: true }, { query: { n: { $lt: 6 } } })
      assert.equal(patched.length, 6)
      assert.equal(await b.count('shared', { query: { seen: true } }), 6)
      const deleted = await b.delete('shared')
      assert.equal(deleted.length, 12)
      assert.equal(await c.count('shared'), 0)
    } finally {
      for (const client of clients) await client.close()
      await Promise.all(nodes.map((node) => node.stop()))
    }
  })
})
