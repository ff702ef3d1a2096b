// Laravel Echo 2.5 with its pusher broadcaster, as a Laravel frontend uses
// it: public and private listeners with Laravel's event namespace,
// whispers, toOthers() (the SDK's socket_id, as Laravel's
// PusherBroadcaster sends it from X-Socket-ID) and .error() on a refused
// subscription.
import assert from 'node:assert/strict';
import Echo from 'laravel-echo';
import { api, client, connected, log, main, until, waitFor } from './lib.mjs';

main(async () => {
  const sdk = api();
  const ann = new Echo({ broadcaster: 'pusher', client: client(), withoutInterceptors: true });
  const bob = new Echo({ broadcaster: 'pusher', client: client(), withoutInterceptors: true });
  await Promise.all([connected(ann.connector.pusher), connected(bob.connector.pusher)]);

  const got = { ann: [], bob: [], whisper: [], secret: [] };
  const ready = (ch) => until(new Promise((r) => ch.subscribed(r)), 'subscribed');
  await Promise.all([
    ready(ann.channel('orders').listen('OrderShipped', (e) => got.ann.push(e))),
    ready(bob.channel('orders').listen('OrderShipped', (e) => got.bob.push(e))),
    ready(bob.private('chat.1').listen('.secret.message', (e) => got.secret.push(e)).listenForWhisper('typing', (e) => got.whisper.push(e))),
    ready(ann.private('chat.1')),
  ]);
  log('subscribed', ann.socketId(), bob.socketId());

  // Laravel's broadcast(new OrderShipped($order)): event App\Events\OrderShipped.
  await sdk.trigger('orders', 'App\\Events\\OrderShipped', { order: { id: 1 } });
  // ->toOthers() from Ann's request: Laravel passes her socket id.
  await sdk.trigger('orders', 'App\\Events\\OrderShipped', { order: { id: 2 } }, { socket_id: ann.socketId() });
  await sdk.trigger('private-chat.1', 'secret.message', { text: 'hi' });
  await waitFor('the events', () => got.ann.length === 1 && got.bob.length === 2 && got.secret.length === 1);
  assert.deepEqual(got.ann, [{ order: { id: 1 } }]);
  assert.deepEqual(got.bob, [{ order: { id: 1 } }, { order: { id: 2 } }]);
  assert.deepEqual(got.secret, [{ text: 'hi' }]);
  log('listen, private listen and toOthers(): ok');

  ann.private('chat.1').whisper('typing', { who: 'Ann' });
  await waitFor('the whisper', () => got.whisper.length === 1);
  assert.deepEqual(got.whisper, [{ who: 'Ann' }]);
  log('whisper: ok');

  // A subscription the server refuses reaches Echo's .error().
  const err = await until(new Promise((r) => ann.private('forged-1').error(r)), '.error()');
  assert.equal(err.type, 'AuthError');
  assert.equal(err.status, 401);
  log('.error():', JSON.stringify(err));

  ann.disconnect();
  bob.disconnect();
});
