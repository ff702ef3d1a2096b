// Two Caddy nodes on one Redis: a trigger on one reaches pusher-js clients
// of both, socket_id exclusion works across nodes, client events cross
// nodes, and each node's HTTP API publishes to the whole cluster.
import assert from 'node:assert/strict';
import { api, cfg, client, collect, connected, log, main, subscribed, waitFor } from './lib.mjs';

main(async () => {
  const [p1, p2] = cfg.ports;
  const a = client(p1), b = client(p2);
  await Promise.all([connected(a), connected(b)]);
  const [oa, ob, pa, pb] = await Promise.all([subscribed(a, 'orders'), subscribed(b, 'orders'), subscribed(a, 'private-x'), subscribed(b, 'private-x')]);
  const gotA = collect(oa, 'App\\Events\\OrderShipped'), gotB = collect(ob, 'App\\Events\\OrderShipped');

  // Trigger on node 2, receive on node 1 (and 2).
  await api(p2).trigger('orders', 'App\\Events\\OrderShipped', { id: 1 });
  await waitFor('the trigger on both nodes', () => gotA.length === 1 && gotB.length === 1);
  assert.deepEqual(gotA[0].data, { id: 1 });
  log('trigger on node 2 reached node 1');

  // toOthers() for a socket on node 1, triggered through node 2.
  const markA = collect(oa, 'marker');
  await api(p2).trigger('orders', 'App\\Events\\OrderShipped', { id: 2 }, { socket_id: a.connection.socket_id });
  await api(p1).triggerBatch([{ channel: 'orders', name: 'marker', data: '{}' }]);
  await waitFor('node 2 gets it, then the marker on node 1', () => gotB.length === 2 && markA.length === 1);
  assert.equal(gotA.length, 1, 'the excluded socket on the other node got the event');
  log('socket_id exclusion across nodes: ok');

  // A client event from node 1 reaches node 2, and not its sender.
  const wb = collect(pb, 'client-typing'), wa = collect(pa, 'client-typing');
  pa.trigger('client-typing', { who: 'a' });
  await waitFor('the client event on node 2', () => wb.length === 1);
  assert.deepEqual(wb[0].data, { who: 'a' });
  const mk = collect(pa, 'marker');
  await api(p1).trigger('private-x', 'marker', {});
  await waitFor('a marker', () => mk.length === 1);
  assert.equal(wa.length, 0);
  log('client event across nodes: ok');
  a.disconnect();
  b.disconnect();
});
