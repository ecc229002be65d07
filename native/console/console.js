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

/** What the views share: the connection (replaced after a reconnect) and the metrics history. */
const app = {
  db: null,
  nodeName: null,
  metrics: new MetricsHistory(),
  /** The view's name, and opens it (views call this to hand over, e.g. a collection to browse). */
  show: null,
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
