// The wasm client (wasm/pkg) from Node.js, against a real canhazdb server:
// the same package the browser loads, so wasm bugs show up without a browser.
import '../lib/websocket.mjs';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startServer, within, sleep } from '../lib/server.mjs';
import { connect, Database } from '../../pkg/canhazdb_wasm.js';
import { makeCertificates, webSocketWith, withWebSocket } from '../lib/tls.mjs';

let server;
const open = [];

async function db() {
  const connection = await within(10_000, connect(server.wsUrl), 'connect');
  open.push(connection);
  return connection;
}

/** Waits until `check()` is truthy (polling), or fails after `ms`. */
async function eventually(check, ms = 5_000, what = 'condition') {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (check()) return;
    await sleep(10);
  }
  assert.fail(`${what} not met within ${ms} ms`);
}

async function rejection(promise) {
  try {
    await within(10_000, promise, 'request');
  } catch (error) {
    return error;
  }
  assert.fail('expected the promise to reject');
}

before(async () => {
  server = await startServer();
});

after(async () => {
  await Promise.allSettled(open.map((connection) => connection.close()));
  await server?.stop();
});

describe('connect', () => {
  it('resolves a Database once the server sent READY', async () => {
    const connection = await db();
    assert.ok(connection instanceof Database);
    assert.equal(connection.closed, false);
    assert.equal(connection.url, server.wsUrl);
    const info = await connection.info();
    assert.equal(info.status, 'healthy');
    assert.equal(typeof info.nodeName, 'string');
  });

  it('rejects when nothing listens', async () => {
    const error = await rejection(connect('ws://127.0.0.1:9', { timeout: 5_000 }));
    assert.ok(error instanceof Error);
    assert.equal(error.kind, 'disconnected');
  });

  it('rejects a malformed URL', async () => {
    const error = await rejection(connect('not a url'));
    assert.ok(error instanceof Error);
  });
});

describe('documents', () => {
  it('posts, gets, counts, puts, patches and deletes', async () => {
    const d = await db();
    const posted = await d.post('crud', { name: 'kitty', age: 3 });
    assert.equal(typeof posted.id, 'string');
    assert.deepEqual({ ...posted, id: undefined }, { name: 'kitty', age: 3, id: undefined });

    const own = await d.post('crud', { id: 'fixed-id', name: 'rex', age: 7 });
    assert.equal(own.id, 'fixed-id');

    const all = await d.get('crud');
    assert.equal(all.length, 2);
    assert.equal(await d.count('crud'), 2);
    assert.equal(await d.count('crud', { query: { name: 'rex' } }), 1);

    const one = await d.getOne('crud', { query: { name: 'kitty' } });
    assert.deepEqual(one, posted);
    assert.equal(await d.getOne('crud', { query: { name: 'nobody' } }), null);

    assert.deepEqual(await d.put('crud', { name: 'rex', age: 8 }, { query: { id: 'fixed-id' } }), ['fixed-id']);
    assert.deepEqual(await d.getOne('crud', { query: { id: 'fixed-id' } }), { id: 'fixed-id', name: 'rex', age: 8 });

    assert.deepEqual(await d.patch('crud', { good: true }, { query: { name: 'rex' } }), ['fixed-id']);
    assert.deepEqual(await d.getOne('crud', { query: { id: 'fixed-id' } }), {
      id: 'fixed-id',
      name: 'rex',
      age: 8,
      good: true,
    });

    const deleted = await d.delete('crud', { query: { name: 'kitty' } });
    assert.deepEqual(deleted, [posted.id]);
    assert.equal(await d.count('crud'), 1);
    assert.deepEqual(await d.delete('crud'), ['fixed-id']);
    assert.deepEqual(await d.get('crud'), []);
  });

  it('keeps JSON values intact', async () => {
    const d = await db();
    const doc = {
      text: 'héllo “wörld” 🐱 \u0000 \n',
      nested: { list: [1, 2.5, -3e10, null, true, false, 'x', { deep: [] }] },
      big: 9007199254740991,
      empty: {},
    };
    const stored = await d.post('json', doc);
    assert.deepEqual({ ...stored, id: undefined }, { ...doc, id: undefined });
    assert.deepEqual(await d.getOne('json', { query: { id: stored.id } }), stored);
  });

  it('pipelines many requests on one connection', async () => {
    const d = await db();
    const posted = await Promise.all(Array.from({ length: 300 }, (_, n) => d.post('pipeline', { n })));
    assert.equal(new Set(posted.map((doc) => doc.id)).size, 300);
    const counts = await Promise.all(Array.from({ length: 50 }, () => d.count('pipeline')));
    assert.ok(counts.every((count) => count === 300));
    assert.equal(d.inFlight, 0);
  });
});

describe('queries', () => {
  before(async () => {
    const d = await db();
    for (const [name, age, city] of [
      ['ann', 31, 'Oslo'],
      ['bob', 25, 'Rome'],
      ['cid', 40, 'Oslo'],
      ['dee', 25, null],
    ]) {
      await d.post('people', { name, age, city, address: { zip: `z${age}` } });
    }
  });

  it('filters with operators, $or and dotted keys', async () => {
    const d = await db();
    const names = (docs) => docs.map((doc) => doc.name).sort();
    assert.deepEqual(names(await d.get('people', { query: { age: { $gt: 30 } } })), ['ann', 'cid']);
    assert.deepEqual(names(await d.get('people', { query: { age: { $gte: 25, $lt: 40 } } })), ['ann', 'bob', 'dee']);
    assert.deepEqual(names(await d.get('people', { query: { city: { $in: ['Rome', 'Oslo'] } } })), ['ann', 'bob', 'cid']);
    assert.deepEqual(names(await d.get('people', { query: { city: { $null: true } } })), ['dee']);
    assert.deepEqual(
      names(await d.get('people', { query: { $or: [{ name: 'ann' }, { 'address.zip': 'z40' }] } })),
      ['ann', 'cid'],
    );
    assert.equal(await d.count('people', { query: { city: 'Oslo' } }), 2);
  });

  it('orders, limits and picks fields', async () => {
    const d = await db();
    const ordered = await d.get('people', { order: ['asc(age)', 'desc(name)'] });
    assert.deepEqual(ordered.map((doc) => doc.name), ['dee', 'bob', 'ann', 'cid']);
    const oldest = await d.get('people', { order: 'desc(age)', limit: 2, fields: ['name'] });
    assert.deepEqual(oldest.map((doc) => Object.keys(doc).sort()), [['id', 'name'], ['id', 'name']]);
    assert.deepEqual(oldest.map((doc) => doc.name), ['cid', 'ann']);
    const first = await d.getOne('people', { order: 'asc(name)', fields: ['address.zip'] });
    assert.deepEqual(Object.keys(first).sort(), ['address', 'id']);
    assert.deepEqual(first.address, { zip: 'z31' });
  });
});

describe('errors', () => {
  it('rejects with the status and message of the server', async () => {
    const d = await db();
    const badOperator = await rejection(d.get('people', { query: { age: { $bogus: 1 } } }));
    assert.ok(badOperator instanceof Error);
    assert.equal(badOperator.kind, 'server');
    assert.equal(badOperator.status, 121);
    assert.equal(badOperator.statusName, 'STATUS_BAD_REQUEST');
    assert.match(badOperator.message, /\$bogus/);

    const unlock = await rejection(d.unlock('no-such-lock'));
    assert.equal(unlock.status, 122);
    assert.equal(unlock.statusName, 'STATUS_NOT_FOUND');

    await d.post('dupes', { id: 'one' });
    const duplicate = await rejection(d.post('dupes', { id: 'one' }));
    assert.equal(duplicate.status, 121);
    assert.match(duplicate.message, /one/);

    const badLimit = await rejection(d.get('people', { limit: -1 }));
    assert.equal(badLimit.status, 121);
    assert.match(badLimit.message, /LIMIT|limit/);
  });

  it('refuses malformed calls before sending, with the message the server would give', async () => {
    const d = await db();
    const cases = [
      [() => d.post('bad collection', {}), /collection id "bad collection" is invalid/],
      [() => d.post('system.collections', { a: 1 }), /read-only system collection/],
      [() => d.post('fine', 'not an object'), /DATA \(20\) must be a JSON object/],
      [() => d.put('fine', { a: 1 }, { query: [1] }), /QUERY \(40\) must be a JSON object/],
      [() => d.delete('fine', { lockStrategy: 'sometimes' }), /LOCK_STRATEGY/],
      [() => d.get(42), /COLLECTION_ID \(10\) must be a string/],
      [() => d.lock(), /LOCK_KEY \(66\) is required/],
    ];
    for (const [call, message] of cases) {
      const error = await rejection(call());
      assert.ok(error instanceof Error, String(message));
      assert.equal(error.kind, 'invalid', String(message));
      assert.equal(error.status, 121, String(message));
      assert.match(error.message, message);
    }
    // Still usable.
    assert.equal(typeof (await d.count('people')), 'number');
  });

  it('rejects a notify pattern the server refuses, and forgets its handler', async () => {
    const d = await db();
    const error = await rejection(d.on('(unclosed', () => {}));
    assert.ok(error instanceof Error);
    assert.equal(error.kind, 'server');
    assert.equal(error.status, 121);
    assert.match(error.message, /invalid notify path regex/);
    // Registering it again asks the server again (the failed one was dropped).
    const again = await rejection(d.on('(unclosed', () => {}));
    assert.equal(again.status, 121);
  });

  it('rejects values JSON cannot carry', async () => {
    const d = await db();
    const cyclic = {};
    cyclic.self = cyclic;
    const error = await rejection(d.post('fine', cyclic));
    assert.ok(error instanceof Error);
    const big = await rejection(d.post('fine', { n: 10n }));
    assert.ok(big instanceof Error);
  });
});

describe('locks', () => {
  it('blocks other connections until unlocked', async () => {
    const a = await db();
    const b = await db();
    const lockId = await a.lock('locked');
    assert.equal(typeof lockId, 'string');

    const failed = await rejection(b.post('locked', { who: 'b' }, { lockStrategy: 'fail' }));
    assert.equal(failed.status, 127);
    assert.equal(failed.statusName, 'STATUS_LOCKED');

    let waited = false;
    const waiting = b.post('locked', { who: 'b-waits' }).then((doc) => {
      waited = true;
      return doc;
    });
    const holder = await a.post('locked', { who: 'a' }, { lockId });
    assert.equal(holder.who, 'a');
    await sleep(200);
    assert.equal(waited, false, 'a write waits while the collection is locked');

    await a.unlock(lockId);
    const doc = await within(5_000, waiting, 'the waiting write');
    assert.equal(doc.who, 'b-waits');
    assert.equal(await a.count('locked'), 2);

    // LOCK waits for the holder too.
    const again = await a.lock('locked');
    let granted = false;
    const queued = b.lock('locked').then((id) => {
      granted = true;
      return id;
    });
    await sleep(200);
    assert.equal(granted, false, 'a second LOCK waits');
    await a.unlock(again);
    await b.unlock(await within(5_000, queued, 'the queued lock'));
  });

  it('releases the locks of a connection that closes', async () => {
    const a = await db();
    const b = await db();
    await a.lock('released');
    const queued = b.lock('released');
    await a.close();
    const lockId = await within(5_000, queued, 'the lock after the holder closed');
    await b.unlock(lockId);
  });
});

describe('notify', () => {
  it('delivers other connections’ changes to matching handlers', async () => {
    const watcher = await db();
    const writer = await db();
    const seen = [];
    const posts = [];
    const everything = (...args) => seen.push(args);
    await watcher.on('^POST:/watched/', (...args) => posts.push(args));
    await watcher.on(':/watched/', everything);

    const doc = await writer.post('watched', { n: 1 });
    await writer.patch('watched', { n: 2 }, { query: { id: doc.id } });
    await writer.post('unwatched', { n: 3 });
    await writer.delete('watched', { query: { id: doc.id } });

    await eventually(() => seen.length === 3, 5_000, 'three notifications');
    assert.deepEqual(posts, [[`POST:/watched/${doc.id}`, 'watched', doc.id, '^POST:/watched/']]);
    assert.deepEqual(
      seen.map(([path, collectionId, documentId, pattern]) => [path.split(':')[0], collectionId, documentId, pattern]),
      [
        ['POST', 'watched', doc.id, ':/watched/'],
        ['PATCH', 'watched', doc.id, ':/watched/'],
        ['DELETE', 'watched', doc.id, ':/watched/'],
      ],
    );

    await watcher.off(':/watched/', everything);
    await watcher.off('^POST:/watched/');
    await writer.post('watched', { n: 4 });
    await sleep(200);
    assert.equal(seen.length, 3, 'no notifications after off');
    assert.equal(posts.length, 1);
  });

  it('routes Rust regex syntax: inline flags, and patterns JavaScript cannot compile', async () => {
    const watcher = await db();
    const writer = await db();
    const insensitive = [];
    const rustOnly = [];
    await watcher.on('(?i)^post:/casetest/', (path) => insensitive.push(path));
    await watcher.on('^DELETE:/(?P<collection>CaseTest)/', (path) => rustOnly.push(path));
    const doc = await writer.post('CaseTest', { n: 1 });
    await writer.delete('CaseTest', { query: { id: doc.id } });
    await eventually(() => insensitive.length === 1 && rustOnly.length === 1, 5_000, 'both notifications');
    assert.deepEqual(insensitive, [`POST:/CaseTest/${doc.id}`]);
    assert.deepEqual(rustOnly, [`DELETE:/CaseTest/${doc.id}`]);
  });

  it('keeps going when a handler throws or calls back into the client', async () => {
    const watcher = await db();
    const writer = await db();
    const counts = [];
    const originalError = console.error;
    const logged = [];
    console.error = (...args) => logged.push(args);
    try {
      await watcher.on('^POST:/reentrant/', () => {
        throw new Error('handler failure');
      });
      await watcher.on('^POST:/reentrant/', () => {
        watcher.count('reentrant').then((count) => counts.push(count));
      });
      await writer.post('reentrant', { n: 1 });
      await eventually(() => counts.length === 1, 5_000, 'a count from inside a handler');
    } finally {
      console.error = originalError;
    }
    assert.equal(counts[0], 1);
    assert.ok(logged.some((args) => String(args[1]).includes('handler failure')));
  });
});

describe('closing', () => {
  it('close() rejects pending requests, fires close and refuses new requests', async () => {
    const holder = await db();
    const d = await db();
    const lockId = await holder.lock('closing');
    const events = [];
    d.addEventListener('close', (event) => events.push(event.detail));
    const pending = d.post('closing', { n: 1 });
    const rejected = rejection(pending);
    await sleep(50);
    await within(5_000, d.close(), 'close');
    const error = await rejected;
    assert.equal(error.kind, 'disconnected');
    assert.equal(d.closed, true);
    assert.equal(events.length, 1);
    assert.equal(events[0].requested, true);
    assert.equal(events[0].code, 1000);
    const after = await rejection(d.count('closing'));
    assert.equal(after.kind, 'disconnected');
    await holder.unlock(lockId);
  });
});

describe('a dropped connection', () => {
  it('rejects every pending promise and fires close', async () => {
    const doomed = await startServer();
    try {
      const a = await within(10_000, connect(doomed.wsUrl), 'connect');
      const b = await within(10_000, connect(doomed.wsUrl), 'connect');
      await a.lock('drop');
      const pending = [b.post('drop', { n: 1 }), b.post('drop', { n: 2 }), b.lock('drop')];
      const outcomes = Promise.allSettled(pending);
      const closeEvents = [];
      const closed = new Promise((resolve) =>
        b.addEventListener('close', (event) => {
          closeEvents.push(event.detail);
          resolve();
        }),
      );
      await sleep(100);
      await doomed.kill();
      const results = await within(10_000, outcomes, 'pending requests');
      for (const result of results) {
        assert.equal(result.status, 'rejected');
        assert.ok(result.reason instanceof Error);
        assert.equal(result.reason.kind, 'disconnected');
        assert.match(result.reason.message, /lost|closed/);
      }
      await within(5_000, closed, 'the close event');
      assert.equal(closeEvents[0].requested, false);
      assert.notEqual(closeEvents[0].code, 1000);
      assert.equal(b.closed, true);
      await eventually(() => a.closed, 5_000, 'the other connection closed');
    } finally {
      await doomed.stop();
    }
  });
});

describe('oversized messages', () => {
  it('reject with the server’s BAD_REQUEST and close the connection (1009)', async () => {
    const small = await startServer({ maxFrameBytes: 4096 });
    try {
      const d = await within(10_000, connect(small.wsUrl), 'connect');
      const events = [];
      d.addEventListener('close', (event) => events.push(event.detail));
      const fits = await d.post('big', { text: 'x'.repeat(1000) });
      assert.equal(fits.text.length, 1000);
      const error = await rejection(d.post('big', { text: 'x'.repeat(10_000) }));
      assert.equal(error.status, 121);
      assert.equal(error.kind, 'server');
      assert.match(error.message, /frame exceeds the maximum of 4096 bytes/);
      await eventually(() => events.length === 1, 5_000, 'the close event');
      assert.equal(events[0].code, 1009);
      assert.match(events[0].error.message, /4096/);
    } finally {
      await small.stop();
    }
  });
});

describe('over wss:// with mutual TLS', () => {
  let certs;
  let secure;

  before(async () => {
    certs = await makeCertificates('wasm-node');
    secure = await startServer({ certsDir: certs.dir });
  });

  after(async () => {
    await secure?.stop();
    await certs?.remove();
  });

  // The wasm client opens `new WebSocket(url)` as a page does; here the
  // global stands for one whose TLS presents the client certificate (what a
  // browser does from its certificate store).
  const connectAs = (identity, options) =>
    withWebSocket(webSocketWith({ ca: certs.ca, ...identity }), () =>
      within(10_000, connect(secure.wsUrl, options), 'connect'),
    );

  it('connects to a wss:// URL unchanged and round-trips documents', async () => {
    const connection = await connectAs(certs.client);
    open.push(connection);
    const stored = await connection.post('wss-cats', { name: 'kitty' });
    assert.equal(typeof stored.id, 'string');
    assert.deepEqual(await connection.get('wss-cats', { query: { name: 'kitty' } }), [stored]);
    assert.equal(await connection.count('wss-cats'), 1);
    await connection.close();
  });

  it('is refused without a client certificate', async () => {
    const error = await rejection(connectAs({}, { timeout: 5_000 }));
    assert.ok(error instanceof Error, String(error));
  });
});
