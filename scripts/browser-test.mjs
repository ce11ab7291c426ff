#!/usr/bin/env node
// End-to-end test of the hub's debugging page in headless Chromium.
//
// Starts the hub binary (MERCURE_HUB_BIN, default target/debug/mercure-hub; builds nothing) on a
// free loopback port with `ui`, `subscriptions`, `anonymous` and `transport local`, opens `/`,
// subscribes from the page with a native EventSource (token in the mercureAuthorization cookie,
// withCredentials), publishes a private update from the page's form, checks that it arrives in
// the event list and that the subscription is listed by the subscription API, and saves
// results/ui-screenshot.png. Then the EventSource-closes-on-503 trap: the hub stops, a stand-in
// answers 503 on its port (as a proxy does while the hub is down), the page's EventSource is
// closed for good by the browser, and the page must re-create it by itself once the hub is back,
// and receive the next update. Prints `browser: N passed, M failed` last; exits non-zero on failure.
//
// Env: MERCURE_HUB_BIN, CHROMIUM_PATH (default /usr/bin/chromium), BROWSER_TEST_TIMEOUT_MS
// (default 60000), SCREENSHOT (default results/ui-screenshot.png), HEADED=1 to watch.

import { spawn } from 'node:child_process';
import { createHmac, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const HUB_BIN = resolve(ROOT, process.env.MERCURE_HUB_BIN || 'target/debug/mercure-hub');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const TIMEOUT_MS = Number(process.env.BROWSER_TEST_TIMEOUT_MS || 60_000);
const SCREENSHOT = resolve(ROOT, process.env.SCREENSHOT || 'results/ui-screenshot.png');
const KEY = 'browser-test-key-' + randomUUID();
const STEP_MS = 10_000;

const started = Date.now();
const elapsed = () => ((Date.now() - started) / 1000).toFixed(1) + 's';
const log = (msg) => console.log(`[${elapsed()}] ${msg}`);

// ---- JWT (HS256) with node's crypto only ----

const b64u = (buf) => Buffer.from(buf).toString('base64url');
function sign(claims) {
  const input = b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' })) + '.' + b64u(JSON.stringify(claims));
  return input + '.' + createHmac('sha256', KEY).update(input).digest('base64url');
}

// ---- The hub process ----

let hub = null;
const hubLog = [];

// `listen`: the address to bind (default: a free loopback port); a restart passes the first one.
function startHub(listen = '127.0.0.1:0') {
  if (!existsSync(HUB_BIN)) throw new Error(`hub binary not found: ${HUB_BIN} (run cargo build -p mercure-hub, or set MERCURE_HUB_BIN)`);
  const env = {
    ...process.env,
    SERVER_NAME: listen,
    MERCURE_PUBLISHER_JWT_KEY: KEY,
    MERCURE_SUBSCRIBER_JWT_KEY: KEY,
    MERCURE_EXTRA_DIRECTIVES: 'ui\nsubscriptions\nanonymous\ntransport local',
    RUST_LOG: process.env.HUB_RUST_LOG || 'info',
  };
  hub = spawn(HUB_BIN, [], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolveAddr, reject) => {
    const timer = setTimeout(() => reject(new Error('the hub did not log `listening addr=` within 15s')), 15_000);
    const onData = (chunk) => {
      for (const line of chunk.toString().split('\n')) {
        if (!line.trim()) continue;
        hubLog.push(line);
        if (hubLog.length > 200) hubLog.shift();
        const m = /listening.*?addr[=":]+\s*"?([0-9a-fA-F.:[\]]+:\d+)/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolveAddr(m[1]);
        }
      }
    };
    hub.stdout.on('data', onData);
    hub.stderr.on('data', onData);
    hub.on('error', (e) => { clearTimeout(timer); reject(new Error(`cannot start the hub: ${e.message}`)); });
    hub.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the hub exited early (code ${code}, signal ${signal})`));
    });
  });
}

async function stopHub() {
  if (!hub || hub.exitCode !== null || hub.signalCode !== null) return;
  const exited = new Promise((r) => hub.once('exit', r));
  hub.kill('SIGTERM');
  const t = setTimeout(() => hub.kill('SIGKILL'), 3_000);
  await exited;
  clearTimeout(t);
}

// Last resort: never leave the hub behind, whatever happens.
process.on('exit', () => { if (hub && hub.exitCode === null && hub.signalCode === null) hub.kill('SIGKILL'); });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => { finish(new Error(`interrupted by ${sig}`)); });

// ---- The test ----

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

let browser = null;

async function run() {
  const addr = await startHub();
  const base = `http://${addr}`;
  log(`hub listening on ${base}`);

  // The page and its assets, straight over HTTP first: clearer failures than a blank page.
  const pageResp = await fetch(base + '/');
  check(pageResp.ok, `GET / → ${pageResp.status} (is the ui directive wired?)`);
  check((pageResp.headers.get('content-type') || '').startsWith('text/html'), 'GET / is not text/html');
  check((pageResp.headers.get('content-security-policy') || '').includes("default-src 'self'"), 'GET / has no CSP default-src self');
  for (const [path, type] of [['/ui/app.js', 'text/javascript'], ['/ui/style.css', 'text/css']]) {
    const r = await fetch(base + path);
    check(r.ok, `GET ${path} → ${r.status} (route GET /ui/* to ui::asset)`);
    check((r.headers.get('content-type') || '').startsWith(type), `GET ${path}: content-type ${r.headers.get('content-type')}, want ${type}`);
  }

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: !process.env.HEADED,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
  context.setDefaultTimeout(STEP_MS);
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) pageErrors.push(`CSP: ${m.text()}`);
  });

  await page.goto(base + '/', { waitUntil: 'load' });
  await page.waitForFunction(() => window.mercureDebug !== undefined, null, { timeout: STEP_MS })
    .catch(() => { throw new Error('app.js did not run (window.mercureDebug is missing)'); });
  log('page loaded');

  // Subscribe: a URI template selector, the token in the cookie, a native EventSource.
  const selector = 'https://example.com/books/{id}';
  const topic = 'https://example.com/books/' + Math.floor(Math.random() * 1e6);
  const subToken = sign({ mercure: { subscribe: [selector, '/.well-known/mercure/subscriptions{/topic}{/subscriber}'] } });
  const pubToken = sign({ mercure: { publish: ['*'] } });
  await page.fill('#sub-topics', selector);
  await page.fill('#sub-token', subToken);
  await page.selectOption('#sub-auth', 'cookie');
  await page.click('#sub-connect');
  await page.waitForSelector('#sub-status[data-state="ok"]', { timeout: STEP_MS })
    .catch(async () => { throw new Error(`the subscription did not connect: ${await page.textContent('#sub-status')}`); });
  const es = await page.evaluate(() => {
    const s = window.mercureDebug.es;
    return { ctor: s && s.constructor.name, withCredentials: s && s.withCredentials, url: s && s.url, state: s && s.readyState };
  });
  check(es.ctor === 'EventSource' && es.withCredentials === true && es.state === 1, `not an open EventSource withCredentials: ${JSON.stringify(es)}`);
  check(!/authorization=/.test(es.url), `the token went in the URL, not the cookie: ${es.url}`);
  const cookies = await context.cookies(base + '/.well-known/mercure');
  const cookie = cookies.find((c) => c.name === 'mercureAuthorization');
  check(cookie && cookie.value === subToken && cookie.path === '/.well-known/mercure', `mercureAuthorization cookie not set as expected: ${JSON.stringify(cookie)}`);
  log(`subscribed to ${selector} (EventSource withCredentials, cookie auth)`);

  // Publish a private update from the page: only an authorized (cookie) subscriber receives it.
  const data = JSON.stringify({ title: 'Hello from the browser test', nonce: randomUUID() });
  await page.fill('#pub-topic', topic);
  await page.fill('#pub-data', data);
  await page.check('#pub-private');
  await page.fill('#pub-id', '');
  await page.fill('#pub-type', '');
  await page.fill('#pub-token', pubToken);
  await page.click('#pub-send');
  await page.waitForSelector('#pub-result[data-state="ok"], #pub-result[data-state="error"]');
  const result = (await page.textContent('#pub-result')).trim();
  check(/^published: \S+/.test(result), `publishing from the page failed: ${result}`);
  const id = result.replace(/^published: /, '');
  log(`published private update ${id} to ${topic}`);

  // The update shows up in #events, with its id.
  const ev = page.locator('#events li', { hasText: data });
  await ev.first().waitFor({ timeout: STEP_MS })
    .catch(() => { throw new Error('the published update did not arrive in #events'); });
  const evText = await ev.first().textContent();
  check(evText.includes(id), `the received event does not carry id ${id}: ${evText}`);
  log('update received in #events');

  // The subscription API lists the page's subscription.
  await page.click('#subs-refresh');
  await page.waitForSelector('#subs-status[data-state="ok"], #subs-status[data-state="error"]');
  const subsStatus = await page.textContent('#subs-status');
  check(!/error|^\d{3}:/.test(subsStatus), `refreshing subscriptions failed: ${subsStatus}`);
  const row = page.locator('#subs-body tr', { has: page.locator('td.topic', { hasText: selector }) });
  await row.first().waitFor({ timeout: STEP_MS })
    .catch(async () => { throw new Error(`the subscription to ${selector} is not listed: ${await page.textContent('#subs-table')}`); });
  const cells = await row.first().locator('td').allTextContents();
  check(/^urn:uuid:/.test(cells[1]) && cells[2] === 'true', `unexpected subscription row: ${JSON.stringify(cells)}`);
  log(`subscription listed: ${cells[0]} ${cells[1]}`);

  // Live feed of subscription changes (subscription events on the subscriptions topic).
  await page.check('#subs-live');
  await page.waitForFunction(() => document.querySelectorAll('#subs-body tr td.topic').length >= 2, null, { timeout: STEP_MS })
    .catch(async () => { throw new Error(`the live subscription feed did not list itself: ${await page.textContent('#subs-status')}`); });
  log('live subscription feed works');

  check(pageErrors.length === 0, pageErrors.join('\n'));
  mkdirSync(dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  log(`screenshot saved to ${SCREENSHOT}`);

  // The token helper (WebCrypto HMAC) signs exactly what node signs.
  await page.click('#tok summary');
  await page.fill('#tok-key', KEY);
  await page.fill('#tok-subscribe', '*');
  await page.fill('#tok-publish', 'https://example.com/{x}, urn:y');
  await page.click('#tok-sign');
  await page.waitForSelector('#tok-result[data-state="ok"], #tok-result[data-state="error"]');
  const [s, p] = [await page.inputValue('#sub-token'), await page.inputValue('#pub-token')];
  check(s === sign({ mercure: { subscribe: ['*'] } }), `token helper: unexpected subscriber token ${s}`);
  check(p === sign({ mercure: { publish: ['https://example.com/{x}', 'urn:y'] } }), `token helper: unexpected publisher token ${p}`);
  log('token helper signs like the hub expects');
  check(pageErrors.length === 0, pageErrors.join('\n'));

  await recreatedAfter503(page, addr, topic, pubToken);
}

// The EventSource-closes-on-503 trap (README, "Migrating"): while the hub is down a proxy answers
// the browser's reconnection with 503, which closes the EventSource for good; the page must
// re-create it. A stand-in plays the proxy on the hub's own port (same origin, so the page and
// its cookie are unchanged), then the hub comes back on that port.
async function recreatedAfter503(page, addr, topic, pubToken) {
  const publishTo = async (hubAddr, fields) => {
    const r = await fetch(`http://${hubAddr}/.well-known/mercure`, {
      method: 'POST',
      headers: { Authorization: 'Bearer ' + pubToken, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(fields),
    });
    const text = (await r.text()).trim();
    check(r.ok, `publish → ${r.status} ${text}`);
    return text;
  };
  // `retry: 200` sets the EventSource's own reconnection delay (3 s by default), so the browser
  // meets the stand-in quickly.
  const marker = 'retry-200-' + randomUUID();
  await publishTo(addr, { topic, data: marker, private: 'on', retry: '200' });
  await page.locator('#events li', { hasText: marker }).first().waitFor({ timeout: STEP_MS })
    .catch(() => { throw new Error('the retry update did not arrive'); });
  await page.evaluate(() => { window.firstEventSource = window.mercureDebug.es; });

  await stopHub();
  let standInHits = 0;
  const standIn = createServer((req, res) => {
    standInHits++;
    res.writeHead(503, { 'Content-Type': 'text/plain', Connection: 'close', 'Retry-After': '1' });
    res.end('Service Unavailable\n');
  });
  const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];
  await new Promise((ok, fail) => { standIn.once('error', fail); standIn.listen(port, host, ok); });
  log(`hub stopped; a stand-in answers 503 on ${addr}`);

  // The browser reconnects, gets 503, and closes the EventSource; the page asks why and
  // schedules a new one.
  await page.waitForFunction(() => /re-creating/.test(document.getElementById('sub-status').textContent), null, { timeout: STEP_MS })
    .catch(async () => { throw new Error(`the page did not schedule a re-creation: ${await page.textContent('#sub-status')}`); });
  const closed = await page.evaluate(() => window.firstEventSource.readyState === EventSource.CLOSED);
  check(closed, 'the first EventSource is not CLOSED after the 503');
  check(standInHits >= 1, 'the stand-in was never asked');
  log(`EventSource closed by the 503 (${standInHits} request(s) to the stand-in); page: ${await page.textContent('#sub-status')}`);

  standIn.closeAllConnections();
  await new Promise((ok) => standIn.close(ok));
  await startHub(addr);
  log(`hub back on ${addr}`);
  await page.waitForFunction(() => {
    const s = window.mercureDebug.es;
    return s && s !== window.firstEventSource && s.readyState === EventSource.OPEN
      && document.getElementById('sub-status').dataset.state === 'ok';
  }, null, { timeout: STEP_MS })
    .catch(async () => { throw new Error(`the page did not re-create its EventSource: ${await page.textContent('#sub-status')}`); });
  const after = 'after-restart-' + randomUUID();
  const id = await publishTo(addr, { topic, data: after, private: 'on' });
  const ev = page.locator('#events li', { hasText: after });
  await ev.first().waitFor({ timeout: STEP_MS })
    .catch(() => { throw new Error('the re-created EventSource did not receive the next update'); });
  check((await ev.first().textContent()).includes(id), `the update after the restart lacks its id ${id}`);
  log('the page re-created its EventSource after the 503 and receives updates again');
}

let finished = false;
async function finish(err) {
  if (finished) return;
  finished = true;
  if (err) {
    console.error(`\nFAIL: ${err.message}`);
    if (hubLog.length) console.error('--- last hub log lines ---\n' + hubLog.slice(-30).join('\n'));
  }
  await Promise.race([
    (async () => { if (browser) await browser.close().catch(() => {}); await stopHub().catch(() => {}); })(),
    new Promise((r) => setTimeout(r, 5_000)),
  ]);
  if (hub && hub.exitCode === null && hub.signalCode === null) hub.kill('SIGKILL');
  console.log(`browser test took ${elapsed()}`);
  console.log(err ? 'browser: 0 passed, 1 failed' : 'browser: 1 passed, 0 failed');
  process.exit(err ? 1 : 0);
}

const deadline = setTimeout(() => finish(new Error(`timed out after ${TIMEOUT_MS / 1000}s`)), TIMEOUT_MS);
run().then(() => { clearTimeout(deadline); return finish(null); }, (e) => { clearTimeout(deadline); return finish(e); });
