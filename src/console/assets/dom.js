// Building the page. Every value that comes from the API goes in as a text
// node or an attribute value, never through an HTML parser: session labels,
// push names and group names are other people's input.

/** An element with `props` (attributes; `class`; `on<event>` listeners) and children. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

/** Replaces everything inside `el` with `children`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** A link inside the console: `query` becomes the URL's query string. */
export function link(query, ...children) {
  return h('a', { href: href(query), 'data-nav': true }, ...children);
}

export function href(query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== null && value !== undefined && value !== '') params.set(key, value);
  }
  const text = params.toString();
  return text ? `./?${text}` : './';
}

/** A time in the browser's zone, with the exact milliseconds on hover. */
export function time(ms) {
  if (ms === null || ms === undefined) return h('span', { class: 'muted' }, '—');
  const at = new Date(ms);
  return h('time', { datetime: at.toISOString(), title: `${ms} ms since the epoch` }, at.toLocaleString());
}

/** A status as a colour and a word. */
export function status(word) {
  const known = word ?? 'unknown';
  return h('span', { class: `status status-${known}` }, h('span', { class: 'dot', 'aria-hidden': 'true' }), known);
}

/** A value, or a dash when the API says null. */
export function text(value) {
  return value === null || value === undefined || value === '' ? h('span', { class: 'muted' }, '—') : String(value);
}
