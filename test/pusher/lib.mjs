// Helpers shared by the scenarios: clients nobody here wrote (pusher-js,
// the pusher Node SDK, Laravel Echo, ws), pointed at a Caddy started by
// pusher_test.go. The test's settings come in the PUSHER_TEST environment
// variable as JSON: {ports:[...], key, secret, appId, authPort, ...}.
import assert from 'node:assert/strict';
import http from 'node:http';
import readline from 'node:readline';
import Pusher from 'pusher-js';
import PusherServer from 'pusher';

export const cfg = JSON.parse(process.env.PUSHER_TEST || '{}');
export const { key: KEY, secret: SECRET, appId: APP_ID } = cfg;
export const PORT = cfg.ports?.[0];

const t0 = Date.now();
export const log = (...a) => console.log(((Date.now() - t0) / 1000).toFixed(2).padStart(7), ...a);

// api is the server SDK for a node's port: triggers, channel queries and,
// as the application's auth endpoint would, channel auth signatures.
export function api(port = PORT, secret = SECRET) {
  return new PusherServer({ appId: APP_ID, key: KEY, secret, host: '127.0.0.1', port, useTLS: false });
}

// signer answers pusher-js's channel authorization in-process, as an
// application's /broadcasting/auth does (authorizeChannel of the SDK).
// Channels named private-forged-* (and presence-forged-*) are signed with
// a wrong secret. On presence channels the member is user, {user_id,
// user_info} as Laravel's authorizePresenceChannel sends it.
export function signer(secret = SECRET, user = { user_id: '1', user_info: { name: 'test' } }) {
  const good = api(PORT, secret), bad = api(PORT, secret + '-wrong');
  return ({ socketId, channelName }, cb) => {
    const sdk = /^(private|presence)-forged-/.test(channelName) ? bad : good;
    const data = channelName.startsWith('presence-') ? user : undefined;
    cb(null, sdk.authorizeChannel(socketId, channelName, data));
  };
}

// client is a pusher-js connection to a node, as a Laravel app's frontend
// makes it: wsHost/wsPort, no TLS, WebSocket only, cluster unused. opts.user
// is the member its presence subscriptions are signed for.
export function client(port = PORT, opts = {}) {
  const { user, ...options } = opts;
  const c = new Pusher(options.key || KEY, {
    cluster: 'mt1',
    wsHost: '127.0.0.1',
    wsPort: port,
    forceTLS: false,
    enabledTransports: ['ws'],
    channelAuthorization: { customHandler: signer(SECRET, user) },
    ...options,
  });
  c.states = [];
  c.errors = [];
  c.connection.bind('state_change', (s) => c.states.push(s.current));
  c.connection.bind('error', (e) => c.errors.push(e));
  return c;
}

// errorCodes lists the Pusher codes of a client's error events: close codes
// and pusher:error frames, wherever pusher-js nests them.
export const errorCodes = (c) => c.errors.map((e) => e.data?.code ?? e.error?.data?.code).filter((x) => x !== undefined);

// until rejects after ms.
export function until(promise, what, ms = 10000) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

// waitFor polls cond until it holds.
export async function waitFor(what, cond, ms = 10000) {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function connected(c) {
  if (c.connection.state === 'connected') return Promise.resolve();
  return until(new Promise((r) => c.connection.bind('connected', r)), 'connected');
}

// subscribed subscribes and waits for pusher:subscription_succeeded.
export function subscribed(c, name) {
  const ch = c.subscribe(name);
  if (ch.subscribed) return Promise.resolve(ch);
  return until(new Promise((resolve, reject) => {
    ch.bind('pusher:subscription_succeeded', () => resolve(ch));
    ch.bind('pusher:subscription_error', (e) => reject(new Error(`subscription_error on ${name}: ${JSON.stringify(e)}`)));
  }), `subscription to ${name}`);
}

// subscriptionError subscribes and waits for pusher:subscription_error.
export function subscriptionError(c, name) {
  const ch = c.subscribe(name);
  return until(new Promise((resolve, reject) => {
    ch.bind('pusher:subscription_succeeded', () => reject(new Error(`${name}: subscribed, want an error`)));
    ch.bind('pusher:subscription_error', resolve);
  }), `subscription_error on ${name}`);
}

// collect records every event bound on ch under name.
export function collect(ch, name) {
  const got = [];
  ch.bind(name, (data, meta) => got.push({ data, meta }));
  return got;
}

// authServer is the application's auth endpoint (Laravel's
// /broadcasting/auth): form-encoded socket_id and channel_name in,
// authorizeChannel's answer out. Caddy reverse-proxies it for browsers.
// The X-Test-User header names the user presence channels are signed for
// (a Laravel app knows it from the session).
export function authServer(port) {
  const srv = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const f = new URLSearchParams(body);
      const user = req.headers['x-test-user'] || '1';
      const sign = signer(SECRET, { user_id: user, user_info: { name: user } });
      sign({ socketId: f.get('socket_id'), channelName: f.get('channel_name') }, (_, auth) => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(auth));
      });
    });
  });
  return new Promise((resolve) => srv.listen(port, '127.0.0.1', () => resolve(srv)));
}

// lines reads the harness's commands from stdin, one per line.
export function commands() {
  const rl = readline.createInterface({ input: process.stdin });
  const queue = [], waiting = [];
  rl.on('line', (l) => (waiting.length ? waiting.shift()(l) : queue.push(l)));
  return (what) => until(new Promise((r) => (queue.length ? r(queue.shift()) : waiting.push(r))), `the harness's "${what}"`, 120000)
    .then((l) => assert.equal(l, what));
}

// tell prints a line the harness waits for.
export const tell = (line) => console.log(`@@ ${line}`);

// main runs a scenario and exits 0 when it passed.
export function main(fn) {
  fn().then(() => { log('PASS'); process.exit(0); }, (e) => { console.error('FAIL:', e?.stack || e); process.exit(1); });
}
