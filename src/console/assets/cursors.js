// Where a paged walk is: the cursor of the page shown, the cursors of the
// pages before it, and the Previous / Next controls that move along them.

import { fill, h } from './dom.js';

export class Cursors {
  constructor() {
    this.behind = [];
    this.current = null;
  }

  /** Back to the first page. */
  restart() {
    this.behind.length = 0;
    this.current = null;
  }

  /** Fills `pager` for `page`; `load` fetches the page `current` names. */
  controls(pager, page, load) {
    const previous = h('button', { type: 'button', disabled: this.behind.length === 0 }, '← Previous');
    const next = h('button', { type: 'button', disabled: !page.nextCursor }, 'Next →');
    previous.addEventListener('click', () => {
      this.current = this.behind.pop() ?? null;
      load();
    });
    next.addEventListener('click', () => {
      this.behind.push(this.current);
      this.current = page.nextCursor;
      load();
    });
    fill(pager, previous, h('span', { class: 'muted' }, `page ${this.behind.length + 1}`), next);
  }
}
