// Presence channels with the clients a Laravel app uses: Laravel Echo's
// join().here/joining/leaving and pusher-js's members (members.me must be
// the joiner), two users and a second tab of one of them (one member),
// numeric and string user ids (one member), client events carrying the
// sender's user_id, a join over presence_max_members refused (.error()),
// and the HTTP API's user_count and users through the pusher SDK. The hub
// runs with presence_leave_delay 500ms and presence_max_members 3.
import assert from 'node:assert/strict';
import Echo from 'laravel-echo';
import { api, client, collect, connected, log, main, sleep, subscribed, subscriptionError, until, waitFor } from './lib.mjs';

// A Laravel user as authorizePresenceChannel signs it: numeric ids (as
// Laravel's users table has them), user_info from the channel callback.
const ann = { user_id: 1, user_info: { id: 1, name: 'Ann' } };
const bob = { user_id: '2', user_info: { id: 2, name: 'Bob' } };
const echo = (user) => new Echo({ broadcaster: 'pusher', client: client(undefined, { user }), withoutInterceptors: true });

main(async () => {
  const sdk = api();

  // Echo: Ann joins, then Bob; each sees the other come, Ann sees Bob go.
  const annEcho = echo(ann), bobEcho = echo(bob);
  await Promise.all([connected(annEcho.connector.pusher), connected(bobEcho.connector.pusher)]);
  const seen = { annHere: null, bobHere: null, joining: [], leaving: [] };
  await until(new Promise((r) => annEcho.join('room')
    .here((members) => { seen.annHere = members; r(); })
    .joining((m) => seen.joining.push(m))
    .leaving((m) => seen.leaving.push(m))), 'Ann here');
  assert.deepEqual(seen.annHere, [{ id: 1, name: 'Ann' }]);
  await until(new Promise((r) => bobEcho.join('room').here((members) => { seen.bobHere = members; r(); })), 'Bob here');
  assert.deepEqual(seen.bobHere, [{ id: 1, name: 'Ann' }, { id: 2, name: 'Bob' }]);
  await waitFor('Ann sees Bob joining', () => seen.joining.length === 1);
  assert.deepEqual(seen.joining, [{ id: 2, name: 'Bob' }]);
  log('Echo here/joining: ok');

  // pusher-js: members.me is the joiner, the count is per user. Bob's
  // second tab (his id sent as a number this time) is no new member.
  const tab2 = client(undefined, { user: { user_id: 2, user_info: { id: 2, name: 'Bob' } } });
  const ch2 = await subscribed(tab2, 'presence-room');
  assert.equal(ch2.members.count, 2);
  // pusher-js keeps the id as its own channel_data gave it (a number here),
  // and finds the info under it in the server's hash.
  assert.deepEqual(ch2.members.me, { id: 2, info: { id: 2, name: 'Bob' } });
  const ids = [];
  ch2.members.each((m) => ids.push(m.id));
  assert.deepEqual(ids.sort(), ['1', '2']);
  await sleep(300);
  assert.equal(seen.joining.length, 1, 'a second tab of Bob was announced as a new member');
  log('pusher-js members, second tab: ok');

  // A client event on a presence channel names its sender (pusher-js's
  // metadata.user_id); Echo's whisper arrives too.
  const annPusher = annEcho.connector.pusher;
  const typing = collect(annPusher.channel('presence-room'), 'client-typing');
  ch2.trigger('client-typing', { who: 'Bob' });
  await waitFor('the client event', () => typing.length === 1);
  assert.deepEqual(typing[0].data, { who: 'Bob' });
  assert.equal(typing[0].meta.user_id, '2');
  const whispers = [];
  annEcho.join('room').listenForWhisper('wave', (e) => whispers.push(e));
  bobEcho.join('room').whisper('wave', { from: 'Bob' });
  await waitFor('the whisper', () => whispers.length === 1);
  log('client events with user_id: ok');

  // The HTTP API counts users, not connections, and lists them.
  const get = async (path, params) => { const r = await sdk.get({ path, params }); assert.equal(r.status, 200); return r.json(); };
  assert.deepEqual(await get('/channels/presence-room', { info: 'user_count,subscription_count' }), { occupied: true, user_count: 2, subscription_count: 3 });
  assert.deepEqual((await get('/channels/presence-room/users')).users.map((u) => u.id).sort(), ['1', '2']);
  assert.deepEqual(await get('/channels', { filter_by_prefix: 'presence-', info: 'user_count' }), { channels: { 'presence-room': { user_count: 2 } } });
  log('user_count and users: ok');

  // Bob closes one tab: still a member. He closes the other: Ann sees him
  // leave once, after the leave delay.
  tab2.disconnect();
  await sleep(900);
  assert.equal(seen.leaving.length, 0, 'Bob left while a tab of his was open');
  bobEcho.disconnect();
  await waitFor('Ann sees Bob leaving', () => seen.leaving.length === 1);
  assert.deepEqual(seen.leaving, [{ id: 2, name: 'Bob' }]);
  await sleep(700);
  assert.equal(seen.leaving.length, 1);
  assert.equal(annPusher.channel('presence-room').members.count, 1);
  log('Echo leaving: ok');

  // Over presence_max_members (3) a join is refused with
  // pusher:subscription_error LimitReached, which Echo's .error() gets; a
  // member's second connection still joins.
  const full = [];
  for (const id of ['a', 'b', 'c']) {
    const c = client(undefined, { user: { user_id: id } });
    await subscribed(c, 'presence-full');
    full.push(c);
  }
  const dEcho = echo({ user_id: 'd' });
  const err = await until(new Promise((r) => dEcho.join('full').error(r)), '.error() over the limit');
  assert.equal(err.type, 'LimitReached');
  assert.equal(err.status, 4100);
  const again = client(undefined, { user: { user_id: 'a' } });
  assert.equal((await subscribed(again, 'presence-full')).members.count, 3);
  assert.equal(dEcho.connector.pusher.connection.state, 'connected');
  assert.deepEqual((await get('/channels/presence-full/users')).users.map((u) => u.id).sort(), ['a', 'b', 'c']);
  log('over the member limit: refused,', JSON.stringify(err));

  // A forged member is refused (AuthError), a member without a user_id
  // (BadRequest), and the connection stays.
  const forged = await subscriptionError(annPusher, 'presence-forged-1');
  assert.equal(forged.status, 401);
  const nobody = client(undefined, { user: { user_info: { name: 'no id' } } });
  const bad = await subscriptionError(nobody, 'presence-x');
  assert.equal(bad.status, 400);
  assert.equal(annPusher.connection.state, 'connected');
  log('forged and malformed members refused: ok');

  for (const c of [...full, again, nobody, dEcho.connector.pusher]) c.disconnect();
  annEcho.disconnect();
});
