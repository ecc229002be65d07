// The Collections view (system.collections with their document counts) and
// the Documents view: find with query/fields/order/limit, page through the
// results, view, edit, insert and delete documents.
import { $, attempt, clearError, fillTable, h, parseJson, showError } from './ui.js';

export function collectionsView(app) {
  const table = $('#collections table');

  async function refresh() {
    const collections = await attempt('listing collections', () => app.db.get('system.collections', { order: 'asc(collectionId)' }));
    if (!collections) return;
    $('#collection-names').replaceChildren(...collections.map((c) => h('option', { value: c.collectionId })));
    fillTable(
      table,
      collections.map((c) => [
        h('button', { type: 'button', onclick: () => app.browse(c.collectionId) }, c.collectionId),
        String(c.documentCount),
      ]),
      'no collections yet',
    );
  }

  $('#collections-refresh').addEventListener('click', refresh);
  return { enter: refresh };
}

/** The id order used when the user gives none: it lets pages continue after the last id seen. */
const BY_ID = 'asc(id)';

export function documentsView(app) {
  const form = $('#find');
  const results = $('#results');
  const editor = $('#editor');
  const editorText = $('#editor-text');
  const problem = $('#editor-problem');
  const save = $('#editor-save');

  /** The search the pages belong to, and where the next page starts. */
  let search = null;
  let lastId = null;
  /** What the editor saves: `{ collection, id }` to replace a document, `{ collection }` to insert one. */
  let editing = null;

  function readForm() {
    const query = parseJson(form.query.value.trim() || '{}');
    $('#find-query-problem').textContent = query.problem ? `Query ${query.problem}` : '';
    if (query.problem) return null;
    const fields = form.fields.value.split(',').map((f) => f.trim()).filter(Boolean);
    return {
      collection: form.collection.value.trim(),
      query: query.value,
      fields: fields.length ? fields : undefined,
      order: form.order.value.trim() || undefined,
      limit: Number(form.limit.value),
    };
  }

  /** Loads a page: the first (after = null) or the one after id `after`; `note` says what was just done. */
  async function load(after, note = '') {
    const { collection, query, fields, order, limit } = search;
    // Without an order of the user's the documents come by id, and the next
    // page is the ids above the last one shown, AND-ed with the query.
    const pageQuery = after == null ? query : { $and: [query, { id: { $gt: after } }] };
    const documents = await attempt(`finding in ${collection}`, () =>
      app.db.get(collection, { query: pageQuery, fields, order: order ?? BY_ID, limit }),
    );
    if (!documents) return;
    clearError();
    lastId = documents.length ? documents[documents.length - 1].id : after;
    fillTable(results, documents.map((doc) => row(collection, doc)), 'no documents match');
    const full = documents.length === limit;
    $('#next-page').disabled = !full || order != null;
    $('#first-page').disabled = after == null;
    $('#page-status').textContent =
      note +
      `${documents.length} document${documents.length === 1 ? '' : 's'} of ${collection}` +
      (after == null ? '' : ` after id ${after}`) +
      (order != null && full ? '; paging needs the default id order (clear Order)' : '');
  }

  function row(collection, doc) {
    const remove = h('button', { type: 'button' }, 'Delete');
    remove.addEventListener('click', () => confirmDelete(remove, collection, doc.id));
    return [
      doc.id,
      h('pre', {}, JSON.stringify(doc, null, 1)),
      h('span', {},
        h('button', { type: 'button', onclick: () => openEditor(collection, doc.id) }, 'Edit'), ' ', remove),
    ];
  }

  /** Delete asks once more in place: the button becomes a confirmation with a cancel beside it. */
  function confirmDelete(button, collection, id) {
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const confirm = h('button', { type: 'button', class: 'no' }, `Really delete ${id}`);
    const restore = () => {
      confirm.replaceWith(button);
      cancel.remove();
      button.focus();
    };
    cancel.addEventListener('click', restore);
    confirm.addEventListener('click', async () => {
      const deleted = await attempt(`deleting ${id}`, () => app.db.delete(collection, { query: { id } }));
      if (deleted) await load(null, `Deleted ${id} from ${collection}. `);
      else restore();
    });
    button.replaceWith(confirm);
    confirm.after(' ', cancel);
    confirm.focus();
  }

  async function openEditor(collection, id) {
    // The full document, whatever the fields shown.
    const doc = await attempt(`reading ${id}`, () => app.db.getOne(collection, { query: { id } }));
    if (doc === undefined) return;
    if (doc === null) {
      showError(`reading ${id}`, 'the document is gone');
      return;
    }
    editing = { collection, id };
    $('#editor-title').textContent = `Edit ${id} in ${collection}`;
    showEditor(JSON.stringify(doc, null, 2));
  }

  function openInsert() {
    const collection = form.collection.value.trim();
    if (!collection) {
      showError('insert', 'name the collection first');
      form.collection.focus();
      return;
    }
    editing = { collection };
    $('#editor-title').textContent = `Insert into ${collection}`;
    showEditor('{\n  \n}');
  }

  function showEditor(text) {
    editor.hidden = false;
    editorText.value = text;
    validate();
    editorText.focus();
  }

  /** Shows why the text cannot be saved, and allows saving only when it can. */
  function validate() {
    let { value, problem: why } = parseJson(editorText.value);
    if (!why && editing?.id != null && 'id' in value && value.id !== editing.id) why = `the id cannot change (it is ${editing.id})`;
    problem.textContent = why ? `Cannot save: ${why}.` : '';
    editorText.setAttribute('aria-invalid', why ? 'true' : 'false');
    save.disabled = Boolean(why);
    return why ? null : value;
  }

  async function saveEditor(event) {
    event.preventDefault();
    const value = validate();
    if (!value || !editing) return;
    const { collection, id } = editing;
    let done;
    if (id == null) {
      const stored = await attempt(`inserting into ${collection}`, () => app.db.post(collection, value));
      if (!stored) return;
      done = `Inserted ${stored.id} into ${collection}. `;
    } else {
      // PUT replaces the document and keeps its id; DATA must not repeat it.
      const { id: _kept, ...data } = value;
      const changed = await attempt(`saving ${id}`, () => app.db.put(collection, data, { query: { id } }));
      if (!changed) return;
      done = changed.length ? `Saved ${id}. ` : `${id} is gone: nothing saved. `;
    }
    closeEditor();
    if (search?.collection === collection) await load(null, done);
    else $('#page-status').textContent = done;
  }

  function closeEditor() {
    editor.hidden = true;
    editing = null;
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const read = readForm();
    if (!read) return;
    search = read;
    await load(null);
  });
  form.query.addEventListener('input', () => readForm());
  $('#next-page').addEventListener('click', () => load(lastId));
  $('#first-page').addEventListener('click', () => load(null));
  $('#insert').addEventListener('click', openInsert);
  editorText.addEventListener('input', validate);
  editor.addEventListener('submit', saveEditor);
  $('#editor-cancel').addEventListener('click', closeEditor);

  /** Opens the view on `collection`'s first page (the Collections view's links). */
  app.browse = async (collection) => {
    form.collection.value = collection;
    app.show('documents');
    search = readForm();
    if (search) await load(null);
  };
  return {};
}
