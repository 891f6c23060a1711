// Every configured gateway: its session feed's state, its sessions by
// status (each count opens the sessions list filtered to it), its last
// error, and a held snapshot an operator may accept.

import { call } from './api.js';
import { fill, h, link, status, text, time } from './dom.js';
import { STATUSES } from './sessions.js';

const POLL_MS = 5000;

export function renderGateways({ main }) {
  document.title = 'Gateways · wa-gateway console';
  const notice = h('p', { class: 'notice', role: 'status' });
  const table = h('div', { class: 'table-wrap', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading gateways…'));
  fill(main, h('h1', {}, 'Gateways'), notice, table);
  const controller = new AbortController();
  let timer = null;
  let stopped = false;

  async function load() {
    clearTimeout(timer);
    try {
      const { body } = await call('/api/v1/admin/gateways', { signal: controller.signal });
      if (stopped) return;
      fill(table, body.data.length ? gatewaysTable(body.data, accept) : h('p', { class: 'empty' }, 'No gateway is configured (serve --host GW=URL).'));
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

function gatewaysTable(gateways, accept) {
  return h('table', { class: 'gateways' },
    h('thead', {}, h('tr', {},
      ['Gateway', 'Feed', 'Sessions', ...STATUSES, 'Last snapshot', 'Last event', 'Last error', ''].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, gateways.map((g) => h('tr', { 'data-gateway': g.id },
      h('td', {}, h('span', { title: g.hostUrl }, g.id)),
      h('td', {}, status(g.feed)),
      h('td', {}, link({ gatewayId: g.id }, String(g.sessions))),
      STATUSES.map((s) => h('td', { 'data-status': s }, link({ gatewayId: g.id, status: s }, String(g.statusCounts[s] ?? 0)))),
      h('td', {}, time(g.lastSnapshotAt)),
      h('td', {}, time(g.lastEventAt)),
      h('td', { class: 'error-text' }, text(g.lastError)),
      h('td', {}, g.heldRemovals > 0 ? acceptButton(g, accept) : null),
    ))),
  );
}

/** Two clicks: the first says what will happen, the second does it. */
function acceptButton(gateway, accept) {
  const button = h('button', { type: 'button', class: 'danger' }, 'Accept held snapshot…');
  let armed = false;
  button.addEventListener('click', () => {
    if (!armed) {
      armed = true;
      fill(button, `Remove ${gateway.heldRemovals} session(s)`);
      return;
    }
    button.disabled = true;
    accept(gateway.id);
  });
  return button;
}
