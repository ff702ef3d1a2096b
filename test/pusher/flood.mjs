// A flood of client events from one pusher-js connection hurts nobody
// else: the excess is dropped with pusher:error 4301 (the flooder stays
// connected), the other subscribers of the flooded channel get at most
// the rate, and every trigger and whisper elsewhere arrives, in order.
import assert from 'node:assert/strict';
import { api, cfg, client, collect, connected, errorCodes, log, main, subscribed, waitFor } from './lib.mjs';

main(async () => {
  const sdk = api();
  const rate = cfg.clientEventRate;
  const flooder = client(), victim = client(), calm = client(), partner = client();
  await Promise.all([flooder, victim, calm, partner].map(connected));
  const id = flooder.connection.socket_id;
  const [fch, vch] = await Promise.all([subscribed(flooder, 'private-flood'), subscribed(victim, 'private-flood')]);
  const [cch, pch] = await Promise.all([subscribed(calm, 'private-calm'), subscribed(partner, 'private-calm')]);

  const floods = collect(vch, 'client-flood');
  const triggered = { victim: collect(vch, 'news'), calm: collect(cch, 'news'), flooder: collect(fch, 'news') };
  const whispers = collect(pch, 'client-hello');

  const n = 3000, started = Date.now();
  for (let i = 0; i < n; i++) fch.trigger('client-flood', { i, pad: 'x'.repeat(200) });
  for (let i = 0; i < 5; i++) cch.trigger('client-hello', { i });
  // One after the other, so that their order is the hub's order.
  for (let i = 0; i < 50; i++) await sdk.trigger(['private-flood', 'private-calm'], 'news', { i });
  log(`flooded ${n} client events; 50 triggers sent`);

  await waitFor('every trigger, on both channels', () => triggered.victim.length === 50 && triggered.calm.length === 50 && triggered.flooder.length === 50, 30000);
  for (const got of Object.values(triggered)) assert.deepEqual(got.map((g) => g.data.i), [...Array(50).keys()], 'triggers out of order');
  await waitFor('the whispers on the calm channel', () => whispers.length === 5);
  assert.deepEqual(whispers.map((w) => w.data.i), [0, 1, 2, 3, 4]);
  await waitFor('the rejections', () => errorCodes(flooder).filter((c) => c === 4301).length + floods.length >= n, 30000);
  const elapsed = (Date.now() - started) / 1000;

  const rejected = errorCodes(flooder).filter((c) => c === 4301).length;
  log(`victim got ${floods.length} flood events in ${elapsed.toFixed(1)} s; flooder got ${rejected} 4301 errors`);
  assert.ok(floods.length >= 1, 'no client event passed at all');
  assert.ok(floods.length <= Math.ceil(rate * elapsed) + rate, `${floods.length} client events passed in ${elapsed} s at ${rate}/s`);
  assert.equal(floods.length + rejected, n);
  // The flooder was never closed: same socket, still connected.
  assert.equal(flooder.connection.state, 'connected');
  assert.equal(flooder.connection.socket_id, id);
  assert.ok(!flooder.states.includes('connecting'), `flooder reconnected: ${flooder.states}`);
  for (const c of [victim, calm, partner]) assert.ok(!c.states.includes('connecting'), `a bystander reconnected: ${c.states}`);

  for (const c of [flooder, victim, calm, partner]) c.disconnect();
});
