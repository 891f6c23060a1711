// The console's shell: sign-in state, the token's expiry, and which view the
// URL's query names. Views get a context and return a function that stops
// what they started (polling, streams).

import { onRefused, token } from './api.js';
import { fill, h } from './dom.js';
import { renderSignIn, refusal, verify } from './signin.js';
import { renderSessions } from './sessions.js';
import { renderSession } from './session.js';
import { renderGateways } from './gateways.js';
import { renderChanges } from './changes.js';

const main = document.getElementById('main');
const who = document.getElementById('who');
const nav = document.getElementById('nav');
const signOutButton = document.getElementById('sign-out');

let stopView = () => {};
let expiryTimer = null;
let signedIn = null;

/** Longest delay setTimeout honours. */
const MAX_TIMEOUT = 2 ** 31 - 1;

function showSignIn(reason) {
  stopView();
  stopView = () => {};
  clearTimeout(expiryTimer);
  signedIn = null;
  token.forget();
  nav.hidden = true;
  signOutButton.hidden = true;
  fill(who);
  document.title = 'Sign in · wa-gateway console';
  renderSignIn(main, reason, acceptSignIn);
}

function acceptSignIn(whoami) {
  signedIn = whoami;
  nav.hidden = false;
  signOutButton.hidden = false;
  const until = whoami.validUntil;
  fill(who, h('span', {}, whoami.subject), until ? h('span', { class: 'muted' }, ` · until ${new Date(until).toLocaleString()}`) : null);
  clearTimeout(expiryTimer);
  if (until) {
    const left = until - Date.now();
    const expire = () => {
      if (Date.now() >= until) showSignIn(`Your token expired at ${new Date(until).toLocaleString()}. Paste a new one.`);
      else expiryTimer = setTimeout(expire, Math.min(until - Date.now(), MAX_TIMEOUT));
    };
    expiryTimer = setTimeout(expire, Math.max(0, Math.min(left, MAX_TIMEOUT)));
  }
  render();
}

/** Renders the view the URL names. */
function render() {
  if (!signedIn) return;
  stopView();
  const query = new URLSearchParams(location.search);
  const context = { main, query, navigate };
  main.focus({ preventScroll: true });
  if (query.get('view') === 'session' && query.get('id')) stopView = renderSession(context);
  else if (query.get('view') === 'gateways') stopView = renderGateways(context);
  else if (query.get('view') === 'changes') stopView = renderChanges(context);
  else stopView = renderSessions(context);
}

/** Moves to `href` inside the console without reloading the page. */
function navigate(target, { replace = false } = {}) {
  const url = new URL(target, location.href);
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  render();
}

/** A `#token=…` fragment signs in, then leaves the address bar. */
async function takeTokenFromFragment() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const offered = fragment.get('token');
  if (!offered) return false;
  history.replaceState(null, '', location.pathname + location.search);
  try {
    acceptSignIn(await verify(offered));
  } catch (error) {
    showSignIn(refusal(error));
  }
  return true;
}

async function start() {
  if (await takeTokenFromFragment()) return;
  const kept = token.get();
  if (!kept) return showSignIn(null);
  try {
    acceptSignIn(await verify(kept));
  } catch (error) {
    showSignIn(refusal(error));
  }
}

// Only a signed-in console is sent back to sign-in; sign-in reports its own.
onRefused((error) => {
  if (signedIn) showSignIn(refusal(error));
});
window.addEventListener('hashchange', takeTokenFromFragment);
window.addEventListener('popstate', render);
signOutButton.addEventListener('click', () => showSignIn('Signed out. The token is forgotten.'));
document.addEventListener('click', (event) => {
  const anchor = event.target.closest('a[data-nav]');
  if (!anchor || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(anchor.getAttribute('href'));
});
start();
