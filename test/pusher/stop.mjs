// caddy stop closes pusher-js connections with 4200, and the clients come
// back on their own once Caddy runs again: new sockets, their channels
// subscribed again (pusher-js re-authorizes private ones), events flowing.
// pusher-js retries at once after 4200; that attempt finds no server, and
// its next one comes after its 15 s connect timeout.
import assert from 'node:assert/strict';
import { api, client, collect, commands, connected, errorCodes, log, main, subscribed, tell, waitFor } from './lib.mjs';

main(async () => {
  const next = commands();
  const clients = Array.from({ length: 5 }, () => client());
  await Promise.all(clients.map(connected));
  const chans = await Promise.all(clients.map((c) => subscribed(c, 'private-stop')));
  const ids = clients.map((c) => c.connection.socket_id);
  const got = chans.map((ch) => collect(ch, 'back'));
  let resubscribed = 0;
  chans.forEach((ch) => ch.bind('pusher:subscription_succeeded', () => resubscribed++));

  tell('ready');
  await next('stopped');
  await waitFor('4200 on every client', () => clients.every((c) => errorCodes(c).includes(4200)), 5000);
  log('every client got close code 4200');
  tell('closed');
  await next('restarted');

  await waitFor('every client reconnected and resubscribed', () => resubscribed === clients.length &&
    clients.every((c, i) => c.connection.state === 'connected' && c.connection.socket_id !== ids[i]), 60000);
  log('every client reconnected on its own');
  await api().trigger('private-stop', 'back', { ok: true });
  await waitFor('the event after the restart', () => got.every((g) => g.length === 1));
  for (const c of clients) assert.ok(!errorCodes(c).some((code) => code >= 4000 && code < 4100 || code >= 4300), `a refusal: ${JSON.stringify(c.errors)}`);
  clients.forEach((c) => c.disconnect());
});
