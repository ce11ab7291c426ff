// Mercure hub debugging page. Plain DOM, no dependency; everything rendered goes through
// textContent: no received or typed string is ever parsed as HTML.
'use strict';

const HUB = '/.well-known/mercure';
const SUBS_PATH = HUB + '/subscriptions';
const SUBS_TOPIC = SUBS_PATH + '{/topic}{/subscriber}';
const COOKIE = 'mercureAuthorization';
const MAX_EVENTS = 500;

const $ = (id) => document.getElementById(id);
const lines = (s) => s.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
const list = (s) => s.split(',').map((l) => l.trim()).filter(Boolean);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function setStatus(node, text, state) {
  node.textContent = text;
  node.dataset.state = state || '';
}

// The token rides in a cookie scoped to the hub path, so the page's own requests do not carry it.
function setCookie(token) {
  const attrs = '; path=' + HUB + '; SameSite=Strict';
  document.cookie = token ? COOKIE + '=' + token + attrs : COOKIE + '=' + attrs + '; max-age=0';
}

function hubUrl(topics, extra, token, auth) {
  const q = new URLSearchParams();
  for (const t of topics) q.append('topic', t);
  for (const [k, v] of Object.entries(extra)) if (v) q.append(k, v);
  if (token && auth === 'query') q.append('authorization', token);
  return HUB + '?' + q.toString();
}

// After a refused connection EventSource says nothing; ask the hub why with a plain request.
// Returns the status (0: unreachable).
async function explain(url, node) {
  const ctl = new AbortController();
  try {
    const r = await fetch(url, { credentials: 'same-origin', signal: ctl.signal });
    if (!r.ok) setStatus(node, 'refused: ' + r.status + ' ' + (await r.text()).trim(), 'error');
    return r.status;
  } catch (_) {
    setStatus(node, 'error: hub unreachable', 'error');
    return 0;
  } finally {
    ctl.abort();
  }
}

// The EventSource-closes-on-503 trap. The browser reconnects an EventSource by itself only
// after a network error. An HTTP error answer (say a proxy's 503 while the hub restarts for
// longer than the retry delay) or a response that is not text/event-stream makes it CLOSED
// for good (HTML spec, "fail the connection"): it never tries again. So re-create it, with
// back-off, resuming after the last event received (a new EventSource sends no Last-Event-ID
// header: pass it as the lastEventID query parameter). Not for 4xx: a bad token stays bad.
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30000;

function transient(status) {
  return status === 0 || status >= 500;
}

// ---- Subscribe ----------------------------------------------------------------------------

const sub = { es: null, types: new Set(), count: 0, lastId: '', retryMs: RETRY_FIRST_MS, retryTimer: null };
window.mercureDebug = sub;

function onEvent(e) {
  sub.count++;
  const li = el('li', 'event');
  const meta = el('div', 'meta');
  meta.append(el('span', 'type', e.type), el('code', 'id', e.lastEventId || '(no id)'),
    el('time', 'muted', new Date().toLocaleTimeString()));
  li.append(meta, el('pre', 'data', e.data));
  const ol = $('events');
  ol.prepend(li);
  while (ol.children.length > MAX_EVENTS) ol.lastElementChild.remove();
  $('ev-count').textContent = String(sub.count);
  $('events-empty').hidden = true;
  if (e.lastEventId) {
    sub.lastId = e.lastEventId;
    $('sub-status').title = 'last event ID: ' + e.lastEventId;
  }
}

function listen(type) {
  if (!type || sub.types.has(type)) return;
  sub.types.add(type);
  if (sub.es) sub.es.addEventListener(type, onEvent);
}

function connect(resuming) {
  disconnect(resuming);
  const topics = lines($('sub-topics').value);
  const token = $('sub-token').value.trim();
  const auth = $('sub-auth').value;
  const status = $('sub-status');
  if (!topics.length) return setStatus(status, 'give at least one topic selector', 'error');
  if (auth === 'cookie') setCookie(token);
  const url = hubUrl(topics, { lastEventID: $('sub-last-event-id').value.trim() }, token, auth);
  const es = new EventSource(url, { withCredentials: true });
  sub.es = es;
  for (const t of ['message', ...list($('sub-types').value), ...sub.types]) {
    sub.types.add(t);
    es.addEventListener(t, onEvent);
  }
  setStatus(status, 'connecting…', 'pending');
  es.onopen = () => {
    sub.retryMs = RETRY_FIRST_MS;
    setStatus(status, 'connected (' + topics.length + ' selector' + (topics.length > 1 ? 's' : '') + ')', 'ok');
  };
  es.onerror = async () => {
    if (sub.es !== es) return;
    if (es.readyState !== EventSource.CLOSED) return setStatus(status, 'reconnecting…', 'pending');
    setStatus(status, 'closed', 'error');
    const code = await explain(url, status);
    if (sub.es !== es || !transient(code)) return buttons(false);
    // Closed for good by the browser: re-create it, from the last event seen.
    if (sub.lastId) $('sub-last-event-id').value = sub.lastId;
    const wait = sub.retryMs;
    sub.retryMs = Math.min(sub.retryMs * 2, RETRY_MAX_MS);
    setStatus(status, 'closed (' + (code || 'unreachable') + '); re-creating in ' + wait / 1000 + ' s', 'pending');
    sub.retryTimer = setTimeout(() => connect(true), wait);
  };
  buttons(true);
}

function disconnect(resuming) {
  clearTimeout(sub.retryTimer);
  sub.retryTimer = null;
  if (!resuming) sub.retryMs = RETRY_FIRST_MS;
  if (sub.es) {
    sub.es.close();
    sub.es = null;
    setStatus($('sub-status'), 'disconnected', 'idle');
  }
  buttons(false);
}

function buttons(connected) {
  $('sub-disconnect').disabled = !connected;
  $('sub-connect').textContent = connected ? 'Reconnect' : 'Connect';
}

// ---- Publish ------------------------------------------------------------------------------

async function publish() {
  const out = $('pub-result');
  const body = new URLSearchParams();
  for (const t of lines($('pub-topic').value)) body.append('topic', t);
  body.append('data', $('pub-data').value);
  if ($('pub-private').checked) body.append('private', 'on');
  for (const f of ['id', 'type', 'retry']) {
    const v = $('pub-' + f).value.trim();
    if (v) body.append(f, v);
  }
  listen($('pub-type').value.trim());
  const headers = {};
  const token = $('pub-token').value.trim();
  if (token) headers.Authorization = 'Bearer ' + token;
  setStatus(out, 'publishing…', 'pending');
  $('pub-send').disabled = true;
  try {
    const r = await fetch(HUB, { method: 'POST', headers, body, credentials: 'same-origin' });
    const text = (await r.text()).trim();
    if (r.ok) setStatus(out, 'published: ' + text, 'ok');
    else setStatus(out, r.status + ' ' + (r.statusText || '') + ': ' + text, 'error');
  } catch (e) {
    setStatus(out, 'error: ' + e.message, 'error');
  } finally {
    $('pub-send').disabled = false;
  }
}

// ---- Active subscriptions -----------------------------------------------------------------

const subs = { rows: new Map(), es: null };

function renderSubs() {
  const tbody = $('subs-body');
  tbody.replaceChildren();
  for (const s of subs.rows.values()) {
    const tr = el('tr');
    tr.dataset.id = s.id || '';
    const payload = s.payload === undefined || s.payload === null ? '' : JSON.stringify(s.payload);
    for (const [cls, text] of [['topic', s.topic], ['subscriber', s.subscriber], ['active', String(s.active)], ['payload', payload]]) {
      const td = el('td', cls);
      td.append(el('code', '', text === undefined ? '' : String(text)));
      tr.append(td);
    }
    tbody.append(tr);
  }
  if (!subs.rows.size) {
    const td = el('td', 'muted', 'no active subscription');
    td.colSpan = 4;
    const tr = el('tr');
    tr.append(td);
    tbody.append(tr);
  }
}

async function refreshSubs() {
  const status = $('subs-status');
  const token = $('sub-token').value.trim();
  const headers = { Accept: 'application/ld+json, application/json' };
  if (token) headers.Authorization = 'Bearer ' + token;
  setStatus(status, 'loading…', 'pending');
  try {
    const r = await fetch(SUBS_PATH, { headers, credentials: 'same-origin' });
    if (!r.ok) {
      const why = r.status === 404 ? 'the subscriptions directive is off' : (await r.text()).trim();
      return setStatus(status, r.status + ': ' + why, 'error');
    }
    const doc = await r.json();
    subs.rows.clear();
    for (const s of doc.subscriptions || []) subs.rows.set(s.id, s);
    renderSubs();
    setStatus(status, subs.rows.size + ' active · lastEventID ' + (doc.lastEventID || '?'), 'ok');
  } catch (e) {
    setStatus(status, 'error: ' + e.message, 'error');
  }
}

function liveSubs(on) {
  if (subs.es) subs.es.close();
  subs.es = null;
  if (!on) return;
  const token = $('sub-token').value.trim();
  if (token) setCookie(token);
  const url = hubUrl([SUBS_TOPIC], {}, '', 'cookie');
  const es = new EventSource(url, { withCredentials: true });
  subs.es = es;
  es.onmessage = (e) => {
    try {
      const s = JSON.parse(e.data);
      if (s.active) subs.rows.set(s.id, s);
      else subs.rows.delete(s.id);
      renderSubs();
    } catch (_) { /* not a subscription document */ }
  };
  es.onopen = () => refreshSubs();
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED && subs.es === es) {
      $('subs-live').checked = false;
      explain(url, $('subs-status'));
    }
  };
}

// ---- Token helper (WebCrypto HMAC; needs a secure context: https, localhost or 127.0.0.1) ----

const b64u = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)))
  .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

async function signHS256(key, claims) {
  const enc = new TextEncoder();
  const part = (o) => b64u(enc.encode(JSON.stringify(o)));
  const input = part({ alg: 'HS256', typ: 'JWT' }) + '.' + part(claims);
  const k = await crypto.subtle.importKey('raw', enc.encode(key), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return input + '.' + b64u(await crypto.subtle.sign('HMAC', k, enc.encode(input)));
}

async function signTokens() {
  const out = $('tok-result');
  const key = $('tok-key').value;
  if (!key) return setStatus(out, 'give the hub key', 'error');
  if (!window.crypto || !crypto.subtle) return setStatus(out, 'WebCrypto needs a secure context', 'error');
  try {
    $('sub-token').value = await signHS256(key, { mercure: { subscribe: list($('tok-subscribe').value) } });
    $('pub-token').value = await signHS256(key, { mercure: { publish: list($('tok-publish').value) } });
    setStatus(out, 'signed', 'ok');
  } catch (e) {
    setStatus(out, 'error: ' + e.message, 'error');
  }
}

// ---- Wiring -------------------------------------------------------------------------------

function on(id, ev, fn) {
  $(id).addEventListener(ev, (e) => {
    if (ev === 'submit') e.preventDefault();
    fn(e);
  });
}

document.addEventListener('DOMContentLoaded', () => {
  $('hub-url').textContent = location.origin + HUB;
  on('sub-form', 'submit', () => connect(false));
  on('sub-disconnect', 'click', () => disconnect(false));
  on('pub-form', 'submit', publish);
  on('events-clear', 'click', () => {
    $('events').replaceChildren();
    sub.count = 0;
    $('ev-count').textContent = '0';
    $('events-empty').hidden = false;
  });
  on('subs-refresh', 'click', refreshSubs);
  on('subs-live', 'change', (e) => liveSubs(e.target.checked));
  on('tok-form', 'submit', signTokens);
  renderSubs();
});
