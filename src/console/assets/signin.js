// Sign-in: a pasted super_admin token, checked with whoami before it is kept.

import { call, token, ApiError } from './api.js';
import { h, fill } from './dom.js';

/** Checks `candidate` with the server; resolves to whoami's answer. */
export async function verify(candidate) {
  token.set(candidate);
  try {
    const { body } = await call('/api/v1/admin/whoami');
    return body;
  } catch (error) {
    token.forget();
    throw error;
  }
}

/** Why a refused token was refused, in words for a person. */
export function refusal(error) {
  if (error instanceof ApiError && error.status === 403) return 'This token is not a platform super_admin.';
  if (error instanceof ApiError && error.status === 401) return `The server refused the token: ${error.message}`;
  return error.message;
}

/** The sign-in form; `onSignedIn(whoami)` runs once a token is accepted. */
export function renderSignIn(main, reason, onSignedIn) {
  const field = h('textarea', {
    id: 'token', name: 'token', rows: 4, required: true, spellcheck: 'false', autocomplete: 'off',
    placeholder: 'eyJhbGciOi…',
  });
  const message = h('p', { id: 'sign-in-message', class: reason ? 'notice error' : 'notice', role: 'alert' }, reason ?? '');
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h('form', { class: 'card sign-in', 'aria-labelledby': 'sign-in-title' },
    h('h1', { id: 'sign-in-title' }, 'Sign in'),
    h('p', { class: 'muted' }, 'Paste a platform super_admin token. It stays in this tab only and is forgotten when the tab closes.'),
    h('label', { for: 'token' }, 'Token'),
    field,
    message,
    submit,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    fill(message, 'Checking the token…');
    message.className = 'notice';
    try {
      onSignedIn(await verify(field.value.trim()));
    } catch (error) {
      fill(message, refusal(error));
      message.className = 'notice error';
      submit.disabled = false;
    }
  });
  fill(main, form);
  field.focus();
}
