// Every configured gateway: its session feed's state, its sessions by
// status (each count opens the sessions list filtered to it), its last
// error, and a held snapshot an operator may accept.

import { call, withQuery } from './api.js';
import { fill, h, link, status, text, time } from './dom.js';
import { STATUSES } from './sessions.js';

const POLL_MS = 5000;

export function renderGateways({ main }) {
  document.title = 'Gateways · wa-gateway console';
  const notice = h('p', { class: 'notice', role: 'status' });
  const table = h('div', { class: 'table-wrap', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading gateways…'));
  fill(main, h('h1', {}, 'Gateways'), notice, table);
  const controller = new AbortController();
  const view = new GatewaysTable(table, accept);
  let timer = null;
  let stopped = false;

  async function load() {
    clearTimeout(timer);
    try {
      const { body } = await call('/api/v1/admin/gateways', { signal: controller.signal });
      const changes = await lastHour(body.data, controller.signal);
      if (stopped) return;
      view.show(body.data, changes);
    } catch (error) {
      if (stopped || error.name === 'AbortError') return;
      fill(notice, error.message);
      notice.className = 'notice error';
    }
    if (!stopped) timer = setTimeout(load, POLL_MS);
  }

  async function accept(gateway) {
    try {
      await call(`/api/v1/admin/gateways/${encodeURIComponent(gateway)}:acceptSnapshot`, { method: 'POST', signal: controller.signal });
      fill(notice, `Accepted: the follower of ${gateway} removes the sessions its host no longer holds.`);
      notice.className = 'notice';
    } catch (error) {
      if (error.name === 'AbortError') return;
      fill(notice, error.message);
      notice.className = 'notice error';
    }
    load();
  }

  load();
  return () => {
    stopped = true;
    clearTimeout(timer);
    controller.abort();
  };
}

const HOUR_MS = 3_600_000;
const COUNTED = 500;

/** Each gateway's session events in the last hour: a count, `500+` past a page. */
async function lastHour(gateways, signal) {
  const since = Date.now() - HOUR_MS;
  const counts = await Promise.all(gateways.map(async (g) => {
    const path = withQuery('/api/v1/admin/session-events', { gatewayId: g.id, since, limit: COUNTED });
    const { body } = await call(path, { signal });
    return [g.id, { since, count: body.nextCursor ? `${COUNTED}+` : String(body.data.length) }];
  }));
  return new Map(counts);
}

/**
 * The gateways table, updated in place on every refresh: a row's cells get
 * their new values, but its accept button stays the same element, so a
 * button armed by a first click (and the keyboard focus on it) outlive the
 * refresh. The table is built anew only when the gateways themselves change.
 */
class GatewaysTable {
  constructor(wrap, accept) {
    this.wrap = wrap;
    this.accept = accept;
    this.ids = null;
    this.rows = new Map();
    this.refreshes = 0;
  }

  show(gateways, changes) {
    this.refreshes += 1;
    this.wrap.dataset.refreshes = String(this.refreshes);
    const ids = gateways.map((g) => g.id).join('\n');
    if (!gateways.length) {
      this.ids = ids;
      fill(this.wrap, h('p', { class: 'empty' }, 'No gateway is configured (serve --host GW=URL).'));
      return;
    }
    if (ids !== this.ids) {
      this.ids = ids;
      this.rows.clear();
      const body = h('tbody', {}, gateways.map((g) => this.row(g)));
      fill(this.wrap, h('table', { class: 'gateways' },
        h('thead', {}, h('tr', {},
          ['Gateway', 'Feed', 'Sessions', ...STATUSES, 'Changes (1 h)', 'Last snapshot', 'Last event', 'Last error', ''].map((c) => h('th', { scope: 'col' }, c)))),
        body));
    }
    for (const g of gateways) this.update(g, changes.get(g.id));
  }

  row(g) {
    const cells = cellsOf(g, { since: 0, count: '' }).map((_, i) => h('td', i >= 3 && i < 3 + STATUSES.length ? { 'data-status': STATUSES[i - 3] } : {}));
    const action = h('td', {});
    const tr = h('tr', { 'data-gateway': g.id }, cells, action);
    this.rows.set(g.id, { cells, action, button: null });
    return tr;
  }

  update(g, changes) {
    const row = this.rows.get(g.id);
    cellsOf(g, changes).forEach((content, i) => fill(row.cells[i], content));
    if (g.heldRemovals > 0) {
      if (!row.button) {
        row.button = acceptButton(g.id, this.accept);
        fill(row.action, row.button.element);
      }
      row.button.held(g.heldRemovals);
    } else if (row.button) {
      row.button = null;
      fill(row.action);
    }
  }
}

function cellsOf(g, changes) {
  return [
    h('span', { title: g.hostUrl }, g.id),
    status(g.feed),
    link({ gatewayId: g.id }, String(g.sessions)),
    ...STATUSES.map((s) => link({ gatewayId: g.id, status: s }, String(g.statusCounts[s] ?? 0))),
    link({ view: 'changes', gatewayId: g.id, since: changes.since }, changes.count),
    time(g.lastSnapshotAt),
    time(g.lastEventAt),
    h('span', { class: 'error-text' }, text(g.lastError)),
  ];
}

/** Two clicks: the first says what will happen, the second does it. */
function acceptButton(gateway, accept) {
  const element = h('button', { type: 'button', class: 'danger' }, 'Accept held snapshot…');
  let armed = false;
  let removals = 0;
  element.addEventListener('click', () => {
    if (!armed) {
      armed = true;
      fill(element, `Remove ${removals} session(s)`);
      return;
    }
    element.disabled = true;
    accept(gateway);
  });
  return {
    element,
    held(count) {
      removals = count;
      if (armed) fill(element, `Remove ${removals} session(s)`);
    },
  };
}
