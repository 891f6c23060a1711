// Every session across organizations: filters held in the URL's query,
// pages following nextCursor, and a poll with If-None-Match while open.

import { call, withQuery } from './api.js';
import { Cursors } from './cursors.js';
import { fill, h, href, link, status, text, time } from './dom.js';

export const STATUSES = ['working', 'scan_qr_code', 'starting', 'stopped', 'failed'];
const POLL_MS = 3000;
const PAGE_SIZE = 50;

export function renderSessions({ main, query, navigate }) {
  const filters = {
    organizationId: query.get('organizationId') ?? '',
    status: query.get('status') ?? '',
    gatewayId: query.get('gatewayId') ?? '',
  };
  document.title = 'Sessions · wa-gateway console';
  const table = h('div', { class: 'table-wrap', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading sessions…'));
  const pager = h('div', { class: 'pager' });
  const notice = h('p', { class: 'notice', role: 'status' });
  fill(main,
    h('h1', {}, 'Sessions'),
    filterForm(filters, (chosen) => navigate(href(chosen))),
    notice,
    table,
    pager,
  );

  const cursors = new Cursors();
  let etag = null;
  let timer = null;
  let stopped = false;
  const controller = new AbortController();

  async function load({ poll = false } = {}) {
    clearTimeout(timer);
    const path = withQuery('/api/v1/admin/sessions', { ...filters, limit: PAGE_SIZE, cursor: cursors.current });
    try {
      const answer = await call(path, { etag: poll ? etag : null, signal: controller.signal });
      if (stopped) return;
      fill(notice);
      if (!answer.notModified) {
        etag = answer.etag;
        showPage(answer.body);
      }
    } catch (error) {
      if (stopped || error.name === 'AbortError') return;
      fill(notice, error.message);
      notice.className = 'notice error';
      if (!poll) fill(table);
    }
    if (!stopped) timer = setTimeout(() => load({ poll: !document.hidden }), POLL_MS);
  }

  function showPage(page) {
    // For the first-load measurement (tests/it/demo.rs).
    if (!performance.getEntriesByName('first-table').length) performance.mark('first-table');
    fill(table, page.data.length ? sessionsTable(page.data) : h('p', { class: 'empty' }, emptyText(filters)));
    cursors.controls(pager, page, load);
  }

  load();
  return () => {
    stopped = true;
    clearTimeout(timer);
    controller.abort();
  };
}

function emptyText(filters) {
  const any = Object.values(filters).some(Boolean);
  return any ? 'No session matches these filters.' : 'No sessions yet. Import some with “wa-gateway sessions import”.';
}

function filterForm(filters, onApply) {
  const org = h('input', { id: 'filter-org', name: 'organizationId', value: filters.organizationId, placeholder: 'any' });
  const gateway = h('input', { id: 'filter-gateway', name: 'gatewayId', value: filters.gatewayId, placeholder: 'any' });
  const state = h('select', { id: 'filter-status', name: 'status' },
    h('option', { value: '' }, 'any'),
    STATUSES.map((s) => h('option', { value: s, selected: s === filters.status }, s)),
  );
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter sessions' },
    h('label', { for: 'filter-org' }, 'Organization'), org,
    h('label', { for: 'filter-status' }, 'Status'), state,
    h('label', { for: 'filter-gateway' }, 'Gateway'), gateway,
    h('button', { type: 'submit' }, 'Apply'),
    h('button', { type: 'reset' }, 'Clear'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    onApply({ organizationId: org.value.trim(), status: state.value, gatewayId: gateway.value.trim() });
  });
  form.addEventListener('reset', (event) => {
    event.preventDefault();
    onApply({});
  });
  return form;
}

function sessionsTable(sessions) {
  return h('table', { class: 'sessions' },
    h('thead', {}, h('tr', {},
      ['Organization', 'Label', 'Phone', 'Status', 'Gateway', 'JID / LID', 'Last connected'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, sessions.map((s) => h('tr', { 'data-session': s.id },
      h('td', {}, s.organizationId),
      h('td', {}, link({ view: 'session', id: s.id }, s.label ?? s.id)),
      h('td', {}, text(s.phoneNumber)),
      h('td', {}, status(s.status)),
      h('td', {}, text(s.gatewayId)),
      h('td', { class: 'ids' }, text(s.waJid), h('br'), text(s.waLid)),
      h('td', {}, time(s.lastConnectedAt)),
    ))),
  );
}
