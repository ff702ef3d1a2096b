// realtime_pusher's webhook, received as a Pusher app receives it: every
// POST is checked with the pusher SDK's webhook(...).isValid() (X-Pusher-Key,
// X-Pusher-Signature over the raw body, Content-Type application/json
// exactly), and read with getEvents(). Two users join a presence channel,
// one sends a client event there and another on a private channel, both
// leave: the receiver gets channel_occupied, member_added, client_event
// (socket_id, user_id on presence, event, data), member_removed and
// channel_vacated, each once (deduplicated by id). The receiver refuses
// the first POST with 503: it comes again, the same bytes.
import assert from 'node:assert/strict';
import http from 'node:http';
import { api, cfg, client, connected, log, main, subscribed, waitFor } from './lib.mjs';

main(async () => {
  const sdk = api();
  const posts = [], events = new Map(), invalid = [];
  const receiver = http.createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (d) => { raw += d; });
    req.on('end', () => {
      posts.push(raw);
      const hook = sdk.webhook({ headers: req.headers, rawBody: raw });
      if (!hook.isValid()) {
        invalid.push({ headers: req.headers, raw });
        res.writeHead(401).end();
        return;
      }
      // A tampered body fails the same check.
      assert.equal(sdk.webhook({ headers: req.headers, rawBody: raw.replace('"events"', '"events" ') }).isValid(), false);
      if (posts.length === 1) {
        res.writeHead(503).end();
        return;
      }
      assert.equal(typeof hook.getData().time_ms, 'number');
      for (const e of hook.getEvents()) {
        assert.ok(e.id, `event without id: ${JSON.stringify(e)}`);
        assert.ok(e.channel, `event without channel: ${JSON.stringify(e)}`);
        events.set(e.id, e);
      }
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    });
  });
  await new Promise((r) => receiver.listen(cfg.webhookPort, '127.0.0.1', r));

  const a = client(undefined, { user: { user_id: 1, user_info: { name: 'Ann' } } });
  const b = client(undefined, { user: { user_id: '2', user_info: { name: 'Bob' } } });
  await Promise.all([connected(a), connected(b)]);
  const pa = await subscribed(a, 'presence-hook');
  const pb = await subscribed(b, 'presence-hook');
  const xa = await subscribed(a, 'private-hook');
  pb.trigger('client-typing', { who: 'Bob' });
  xa.trigger('client-note', 'plain text');
  const named = (name, channel, more = {}) => [...events.values()].filter((e) => e.name === name && e.channel === channel && Object.entries(more).every(([k, v]) => e[k] === v));
  await waitFor('the client events', () => named('client_event', 'presence-hook').length === 1 && named('client_event', 'private-hook').length === 1, 15000);
  const sockA = a.connection.socket_id, sockB = b.connection.socket_id;
  b.disconnect();
  a.disconnect();
  await waitFor('the vacated channels', () => named('channel_vacated', 'presence-hook').length === 1 && named('channel_vacated', 'private-hook').length === 1, 15000);

  assert.deepEqual(invalid, [], 'a webhook failed isValid()');
  assert.ok(posts.length >= 2 && posts[1] === posts[0], 'the refused POST was not sent again as it was');
  const strip = ({ id, ...e }) => e;
  assert.deepEqual(named('client_event', 'presence-hook').map(strip), [{ name: 'client_event', channel: 'presence-hook', event: 'client-typing', data: '{"who":"Bob"}', socket_id: sockB, user_id: '2' }]);
  assert.deepEqual(named('client_event', 'private-hook').map(strip), [{ name: 'client_event', channel: 'private-hook', event: 'client-note', data: 'plain text', socket_id: sockA }]);
  for (const [name, channel, more] of [
    ['channel_occupied', 'presence-hook'], ['channel_occupied', 'private-hook'],
    ['member_added', 'presence-hook', { user_id: '1' }], ['member_added', 'presence-hook', { user_id: '2' }],
    ['member_removed', 'presence-hook', { user_id: '1' }], ['member_removed', 'presence-hook', { user_id: '2' }],
    ['channel_vacated', 'presence-hook'], ['channel_vacated', 'private-hook'],
  ]) {
    assert.equal(named(name, channel, more).length, 1, `${name} ${channel} ${JSON.stringify(more ?? {})}: ${JSON.stringify([...events.values()])}`);
  }
  // In order: occupied before added, added before removed, removed before vacated.
  const order = [...events.values()].filter((e) => e.channel === 'presence-hook').map((e) => e.name);
  assert.equal(order[0], 'channel_occupied');
  assert.equal(order[order.length - 1], 'channel_vacated');
  log(`${events.size} events in ${posts.length} POSTs, every one valid:`, [...events.values()].map((e) => `${e.name} ${e.channel}${e.user_id ? ' ' + e.user_id : ''}`).join(', '));
  receiver.close();
});
