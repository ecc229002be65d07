// /metrics sampled every tick: throughput from canhazdb_requests_total,
// latency from the canhazdb_request_duration_seconds histogram, the Raft
// leader from canhazdb_raft_leader. The last minutes are kept in memory and
// drawn as inline SVG.
import { $, h } from './ui.js';

/** How many samples are kept: 5 minutes at one per 2 s. */
const KEEP = 150;
const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 600;
const HEIGHT = 160;
const PAD = { left: 48, right: 8, top: 10, bottom: 20 };

/** The samples of the Prometheus text format: `[{ name, labels, value }]`. */
export function parsePrometheus(text) {
  const samples = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    for (const [, name, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[name] = value.replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

const REQUESTS = 'canhazdb_requests_total';
const DURATION = 'canhazdb_request_duration_seconds';

/** What one scrape says, summed over every label but the buckets' `le`. */
function summarize(samples, at) {
  const summary = { at, requests: 0, count: 0, sum: 0, buckets: new Map(), leader: null };
  for (const { name, labels, value } of samples) {
    if (name === REQUESTS) summary.requests += value;
    else if (name === `${DURATION}_count`) summary.count += value;
    else if (name === `${DURATION}_sum`) summary.sum += value;
    else if (name === `${DURATION}_bucket`) {
      const le = Number(labels.le);
      summary.buckets.set(le, (summary.buckets.get(le) ?? 0) + value);
    } else if (name === 'canhazdb_raft_leader' && value === 1) summary.leader = labels.node;
  }
  return summary;
}

/** The `q` quantile of the requests between two scrapes, interpolated within its bucket as Prometheus does. */
function quantile(q, before, now) {
  const bounds = [...now.buckets.keys()].sort((a, b) => a - b);
  const total = now.count - before.count;
  if (total <= 0) return null;
  let lower = 0;
  let below = 0;
  for (const bound of bounds) {
    const upto = now.buckets.get(bound) - (before.buckets.get(bound) ?? 0);
    if (upto >= q * total) {
      if (!Number.isFinite(bound)) return lower;
      return lower + ((bound - lower) * (q * total - below)) / Math.max(upto - below, 1e-9);
    }
    lower = bound;
    below = upto;
  }
  return lower;
}

export class MetricsHistory {
  constructor() {
    this.last = null;
    /** Per interval between two scrapes: `{ at, rate, meanMs, p99Ms }`. */
    this.points = [];
  }

  async sample() {
    const response = await fetch('/metrics', { cache: 'no-store' });
    if (!response.ok) throw new Error(`/metrics answered ${response.status}`);
    const now = summarize(parsePrometheus(await response.text()), Date.now());
    const before = this.last;
    this.last = now;
    if (before) {
      const seconds = (now.at - before.at) / 1000;
      const count = now.count - before.count;
      this.points.push({
        at: now.at,
        rate: Math.max(0, now.requests - before.requests) / seconds,
        meanMs: count > 0 ? ((now.sum - before.sum) / count) * 1000 : null,
        p99Ms: count > 0 ? quantile(0.99, before, now) * 1000 : null,
      });
      if (this.points.length > KEEP) this.points.shift();
    }
    this.onSample?.();
  }

  /** The lock group's leader by name, as the last scrape had it (null: none, or not yet scraped). */
  raftLeader() {
    return this.last?.leader ?? null;
  }
}

function svg(tag, attributes = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text != null) element.textContent = text;
  return element;
}

const format = (value) => (value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2));

/** Draws `series` (`[{ values, className }]`, one value or null per point) over the last `KEEP` intervals. */
function draw(target, series) {
  const values = series.flatMap((s) => s.values).filter((v) => v != null);
  const top = Math.max(...values, 0) * 1.1 || 1;
  const innerWidth = WIDTH - PAD.left - PAD.right;
  const innerHeight = HEIGHT - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (innerWidth * i) / (KEEP - 1);
  const y = (v) => PAD.top + innerHeight * (1 - v / top);
  const children = [
    svg('line', { class: 'axis', x1: PAD.left, y1: y(0), x2: WIDTH - PAD.right, y2: y(0) }),
    svg('line', { class: 'axis', x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: y(0) }),
    svg('text', { x: 2, y: PAD.top + 8 }, format(top)),
    svg('text', { x: 2, y: y(0) }, '0'),
    svg('text', { x: PAD.left, y: HEIGHT - 4 }, '5 min ago'),
    svg('text', { x: WIDTH - PAD.right - 24, y: HEIGHT - 4 }, 'now'),
  ];
  for (const { values, className } of series) {
    // Right-aligned: the newest point at "now".
    const offset = KEEP - values.length;
    const points = values.map((v, i) => (v == null ? null : `${x(i + offset).toFixed(1)},${y(v).toFixed(1)}`)).filter(Boolean);
    if (points.length) children.push(svg('polyline', { class: `line ${className}`, points: points.join(' ') }));
  }
  target.replaceChildren(...children);
  target.dataset.points = String(values.length);
}

export function metricsView(app) {
  const history = app.metrics;

  function render() {
    if ($('#metrics').hidden) return;
    const points = history.points;
    const last = points[points.length - 1];
    draw($('#throughput'), [{ values: points.map((p) => p.rate), className: 'first' }]);
    draw($('#latency'), [
      { values: points.map((p) => p.meanMs), className: 'first' },
      { values: points.map((p) => p.p99Ms), className: 'second' },
    ]);
    $('#throughput-latest').textContent = last ? `Now: ${format(last.rate)} requests/s.` : 'Waiting for a second sample…';
    $('#latency-latest').replaceChildren(
      last?.meanMs != null
        ? h('span', {}, h('span', { class: 'first' }, `mean (blue) ${format(last.meanMs)} ms`), ', ',
            h('span', { class: 'second' }, `p99 (red) ≈ ${format(last.p99Ms)} ms`))
        : 'No requests in the last interval.',
    );
  }

  history.onSample = render;
  return { enter: render };
}
