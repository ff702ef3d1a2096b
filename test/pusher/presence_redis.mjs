// Presence on two Caddy nodes sharing one Redis, with pusher-js: Ann on
// node 1, Bob on node 2, then a second tab of Ann's on node 2. With a
// backplane that keeps presence (cfg.clusterPresence), each sees the other
// (one member_added each way), Ann's second tab is no new member, either
// node's HTTP API lists both users, and the webhook sent by the cluster
// has one member_added per user. Without it, each node lists the members
// connected to it: that is asserted too, so that the test says which
// behaviour it saw.
import assert from 'node:assert/strict';
import http from 'node:http';
import { api, cfg, client, collect, connected, log, main, sleep, subscribed, waitFor } from './lib.mjs';

const CH = 'presence-cluster';
const ann = { user_id: 1, user_info: { name: 'Ann' } };
const bob = { user_id: 2, user_info: { name: 'Bob' } };

main(async () => {
  const [p1, p2] = cfg.ports;
  const hooks = new Map();
  const receiver = http.createServer((req, res) => {
    let raw = '';
    req.on('data', (d) => { raw += d; });
    req.on('end', () => {
      const hook = api(p1).webhook({ headers: req.headers, rawBody: raw });
      assert.ok(hook.isValid(), 'a webhook failed isValid()');
      for (const e of hook.getEvents()) hooks.set(e.id, e);
      res.writeHead(200).end('{}');
    });
  });
  await new Promise((r) => receiver.listen(cfg.webhookPort, '127.0.0.1', r));

  const a = client(p1, { user: ann }), b = client(p2, { user: bob });
  await Promise.all([connected(a), connected(b)]);
  const ca = await subscribed(a, CH);
  const addedA = collect(ca, 'pusher:member_added');
  const cb = await subscribed(b, CH);
  const addedB = collect(cb, 'pusher:member_added');
  const users = async (port) => (await (await api(port).get({ path: `/channels/${CH}/users` })).json()).users.map((u) => u.id).sort();

  if (!cfg.clusterPresence) {
    // Each node lists its own members.
    await sleep(500);
    assert.equal(ca.members.count, 1);
    assert.equal(cb.members.count, 1);
    assert.deepEqual(await users(p1), ['1']);
    assert.deepEqual(await users(p2), ['2']);
    log('node-local presence (this backplane keeps no presence): each node lists its own members');
    a.disconnect();
    b.disconnect();
    receiver.close();
    return;
  }

  // Each sees the other, whichever node it is on.
  await waitFor('Ann sees Bob', () => ca.members.count === 2);
  assert.equal(cb.members.count, 2);
  assert.deepEqual(cb.members.get('1').info, { name: 'Ann' });
  assert.deepEqual(ca.members.get('2').info, { name: 'Bob' });
  assert.equal(addedA.length, 1);
  assert.equal(addedB.length, 0, 'Bob was told of himself, or of Ann, who was there before him');
  log('one user on each node: each sees the other');

  // Ann's second tab, on node 2: one member still.
  const a2 = client(p2, { user: ann });
  const ca2 = await subscribed(a2, CH);
  assert.equal(ca2.members.count, 2);
  await sleep(500);
  assert.equal(addedB.length, 0, 'a second tab of Ann on another node was announced as a new member');
  assert.deepEqual(await users(p1), ['1', '2']);
  assert.deepEqual(await users(p2), ['1', '2']);
  log('the same user on both nodes is one member; both nodes list both users');

  // Ann closes her node-1 tab: still a member (her tab on node 2).
  const removedB = collect(cb, 'pusher:member_removed');
  a.disconnect();
  await sleep(1200);
  assert.equal(removedB.length, 0, 'Ann left while a tab of hers was open on the other node');
  a2.disconnect();
  await waitFor('Bob sees Ann leave', () => removedB.length === 1);
  assert.equal(cb.members.count, 1);

  // The cluster decided each member event once: one member_added and one
  // member_removed for Ann, whatever node sent them.
  await waitFor('the webhooks', () => [...hooks.values()].some((e) => e.name === 'member_removed' && e.user_id === '1'), 15000);
  await sleep(500);
  const of = (name, user) => [...hooks.values()].filter((e) => e.name === name && e.channel === CH && e.user_id === user).length;
  assert.equal(of('member_added', '1'), 1);
  assert.equal(of('member_added', '2'), 1);
  assert.equal(of('member_removed', '1'), 1);
  log('webhooks: one member_added and member_removed per user for the cluster');
  b.disconnect();
  receiver.close();
});
