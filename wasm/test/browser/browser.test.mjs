// The wasm package in a real headless Chromium (Debian's, driven by
// playwright-core), against a real canhazdb server: pages served from
// loopback import wasm/pkg and talk to the server's WebSocket port.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { createStaticServer } from '../../../examples/browser/serve.mjs';
import { root, startServer } from '../lib/server.mjs';
import { makeCertificates } from '../lib/tls.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = path.join(root, 'wasm', 'test', 'artifacts');
const TEST_TIMEOUT = { timeout: 60_000 };

let server;
let small;
let http;
let base;
let context;
let profile;
const problems = [];

before(async () => {
  [server, small] = await Promise.all([startServer(), startServer({ maxFrameBytes: 4096 })]);
  http = await createStaticServer({
    routes: {
      '/pkg/': path.join(root, 'wasm', 'pkg'),
      '/test/': path.join(root, 'wasm', 'test', 'browser'),
      '/example/pkg/': path.join(root, 'wasm', 'pkg'),
      '/example/': path.join(root, 'examples', 'browser'),
    },
  });
  base = `http://127.0.0.1:${http.address().port}`;
  profile = await mkdtemp(path.join(os.tmpdir(), 'canhazdb-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1100, height: 720 },
    timeout: 30_000,
  });
});

after(async () => {
  await context?.close().catch(() => {});
  if (profile) await rm(profile, { recursive: true, force: true });
  await new Promise((resolve) => (http ? http.close(resolve) : resolve()));
  await Promise.allSettled([server?.stop(), small?.stop()]);
});

/** A fresh page with the package loaded; page errors are collected. */
async function testPage() {
  const page = await context.newPage();
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  await page.goto(`${base}/test/index.html`);
  await page.waitForFunction(() => document.body.dataset.state !== 'loading', null, { timeout: 15_000 });
  assert.equal(await page.evaluate(() => document.body.dataset.state), 'ready', await page.evaluate(() => document.body.textContent));
  return page;
}

/** Connects the page's `window.db`. */
async function connected(url = server.wsUrl) {
  const page = await testPage();
  await page.evaluate(async (url) => {
    window.db = await window.canhazdb.connect(url);
    window.db.addEventListener('close', (event) => window.closeEvents.push(event.detail));
  }, url);
  return page;
}

/** Runs `body` in the page; a rejection comes back as a plain description. */
function settle(page, body, arg) {
  return page.evaluate(
    async ([source, arg]) => {
      const run = new Function('arg', `return (${source})(arg)`);
      try {
        return { ok: true, value: await run(arg) };
      } catch (error) {
        return {
          ok: false,
          isError: error instanceof Error,
          message: error.message,
          status: error.status,
          statusName: error.statusName,
          kind: error.kind,
        };
      }
    },
    [body.toString(), arg],
  );
}

describe('in headless Chromium', () => {
  it('loads the package and runs CRUD and queries', TEST_TIMEOUT, async () => {
    const page = await connected();
    const result = await page.evaluate(async () => {
      const db = window.db;
      const a = await db.post('browser-crud', { name: 'ann', age: 31, tags: ['x'] });
      const b = await db.post('browser-crud', { id: 'bob', name: 'bob', age: 25 });
      const all = await db.get('browser-crud', { order: 'asc(age)' });
      const older = await db.get('browser-crud', { query: { age: { $gt: 30 } }, fields: ['name'] });
      const one = await db.getOne('browser-crud', { query: { id: 'bob' } });
      const count = await db.count('browser-crud', { query: { age: { $lt: 100 } } });
      const put = await db.put('browser-crud', { name: 'bob', age: 26 }, { query: { id: 'bob' } });
      const patched = await db.patch('browser-crud', { checked: true }, { query: {} });
      const afterPatch = await db.getOne('browser-crud', { query: { id: 'bob' } });
      const deleted = await db.delete('browser-crud', { query: { name: 'ann' } });
      const left = await db.count('browser-crud');
      return { a, b, all, older, one, count, put, patched, afterPatch, deleted, left };
    });
    assert.equal(typeof result.a.id, 'string');
    assert.deepEqual(result.b, { id: 'bob', name: 'bob', age: 25 });
    assert.deepEqual(result.all.map((doc) => doc.name), ['bob', 'ann']);
    assert.deepEqual(result.older, [{ id: result.a.id, name: 'ann' }]);
    assert.deepEqual(result.one, result.b);
    assert.equal(result.count, 2);
    assert.deepEqual(result.put, ['bob']);
    assert.deepEqual(result.patched.sort(), [result.a.id, 'bob'].sort());
    assert.deepEqual(result.afterPatch, { id: 'bob', name: 'bob', age: 26, checked: true });
    assert.deepEqual(result.deleted, [result.a.id]);
    assert.equal(result.left, 1);
    await page.close();
  });

  it('rejects failed requests with an Error carrying the server’s status and message', TEST_TIMEOUT, async () => {
    const page = await connected();
    const badQuery = await settle(page, () => window.db.get('people', { query: { $where: 'x' } }));
    assert.equal(badQuery.ok, false);
    assert.equal(badQuery.isError, true);
    assert.equal(badQuery.kind, 'server');
    assert.equal(badQuery.status, 121);
    assert.equal(badQuery.statusName, 'STATUS_BAD_REQUEST');
    assert.match(badQuery.message, /\$where/);

    const notFound = await settle(page, () => window.db.unlock('nope'));
    assert.equal(notFound.status, 122);

    const invalid = await settle(page, () => window.db.post('no spaces allowed', {}));
    assert.equal(invalid.isError, true);
    assert.equal(invalid.kind, 'invalid');
    assert.equal(invalid.status, 121);
    assert.match(invalid.message, /collection id "no spaces allowed" is invalid/);

    const readOnly = await settle(page, () => window.db.delete('system.locks'));
    assert.match(readOnly.message, /read-only/);

    const fine = await settle(page, () => window.db.count('people'));
    assert.deepEqual(fine, { ok: true, value: 0 });
    await page.close();
  });

  it('two pages contend for a lock', TEST_TIMEOUT, async () => {
    const holder = await connected();
    const other = await connected();
    const lockId = await holder.evaluate(() => window.db.lock('contended'));
    assert.equal(typeof lockId, 'string');

    const failFast = await settle(other, () => window.db.post('contended', { who: 'other' }, { lockStrategy: 'fail' }));
    assert.equal(failFast.ok, false);
    assert.equal(failFast.status, 127);
    assert.equal(failFast.statusName, 'STATUS_LOCKED');

    await other.evaluate(() => {
      window.waited = null;
      window.db.post('contended', { who: 'waiter' }).then((doc) => (window.waited = doc));
    });
    await holder.evaluate((lockId) => window.db.post('contended', { who: 'holder' }, { lockId }), lockId);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(await other.evaluate(() => window.waited), null, 'the write waits for the lock');

    await holder.evaluate((lockId) => window.db.unlock(lockId), lockId);
    await other.waitForFunction(() => window.waited, null, { timeout: 10_000 });
    assert.equal(await other.evaluate(() => window.waited.who), 'waiter');

    // A lock held by a page goes away with the page.
    await other.evaluate(() => window.db.lock('contended'));
    await holder.evaluate(() => {
      window.heldAgain = null;
      window.db.lock('contended').then((id) => (window.heldAgain = id));
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(await holder.evaluate(() => window.heldAgain), null, 'LOCK waits for the other page');
    await other.close();
    await holder.waitForFunction(() => window.heldAgain, null, { timeout: 10_000 });
    await holder.evaluate(() => window.db.unlock(window.heldAgain));
    assert.equal(await holder.evaluate(() => window.db.count('contended')), 2);
    await holder.close();
  });

  it('one page sees another page’s writes', TEST_TIMEOUT, async () => {
    const watcher = await connected();
    const writer = await connected();
    await watcher.evaluate(() =>
      window.db.on('^(POST|DELETE):/shared-feed/', (...args) => window.notifications.push(args)),
    );
    const doc = await writer.evaluate(async () => {
      const doc = await window.db.post('shared-feed', { text: 'hi' });
      await window.db.post('elsewhere', { text: 'not watched' });
      await window.db.delete('shared-feed', { query: { id: doc.id } });
      return doc;
    });
    await watcher.waitForFunction(() => window.notifications.length >= 2, null, { timeout: 10_000 });
    const seen = await watcher.evaluate(() => window.notifications);
    assert.deepEqual(seen, [
      [`POST:/shared-feed/${doc.id}`, 'shared-feed', doc.id, '^(POST|DELETE):/shared-feed/'],
      [`DELETE:/shared-feed/${doc.id}`, 'shared-feed', doc.id, '^(POST|DELETE):/shared-feed/'],
    ]);
    await watcher.close();
    await writer.close();
  });

  it('a dropped connection rejects pending promises and fires close', TEST_TIMEOUT, async () => {
    const doomed = await startServer();
    try {
      const holder = await connected(doomed.wsUrl);
      const page = await connected(doomed.wsUrl);
      await holder.evaluate(() => window.db.lock('dropping'));
      await page.evaluate(() => {
        window.outcomes = [];
        for (const call of [() => window.db.post('dropping', { n: 1 }), () => window.db.lock('dropping')]) {
          call().then(
            (value) => window.outcomes.push({ ok: true, value }),
            (error) => window.outcomes.push({ ok: false, isError: error instanceof Error, kind: error.kind, message: error.message }),
          );
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      await doomed.kill();
      await page.waitForFunction(() => window.outcomes.length === 2 && window.closeEvents.length === 1, null, {
        timeout: 10_000,
      });
      const { outcomes, closeEvents, closed } = await page.evaluate(() => ({
        outcomes: window.outcomes,
        closeEvents: window.closeEvents.map(({ code, requested, wasClean }) => ({ code, requested, wasClean })),
        closed: window.db.closed,
      }));
      for (const outcome of outcomes) {
        assert.equal(outcome.ok, false);
        assert.equal(outcome.isError, true);
        assert.equal(outcome.kind, 'disconnected');
      }
      assert.equal(closeEvents[0].requested, false);
      assert.equal(closeEvents[0].code, 1006);
      assert.equal(closed, true);
      const after = await settle(page, () => window.db.count('dropping'));
      assert.equal(after.kind, 'disconnected');
      await holder.close();
      await page.close();
    } finally {
      await doomed.stop();
    }
  });

  it('the server refuses text, wrong framing and oversized messages from a browser', TEST_TIMEOUT, async () => {
    const page = await testPage();
    const replies = await page.evaluate(async (url) => {
      const socket = new WebSocket(url);
      socket.binaryType = 'arraybuffer';
      const messages = [];
      const waiters = [];
      socket.onmessage = (event) => {
        const bytes = new Uint8Array(event.data);
        const text = new TextDecoder().decode(bytes.subarray(3, bytes.length - 1));
        const frame = { id: bytes[0] | (bytes[1] << 8), command: bytes[2], payload: text ? JSON.parse(text) : null };
        const waiter = waiters.shift();
        if (waiter) waiter(frame);
        else messages.push(frame);
      };
      const next = () => (messages.length ? Promise.resolve(messages.shift()) : new Promise((r) => waiters.push(r)));
      const closed = new Promise((resolve) => (socket.onclose = (event) => resolve({ code: event.code, reason: event.reason })));
      await new Promise((resolve) => (socket.onopen = resolve));
      const ready = await next();
      socket.send('{"10":"x"}');
      const text = await next();
      socket.send(new Uint8Array([5, 0, 31, 0x7b, 0x7d]));
      const unterminated = await next();
      const body = new TextEncoder().encode(JSON.stringify({ 10: 'big', 20: { text: 'x'.repeat(5000) } }));
      const big = new Uint8Array(body.length + 4);
      big.set([6, 0, 33]);
      big.set(body, 3);
      big[big.length - 1] = 1;
      socket.send(big);
      const oversized = await next();
      return { ready, text, unterminated, oversized, closed: await closed };
    }, small.wsUrl);
    assert.deepEqual(replies.ready, { id: 2, command: 160, payload: null });
    assert.equal(replies.text.command, 121);
    assert.match(replies.text.payload['100'], /send each frame as one binary WebSocket message/);
    assert.equal(replies.unterminated.id, 5);
    assert.equal(replies.unterminated.command, 121);
    assert.match(replies.unterminated.payload['100'], /terminator/);
    assert.equal(replies.oversized.command, 121);
    assert.match(replies.oversized.payload['100'], /frame exceeds the maximum of 4096 bytes/);
    assert.equal(replies.closed.code, 1009);

    // The wasm client reports the same refusal.
    await page.evaluate(async (url) => {
      window.db = await window.canhazdb.connect(url);
      window.db.addEventListener('close', (event) => window.closeEvents.push(event.detail));
    }, small.wsUrl);
    const refused = await settle(page, () => window.db.post('big', { text: 'x'.repeat(10_000) }));
    assert.equal(refused.ok, false);
    assert.equal(refused.status, 121);
    assert.match(refused.message, /frame exceeds the maximum of 4096 bytes/);
    await page.waitForFunction(() => window.closeEvents.length === 1, null, { timeout: 10_000 });
    assert.equal(await page.evaluate(() => window.closeEvents[0].code), 1009);
    await page.close();
  });

  it('the example page lists, adds and deletes documents and shows the live feed', TEST_TIMEOUT, async () => {
    const page = await context.newPage();
    page.on('pageerror', (error) => problems.push(`example pageerror: ${error.message}`));
    await page.goto(`${base}/example/?server=${encodeURIComponent(server.wsUrl)}&collection=notes`);
    await page.waitForSelector('#status[data-state="open"]', { timeout: 15_000 });
    // Subscribed and listed once the count shows.
    await page.waitForFunction(() => document.getElementById('count').textContent !== '', null, { timeout: 15_000 });

    // Another page writes too: its changes reach the example's feed.
    const other = await connected();
    await other.evaluate(() => window.db.post('notes', { text: 'Written by another tab', createdAt: Date.now() }));

    for (const text of ['Buy cat food', 'Feed the cat', 'Pet the cat']) {
      await page.fill('#text', text);
      await page.click('#add-button');
      await page.waitForSelector(`#documents td.text >> text="${text}"`, { timeout: 10_000 });
    }
    await page.waitForFunction(() => document.querySelectorAll('#documents tr[data-id]').length === 4, null, {
      timeout: 10_000,
    });
    const feedBefore = await page.locator('#feed li').count();
    await page.locator('#documents tr', { hasText: 'Feed the cat' }).locator('button.delete').click();
    await page.waitForFunction(() => document.querySelectorAll('#documents tr[data-id]').length === 3, null, {
      timeout: 10_000,
    });
    await page.waitForFunction((n) => document.querySelectorAll('#feed li').length > n, feedBefore, {
      timeout: 10_000,
    });
    await other.evaluate(() => window.db.patch('notes', { text: 'Edited by another tab' }, { query: { text: 'Written by another tab' } }));
    await page.waitForSelector('#documents td.text >> text="Edited by another tab"', { timeout: 10_000 });
    await page.waitForFunction(() => document.querySelectorAll('#feed li').length >= 6, null, { timeout: 10_000 });

    const texts = await page.locator('#documents td.text').allTextContents();
    assert.deepEqual(texts, ['Edited by another tab', 'Buy cat food', 'Pet the cat']);
    const feed = await page.locator('#feed .method').allTextContents();
    assert.deepEqual(feed.slice().reverse(), ['POST', 'POST', 'POST', 'POST', 'DELETE', 'PATCH']);
    assert.equal(await page.locator('#count').textContent(), '3 documents');

    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'example.png'), fullPage: true });
    await other.close();
    await page.close();
  });

  it('logged no page errors', () => {
    assert.deepEqual(problems, []);
  });
});

// wss:// with mutual TLS. The page's wasm client is unchanged: the browser
// does TLS. Chromium here has no certificate store with the client
// certificate, so Playwright's `clientCertificates` provides it: Playwright
// routes the context's connections through its own SOCKS proxy, which, for
// the certificate's origin, terminates the browser's TLS (with a dummy
// certificate, hence `ignoreHTTPSErrors`) and makes the TLS connection to
// the server itself, presenting the client certificate. That applies to
// WebSocket connections as well as to http(s) requests: what is tested is
// the server's wss:// listener with a client certificate, and the wasm
// client through a real browser WebSocket, not Chromium's own client
// certificate selection (see wasm/README.md for real browsers).
describe('in headless Chromium over wss:// with a client certificate', () => {
  let certs;
  let secure;
  let browser;
  const tlsProblems = [];

  before(async () => {
    certs = await makeCertificates('chromium');
    secure = await startServer({ certsDir: certs.dir });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking'],
      timeout: 30_000,
    });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await secure?.stop();
    await certs?.remove();
  });

  /** A page of a new context whose client certificate is for `origin`. */
  async function pageWithCertificateFor(origin) {
    const tlsContext = await browser.newContext({
      clientCertificates: [{ origin, certPath: certs.client.certPath, keyPath: certs.client.keyPath }],
      ignoreHTTPSErrors: true,
    });
    const page = await tlsContext.newPage();
    await page.goto(`${base}/test/index.html`);
    await page.waitForFunction(() => document.body.dataset.state !== 'loading', null, { timeout: 15_000 });
    return page;
  }

  it('the wasm client connects to wss:// and round-trips documents', TEST_TIMEOUT, async () => {
    const page = await pageWithCertificateFor(`https://127.0.0.1:${secure.wsPort}`);
    page.on('pageerror', (error) => tlsProblems.push(`pageerror: ${error.message}`));
    const result = await settle(page, async (url) => {
      const db = await window.canhazdb.connect(url, { timeout: 10_000 });
      const stored = await db.post('wss-browser', { name: 'kitty', lives: 9 });
      const got = await db.get('wss-browser', { query: { id: stored.id } });
      const count = await db.count('wss-browser');
      await db.close();
      return { stored, got, count };
    }, secure.wsUrl);
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.equal(result.value.stored.name, 'kitty');
    assert.deepEqual(result.value.got, [result.value.stored]);
    assert.equal(result.value.count, 1);
    await page.context().close();
  });

  it('without a client certificate the connection is refused', TEST_TIMEOUT, async () => {
    // A certificate for another origin: Playwright's proxy passes the TLS
    // through untouched, so Chromium itself (told to ignore the server
    // certificate's unknown CA) does the handshake, with no certificate.
    const page = await pageWithCertificateFor('https://127.0.0.1:1');
    const result = await settle(page, (url) => window.canhazdb.connect(url, { timeout: 10_000 }), secure.wsUrl);
    assert.equal(result.ok, false, 'the server must refuse a browser without a client certificate');
    assert.equal(result.isError, true);
    await page.context().close();
    // The server keeps serving.
    const again = await pageWithCertificateFor(`https://127.0.0.1:${secure.wsPort}`);
    const count = await settle(again, async (url) => {
      const db = await window.canhazdb.connect(url, { timeout: 10_000 });
      const n = await db.count('wss-browser');
      await db.close();
      return n;
    }, secure.wsUrl);
    assert.deepEqual(count, { ok: true, value: 1 });
    await again.context().close();
  });

  it('logged no page errors over wss', () => {
    assert.deepEqual(tlsProblems, []);
  });
});
