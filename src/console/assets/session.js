// One session: its record, its current or latest backfill (start, cancel,
// and live progress from the NDJSON watch), and the data it stored.

import { ApiError, call, sessionPath, stream, withQuery } from './api.js';
import { fill, h, link, status, text, time } from './dom.js';
import { walk } from './pages.js';
import { eventCells } from './changes.js';

const FINISHED = new Set(['succeeded', 'failed']);

export function renderSession({ main, query }) {
  const id = query.get('id');
  const tab = query.get('tab') === 'groups' ? 'groups' : 'contacts';
  const group = query.get('group');
  const controller = new AbortController();
  const { signal } = controller;
  document.title = `${id} · wa-gateway console`;

  const record = h('section', { class: 'card', 'aria-labelledby': 'record-title' },
    h('h2', { id: 'record-title' }, 'Session'), h('p', { class: 'muted' }, 'Loading the session…'));
  // A backfill that succeeds while the page is open shows its data at once.
  const backfill = backfillPanel(id, signal, () => storedData(data, id, tab, group, signal));
  const data = h('section', { class: 'card', 'aria-labelledby': 'data-title' });
  const history = h('div', { id: 'history' });
  fill(main,
    h('p', {}, link({}, '← All sessions')),
    h('h1', {}, id),
    h('div', { class: 'columns' }, record, backfill.element),
    h('section', { class: 'card', 'aria-labelledby': 'history-title' }, h('h2', { id: 'history-title' }, 'Status history'), history),
    data,
  );
  // Newest first, paged: when it appeared, each status change and move.
  walk(history, sessionPath(id, '/events'), {
    header: ['Recorded', 'Gateway', 'Change', 'Source'],
    row: (e) => eventCells(e, false),
    empty: 'No changes are kept for this session.',
    signal,
  });

  call(sessionPath(id), { signal }).then(({ body }) => {
    document.title = `${body.label ?? id} · wa-gateway console`;
    fill(record, h('h2', { id: 'record-title' }, body.label ?? 'Session'), sessionRecord(body));
  }, (error) => {
    if (error.name !== 'AbortError') fill(record, h('h2', { id: 'record-title' }, 'Session'), h('p', { class: 'notice error' }, error.message));
  });
  backfill.refresh();
  storedData(data, id, tab, group, signal);

  return () => {
    controller.abort();
    backfill.stop();
  };
}

function sessionRecord(s) {
  const rows = [
    ['Organization', s.organizationId], ['Status', status(s.status)], ['Gateway', text(s.gatewayId)],
    ['Phone', text(s.phoneNumber)], ['JID', text(s.waJid)], ['LID', text(s.waLid)],
    ['Created by', text(s.createdByUserId)], ['Admin session', s.isAdminSession ? 'yes' : 'no'],
    ['Auto read', s.autoRead ? 'yes' : 'no'], ['Presence typing', s.presenceTyping ? 'yes' : 'no'],
    ['Rate', `${s.ratePerMin ?? '—'} / min, ${s.ratePerHour ?? '—'} / hour`],
    ['Created', time(s.createdAt)], ['Updated', time(s.updatedAt)], ['Last connected', time(s.lastConnectedAt)],
    ['Id', s.id],
  ];
  return h('dl', { class: 'record' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

/** The backfill card: the job, its live progress, Start and Cancel. */
function backfillPanel(id, signal, onSucceeded) {
  const job = h('div', { id: 'job', 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading the backfill…'));
  const notice = h('p', { id: 'backfill-message', class: 'notice', role: 'status' });
  const start = h('button', { id: 'start-backfill', type: 'button' }, 'Start backfill');
  const cancel = h('button', { id: 'cancel-backfill', type: 'button', class: 'danger' }, 'Cancel');
  const element = h('section', { class: 'card', 'aria-labelledby': 'backfill-title' },
    h('h2', { id: 'backfill-title' }, 'Backfill'), job, notice, h('div', { class: 'actions' }, start, cancel));
  let watching = null;
  let ticker = null;
  let current = null;

  const say = (message, kind = 'error') => {
    fill(notice, message ?? '');
    notice.className = `notice ${message ? kind : ''}`;
  };

  function show(value) {
    const succeededNow = value.status === 'succeeded' && current && current.id === value.id && current.status !== 'succeeded';
    current = value;
    if (succeededNow) onSucceeded();
    clearInterval(ticker);
    const draw = () => fill(job, jobView(value));
    draw();
    if (!FINISHED.has(value.status)) ticker = setInterval(draw, 1000);
    cancel.disabled = FINISHED.has(value.status);
  }

  function follow(value) {
    show(value);
    if (FINISHED.has(value.status) || watching) return;
    watching = new AbortController();
    const stop = () => {
      watching = null;
    };
    const path = withQuery(sessionPath(id, '/backfill:watch'), { jobId: value.id });
    stream(path, (line) => {
      if (line?.error) say(line.error.message);
      else if (line) show(line);
    }, { signal: AbortSignal.any([signal, watching.signal]) }).then(stop, (error) => {
      stop();
      if (error.name !== 'AbortError') say(error.message);
    });
  }

  async function refresh() {
    try {
      const { body } = await call(sessionPath(id, '/backfill'), { signal });
      follow(body);
    } catch (error) {
      if (error.name === 'AbortError') return;
      if (error instanceof ApiError && error.status === 404) {
        fill(job, h('p', { class: 'empty' }, error.details?.reason === 'BACKFILL_NOT_FOUND'
          ? 'No backfill has run for this session since the server started.' : error.message));
        cancel.disabled = true;
      } else say(error.message);
    }
  }

  start.addEventListener('click', async () => {
    start.disabled = true;
    say(null);
    try {
      const { body } = await call(sessionPath(id, ':backfill'), { method: 'POST', signal });
      follow(body);
    } catch (error) {
      if (error.name !== 'AbortError') say(error.message);
    } finally {
      start.disabled = false;
    }
  });
  cancel.addEventListener('click', async () => {
    say(null);
    try {
      const { body } = await call(sessionPath(id, '/backfill:cancel'), { method: 'POST', signal });
      show(body);
    } catch (error) {
      if (error.name !== 'AbortError') say(error.message);
    }
  });

  return {
    element,
    refresh,
    stop: () => {
      clearInterval(ticker);
      watching?.abort();
    },
    get job() {
      return current;
    },
  };
}

function jobView(job) {
  const end = job.finishedAt ?? Date.now();
  const elapsed = job.startedAt ? Math.max(0, (end - job.startedAt) / 1000).toFixed(1) : '—';
  return h('dl', { class: 'record job', 'data-status': job.status },
    h('dt', {}, 'Status'), h('dd', { id: 'job-status' }, status(job.status)),
    h('dt', {}, 'Contacts'), h('dd', { id: 'job-contacts' }, String(job.contacts)),
    h('dt', {}, 'Groups'), h('dd', { id: 'job-groups' }, String(job.groups)),
    h('dt', {}, 'Members'), h('dd', { id: 'job-members' }, String(job.groupMembers)),
    h('dt', {}, 'Elapsed'), h('dd', {}, `${elapsed} s`),
    h('dt', {}, 'Started'), h('dd', {}, time(job.startedAt)),
    h('dt', {}, 'Finished'), h('dd', {}, time(job.finishedAt)),
    h('dt', {}, 'Error'), h('dd', { id: 'job-error' }, text(job.error)),
    h('dt', {}, 'Job'), h('dd', { class: 'ids' }, job.id),
  );
}

/** Contacts, groups, and one group's participants, as the API pages them. */
function storedData(section, id, tab, group, signal) {
  const tabs = h('nav', { class: 'tabs', 'aria-label': 'Stored data' },
    link({ view: 'session', id, tab: 'contacts' }, 'Contacts'),
    link({ view: 'session', id, tab: 'groups' }, 'Groups'));
  tabs.querySelectorAll('a')[tab === 'groups' ? 1 : 0].setAttribute('aria-current', 'page');
  const list = h('div', { id: 'stored' });
  if (group) {
    fill(section, h('h2', { id: 'data-title' }, 'Participants of ', h('span', { class: 'ids' }, group)), tabs,
      h('p', {}, link({ view: 'session', id, tab: 'groups' }, '← All groups')), list);
    walk(list, sessionPath(id, `/groups/${encodeURIComponent(group)}/participants`), {
      header: ['Name', 'JID', 'LID', 'Phone', 'Role'],
      row: (p) => [text(p.displayName), p.jid, text(p.lid), text(p.phoneNumber),
        p.isSuperAdmin ? 'super admin' : p.isAdmin ? 'admin' : 'member'],
      empty: 'This group has no stored participants.',
      signal,
    });
  } else if (tab === 'groups') {
    fill(section, h('h2', { id: 'data-title' }, 'Stored groups'), tabs, list);
    walk(list, sessionPath(id, '/groups'), {
      header: ['Name', 'JID', 'Members', 'Topic', 'Created'],
      row: (g) => [link({ view: 'session', id, tab: 'groups', group: g.jid }, g.name ?? g.jid), g.jid,
        String(g.participantCount), text(g.topic), time(g.createdAt)],
      empty: 'No stored groups. A backfill stores the groups this number has joined.',
      signal,
    });
  } else {
    fill(section, h('h2', { id: 'data-title' }, 'Stored contacts'), tabs, list);
    walk(list, sessionPath(id, '/contacts'), {
      header: ['Name', 'Push name', 'JID', 'LID', 'Phone', 'Business'],
      row: (c) => [text(c.fullName ?? c.firstName), text(c.pushName), c.jid, text(c.lid), text(c.phoneNumber), text(c.businessName)],
      empty: 'No stored contacts. Start a backfill to pull them from the session host.',
      signal,
    });
  }
}
