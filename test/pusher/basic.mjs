// pusher-js (Node) and the pusher Node SDK against realtime_pusher: public
// and private channels, triggers with and without socket_id exclusion,
// batch triggers, client events, refused auth, channel queries, and the
// HTTP API's refusals publishing nothing.
import assert from 'node:assert/strict';
import { api, APP_ID, client, collect, connected, errorCodes, log, main, PORT, SECRET, sleep, subscribed, subscriptionError, until, waitFor } from './lib.mjs';

main(async () => {
  const sdk = api();
  const a = client(), b = client();
  await Promise.all([connected(a), connected(b)]);
  assert.match(a.connection.socket_id, /^\d+\.\d+$/);
  log('connected', a.connection.socket_id, b.connection.socket_id);

  // Public and private channels; a trigger reaches both subscribers with
  // its data as the SDK sent it.
  const [pubA, pubB, privA, privB] = await Promise.all([
    subscribed(a, 'orders'), subscribed(b, 'orders'), subscribed(a, 'private-chat.1'), subscribed(b, 'private-chat.1'),
  ]);
  const ordersA = collect(pubA, 'App\\Events\\OrderShipped'), ordersB = collect(pubB, 'App\\Events\\OrderShipped');
  const privGot = collect(privB, 'secret');
  let res = await sdk.trigger(['orders', 'private-chat.1'], 'App\\Events\\OrderShipped', { id: 7, title: 'Ünïcode "quoted"' });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {});
  await sdk.trigger('private-chat.1', 'secret', 'plain string, not JSON');
  await waitFor('the trigger on both subscribers', () => ordersA.length === 1 && ordersB.length === 1 && privGot.length === 1);
  assert.deepEqual(ordersA[0].data, { id: 7, title: 'Ünïcode "quoted"' });
  assert.equal(privGot[0].data, 'plain string, not JSON');
  log('trigger: public and private delivered');

  // socket_id excludes one connection (Laravel's toOthers()).
  const markerA = collect(pubA, 'marker');
  await sdk.trigger('orders', 'App\\Events\\OrderShipped', { id: 8 }, { socket_id: a.connection.socket_id });
  await sdk.trigger('orders', 'marker', {});
  await waitFor('the marker', () => markerA.length === 1 && ordersB.length === 2);
  assert.equal(ordersA.length, 1, 'the excluded socket got the event');
  assert.deepEqual(ordersB[1].data, { id: 8 });
  log('socket_id exclusion: ok');

  // Batch trigger.
  const e1 = collect(pubB, 'batch-1'), e2 = collect(privB, 'batch-2');
  res = await sdk.triggerBatch([
    { channel: 'orders', name: 'batch-1', data: { n: 1 } },
    { channel: 'private-chat.1', name: 'batch-2', data: { n: 2 } },
  ]);
  assert.equal(res.status, 200);
  await waitFor('both batch events', () => e1.length === 1 && e2.length === 1);
  assert.deepEqual([e1[0].data, e2[0].data], [{ n: 1 }, { n: 2 }]);
  log('batch trigger: ok');

  // Client events: delivered to the others, never echoed to the sender.
  const whispersB = collect(privB, 'client-typing'), whispersA = collect(privA, 'client-typing');
  assert.equal(privA.trigger('client-typing', { who: 'A' }), true);
  await waitFor('the client event', () => whispersB.length === 1);
  assert.deepEqual(whispersB[0].data, { who: 'A' });
  const markA = collect(privA, 'marker');
  await sdk.trigger('private-chat.1', 'marker', {});
  await waitFor('a marker after the client event', () => markA.length === 1);
  assert.equal(whispersA.length, 0, 'client event echoed to its sender');
  log('client event: ok');

  // A wrong signature is refused with subscription_error 401 and the
  // connection stays; a fresh channel with a good signature works after.
  const err = await subscriptionError(a, 'private-forged-1');
  assert.equal(err.type, 'AuthError');
  assert.equal(err.status, 401);
  assert.equal(a.connection.state, 'connected');
  await subscribed(a, 'private-chat.2');
  log('wrong auth refused:', JSON.stringify(err));

  // Channel queries (this node's subscribers).
  const chans = await (await sdk.get({ path: '/channels' })).json();
  for (const c of ['orders', 'private-chat.1', 'private-chat.2']) assert.ok(chans.channels[c], `${c} not listed: ${JSON.stringify(chans)}`);
  assert.ok(!chans.channels['private-forged-1'], 'a refused channel is listed');
  const info = await (await sdk.get({ path: '/channels/orders', params: { info: 'subscription_count' } })).json();
  assert.deepEqual(info, { occupied: true, subscription_count: 2 });
  const empty = await (await sdk.get({ path: '/channels/nobody-here', params: {} })).json();
  assert.deepEqual(empty, { occupied: false });
  const filtered = await (await sdk.get({ path: '/channels', params: { filter_by_prefix: 'private-' } })).json();
  assert.deepEqual(Object.keys(filtered.channels).sort(), ['private-chat.1', 'private-chat.2']);
  res = await sdk.trigger('orders', 'counted', {}, { info: 'subscription_count' });
  assert.deepEqual(await res.json(), { channels: { orders: { subscription_count: 2 } } });
  log('channel queries: ok');

  // The HTTP API refuses what Pusher refuses, and publishes nothing.
  const refused = collect(pubB, 'refused');
  const wrong = api(PORT, SECRET + 'x');
  await assert.rejects(wrong.trigger('orders', 'refused', {}), (e) => e.status === 401 && /Invalid signature/.test(e.body));
  const big = 'x'.repeat(10 * 1024 + 1);
  await assert.rejects(sdk.trigger('orders', 'refused', big), (e) => e.status === 413);
  // The SDK checks names and channel counts itself: craft those requests.
  const raw = async (body) => {
    const path = `/apps/${APP_ID}/events`;
    const qs = sdk.createSignedQueryString({ method: 'POST', path, body });
    return fetch(`http://127.0.0.1:${PORT}${path}?${qs}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
  };
  const many = Array.from({ length: 101 }, (_, i) => `c${i}`);
  for (const [body, status] of [
    [JSON.stringify({ name: 'refused', data: '{}', channels: [...many.slice(0, 100), 'orders'] }), 400],
    [JSON.stringify({ name: 'pusher:refused', data: '{}', channels: ['orders'] }), 400],
    [JSON.stringify({ name: 'refused', data: '{}', channels: ['orders'], socket_id: 'nope' }), 400],
  ]) {
    const r = await raw(body);
    assert.equal(r.status, status, await r.text());
  }
  // A stale timestamp: the SDK's own signer with the clock turned back.
  const realNow = Date.now;
  Date.now = () => realNow() - 601 * 1000;
  try {
    await assert.rejects(sdk.trigger('orders', 'refused', {}), (e) => e.status === 401 && /Timestamp expired/.test(e.body));
  } finally {
    Date.now = realNow;
  }
  const after = collect(pubB, 'after-refusals');
  await sdk.trigger('orders', 'after-refusals', {});
  await waitFor('the event after the refusals', () => after.length === 1);
  assert.equal(refused.length, 0, 'a refused request published');
  log('HTTP API refusals: ok');

  // An unknown key is refused with 4001, and pusher-js gives up.
  const stranger = client(PORT, { key: 'not-the-key' });
  await waitFor('the refusal', () => errorCodes(stranger).includes(4001));
  await sleep(1500);
  assert.notEqual(stranger.connection.state, 'connected');
  assert.ok(!stranger.states.slice(stranger.states.indexOf('disconnected') + 1).includes('connecting'), `retried: ${stranger.states}`);
  stranger.disconnect();
  log('unknown key: 4001, no retry');

  assert.deepEqual(a.errors, [], 'unexpected errors');
  a.disconnect();
  b.disconnect();
  await until(sleep(100), 'nothing');
});
