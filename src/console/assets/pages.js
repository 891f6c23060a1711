// A paged walk over one of the API's lists: Previous and Next follow
// nextCursor; a CURSOR_STALE answer (a newer backfill was published under
// the walk) restarts it from the first page and says so.

import { call, withQuery } from './api.js';
import { Cursors } from './cursors.js';
import { fill, h } from './dom.js';

const PAGE_SIZE = 50;

/**
 * Fills `container` with the walk over `path`: `header` names the columns,
 * `row(item)` gives one row's cells, `empty` is what an empty list says.
 */
export function walk(container, path, { header, row, empty, signal }) {
  const notice = h('p', { class: 'notice', role: 'status' });
  const body = h('div', { class: 'table-wrap' }, h('p', { class: 'muted' }, 'Loading…'));
  const pager = h('div', { class: 'pager' });
  fill(container, notice, body, pager);
  const cursors = new Cursors();

  async function load() {
    try {
      const { body: page } = await call(withQuery(path, { limit: PAGE_SIZE, cursor: cursors.current }), { signal });
      show(page);
    } catch (error) {
      if (error.name === 'AbortError') return;
      if (error.details?.reason === 'CURSOR_STALE' && cursors.current) {
        cursors.restart();
        fill(notice, 'A newer backfill replaced this data while you were paging; the list starts again from its first page.');
        notice.className = 'notice warn';
        return load();
      }
      fill(notice, error.message);
      notice.className = 'notice error';
      fill(body);
    }
  }

  function show(page) {
    fill(body, page.data.length
      ? h('table', {},
        h('thead', {}, h('tr', {}, header.map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, page.data.map((item) => h('tr', {}, row(item).map((cell) => h('td', {}, cell))))))
      : h('p', { class: 'empty' }, empty));
    cursors.controls(pager, page, load);
  }

  load();
}
