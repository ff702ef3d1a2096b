// A caddy reload with pusher-js clients connected drops none of them: the
// same sockets stay connected and subscribed, and events and whispers
// flow after the reload.
import assert from 'node:assert/strict';
import { api, client, collect, commands, connected, log, main, subscribed, tell, waitFor } from './lib.mjs';

main(async () => {
  const next = commands();
  const sdk = api();
  const clients = Array.from({ length: 20 }, () => client());
  await Promise.all(clients.map(connected));
  const chans = await Promise.all(clients.map((c) => subscribed(c, 'private-reload')));
  const ids = clients.map((c) => c.connection.socket_id);
  const before = clients.map((c) => c.states.length);
  const got = chans.map((ch) => collect(ch, 'after'));
  const whispers = chans.map((ch) => collect(ch, 'client-hi'));
  log(`${clients.length} clients connected and subscribed`);

  tell('ready');
  await next('reloaded');

  await sdk.trigger('private-reload', 'after', { n: 1 });
  await waitFor('the event after the reload on every client', () => got.every((g) => g.length === 1));
  chans[0].trigger('client-hi', { from: 0 });
  await waitFor('the whisper on every other client', () => whispers.slice(1).every((w) => w.length === 1));
  assert.equal(whispers[0].length, 0);
  clients.forEach((c, i) => {
    assert.equal(c.connection.state, 'connected');
    assert.equal(c.connection.socket_id, ids[i], 'a client reconnected');
    assert.deepEqual(c.states.slice(before[i]), [], `client ${i} changed state: ${c.states}`);
    assert.deepEqual(c.errors, []);
  });
  log('after the reload: no client dropped, events and whispers flow');
  clients.forEach((c) => c.disconnect());
});
