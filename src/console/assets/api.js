// The REST API, with the token this tab signed in with. The token lives in
// sessionStorage only and travels in the Authorization header, never in a
// URL the server sees.

const KEY = 'wa-gateway.console.token';

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  forget: () => sessionStorage.removeItem(KEY),
};

/** An answer in the error envelope (or a failure to get any answer). */
export class ApiError extends Error {
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

const refusals = new Set();

/** `listener(error)` runs when the server refuses the token (401 or 403). */
export function onRefused(listener) {
  refusals.add(listener);
}

/**
 * Calls `path`. Resolves to `{ body, etag }`, or `{ notModified: true }`
 * when `etag` still matches; rejects with an ApiError.
 */
export async function call(path, { method = 'GET', etag = null, signal } = {}) {
  const response = await send(path, { method, etag, signal });
  if (response.status === 304) return { notModified: true, etag };
  return { body: await response.json(), etag: response.headers.get('ETag') };
}

/** Follows an NDJSON stream, calling `onLine` with each parsed line. */
export async function stream(path, onLine, { signal } = {}) {
  const response = await send(path, { method: 'GET', signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let pending = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += value;
    let newline;
    while ((newline = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, newline).trim();
      pending = pending.slice(newline + 1);
      if (line) onLine(JSON.parse(line));
    }
  }
  if (pending.trim()) onLine(JSON.parse(pending));
}

async function send(path, { method, etag, signal }) {
  const headers = { Accept: 'application/json' };
  const current = token.get();
  if (current) headers.Authorization = `Bearer ${current}`;
  if (etag) headers['If-None-Match'] = etag;
  let response;
  try {
    response = await fetch(path, { method, headers, signal, cache: 'no-store', credentials: 'omit' });
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, 'unreachable', 'The server did not answer. Is wa-gateway running?');
  }
  if (response.ok || response.status === 304) return response;
  const error = await envelope(response);
  if (response.status === 401 || response.status === 403) refusals.forEach((listener) => listener(error));
  throw error;
}

async function envelope(response) {
  try {
    const { error } = await response.json();
    return new ApiError(response.status, error.code, error.message, error.details ?? {});
  } catch {
    return new ApiError(response.status, 'unknown', `The server answered ${response.status}.`);
  }
}

/** The path of one session's resource: the id is percent-encoded whole. */
export function sessionPath(id, tail = '') {
  return `/api/v1/admin/sessions/${encodeURIComponent(id)}${tail}`;
}

/** `path` with the query parameters that have a value. */
export function withQuery(path, query) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== null && value !== undefined && value !== '') params.set(key, value);
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}
