// The admin console (served by the server at / on its HTTP port) in a real
// headless Chromium, against a 3-node cluster: every view is driven through
// the page, and what the page writes is checked through the binary protocol
// with the wasm client from Node.js on another node.
import '../lib/websocket.mjs';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { connect } from '../../pkg/canhazdb_wasm.js';
import { root, sleep, startCluster, within } from '../lib/server.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = path.join(root, 'wasm', 'test', 'artifacts');
const TEST_TIMEOUT = { timeout: 60_000 };
/** How long the page may take to show something (its live views tick every 2 s). */
const WAIT = { timeout: 15_000 };
/** The page's transfer, gzipped, stays under this. */
const TRANSFER_LIMIT = 160 * 1024;

let cluster;
let db;
let context;
let profile;
let page;
let pageNode;
const problems = [];
const closing = [];

before(async () => {
  cluster = await startCluster(3);
  // The page on the second node, the test's own client on the first.
  pageNode = cluster.nodes[1];
  db = await within(10_000, connect(cluster.nodes[0].wsUrl), 'connect');
  profile = await mkdtemp(path.join(os.tmpdir(), 'canhazdb-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1100, height: 800 },
    timeout: 30_000,
  });
  page = await context.newPage();
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
});

after(async () => {
  await Promise.allSettled(closing.map((connection) => connection.close()));
  await db?.close().catch(() => {});
  await context?.close().catch(() => {});
  if (profile) await rm(profile, { recursive: true, force: true });
  await cluster?.stop();
});

async function screenshot(view) {
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `console-${view}.png`), fullPage: true });
}

/** Opens a view with its nav button, and checks the nav says so. */
async function open(view) {
  await page.click(`nav button[data-view="${view}"]`);
  assert.equal(await page.getAttribute(`nav button[data-view="${view}"]`, 'aria-current'), 'page');
  assert.equal(await page.isVisible(`#${view}`), true);
}

/** Polls `check` (async) until truthy, or fails naming `what` after `ms`. */
async function eventually(what, check, ms = 15_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`${what}: not within ${ms} ms`);
    await sleep(100);
  }
}

/** Bytes of `url`'s body as sent, with or without gzip. */
function transferred(url, gzip) {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { headers: gzip ? { 'accept-encoding': 'gzip' } : {} }, (response) => {
      let bytes = 0;
      response.on('data', (chunk) => (bytes += chunk.length));
      response.on('end', () => resolve(bytes));
    });
    request.on('error', reject);
  });
}

/** The document `id` of `collection` as the binary protocol reads it (on the first node). */
const stored = (collection, id) => db.getOne(collection, { query: { id } });

describe('the admin console in headless Chromium', () => {
  it('loads from the node over /ws, light and labelled', TEST_TIMEOUT, async () => {
    await page.goto(`${pageNode.httpUrl}/`);
    await page.waitForFunction(() => document.body.dataset.state === 'ready', null, WAIT);
    assert.match(await page.textContent('#connection'), new RegExp(`Connected to node ${pageNode.name} `));

    // Every asset the page loaded, measured as the server sends it.
    const urls = await page.evaluate(() => [location.href, ...performance.getEntriesByType('resource').map((e) => e.name)]);
    const assets = urls.filter((url) => !url.endsWith('/metrics'));
    let plain = 0;
    let gzipped = 0;
    for (const url of assets) {
      const [p, g] = [await transferred(url, false), await transferred(url, true)];
      console.log(`console asset ${new URL(url).pathname}: ${p} bytes, ${g} gzipped`);
      plain += p;
      gzipped += g;
    }
    console.log(`console page transfer: ${assets.length} files, ${plain} bytes, ${gzipped} bytes gzipped`);
    assert.ok(assets.some((url) => url.endsWith('.wasm')), `the wasm client is loaded: ${assets}`);
    assert.ok(gzipped < TRANSFER_LIMIT, `the page stays light: ${gzipped} bytes gzipped`);

    const unlabelled = await page.evaluate(() =>
      [...document.querySelectorAll('input, textarea')].filter((e) => e.labels.length === 0).map((e) => e.id),
    );
    assert.deepEqual(unlabelled, []);
    // The nav works from the keyboard.
    await page.focus('nav button[data-view="nodes"]');
    await page.keyboard.press('Enter');
    assert.equal(await page.isVisible('#nodes'), true);
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Space');
    assert.equal(await page.getAttribute('nav button[data-view="documents"]', 'aria-current'), 'page');
  });

  it('lists collections with their document counts', TEST_TIMEOUT, async () => {
    for (const n of [1, 2, 3]) await db.post('console-seed', { n });
    await open('collections');
    await page.click('#collections-refresh');
    const row = page.locator('#collections tbody tr', { hasText: 'console-seed' });
    await row.waitFor(WAIT);
    assert.equal(await row.locator('td').nth(1).textContent(), '3');
    await screenshot('collections');
  });

  it('inserts, edits and deletes a document, as the binary protocol sees it', TEST_TIMEOUT, async () => {
    // From the collections list into the browser.
    await page.click('#collections tbody button:text-is("console-seed")');
    await page.waitForFunction(() => document.querySelectorAll('#results tbody tr').length === 3, null, WAIT);

    await page.fill('#find-collection', 'console-ui');
    await page.click('#insert');
    await page.fill('#editor-text', '{"id": "ui-doc", ');
    assert.match(await page.textContent('#editor-problem'), /Cannot save: not valid JSON/);
    assert.equal(await page.isDisabled('#editor-save'), true);
    await page.fill('#editor-text', '[1]');
    assert.match(await page.textContent('#editor-problem'), /must be a JSON object/);
    await page.fill('#editor-text', '{"id": "ui-doc", "name": "from the page"}');
    assert.equal(await page.isDisabled('#editor-save'), false);
    await page.click('#editor-save');
    await page.waitForSelector('#page-status:has-text("Inserted ui-doc into console-ui")', WAIT);
    assert.deepEqual(await stored('console-ui', 'ui-doc'), { id: 'ui-doc', name: 'from the page' });

    await page.click('#find button[type=submit]');
    const row = page.locator('#results tbody tr', { hasText: 'ui-doc' });
    await row.waitFor(WAIT);
    await row.locator('button:text-is("Edit")').click();
    await page.waitForFunction(() => document.querySelector('#editor-text').value.includes('from the page'), null, WAIT);
    await page.fill('#editor-text', '{"id": "other", "name": "edited"}');
    assert.match(await page.textContent('#editor-problem'), /the id cannot change/);
    await page.fill('#editor-text', '{"id": "ui-doc", "name": "edited in the page", "n": 2}');
    await screenshot('documents');
    await page.click('#editor-save');
    await page.waitForSelector('#page-status:has-text("Saved ui-doc")', WAIT);
    assert.deepEqual(await stored('console-ui', 'ui-doc'), { id: 'ui-doc', name: 'edited in the page', n: 2 });
    await page.locator('#results tbody tr', { hasText: 'edited in the page' }).waitFor(WAIT);

    await row.locator('button:text-is("Delete")').click();
    await row.locator('button:text-is("Cancel")').click();
    assert.notEqual(await stored('console-ui', 'ui-doc'), null, 'cancel keeps the document');
    await row.locator('button:text-is("Delete")').click();
    await row.locator('button:text-is("Really delete ui-doc")').click();
    await page.waitForSelector('#page-status:has-text("Deleted ui-doc from console-ui")', WAIT);
    assert.equal(await stored('console-ui', 'ui-doc'), null);
  });

  it('pages through documents by id, and with a query', TEST_TIMEOUT, async () => {
    for (const id of ['p1', 'p2', 'p3', 'p4', 'p5']) await db.post('console-pages', { id, even: id.endsWith('2') || id.endsWith('4') });
    const shows = (what, ids) =>
      eventually(what, async () => (await page.locator('#results tbody tr td:first-child').allTextContents()).join() === ids);
    await page.fill('#find-collection', 'console-pages');
    await page.fill('#find-limit', '2');
    await page.click('#find button[type=submit]');
    await shows('first page', 'p1,p2');
    await page.click('#next-page');
    await shows('second page', 'p3,p4');
    await page.click('#next-page');
    await shows('last page', 'p5');
    assert.equal(await page.isDisabled('#next-page'), true);
    await page.click('#first-page');
    await shows('back to the first page', 'p1,p2');

    await page.fill('#find-query', '{"even": false}');
    await page.fill('#find-fields', 'even');
    await page.click('#find button[type=submit]');
    await shows('first page of the query', 'p1,p3');
    await page.click('#next-page');
    await shows('second page of the query', 'p5');

    // A custom order shows one page: the id cursor would not follow it.
    await page.fill('#find-order', 'desc(id)');
    await page.click('#find button[type=submit]');
    await shows('ordered', 'p5,p3');
    assert.equal(await page.isDisabled('#next-page'), true);
    assert.match(await page.textContent('#page-status'), /paging needs the default id order/);

    await page.fill('#find-query', '{"even": ');
    await page.click('#find button[type=submit]');
    assert.match(await page.textContent('#find-query-problem'), /Query not valid JSON/);
    // A server error is shown in the page, not thrown.
    await page.fill('#find-query', '{"even": {"$nope": 1}}');
    await page.click('#find button[type=submit]');
    await page.waitForSelector('#error:has-text("STATUS_BAD_REQUEST")', WAIT);
  });

  it('opens a linked search', TEST_TIMEOUT, async () => {
    const linked = await context.newPage();
    linked.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
    const query = encodeURIComponent('{"even": true}');
    await linked.goto(`${pageNode.httpUrl}/?collection=console-pages&query=${query}`);
    await linked.waitForFunction(() => document.querySelectorAll('#results tbody tr').length === 2, null, WAIT);
    assert.deepEqual(await linked.locator('#results tbody tr td:first-child').allTextContents(), ['p2', 'p4']);
    assert.equal(await linked.getAttribute('nav button[data-view="documents"]', 'aria-current'), 'page');
    await linked.close();
  });

  it('shows locks held and queued, live', TEST_TIMEOUT, async () => {
    await open('locks');
    const held = await db.lock('console-locked');
    const waiter = await within(10_000, connect(cluster.nodes[2].wsUrl), 'connect');
    closing.push(waiter);
    const queued = waiter.lock('console-locked');
    await page.locator('#locks tbody tr', { hasText: held }).locator('td:text-is("held")').waitFor(WAIT);
    await page.locator('#locks tbody tr', { hasText: 'queued (1 in line)' }).waitFor(WAIT);
    await screenshot('locks');
    await db.unlock(held);
    const granted = await within(10_000, queued, 'the queued lock');
    await page.locator('#locks tbody tr', { hasText: granted }).locator('td:text-is("held")').waitFor(WAIT);
    await waiter.unlock(granted);
    await page.waitForSelector('#locks td:text-is("no locks held or queued")', WAIT);
  });

  it('receives the change feed live, filtered by path', TEST_TIMEOUT, async () => {
    await open('changes');
    await page.fill('#feed-pattern', '^(POST|DELETE):/console-feed/');
    await page.click('#feed-start');
    await page.waitForSelector('#feed-status:has-text("Listening for")', WAIT);
    // Written through another node than the page's.
    await db.post('console-other', { id: 'unseen' });
    await db.post('console-feed', { id: 'fed' });
    await db.patch('console-feed', { more: true }, { query: { id: 'fed' } });
    await db.delete('console-feed', { query: { id: 'fed' } });
    await page.waitForSelector('#feed-events li:has-text("DELETE:/console-feed/fed")', WAIT);
    const events = await page.locator('#feed-events li').allTextContents();
    assert.deepEqual(events.map((e) => e.trim().split(/\s+/).pop()), ['DELETE:/console-feed/fed', 'POST:/console-feed/fed']);
    await screenshot('changes');
    await page.click('#feed-stop');
    await page.waitForSelector('#feed-status:text-is("Stopped.")', WAIT);
    await db.post('console-feed', { id: 'after-stop' });
    await sleep(500);
    assert.equal(await page.locator('#feed-events li').count(), 2, 'a stopped feed receives nothing');
  });

  it('charts throughput and latency from /metrics', TEST_TIMEOUT, async () => {
    await open('metrics');
    // Requests on the page's node, a few samples apart.
    const busy = await within(10_000, connect(pageNode.wsUrl), 'connect');
    closing.push(busy);
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline) await busy.count('console-seed');
    await page.waitForFunction(() => Number(document.querySelector('#throughput').dataset.points) >= 2, null, WAIT);
    assert.equal(await page.locator('#throughput polyline').count(), 1);
    assert.equal(await page.locator('#latency polyline').count(), 2);
    assert.match(await page.textContent('#throughput-latest'), /requests\/s/);
    await screenshot('metrics');
  });

  it('shows nodes with their Raft roles, and a killed node without reload', TEST_TIMEOUT, async () => {
    await open('nodes');
    const cells = (name) => page.locator('#nodes tbody tr', { hasText: name }).locator('td');
    await eventually('three connected nodes, one leader', async () => {
      const rows = await page.locator('#nodes tbody tr').allTextContents();
      return rows.length === 3 && rows.filter((r) => r.includes('leader')).length === 1 && rows.every((r) => r.includes('yesyes'));
    });
    await page.evaluate(() => (window.notReloaded = true));
    const victim = cluster.nodes[2];
    await victim.kill();
    await eventually(`${victim.name} shown offline`, async () => (await cells(victim.name).nth(3).textContent()) === 'no', 30_000);
    assert.equal(await cells(victim.name).nth(2).textContent(), 'no');
    assert.equal(await page.evaluate(() => window.notReloaded), true);
    await screenshot('nodes');
  });

  it('logged no page errors', () => {
    assert.deepEqual(problems, []);
  });
});
