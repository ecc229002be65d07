// Mutual TLS: an embedded server with `tls`, clients with `ca`, `cert` and
// `key`, the refusals (no certificate, another CA's, plain TCP), bad PEM, and
// a v8-style client — Node's own `tls.connect` sending raw frames — that
// works unchanged against the TLS server.
import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import tls from 'node:tls'

import { canhazdb, startServer, waitFor, rejection } from './helpers.mjs'

const STATUS_CREATED = 123
const READY = 160

/** The server's `tls` option from a `createCertificates` result. */
const serverTls = (certs) => ({ ca: certs.ca, cert: certs.node.cert, key: certs.node.key })

/** A TLS client presenting `identity` ({ cert, key }) of the CA `ca`. */
function tlsClient (server, ca, identity = {}, extra = {}) {
  return canhazdb.createClient({ host: '127.0.0.1', port: server.port, ca, ...identity, ...extra })
}

/** One raw frame: id (u16 LE), command, JSON payload, 0x01 (protocol.md §1). */
function frame (id, command, payload) {
  const body = Buffer.from(payload === undefined ? '' : JSON.stringify(payload))
  return Buffer.concat([Buffer.from([id & 0xff, id >> 8, command]), body, Buffer.from([1])])
}

describe('mutual TLS', { timeout: 60_000 }, () => {
  let certs
  let stranger
  let started
  let client

  before(async () => {
    certs = canhazdb.createCertificates({ clients: ['app', 'other-app'] })
    stranger = canhazdb.createCertificates({ clients: ['stranger'] })
    started = await startServer({ tls: serverTls(certs), replicas: 1 })
    client = await tlsClient(started.server, certs.ca, certs.clients[0])
  })

  after(async () => {
    await client?.close()
    await started?.stop()
  })

  /** The server still serves a good client after a refusal. */
  async function assertStillServes (marker) {
    const good = await tlsClient(started.server, certs.ca, certs.clients[1])
    try {
      await good.post('alive', { marker })
      assert.equal(await good.count('alive', { query: { marker } }), 1)
    } finally {
      await good.close()
    }
  }

  it('createCertificates makes a CA, a node certificate and named client certificates', () => {
    assert.match(certs.ca, /^-----BEGIN CERTIFICATE-----/)
    assert.match(certs.caKey, /PRIVATE KEY-----/)
    assert.equal(certs.node.name, 'node')
    assert.deepEqual(certs.clients.map((issued) => issued.name), ['app', 'other-app'])
    for (const issued of [certs.node, ...certs.clients]) {
      assert.match(issued.cert, /^-----BEGIN CERTIFICATE-----/)
      assert.match(issued.key, /PRIVATE KEY-----/)
      // Node's own TLS accepts them as a key pair.
      tls.createSecureContext({ cert: issued.cert, key: issued.key, ca: certs.ca })
    }
    const error = (() => { try { canhazdb.createCertificates({ clients: ['node'] }) } catch (error) { return error } })()
    assert.equal(error?.code, 'ERR_INVALID_ARG_VALUE')
  })

  it('a client with a certificate of the CA posts, gets, counts, is notified and locks', async () => {
    const seen = []
    const handler = (path) => seen.push(path)
    await client.on('^POST:/tls-cats/', handler)
    const kitty = await client.post('tls-cats', { name: 'kitty', lives: 9 })
    assert.equal(typeof kitty.id, 'string')
    assert.deepEqual(await client.get('tls-cats', { query: { name: 'kitty' } }), [kitty])
    assert.equal(await client.count('tls-cats'), 1)
    await waitFor(() => seen.length === 1, { what: 'the notification over TLS' })
    assert.deepEqual(seen, [`POST:/tls-cats/${kitty.id}`])
    await client.off('^POST:/tls-cats/', handler)

    const lockId = await client.lock('tls-cats')
    const other = await tlsClient(started.server, certs.ca, certs.clients[1])
    try {
      const locked = await rejection(other.post('tls-cats', { name: 'blocked' }, { lockStrategy: 'fail' }))
      assert.equal(locked.code, 'STATUS_LOCKED')
      await client.post('tls-cats', { name: 'holder' }, { lockId })
      assert.equal(await client.unlock(lockId), lockId)
      await other.post('tls-cats', { name: 'after' }, { lockStrategy: 'fail' })
      assert.equal(await other.count('tls-cats'), 3)
    } finally {
      await other.close()
    }
  })

  it('takes PEM as Buffers as well as strings', async () => {
    const buffers = await tlsClient(started.server, Buffer.from(certs.ca), {
      cert: Buffer.from(certs.clients[1].cert),
      key: Buffer.from(certs.clients[1].key)
    })
    try {
      assert.equal(await buffers.count('tls-cats'), 3)
    } finally {
      await buffers.close()
    }
    // A plain Uint8Array (what the type declarations promise) works too.
    const bytes = (text) => new TextEncoder().encode(text)
    const typed = await tlsClient(started.server, bytes(certs.ca), { cert: bytes(certs.clients[1].cert), key: bytes(certs.clients[1].key) })
    await typed.close()
  })

  it('refuses a client without a certificate, and keeps serving', async () => {
    const error = await rejection(tlsClient(started.server, certs.ca))
    assert.equal(error.code, 'ERR_CANHAZDB_TLS')
    assert.equal(error.status, undefined)
    assert.match(error.message, /refused the TLS connection .*requires a client certificate/)
    await assertStillServes('after-anonymous')
  })

  it('refuses a client certificate of another CA, and keeps serving', async () => {
    const error = await rejection(tlsClient(started.server, certs.ca, stranger.clients[0]))
    assert.equal(error.code, 'ERR_CANHAZDB_TLS')
    assert.match(error.message, /refused the TLS connection .*signed by the cluster's CA/)
    await assertStillServes('after-stranger')
  })

  it('fails to connect when the server is not of the client’s CA', async () => {
    // The client trusts only the stranger CA: the server's certificate does not verify.
    const error = await rejection(tlsClient(started.server, stranger.ca, stranger.clients[0]))
    assert.equal(error.code, 'ERR_CANHAZDB_TLS')
    assert.match(error.message, /TLS handshake with 127\.0\.0\.1:\d+ failed/)
    await assertStillServes('after-untrusted-server')
  })

  it('a plain client against the TLS server fails clearly', async () => {
    const error = await rejection(canhazdb.createClient({ host: '127.0.0.1', port: started.server.port, timeout: 1500 }))
    assert.equal(error.code, 'ERR_CANHAZDB_TIMEOUT')
    assert.match(error.message, /did not become ready within 1500 ms/)
    assert.match(error.message, /give ca, cert and key if it uses TLS/)
    await assertStillServes('after-plain')
  })

  it('a v8-style client with tls.connect({ key, cert, ca }) works unchanged', async () => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port: started.server.port,
      ca: certs.ca,
      cert: certs.clients[0].cert,
      key: certs.clients[0].key
    })
    try {
      let received = Buffer.alloc(0)
      socket.on('data', (chunk) => { received = Buffer.concat([received, chunk]) })
      await new Promise((resolve, reject) => {
        socket.once('secureConnect', resolve)
        socket.once('error', reject)
      })
      assert.equal(socket.authorized, true, `server certificate verified: ${socket.authorizationError}`)
      // READY: id 2, command 160, no payload.
      await waitFor(() => received.length >= 4, { what: 'READY' })
      assert.deepEqual([...received.subarray(0, 4)], [0x02, 0x00, READY, 0x01])
      received = received.subarray(4)
      // Exactly the bytes of protocol.md's POST example: 03 00 21 {...} 01.
      const post = frame(3, 0x21, { 10: 'tests', 20: { name: 'kitty' } })
      assert.equal(post.toString('latin1'), '\x03\x00\x21{"10":"tests","20":{"name":"kitty"}}\x01')
      socket.write(post)
      await waitFor(() => received.length >= 4 && received[received.length - 1] === 1, { what: 'the POST reply' })
      assert.equal(received.readUInt16LE(0), 3, 'the reply carries the request id')
      assert.equal(received[2], STATUS_CREATED)
      const document = JSON.parse(received.subarray(3, received.length - 1).toString())
      assert.equal(document['20'].name, 'kitty')
      assert.equal(await client.count('tests', { query: { name: 'kitty' } }), 1)
    } finally {
      socket.destroy()
    }
  })

  it('the ws option becomes wss: a WebSocket upgrade inside TLS with a client certificate', async () => {
    const secure = await startServer({ tls: serverTls(certs), replicas: 1, ws: '127.0.0.1:0' })
    try {
      assert.equal(typeof secure.server.wsPort, 'number')
      const socket = tls.connect({ host: '127.0.0.1', port: secure.server.wsPort, ca: certs.ca, ...certs.clients[0] })
      let received = ''
      socket.on('data', (chunk) => { received += chunk.toString('latin1') })
      await new Promise((resolve, reject) => {
        socket.once('secureConnect', resolve)
        socket.once('error', reject)
      })
      socket.write([
        'GET / HTTP/1.1', 'Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade',
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', '', ''
      ].join('\r\n'))
      await waitFor(() => received.includes('\r\n\r\n'), { what: 'the upgrade response' })
      assert.match(received, /^HTTP\/1\.1 101 /)
      socket.destroy()
    } finally {
      await secure.stop()
    }
  })

  it('writes the server’s PEM files privately in the data directory', () => {
    const dir = join(started.dataDir, 'tls')
    assert.equal(statSync(dir).mode & 0o777, 0o700)
    for (const name of ['ca.crt', 'node.crt', 'node.key']) {
      assert.equal(statSync(join(dir, name)).mode & 0o777, 0o600, name)
    }
  })
})

describe('TLS options that make no sense', { timeout: 30_000 }, () => {
  const certs = canhazdb.createCertificates()

  it('rejects bad PEM given to createClient with ERR_CANHAZDB_TLS', async () => {
    const error = await rejection(canhazdb.createClient({ port: 1, ca: 'not a certificate' }))
    assert.equal(error.code, 'ERR_CANHAZDB_TLS')
    assert.match(error.message, /CA certificate/)
    const badKey = await rejection(canhazdb.createClient({ port: 1, ca: certs.ca, cert: certs.clients[0].cert, key: 'nope' }))
    assert.equal(badKey.code, 'ERR_CANHAZDB_TLS')
    assert.match(badKey.message, /key/)
  })

  it('rejects cert without key, key without cert, and cert without ca', async () => {
    const { cert, key } = certs.clients[0]
    for (const options of [{ ca: certs.ca, cert }, { ca: certs.ca, key }, { cert, key }]) {
      const error = await rejection(canhazdb.createClient({ port: 1, ...options }))
      assert.equal(error.code, 'ERR_INVALID_ARG_VALUE', JSON.stringify(Object.keys(options)))
    }
  })

  it('rejects a server whose tls option is not PEM, or whose key is not the certificate’s', async () => {
    const notPem = await rejection(startServer({ tls: { ...serverTls(certs), ca: '/etc/ssl/ca.crt' } }))
    assert.equal(notPem.code, 'ERR_CANHAZDB_TLS')
    assert.match(notPem.message, /tls\.ca must be PEM contents/)
    const mismatch = await rejection(startServer({ tls: { ...serverTls(certs), key: certs.clients[0].key } }))
    assert.equal(mismatch.code, 'ERR_CANHAZDB_TLS')
    assert.match(mismatch.message, /does not match/)
  })
})
