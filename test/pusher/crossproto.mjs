// One hub, two protocols: a realtime_broadcast publish reaches a pusher-js
// subscriber, and a Pusher trigger reaches a realtime_ws subscriber (the
// npm ws client), payloads equal.
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { api, cfg, client, collect, connected, log, main, PORT, subscribed, until, waitFor } from './lib.mjs';

// ownClient is a subscriber of the module's own protocol on realtime_ws.
async function ownClient(channels) {
  const ws = new WebSocket(`ws://127.0.0.1:${PORT}/realtime/ws?channels=${channels.join(',')}`);
  const msgs = [];
  ws.on('message', (m) => msgs.push(JSON.parse(m.toString())));
  await waitFor('realtime:subscribed', () => channels.every((c) => msgs.some((m) => m.type === 'realtime:subscribed' && m.channel === c)));
  return { ws, msgs, events: (type) => msgs.filter((m) => m.type === type) };
}

main(async () => {
  const sdk = api();
  const pusher = client(), other = client();
  await Promise.all([connected(pusher), connected(other)]);
  const [news, roomP] = await Promise.all([subscribed(pusher, 'news'), subscribed(pusher, 'room.1')]);
  const roomO = await subscribed(other, 'room.1');
  const own = await ownClient(['news', 'room.1']);

  // realtime_broadcast -> pusher-js: data is the payload.
  const payloads = [{ id: 7, title: 'Hi "there"', tags: ['a', 'b'], n: 1.5, ok: true, none: null }, 'just a string', 42, [1, { x: 'y' }]];
  const got = collect(news, 'post_published');
  for (const payload of payloads) {
    const res = await fetch(`http://127.0.0.1:${PORT}/realtime/broadcast`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${cfg.broadcastSecret}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ channel: 'news', type: 'post_published', payload }),
    });
    assert.equal(res.status, 200, await res.text());
  }
  await waitFor('the broadcasts on pusher-js', () => got.length === payloads.length);
  assert.deepEqual(got.map((g) => g.data), payloads);
  await waitFor('the broadcasts on realtime_ws', () => own.events('post_published').length === payloads.length);
  log('realtime_broadcast -> pusher-js: payloads equal');

  // Pusher trigger -> realtime_ws: payload is the data parsed as JSON, or
  // the string itself.
  const data = [{ order: { id: 9 }, text: 'Ünïcode' }, 'not JSON at all', [1, 2, 3]];
  const moved = collect(roomO, 'App\\Events\\Moved');
  for (const d of data) await sdk.trigger('room.1', 'App\\Events\\Moved', d);
  await waitFor('the triggers on realtime_ws', () => own.events('App\\Events\\Moved').length === data.length);
  const seen = own.events('App\\Events\\Moved');
  assert.deepEqual(seen.map((m) => m.payload), data);
  assert.ok(seen.every((m) => m.channel === 'room.1' && typeof m.cursor === 'string'));
  await waitFor('the triggers on pusher-js too', () => moved.length === data.length);
  assert.deepEqual(moved.map((m) => m.data), data);
  log('Pusher trigger -> realtime_ws: payloads equal');

  // A trigger with socket_id skips that Pusher socket and nobody else.
  const skip = collect(roomP, 'skipped'), marker = collect(roomP, 'marker');
  await sdk.trigger('room.1', 'skipped', { s: 1 }, { socket_id: pusher.connection.socket_id });
  await sdk.trigger('room.1', 'marker', {});
  await waitFor('the others', () => own.events('skipped').length === 1 && marker.length === 1);
  assert.equal(skip.length, 0);
  log('socket_id exclusion leaves realtime_ws subscribers alone');

  own.ws.close();
  pusher.disconnect();
  other.disconnect();
  await until(new Promise((r) => own.ws.on('close', r)), 'close');
});
