// The example page: list a collection, add and delete documents, and watch
// the live notify feed. Plain DOM, no framework; all database work goes
// through the canhazdb wasm package.
import { connect } from './pkg/canhazdb_wasm.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
if (params.has('server')) $('server').value = params.get('server');
if (params.has('collection')) $('collection').value = params.get('collection');

let db = null;
let pattern = null;
const collection = () => $('collection').value.trim();

function setStatus(state, text) {
  $('status').dataset.state = state;
  $('status').textContent = text;
  const open = state === 'open';
  for (const id of ['refresh', 'text', 'add-button']) $(id).disabled = !open;
  $('connect').textContent = open ? 'Disconnect' : 'Connect';
}

function showError(error) {
  const element = $('error');
  if (!error) {
    element.hidden = true;
    return;
  }
  element.hidden = false;
  element.textContent = error.status ? `${error.statusName ?? error.status}: ${error.message}` : error.message;
}

function cell(text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

async function refresh() {
  if (!db) return;
  try {
    const docs = await db.get(collection(), { order: 'asc(createdAt)', limit: 200 });
    const body = $('documents');
    body.replaceChildren();
    if (docs.length === 0) {
      const row = document.createElement('tr');
      row.className = 'empty';
      row.append(cell('No documents yet: add one above.'));
      row.firstChild.colSpan = 4;
      body.append(row);
    }
    for (const doc of docs) {
      const row = document.createElement('tr');
      row.dataset.id = doc.id;
      const created = typeof doc.createdAt === 'number' ? new Date(doc.createdAt).toLocaleTimeString() : '';
      const text = typeof doc.text === 'string' ? doc.text : JSON.stringify({ ...doc, id: undefined });
      const remove = document.createElement('button');
      remove.className = 'delete';
      remove.textContent = 'Delete';
      remove.addEventListener('click', () => removeDocument(doc.id));
      const actions = document.createElement('td');
      actions.append(remove);
      row.append(cell(doc.id.slice(0, 8), 'id'), cell(text, 'text'), cell(created), actions);
      body.append(row);
    }
    $('count').textContent = `${await db.count(collection())} documents`;
    showError(null);
  } catch (error) {
    showError(error);
  }
}

async function removeDocument(id) {
  try {
    await db.delete(collection(), { query: { id } });
  } catch (error) {
    showError(error);
  }
}

function onChange(path, collectionId, documentId) {
  const [method] = path.split(':');
  const item = document.createElement('li');
  const badge = document.createElement('span');
  badge.className = `method ${method}`;
  badge.textContent = method;
  const time = document.createElement('time');
  time.textContent = new Date().toLocaleTimeString();
  const what = document.createElement('code');
  what.textContent = `${collectionId}/${documentId}`;
  item.append(badge, time, what);
  $('feed').prepend(item);
  refresh();
}

async function watch() {
  if (pattern) await db.off(pattern);
  pattern = `^(POST|PUT|PATCH|DELETE):/${collection().replace(/[.]/g, '\\.')}/`;
  await db.on(pattern, onChange);
}

async function open() {
  setStatus('connecting', 'connecting…');
  try {
    db = await connect($('server').value.trim());
  } catch (error) {
    db = null;
    setStatus('error', 'cannot connect');
    showError(error);
    return;
  }
  db.addEventListener('close', (event) => {
    db = null;
    pattern = null;
    const { requested, code, error } = event.detail;
    setStatus(requested ? 'closed' : 'error', requested ? 'disconnected' : `connection lost (${code})`);
    if (error) showError(error);
  });
  setStatus('open', 'connected');
  await watch();
  await refresh();
}

$('connection').addEventListener('submit', async (event) => {
  event.preventDefault();
  if (db) await db.close();
  else await open();
});

$('add').addEventListener('submit', async (event) => {
  event.preventDefault();
  const text = $('text').value.trim();
  if (!text || !db) return;
  try {
    await db.post(collection(), { text, createdAt: Date.now() });
    $('text').value = '';
  } catch (error) {
    showError(error);
  }
});

$('refresh').addEventListener('click', refresh);
$('collection').addEventListener('change', async () => {
  if (!db) return;
  try {
    await watch();
    await refresh();
  } catch (error) {
    showError(error);
  }
});

if (params.get('connect') !== 'no') open();
