// The server's WebSocket transport, with raw frames over a plain WebSocket:
// READY, pipelining, NOTIFY pushes, text messages, wrong framing and
// oversized messages.
import '../lib/websocket.mjs';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { COMMAND, STATUS, frame, rawSocket } from '../lib/raw.mjs';
import { startServer } from '../lib/server.mjs';
import { makeCertificates, webSocketWith } from '../lib/tls.mjs';

let server;
let small;

before(async () => {
  [server, small] = await Promise.all([startServer(), startServer({ maxFrameBytes: 1024 })]);
});

after(async () => {
  await Promise.allSettled([server?.stop(), small?.stop()]);
});

async function readySocket(url = server.wsUrl) {
  const socket = await rawSocket(url);
  const ready = await socket.next();
  assert.deepEqual(ready, { id: 2, command: COMMAND.READY, payload: null });
  return socket;
}

describe('WebSocket transport', () => {
  it('sends READY, then answers each binary frame with one binary frame', async () => {
    const socket = await readySocket();
    socket.send(frame(3, COMMAND.POST, { 10: 'raw', 20: { a: 1 } }));
    const created = await socket.next();
    assert.equal(created.id, 3);
    assert.equal(created.command, STATUS.CREATED);
    assert.equal(created.payload['20'].a, 1);
    socket.close();
  });

  it('pipelines: many frames in flight, every reply carries its id', async () => {
    const socket = await readySocket();
    const ids = Array.from({ length: 100 }, (_, n) => n + 10);
    for (const id of ids) socket.send(frame(id, COMMAND.COUNT, { 10: 'raw' }));
    const replies = [];
    for (const _ of ids) replies.push(await socket.next());
    assert.deepEqual(replies.map((reply) => reply.id).sort((x, y) => x - y), ids);
    assert.ok(replies.every((reply) => reply.command === STATUS.OK));
    socket.close();
  });

  it('pushes NOTIFY frames (id 2) to matching sockets', async () => {
    const watcher = await readySocket();
    const writer = await readySocket();
    watcher.send(frame(3, 51, { 53: '^POST:/pushed/' }));
    assert.equal((await watcher.next()).command, STATUS.OK);
    writer.send(frame(3, COMMAND.POST, { 10: 'pushed', 20: { id: 'p1' } }));
    assert.equal((await writer.next()).command, STATUS.CREATED);
    assert.deepEqual(await watcher.next(), { id: 2, command: COMMAND.NOTIFY, payload: { 20: 'POST:/pushed/p1' } });
    watcher.close();
    writer.close();
  });

  it('answers a text message with BAD_REQUEST and stays usable', async () => {
    const socket = await readySocket();
    socket.send('{"10":"raw"}');
    const reply = await socket.next();
    assert.equal(reply.command, STATUS.BAD_REQUEST);
    assert.match(reply.payload['100'], /text messages are not accepted: send each frame as one binary WebSocket message/);
    // A frame sent as text: the error carries the frame's id.
    socket.send('\u0007\u0000\u0020{"10":"raw"}\u0001');
    const framed = await socket.next();
    assert.equal(framed.id, 7);
    assert.equal(framed.command, STATUS.BAD_REQUEST);
    socket.send(frame(8, COMMAND.COUNT, { 10: 'raw' }));
    const count = await socket.next();
    assert.equal(count.id, 8);
    assert.equal(count.command, STATUS.OK);
    socket.close();
  });

  it('answers wrong framing with BAD_REQUEST and stays usable', async () => {
    const socket = await readySocket();
    const cases = [
      [new Uint8Array([9, 0, COMMAND.COUNT, 0x7b, 0x7d]), 9, /does not end with the 0x01 terminator/],
      [new Uint8Array([10, 0, 1]), 10, /has no command byte/],
      [new Uint8Array([11, 0, COMMAND.COUNT, 0x7b, 0x7d, 1, 0x7b, 0x7d, 1]), 11, /more than one frame/],
      [new Uint8Array([12, 0, COMMAND.COUNT, 0x6e, 0x6f, 1]), 12, /not valid JSON/],
    ];
    for (const [bytes, id, message] of cases) {
      socket.send(bytes);
      const reply = await socket.next();
      assert.equal(reply.id, id, String(message));
      assert.equal(reply.command, STATUS.BAD_REQUEST, String(message));
      assert.match(reply.payload['100'], message);
    }
    socket.send(frame(13, 200));
    assert.deepEqual(await socket.next(), { id: 13, command: STATUS.NOT_FOUND, payload: null });
    socket.send(frame(14, COMMAND.COUNT, { 10: 'raw' }));
    assert.equal((await socket.next()).command, STATUS.OK);
    socket.close();
  });

  it('refuses an oversized message with BAD_REQUEST, then closes with 1009', async () => {
    const socket = await readySocket(small.wsUrl);
    socket.send(frame(3, COMMAND.POST, { 10: 'raw', 20: { text: 'x'.repeat(900) } }));
    assert.equal((await socket.next()).command, STATUS.CREATED);
    socket.send(frame(4, COMMAND.POST, { 10: 'raw', 20: { text: 'x'.repeat(2000) } }));
    const reply = await socket.next();
    assert.equal(reply.id, 0, 'the id of a refused message is never read');
    assert.equal(reply.command, STATUS.BAD_REQUEST);
    assert.match(reply.payload['100'], /frame exceeds the maximum of 1024 bytes/);
    const closed = await socket.closed;
    assert.equal(closed.code, 1009);
    assert.match(closed.reason, /1024/);
  });

  it('accepts a message of exactly the maximum size', async () => {
    const socket = await readySocket(small.wsUrl);
    const base = frame(3, COMMAND.POST, { 10: 'raw', 20: { text: '' } }).length;
    const exact = frame(3, COMMAND.POST, { 10: 'raw', 20: { text: 'y'.repeat(1024 - base) } });
    assert.equal(exact.length, 1024);
    socket.send(exact);
    assert.equal((await socket.next()).command, STATUS.CREATED);
    socket.close();
  });

  it('releases a closed socket’s locks', async () => {
    const holder = await readySocket();
    holder.send(frame(3, 60, { 66: 'ws-lock' }));
    const granted = await holder.next();
    assert.equal(granted.command, STATUS.OK);
    const other = await readySocket();
    other.send(frame(3, 60, { 66: 'ws-lock' }));
    holder.close();
    const second = await other.next(5_000);
    assert.equal(second.id, 3);
    assert.equal(second.command, STATUS.OK);
    other.close();
  });

  it('says goodbye (1001) when the server shuts down', async () => {
    const stopping = await startServer();
    try {
      const socket = await readySocket(stopping.wsUrl);
      socket.send(frame(3, COMMAND.COUNT, { 10: 'raw' }));
      assert.equal((await socket.next()).command, STATUS.OK);
      const stopped = stopping.stop();
      const closed = await socket.closed;
      assert.equal(closed.code, 1001);
      await stopped;
    } finally {
      await stopping.stop();
    }
  });

  it('serves the TCP port and the WebSocket port from one node', async () => {
    const socket = await readySocket();
    socket.send(frame(3, COMMAND.INFO, { 3: true }));
    const info = await socket.next();
    assert.equal(info.command, STATUS.OK);
    assert.ok(info.payload['20'].nodes.some((node) => node.port === server.port));
    socket.close();
  });
});

describe('WebSocket transport over mutual TLS (wss)', () => {
  let certs;
  let stranger;
  let secure;

  before(async () => {
    [certs, stranger] = await Promise.all([makeCertificates('browser'), makeCertificates('stranger')]);
    secure = await startServer({ certsDir: certs.dir });
  });

  after(async () => {
    await secure?.stop();
    await Promise.allSettled([certs?.remove(), stranger?.remove()]);
  });

  /** A wss socket presenting `identity` ({ cert, key }), trusting `ca`. */
  const socketAs = (identity, ca = certs.ca) => rawSocket(secure.wsUrl, { WebSocket: webSocketWith({ ca, ...identity }) });

  it('serves wss:// to a client certificate of the CA: READY, POST, GET', async () => {
    assert.match(secure.wsUrl, /^wss:\/\/127\.0\.0\.1:\d+$/);
    const socket = await socketAs(certs.client);
    assert.deepEqual(await socket.next(), { id: 2, command: COMMAND.READY, payload: null });
    socket.send(frame(3, COMMAND.POST, { 10: 'secure', 20: { id: 'tls-1', name: 'kitty' } }));
    const created = await socket.next();
    assert.equal(created.command, STATUS.CREATED);
    assert.equal(created.payload['20'].name, 'kitty');
    socket.send(frame(4, COMMAND.GET, { 10: 'secure', 40: { id: 'tls-1' } }));
    const got = await socket.next();
    assert.equal(got.id, 4);
    assert.equal(got.command, STATUS.OK);
    assert.deepEqual(got.payload['20'], [{ id: 'tls-1', name: 'kitty' }]);
    socket.close();
  });

  it('refuses a wss client without a certificate, or with another CA’s', async () => {
    await assert.rejects(socketAs({}), /cannot open wss:/, 'no client certificate');
    await assert.rejects(socketAs(stranger.client), /cannot open wss:/, 'another CA');
    // And keeps serving the right one.
    const socket = await socketAs(certs.client);
    assert.equal((await socket.next()).command, COMMAND.READY);
    socket.close();
  });

  it('gives a plain ws:// client nothing', async () => {
    await assert.rejects(rawSocket(secure.wsUrl.replace('wss:', 'ws:')), /cannot open ws:/);
  });
});
