// The console's shell: connects the project's wasm client to this node's
// /ws, switches views, and ticks the live ones. Every database read and
// write goes through that one connection, so the page exercises the same
// core a program using the client does; only /metrics is fetched over HTTP.
import { connect } from './wasm/canhazdb_wasm.js';
import { collectionsView, documentsView } from './documents.js';
import { changesView, locksView, nodesView } from './live.js';
import { MetricsHistory, metricsView } from './metrics.js';
import { $, attempt, clearError, showError } from './ui.js';

/** How often live views and the metrics sampler refresh. */
const TICK_MS = 2000;

const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;

/**
 * What the views share: the connection (null while disconnected, a new one
 * after a reconnect), the name of the node it is on, the metrics history,
 * `show(view)` (set below) and `browse(collection)` (set by the Documents view).
 */
const app = {
  db: null,
  nodeName: null,
  metrics: new MetricsHistory(),
  show: null,
  browse: null,
};

const views = {
  collections: collectionsView(app),
  documents: documentsView(app),
  nodes: nodesView(app),
  locks: locksView(app),
  changes: changesView(app),
  metrics: metricsView(app),
};
let current = 'collections';
/** Whether the first connection is still to be made (it follows the page's link). */
let opening = true;

function setConnection(text, state) {
  $('#connection').textContent = text;
  document.body.dataset.state = state;
}

/** Connects, and connects again (every tick) whenever the socket closes. */
async function open() {
  try {
    const db = await connect(wsUrl, { timeout: 5000 });
    const info = await db.info();
    app.db = db;
    app.nodeName = info.nodeName;
    setConnection(`Connected to node ${info.nodeName} (${info.status}) over ${wsUrl}`, 'ready');
    clearError();
    db.addEventListener('close', (event) => {
      app.db = null;
      setConnection(`Disconnected from ${wsUrl}; reconnecting…`, 'disconnected');
      showError('connection closed', event.detail.error ?? event.detail.reason ?? `code ${event.detail.code}`);
      setTimeout(open, TICK_MS);
    });
    if (opening) {
      // A link such as /?collection=tests&query={"n":1} opens that search.
      opening = false;
      const link = new URLSearchParams(location.search);
      if (link.has('collection')) {
        if (link.has('query')) $('#find-query').value = link.get('query');
        await app.browse(link.get('collection'));
        return;
      }
    }
    views[current].enter?.();
  } catch (error) {
    setConnection(`Cannot connect to ${wsUrl}; retrying…`, 'disconnected');
    showError('connect', error);
    setTimeout(open, TICK_MS);
  }
}

app.show = (name) => {
  for (const button of document.querySelectorAll('nav button')) {
    if (button.dataset.view === name) button.setAttribute('aria-current', 'page');
    else button.removeAttribute('aria-current');
  }
  for (const view of Object.keys(views)) $(`#${view}`).hidden = view !== name;
  current = name;
  clearError();
  if (app.db) views[name].enter?.();
};

for (const button of document.querySelectorAll('nav button')) {
  button.addEventListener('click', () => app.show(button.dataset.view));
}

// Metrics are sampled whatever the view, so the charts have history when opened.
async function tick() {
  await attempt('metrics', () => app.metrics.sample());
  if (app.db) await views[current].tick?.();
  setTimeout(tick, TICK_MS);
}

open();
tick();
