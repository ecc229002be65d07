// The live views: Nodes (system.nodes with the Raft roles from /metrics)
// and Locks (system.locks), refreshed each tick while shown, and Changes,
// the NOTIFY feed pushed to this page's connection.
import { $, attempt, fillTable, h, yesNo } from './ui.js';

export function nodesView(app) {
  const table = $('#nodes table');

  async function refresh() {
    const nodes = await attempt('reading system.nodes', () => app.db.get('system.nodes', { order: 'asc(name)' }));
    if (!nodes) return;
    const leader = app.metrics.raftLeader();
    fillTable(
      table,
      nodes.map((node) => [
        node.name === app.nodeName ? h('strong', {}, `${node.name} (this page's node)`) : node.name,
        `${node.host}:${node.port}`,
        yesNo(node.connected),
        yesNo(node.online),
        h('span', { class: node.status }, node.status),
        raftRole(node, leader),
      ]),
    );
    table.dataset.updated = new Date().toISOString();
  }

  return { enter: refresh, tick: refresh };
}

/** `leader` by name from /metrics; a node out of reach may have any role, as far as this node knows. */
function raftRole(node, leader) {
  if (leader == null) return 'unknown (no leader)';
  if (node.name === leader) return h('span', { class: 'leader' }, 'leader');
  return node.online ? 'follower' : 'unknown (offline)';
}

export function locksView(app) {
  const table = $('#locks table');

  async function refresh() {
    // In the lock table's order: keys sorted, each key's holder first, then its queue.
    const locks = await attempt('reading system.locks', () => app.db.get('system.locks'));
    if (!locks) return;
    let key = null;
    let place = 0;
    fillTable(
      table,
      locks.map((lock) => {
        place = lock.path === key ? place + 1 : 0;
        key = lock.path;
        return [lock.path, lock.id, lock.origin, place === 0 ? 'held' : `queued (${place} in line)`];
      }),
      'no locks held or queued',
    );
  }

  return { enter: refresh, tick: refresh };
}

/** How many events the feed keeps on screen. */
const FEED_LENGTH = 200;

export function changesView(app) {
  const form = $('#feed');
  const events = $('#feed-events');
  const status = $('#feed-status');
  /** The running registration: its pattern and the connection it is on. */
  let running = null;

  const onChange = (path) => {
    events.prepend(h('li', {}, `${new Date().toLocaleTimeString()}  ${path}`));
    while (events.children.length > FEED_LENGTH) events.lastElementChild.remove();
  };

  function setRunning(next) {
    running = next;
    $('#feed-start').disabled = next != null;
    $('#feed-stop').disabled = next == null;
    form.querySelector('input').readOnly = next != null;
    status.textContent = next ? `Listening for ${next.pattern}` : 'Stopped.';
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const pattern = $('#feed-pattern').value;
    const db = app.db;
    // The server checks the pattern: an invalid one is refused and shown.
    const ok = await attempt(`listening for ${pattern}`, () => db.on(pattern, onChange).then(() => true));
    if (ok) {
      setRunning({ pattern, db });
      db.addEventListener('close', () => running?.db === db && setRunning(null));
    }
  });
  $('#feed-stop').addEventListener('click', async () => {
    const { pattern, db } = running;
    setRunning(null);
    await attempt('stopping the feed', () => db.off(pattern, onChange));
  });
  $('#feed-clear').addEventListener('click', () => events.replaceChildren());
  return {};
}
