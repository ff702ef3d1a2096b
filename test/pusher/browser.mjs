// pusher-js and Laravel Echo in headless Chromium (playwright-core), on a
// page Caddy serves, with the app's /broadcasting/auth behind Caddy (a
// Node server signing with the pusher SDK): public and private listeners,
// toOthers(), whispers between two browsers, .error() on a refused
// subscription, and a presence channel (Echo's join: here, joining,
// leaving) with the two browsers as two users.
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { api, authServer, cfg, KEY, log, main, PORT, until, waitFor } from './lib.mjs';

main(async () => {
  const auth = await authServer(cfg.authPort);
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const url = `http://127.0.0.1:${PORT}/pusher-test/web/index.html`;
    const pages = [];
    for (const name of ['ann', 'bob']) {
      const page = await (await browser.newContext()).newPage();
      page.on('console', (m) => log(`[${name}] ${m.text()}`));
      page.on('pageerror', (e) => log(`[${name}] page error: ${e}`));
      await page.goto(url);
      page.socketId = await until(page.evaluate(([key, user]) => start(key, user), [KEY, name]), `${name}'s subscriptions`);
      pages.push(page);
    }
    const [ann, bob] = pages;
    log('both browsers subscribed:', ann.socketId, bob.socketId);
    const got = (page) => page.evaluate(() => window.got);

    const sdk = api();
    await sdk.trigger('orders', 'App\\Events\\OrderShipped', { id: 1 });
    await sdk.trigger('orders', 'App\\Events\\OrderShipped', { id: 2 }, { socket_id: ann.socketId });
    await sdk.trigger('private-chat.1', 'secret', { text: 'héllo' });
    await waitFor('the events in both browsers', async () => {
      const [a, b] = [await got(ann), await got(bob)];
      return a.orders.length === 1 && b.orders.length === 2 && a.secret.length === 1 && b.secret.length === 1;
    });
    assert.deepEqual((await got(ann)).orders, [{ id: 1 }]);
    assert.deepEqual((await got(bob)).orders, [{ id: 1 }, { id: 2 }]);
    assert.deepEqual((await got(bob)).secret, [{ text: 'héllo' }]);
    log('public, private and toOthers(): ok');

    await ann.evaluate(() => echo.private('chat.1').whisper('typing', { who: 'Ann' }));
    await waitFor("Bob's whisper", async () => (await got(bob)).whisper.length === 1);
    assert.deepEqual((await got(bob)).whisper, [{ who: 'Ann' }]);
    assert.equal((await got(ann)).whisper.length, 0);
    log('whisper between browsers: ok');

    const err = await until(ann.evaluate(() => new Promise((r) => echo.private('forged-1').error(r))), '.error()');
    assert.equal(err.status, 401);
    log('.error() in the browser:', JSON.stringify(err));

    // Presence: Ann joins, then Bob; Ann sees Bob come and, once his page
    // is closed and the leave delay is over, go.
    assert.deepEqual(await until(ann.evaluate(() => join('room')), "Ann's here"), [{ name: 'ann' }]);
    assert.deepEqual(await until(bob.evaluate(() => join('room')), "Bob's here"), [{ name: 'ann' }, { name: 'bob' }]);
    await waitFor('Ann sees Bob joining', async () => (await got(ann)).joining.length === 1);
    assert.deepEqual((await got(ann)).joining, [{ name: 'bob' }]);
    await bob.context().close();
    await waitFor('Ann sees Bob leaving', async () => (await got(ann)).leaving.length === 1);
    assert.deepEqual((await got(ann)).leaving, [{ name: 'bob' }]);
    log('presence between browsers: ok');
  } finally {
    await browser.close();
    auth.close();
  }
});
