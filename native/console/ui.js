// DOM helpers shared by the views. Text always goes in through
// textContent: documents and node names are data, never markup.

export const $ = (selector, root = document) => root.querySelector(selector);

/** An element with attributes (`class`, `data-*`, …) and children (nodes or text). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value == null) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  element.append(...children.filter((child) => child != null));
  return element;
}

/** Replaces the rows of `table`'s body with `rows` (arrays of cells: nodes or text). */
export function fillTable(table, rows, empty = 'none') {
  const body = table.tBodies[0];
  if (rows.length === 0) {
    body.replaceChildren(h('tr', {}, h('td', { colspan: table.tHead.rows[0].cells.length }, empty)));
    return;
  }
  body.replaceChildren(...rows.map((cells) => h('tr', {}, ...cells.map((cell) => h('td', {}, cell)))));
}

/** `yes`/`no` with a class for its colour. */
export const yesNo = (value) => h('span', { class: value ? 'yes' : 'no' }, value ? 'yes' : 'no');

const alert = () => $('#error');

/** Shows a failure (a server error keeps its status name) in the page's alert. */
export function showError(what, error) {
  const status = error?.statusName ? ` (${error.statusName})` : '';
  alert().textContent = `${what}: ${error?.message ?? error}${status}`;
}

export function clearError() {
  alert().textContent = '';
}

/**
 * Runs `work`; a rejection is shown in the alert instead of escaping as an
 * unhandled rejection. Resolves to its value, or undefined when it failed.
 */
export async function attempt(what, work) {
  try {
    return await work();
  } catch (error) {
    showError(what, error);
    return undefined;
  }
}

/** Parses `text` as JSON; `{ value }` or `{ problem }` saying why not. */
export function parseJson(text, { object = true } = {}) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { problem: `not valid JSON: ${error.message}` };
  }
  if (object && (value === null || typeof value !== 'object' || Array.isArray(value))) {
    return { problem: 'must be a JSON object ({ … })' };
  }
  return { value };
}
