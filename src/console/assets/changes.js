// The fleet's session events, live: the newest page under the filters
// (organization, gateway, status entered), then every new event as it
// commits, newest on top. Pause stops the stream; Resume asks again after
// the last event shown, so nothing is missed or shown twice.

import { call, stream, withQuery } from './api.js';
import { fill, h, link, status, text, time } from './dom.js';
import { STATUSES } from './sessions.js';

/** Rows kept on the page; older ones drop off the bottom. */
const KEEP = 500;

export function renderChanges({ main, query, navigate }) {
  document.title = 'Changes · wa-gateway console';
  const filters = {
    organizationId: query.get('organizationId') ?? '',
    gatewayId: query.get('gatewayId') ?? '',
    status: query.get('status') ?? '',
    since: query.get('since') ?? '',
  };
  const form = filterForm(filters, navigate);
  const notice = h('p', { class: 'notice', role: 'status' });
  const pause = h('button', { id: 'pause-changes', type: 'button', 'aria-pressed': 'false' }, 'Pause');
  const state = h('span', { id: 'changes-state', class: 'muted', 'aria-live': 'polite' }, 'Loading…');
  const body = h('tbody', { id: 'changes' });
  fill(main, h('h1', {}, 'Changes'), form, h('div', { class: 'actions' }, pause, state), notice,
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Recorded', 'Session', 'Organization', 'Gateway', 'Change', 'Source'].map((c) => h('th', { scope: 'col' }, c)))),
      body)));

  const controller = new AbortController();
  let following = null;
  let last = null;
  let paused = false;
  const matches = (e) => (!filters.organizationId || e.organizationId === filters.organizationId)
    && (!filters.gatewayId || e.gatewayId === filters.gatewayId)
    && (!filters.status || e.toStatus === filters.status);

  const shown = new Set();
  function add(event, atTop) {
    if (shown.has(event.cursor)) return;
    shown.add(event.cursor);
    const row = h('tr', { 'data-kind': event.kind }, eventCells(event, true).map((c) => h('td', {}, c)));
    body.querySelector('tr.placeholder')?.remove();
    if (atTop) body.prepend(row);
    else body.append(row);
    while (body.rows.length > KEEP) body.lastElementChild.remove();
  }

  function follow() {
    following = new AbortController();
    state.textContent = 'Live';
    const path = withQuery('/api/v1/admin/session-events:watch', { after: last });
    stream(path, (line) => {
      if (line?.error) {
        fill(notice, line.error.message);
        notice.className = 'notice error';
        return;
      }
      last = line.cursor;
      if (matches(line)) add(line, true);
    }, { signal: AbortSignal.any([controller.signal, following.signal]) }).catch((error) => {
      if (error.name === 'AbortError') return;
      fill(notice, error.message);
      notice.className = 'notice error';
      state.textContent = 'Stopped';
    });
  }

  pause.addEventListener('click', () => {
    paused = !paused;
    pause.setAttribute('aria-pressed', String(paused));
    fill(pause, paused ? 'Resume' : 'Pause');
    if (paused) {
      following?.abort();
      state.textContent = 'Paused';
    } else follow();
  });

  // The fleet's newest event first: the stream starts after it. Then the
  // newest page under the filters (an event in both shows once).
  const { signal } = controller;
  call(withQuery('/api/v1/admin/session-events', { limit: 1 }), { signal })
    .then(({ body: newest }) => {
      last = newest.data[0]?.cursor ?? null;
      return call(withQuery('/api/v1/admin/session-events', { ...filters, limit: 50 }), { signal });
    })
    .then(({ body: page }) => {
      for (const event of page.data) add(event, false);
      if (!page.data.length) fill(body, h('tr', { class: 'placeholder' }, h('td', { colspan: 6, class: 'empty' }, 'No changes yet; new ones appear here as they happen.')));
      follow();
    }, (error) => {
      if (error.name === 'AbortError') return;
      fill(notice, error.message);
      notice.className = 'notice error';
      state.textContent = 'Stopped';
    });

  return () => controller.abort();
}

function filterForm(filters, navigate) {
  const input = (name, label) => h('label', {}, `${label} `, h('input', { name, value: filters[name], autocomplete: 'off' }));
  const select = h('select', { name: 'status' }, h('option', { value: '' }, 'any status'),
    STATUSES.map((s) => h('option', { value: s, selected: s === filters.status }, s)));
  const form = h('form', { class: 'filters', role: 'search' },
    input('organizationId', 'Organization'), input('gatewayId', 'Gateway'),
    h('label', {}, 'Entered ', select), h('button', { type: 'submit' }, 'Apply'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const params = new URLSearchParams({ view: 'changes' });
    for (const [key, value] of data) if (value) params.set(key, value);
    navigate(`./?${params}`);
  });
  return form;
}

/** What changed, in words: `working → scan_qr_code`, `moved from gw-2`. */
export function change(e) {
  const parts = [];
  if (e.kind === 'appeared') parts.push('appeared as ', status(e.toStatus));
  if (e.kind === 'removed') parts.push('removed (was ', status(e.fromStatus), ')');
  if (e.kind === 'moved') parts.push(`moved from ${e.fromGatewayId ?? '—'}`);
  if (e.kind !== 'appeared' && e.kind !== 'removed' && e.fromStatus) parts.push(parts.length ? ', ' : '', status(e.fromStatus), ' → ', status(e.toStatus));
  return h('span', { class: 'change', 'data-kind': e.kind }, parts);
}

/** One event's cells; `withSession` adds the session and organization. */
export function eventCells(e, withSession) {
  const cells = [time(e.recordedAt)];
  if (withSession) cells.push(link({ view: 'session', id: e.sessionId }, e.sessionId), e.organizationId);
  cells.push(text(e.gatewayId), change(e), e.source);
  return cells;
}
