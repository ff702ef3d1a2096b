// Browser proof of issues 5 and 12 (the WordPress side) against a real WordPress behind the
// product's Caddy, with the Debian Chromium driven by playwright-core. Run by
// wordpress_test.go, which sets:
//   RT_SITE RT_PAGE_URL RT_PAGE_ID RT_READING_URL RT_READING_LIVE_URL RT_READING_ID RT_DOCROOT RT_TOOL
//   RT_BROADCAST_FILE RT_GOOD_URL RT_BAD_URL RT_ADMIN_PASSWORD RT_READER_PASSWORD RT_READER_ID
//   RT_WRITER_ID RT_SECRET RT_WEBHOOK_SECRET RT_OUT PLAYWRIGHT_CORE [CHROMIUM] [RT_PHP]
//   RT_GROUP: "core" (default: everything that runs against any hub) or "presence" (two
//   users, an anonymous visitor and the dashboard widget, live: needs the hub's presence
//   and webhooks configured in the Caddyfile)
// Prints one line per check and, last, "browser: N passed, M failed"; exits 1 on failure.
// Screenshots and results[-presence].json go to RT_OUT.
'use strict';

const { execFileSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const path = require('path');

const env = (name, def) => {
	const v = process.env[name];
	if (v === undefined || v === '') {
		if (def !== undefined) return def;
		throw new Error('missing environment variable ' + name);
	}
	return v;
};
const SITE = env('RT_SITE');
const PAGE = env('RT_PAGE_URL');
const OUT = env('RT_OUT');
const READER_ID = Number(env('RT_READER_ID'));
const GROUP = env('RT_GROUP', 'core');
const { chromium } = require(env('PLAYWRIGHT_CORE', 'playwright-core'));

fs.mkdirSync(OUT, { recursive: true });
const stamp = Date.now().toString(36);
const results = [];
const notes = {};

function tool(...args) {
	const out = execFileSync(env('RT_PHP', 'php'), [env('RT_TOOL'), env('RT_DOCROOT'), ...args], { encoding: 'utf8', timeout: 30000 });
	return JSON.parse(out.trim().split('\n').pop());
}

function assert(cond, message) {
	if (!cond) throw new Error(message);
}

function sleep(ms) {
	return new Promise((r) => setTimeout(r, ms));
}

// What a system cron job does: GET wp-cron.php.
function getWpCron() {
	return new Promise((resolve, reject) => {
		http.get(SITE + '/wp-cron.php', (res) => {
			res.resume();
			res.on('end', () => resolve(res.statusCode));
		}).on('error', reject);
	});
}

async function step(name, fn) {
	if (process.env.RT_STEPS && !new RegExp(process.env.RT_STEPS).test(name)) return; // development aid
	const start = Date.now();
	try {
		await fn();
		results.push({ name, ok: true, ms: Date.now() - start });
		console.log(`ok   ${name} (${Date.now() - start} ms)`);
	} catch (err) {
		results.push({ name, ok: false, ms: Date.now() - start, error: String(err && err.stack || err) });
		console.log(`FAIL ${name}: ${err && err.stack || err}`);
	}
}

// Records the client's control events from the first moment (before auto-start).
const SPY = () => {
	window.__rt = { subscribed: [], errors: [], states: [] };
	let client;
	Object.defineProperty(window, 'RealtimeEvents', {
		configurable: true,
		get() { return client; },
		set(v) {
			client = v;
			if (v && typeof v.on === 'function') {
				v.on('realtime:subscribed', (f) => window.__rt.subscribed.push(f.channel));
				v.on('realtime:error', (f) => window.__rt.errors.push({ code: f.code, channel: f.channel }));
				v.on('realtime:state', (s) => window.__rt.states.push(s.state));
			}
		},
	});
};

async function newVisitor(browser, name) {
	const ctx = await browser.newContext({ viewport: { width: 1100, height: 900 } });
	await ctx.addInitScript(SPY);
	const page = await ctx.newPage();
	page.__name = name;
	page.__dialogs = [];
	page.__sockets = [];
	page.on('dialog', (d) => { page.__dialogs.push(d.message()); d.dismiss().catch(() => {}); });
	page.on('websocket', (ws) => page.__sockets.push(ws.url()));
	page.on('pageerror', (e) => console.log(`[${name}] page error: ${e.message}`));
	return { ctx, page };
}

async function openLivePage(page) {
	await page.goto(PAGE, { waitUntil: 'load' });
	await page.waitForFunction(() => window.RealtimeEvents && window.RealtimeEvents.state() === 'open', null, { timeout: 10000 });
}

async function login(ctx, user, password) {
	const page = await ctx.newPage();
	await page.goto(SITE + '/wp-login.php');
	await page.fill('#user_login', user);
	await page.fill('#user_pass', password);
	await Promise.all([page.waitForNavigation(), page.click('#wp-submit')]);
	assert(/\/wp-admin\//.test(page.url()), `login of ${user} failed (at ${page.url()})`);
	return page;
}

async function restNonce(page) {
	return page.evaluate(async (site) => {
		const r = await fetch(site + '/wp-admin/admin-ajax.php?action=rest-nonce', { credentials: 'same-origin' });
		return (await r.text()).trim();
	}, SITE);
}

// Publishes a post the way the block editor does: the REST API, as the administrator.
async function publishPost(adminPage, title) {
	const nonce = await restNonce(adminPage);
	const res = await adminPage.evaluate(async ({ site, nonce, title }) => {
		const r = await fetch(site + '/?rest_route=/wp/v2/posts', {
			method: 'POST',
			credentials: 'same-origin',
			headers: { 'Content-Type': 'application/json', 'X-WP-Nonce': nonce },
			body: JSON.stringify({ title, status: 'publish', content: 'Published by the end-to-end test.' }),
		});
		const body = await r.json();
		return { status: r.status, id: body.id, title: body.title && body.title.raw, state: body.status };
	}, { site: SITE, nonce, title });
	assert(res.status === 201 && res.state === 'publish', `publishing "${title}" failed: ${JSON.stringify(res)}`);
	return res;
}

async function deletePost(adminPage, id) {
	const nonce = await restNonce(adminPage);
	const status = await adminPage.evaluate(async ({ site, nonce, id }) => (await fetch(`${site}/?rest_route=/wp/v2/posts/${id}&force=true`, {
		method: 'DELETE', credentials: 'same-origin', headers: { 'X-WP-Nonce': nonce },
	})).status, { site: SITE, nonce, id });
	assert(status === 200, `deleting post ${id}: HTTP ${status}`);
}

function titlesIn(page) {
	return page.$$eval('#realtime-notification-area .realtime-event-title', (els) => els.map((e) => e.textContent));
}

async function countTitle(page, title) {
	return (await titlesIn(page)).filter((t) => t === title).length;
}

async function waitTitle(page, title, timeout) {
	await page.waitForFunction(
		(t) => Array.from(document.querySelectorAll('#realtime-notification-area .realtime-event-title')).some((e) => e.textContent === t),
		title,
		{ timeout, polling: 50 },
	);
}

async function shot(page, name) {
	const area = page.locator('#realtime-notification-area');
	if (await area.count()) {
		await area.screenshot({ path: path.join(OUT, name + '-area.png'), timeout: 5000 }).catch(() => {});
	}
	await page.screenshot({ path: path.join(OUT, name + '.png'), fullPage: false });
}

async function settingsPage(adminPage) {
	await adminPage.goto(SITE + '/wp-admin/options-general.php?page=realtime-events');
	return {
		backlog: (await adminPage.textContent('.realtime-events-backlog')).trim(),
		oldest: (await adminPage.textContent('.realtime-events-oldest')).trim(),
		lastError: (await adminPage.textContent('.realtime-events-last-error')).trim(),
		hub: (await adminPage.textContent('#realtime-events-hub-status')).trim(),
		config: (await adminPage.textContent('#realtime-events-config')).replace(/\s+/g, ' '),
	};
}

// ------------------------------------------------------------------ presence helpers

const WRITER_NAME = 'Writer <img src=x onerror="window.__xss=1">'; // set by install.php
const READING_CHANNEL = () => 'presence-post.' + env('RT_READING_ID');
const WEBHOOK_URL = () => SITE + '/wp-json/realtime-events/v1/webhook';

// POSTs a webhook signed like the hub's: X-Realtime-Signature t=<unix>,v1=HMAC(secret, "<t>.<body>").
function postWebhook(events) {
	const body = JSON.stringify({ time_ms: Date.now(), events });
	const t = Math.floor(Date.now() / 1000);
	const v1 = crypto.createHmac('sha256', env('RT_WEBHOOK_SECRET')).update(`${t}.${body}`).digest('hex');
	return new Promise((resolve, reject) => {
		const req = http.request(WEBHOOK_URL(), {
			method: 'POST',
			headers: { 'Content-Type': 'application/json', 'X-Realtime-Signature': `t=${t},v1=${v1}`, 'Content-Length': Buffer.byteLength(body) },
		}, (res) => {
			let data = '';
			res.on('data', (c) => { data += c; });
			res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(data) }));
		});
		req.on('error', reject);
		req.end(body);
	});
}

function jwtClaims(token) {
	return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

// What the [realtime_presence] placeholder of a page shows.
function presenceView(page) {
	return page.evaluate(() => {
		const box = document.querySelector('.realtime-presence');
		if (!box) return null;
		const count = box.querySelector('.realtime-presence-count');
		return {
			hidden: box.hidden,
			count: count ? Number(count.getAttribute('data-count')) : null,
			text: count ? count.textContent : '',
			list: !!box.querySelector('.realtime-presence-members'),
			names: Array.from(box.querySelectorAll('.realtime-presence-name')).map((e) => e.textContent).sort(),
			ids: Array.from(box.querySelectorAll('.realtime-presence-member')).map((e) => e.getAttribute('data-member-id')).sort(),
			strayImages: box.querySelectorAll('img:not(.realtime-presence-avatar)').length,
			xss: window.__xss,
		};
	});
}

// Waits until the placeholder shows `count` and, when given, exactly these names.
async function waitPresence(page, count, names, timeout = 15000) {
	const want = names ? names.slice().sort() : null;
	try {
		await page.waitForFunction(([n, w]) => {
			const box = document.querySelector('.realtime-presence');
			const c = box && box.querySelector('.realtime-presence-count');
			if (!c || box.hidden || Number(c.getAttribute('data-count')) !== n) return false;
			if (!w) return true;
			const got = Array.from(box.querySelectorAll('.realtime-presence-name')).map((e) => e.textContent).sort();
			return JSON.stringify(got) === JSON.stringify(w);
		}, [count, want], { timeout, polling: 100 });
	} catch (err) {
		throw new Error(`${page.__name}: want ${count} reading${want ? ' ' + JSON.stringify(want) : ''}, see ${JSON.stringify(await presenceView(page))}`);
	}
	return presenceView(page);
}

// The "Online now" widget of the dashboard: channel -> {ids, names, anonymous}.
async function onlineWidget(adminPage) {
	await adminPage.goto(SITE + '/wp-admin/index.php');
	return adminPage.evaluate(() => {
		const out = {};
		document.querySelectorAll('#realtime-events-online .realtime-events-online-channel').forEach((li) => {
			out[li.getAttribute('data-channel')] = {
				title: li.querySelector('strong').textContent,
				ids: Array.from(li.querySelectorAll('.realtime-events-online-member')).map((m) => m.getAttribute('data-user-id')).sort(),
				names: Array.from(li.querySelectorAll('.realtime-events-online-name')).map((m) => m.textContent).sort(),
				anonymous: (li.querySelector('.realtime-events-online-anonymous') || { textContent: '' }).textContent,
			};
		});
		return { channels: out, status: (document.querySelector('.realtime-events-online-status') || { textContent: '' }).textContent, xss: window.__xss };
	});
}

// Reloads the dashboard until cond(widget) holds.
async function waitWidget(adminPage, what, cond, timeout = 15000) {
	const deadline = Date.now() + timeout;
	let w;
	for (;;) {
		w = await onlineWidget(adminPage);
		if (cond(w)) return w;
		if (Date.now() > deadline) throw new Error(`dashboard widget: ${what}; it shows ${JSON.stringify(w)}`);
		await sleep(500);
	}
}

// The checks of issue 5: publishing, resume, private channels, the settings page;
// and of presence that need no presence in the hub: grants and the webhook receiver.
async function coreChecks(browser) {
	const admin = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
	const adminPage = await login(admin, 'admin', env('RT_ADMIN_PASSWORD'));
	const visitor = await newVisitor(browser, 'visitor');
	await openLivePage(visitor.page);

	// 1. A published post reaches an open page within 5 s, without cron.
	await step('post title appears within 5 s without cron', async () => {
		const cron = tool('cron-info');
		const title = `Live post ${stamp}`;
		const t0 = Date.now();
		await publishPost(adminPage, title);
		await waitTitle(visitor.page, title, 5000);
		notes.post_to_screen_ms = Date.now() - t0;
		assert(notes.post_to_screen_ms <= 5000, `took ${notes.post_to_screen_ms} ms`);
		const after = tool('cron-info');
		assert(after.next === cron.next, 'the cron drain did not run (its next run is unchanged)');
		assert(tool('outbox').length === 0, 'outbox is empty after delivery');
		await shot(visitor.page, '01-post-published');
	});

	// 1b. A scheduled post is announced when WP-Cron publishes it.
	await step('scheduled post appears when WP-Cron publishes it', async () => {
		const title = `Scheduled post ${stamp}`;
		const nonce = await restNonce(adminPage);
		const when = new Date(Date.now() + 3600 * 1000).toISOString().slice(0, 19);
		const res = await adminPage.evaluate(async ({ site, nonce, title, when }) => {
			const r = await fetch(site + '/?rest_route=/wp/v2/posts', {
				method: 'POST',
				credentials: 'same-origin',
				headers: { 'Content-Type': 'application/json', 'X-WP-Nonce': nonce },
				body: JSON.stringify({ title, status: 'future', date_gmt: when, content: 'Scheduled by the end-to-end test.' }),
			});
			const body = await r.json();
			return { status: r.status, state: body.status, id: body.id };
		}, { site: SITE, nonce, title, when });
		assert(res.status === 201 && res.state === 'future', `scheduling failed: ${JSON.stringify(res)}`);
		await sleep(1500);
		assert((await countTitle(visitor.page, title)) === 0, 'not announced while scheduled');
		// An hour later... (the tool moves the post's date and its cron event to the past).
		const due = tool('time-passes', String(res.id));
		assert(due.status === 'future' && due.next, `still scheduled: ${JSON.stringify(due)}`);
		const t0 = Date.now();
		await getWpCron(); // the system cron: runs publish_future_post, which publishes the post
		await waitTitle(visitor.page, title, 5000);
		notes.scheduled_cron_to_screen_ms = Date.now() - t0;
	});

	// 2. Broken ingest URL: the event is held; fixed URL + wp-cron.php: delivered once.
	await step('broken ingest holds the event; fixed URL + wp-cron.php delivers it exactly once', async () => {
		fs.writeFileSync(env('RT_BROADCAST_FILE'), env('RT_BAD_URL') + '\n');
		const title = `Held post ${stamp}`;
		await publishPost(adminPage, title);
		await sleep(3000);
		assert((await countTitle(visitor.page, title)) === 0, 'not shown while the ingest is broken');
		let rows = tool('outbox');
		assert(rows.length === 1, `one event held in the outbox, got ${rows.length}`);
		assert(Number(rows[0].attempts) >= 1 && rows[0].last_error !== '', 'the failed attempt is recorded');
		assert(/^[0-9a-f-]{36}$/.test(rows[0].event_id), 'the event has a UUID');
		notes.held_error = rows[0].last_error;
		const settings = await settingsPage(adminPage);
		notes.settings_while_held = settings;
		assert(/^1\b/.test(settings.backlog), `settings page shows the backlog: ${settings.backlog}`);
		assert(settings.lastError !== 'none', 'settings page shows the last error');
		assert(/Unreachable|refused/i.test(settings.hub), `hub status shows the failure: ${settings.hub}`);
		assert(!settings.config.includes(process.env.RT_SECRET || '\u0000'), 'secret not shown');
		await adminPage.screenshot({ path: path.join(OUT, '02-settings-event-held.png'), fullPage: true });

		// Repair the URL and wait for the backoff of the failed attempt to pass.
		fs.writeFileSync(env('RT_BROADCAST_FILE'), env('RT_GOOD_URL') + '\n');
		const deadline = Date.now() + 20000;
		for (;;) {
			const now = Math.floor(Date.now() / 1000);
			rows = tool('outbox');
			if (rows.length === 1 && Number(rows[0].next_attempt_at) <= now) break;
			assert(Date.now() < deadline, 'the retry never became due');
			await sleep(500);
		}
		assert((await countTitle(visitor.page, title)) === 0, 'nothing delivered it before WP-Cron ran');
		// The system cron's job: the drain is due (tool), then GET wp-cron.php.
		tool('cron-due');
		const t0 = Date.now();
		const code = await getWpCron();
		assert(code === 200, `wp-cron.php answered ${code}`);
		await waitTitle(visitor.page, title, 10000);
		notes.cron_to_screen_ms = Date.now() - t0;
		// Run cron again: still exactly once.
		await sleep(1500);
		tool('cron-due');
		await getWpCron();
		await sleep(2500);
		assert((await countTitle(visitor.page, title)) === 1, 'shown exactly once');
		assert(tool('outbox').length === 0, 'outbox empty');
		await shot(visitor.page, '03-held-event-delivered');
		const after = await settingsPage(adminPage);
		notes.settings_after = after;
		assert(/^0\b/.test(after.backlog), `backlog back to 0: ${after.backlog}`);
		assert(/Reachable/.test(after.hub), `hub reachable: ${after.hub}`);
		await adminPage.screenshot({ path: path.join(OUT, '03-settings-hub-ok.png'), fullPage: true });
	});

	// 3. Offline browser: 3 posts published meanwhile, all shown once after it is back.
	await step('offline browser gets the 3 posts once each after coming back (resume)', async () => {
		const titles = [1, 2, 3].map((i) => `Offline post ${i} ${stamp}`);
		const socketsBefore = visitor.page.__sockets.length;
		await visitor.ctx.setOffline(true);
		// The client notices the dead connection (its ping is not answered).
		await visitor.page.waitForFunction(() => window.RealtimeEvents.state() !== 'open', null, { timeout: 30000, polling: 200 });
		for (const t of titles) await publishPost(adminPage, t);
		await sleep(1000);
		for (const t of titles) assert((await countTitle(visitor.page, t)) === 0, 'nothing arrives while offline');
		const t0 = Date.now();
		await visitor.ctx.setOffline(false);
		for (const t of titles) await waitTitle(visitor.page, t, 15000);
		notes.resume_ms = Date.now() - t0;
		await sleep(2000);
		for (const t of titles) assert((await countTitle(visitor.page, t)) === 1, `"${t}" shown once`);
		const order = (await titlesIn(visitor.page)).filter((t) => titles.includes(t));
		assert(JSON.stringify(order) === JSON.stringify(titles.slice().reverse()), `newest first: ${order}`);
		const resumed = visitor.page.__sockets.slice(socketsBefore).filter((u) => /[?&]since=/.test(u));
		assert(resumed.length >= 1, 'the client reconnected with its cursor (since=)');
		notes.resume_url = resumed[resumed.length - 1];
		await shot(visitor.page, '04-resumed-after-offline');
	});

	// 4. A title that is HTML is rendered as text and runs nothing.
	await step('<img onerror> title renders as text and runs nothing', async () => {
		const title = `<img src=x onerror="window.__xss=1;alert('xss')"> XSS ${stamp}`;
		const res = await publishPost(adminPage, title);
		assert(res.title === title, 'WordPress stored the raw title');
		await waitTitle(visitor.page, title, 5000);
		await sleep(500);
		const state = await visitor.page.evaluate(() => ({
			xss: window.__xss,
			imgs: document.querySelectorAll('#realtime-notification-area img').length,
		}));
		assert(state.xss === undefined, 'onerror did not run');
		assert(state.imgs === 0, 'no <img> element was created');
		assert(visitor.page.__dialogs.length === 0, 'no alert dialog');
		await shot(visitor.page, '05-html-title-as-text');
		// WordPress itself prints an administrator's title as HTML (unfiltered_html; the
		// theme's "latest posts" list): remove the post so later pages do not run it.
		await deletePost(adminPage, res.id);
	});

	// 5. Private channel: the logged-in user's page gets it, anonymous pages do not.
	await step('private event reaches the logged-in user and not an anonymous page', async () => {
		let lapT = Date.now();
		const lap = (m) => { notes['lap_' + m] = Date.now() - lapT; lapT = Date.now(); };
		const reader = await newVisitor(browser, 'reader');
		await login(reader.ctx, 'reader', env('RT_READER_PASSWORD'));
		lap('login');
		const cookies = await reader.ctx.cookies(SITE);
		const token = cookies.find((c) => c.name === 'realtime_token');
		const meta = cookies.find((c) => c.name === 'realtime_token_meta');
		assert(token && token.httpOnly && token.sameSite === 'Strict', `HttpOnly SameSite token cookie: ${JSON.stringify(token)}`);
		assert(meta && !meta.httpOnly, 'a script-readable meta cookie');
		const metaValue = JSON.parse(decodeURIComponent(meta.value));
		assert(Object.keys(metaValue).sort().join() === 'channels,exp,iat' && !meta.value.includes(token.value), `meta cookie holds no token: ${meta.value}`);
		await openLivePage(reader.page);
		lap('open');
		const channel = `private-user.${READER_ID}`;
		await reader.page.waitForFunction((c) => window.__rt.subscribed.includes(c), channel, { timeout: 5000 });
		lap('subscribed');
		assert(!(await reader.page.evaluate(() => document.cookie)).includes('realtime_token='), 'the token is not readable by scripts');
		const html = await reader.page.content();
		assert(!html.includes(token.value), 'the token is not in the HTML');

		// Refresh through the REST route (nonce from admin-ajax), and without a nonce.
		const refreshed = await reader.page.evaluate(() => window.RealtimeEventsAuth.refresh());
		assert(refreshed.expires > Date.now() / 1000 && refreshed.channels.includes(channel) && !refreshed.token, 'REST refresh');
		const noNonce = await reader.page.evaluate(async (site) => (await fetch(site + '/?rest_route=/realtime-events/v1/token', { method: 'POST', credentials: 'same-origin' })).status, SITE);
		assert(noNonce === 401, `REST refresh without the nonce is refused (${noNonce})`);
		lap('refresh');

		// An anonymous page that asks for the channel itself.
		const spy = await newVisitor(browser, 'anonymous-spy');
		await openLivePage(spy.page);
		await spy.page.evaluate((c) => window.RealtimeEvents.subscribe(c), channel);
		await spy.page.waitForFunction((c) => window.__rt.errors.some((e) => e.channel === c), channel, { timeout: 5000 });
		const spyErrors = await spy.page.evaluate(() => window.__rt.errors);
		lap('spy');

		const title = `For the reader only ${stamp}`;
		const t0 = Date.now();
		tool('publish', channel, 'private_notice', JSON.stringify({ title, message: 'Only you can see this.' }));
		await waitTitle(reader.page, title, 5000);
		notes.private_to_screen_ms = Date.now() - t0;
		await sleep(2500);
		assert((await countTitle(visitor.page, title)) === 0, 'not on the anonymous page');
		assert((await countTitle(spy.page, title)) === 0, 'not on the anonymous page that tried to subscribe');
		assert(spyErrors.every((e) => e.code === 'forbidden' || e.code === 'token_invalid'), `refused: ${JSON.stringify(spyErrors)}`);
		notes.anonymous_subscribe_errors = spyErrors;
		// The token cookie expires (removed here): the hub refuses the private channel,
		// the page gets a new cookie through the REST route and subscribes again.
		await reader.ctx.clearCookies({ name: 'realtime_token' });
		const subscribedBefore = await reader.page.evaluate((c) => window.__rt.subscribed.filter((x) => x === c).length, channel);
		await reader.page.evaluate(() => window.RealtimeEvents.reconnect());
		await reader.page.waitForFunction(
			([c, n]) => window.__rt.subscribed.filter((x) => x === c).length > n,
			[channel, subscribedBefore],
			{ timeout: 15000 },
		);
		const renewed = (await reader.ctx.cookies(SITE)).find((c) => c.name === 'realtime_token');
		assert(renewed && renewed.httpOnly, 'a new token cookie was set');
		notes.reader_errors_after_expiry = await reader.page.evaluate(() => window.__rt.errors);
		const again = `Still for the reader ${stamp}`;
		tool('publish', channel, 'private_notice', JSON.stringify({ title: again }));
		await waitTitle(reader.page, again, 5000);
		lap('renewal');
		await shot(reader.page, '06-private-event-logged-in-user');
		await shot(spy.page, '06-private-event-anonymous');
		lap('shots');
		await reader.ctx.close();
		await spy.ctx.close();
	});

	// The settings page's "Send test event" button (capability + nonce).
	await step('settings page "Send test event" reaches the page', async () => {
		await adminPage.goto(SITE + '/wp-admin/options-general.php?page=realtime-events');
		const message = `Hello from the settings page ${stamp}`;
		await adminPage.fill('#realtime-events-message', message);
		await Promise.all([adminPage.waitForNavigation(), adminPage.click('#realtime-events-test-form input[type=submit]')]);
		assert(/realtime-events-notice=test-queued/.test(adminPage.url()), `queued: ${adminPage.url()}`);
		await visitor.page.waitForFunction(
			(m) => Array.from(document.querySelectorAll('.realtime-event-message')).some((e) => e.textContent === m),
			message,
			{ timeout: 5000 },
		);
		// Without the nonce the action is refused.
		const forged = await adminPage.evaluate(async (site) => {
			const body = new URLSearchParams({ action: 'realtime_events_send_test', channel: 'default', message: 'forged' });
			const r = await fetch(site + '/wp-admin/admin-post.php', { method: 'POST', body, credentials: 'same-origin' });
			return r.status;
		}, SITE);
		assert(forged === 403, `admin-post without a nonce is refused (${forged})`);
		await shot(visitor.page, '07-test-event-from-settings');
	});

	// Presence grants (issue 12), which need no presence in the hub.
	await step('presence: anonymous grant in an HttpOnly cookie, no meta cookie, refusals', async () => {
		const channel = READING_CHANNEL();
		const anon = await newVisitor(browser, 'anonymous-reader');
		const grants = [];
		anon.page.on('request', (r) => { if (r.url().includes('realtime-events/v1/presence')) grants.push(r.url()); });
		const served = await (await anon.page.goto(env('RT_READING_URL'), { waitUntil: 'load' })).text();
		const placeholder = `<div class="realtime-presence" data-channel="${channel}" data-members="yes" aria-live="polite" hidden></div>`;
		assert(served.includes(placeholder), 'the placeholder as served: empty and hidden, the same for every visitor');
		const hasPresenceClient = await anon.page.evaluate(() => !!window.RealtimeEvents && typeof window.RealtimeEvents.presence === 'function');
		notes.client_has_presence = hasPresenceClient;
		if (!hasPresenceClient) {
			// A client without presence(): the script does nothing at all.
			await sleep(1500);
			assert(grants.length === 0, `no grant request without a presence-capable client: ${grants}`);
			assert((await presenceView(anon.page)).hidden, 'the placeholder stays hidden');
		} else {
			// The hub refused the channel (no token yet), the script got a grant, reconnected
			// and the visitor counts itself.
			await anon.page.waitForFunction(() => {
				const c = document.querySelector('.realtime-presence:not([hidden]) .realtime-presence-count');
				return c && Number(c.getAttribute('data-count')) >= 1;
			}, null, { timeout: 15000 });
			assert(grants.length >= 1, 'the script asked for a grant');
			assert(!(await presenceView(anon.page)).list, 'an anonymous viewer sees no names');
		}
		const ask = (page, ch, nonce) => page.evaluate(async ([ch, nonce]) => {
			const headers = { 'Content-Type': 'application/json' };
			if (nonce) headers['X-WP-Nonce'] = nonce;
			const r = await fetch(window.RealtimePresenceConfig.restUrl, { method: 'POST', credentials: 'same-origin', headers, body: JSON.stringify({ channel: ch }) });
			return { status: r.status, body: await r.json(), cacheControl: r.headers.get('cache-control') };
		}, [ch, nonce]);
		const res = await ask(anon.page, channel);
		assert(res.status === 200 && res.body.anonymous === true && /^anon-[0-9a-f]{32}$/.test(res.body.member), `anonymous grant: ${JSON.stringify(res)}`);
		assert(!('token' in res.body) && /no-store/.test(res.cacheControl), 'no token in the body, not cacheable');
		let cookies = await anon.ctx.cookies(SITE);
		const token = cookies.find((c) => c.name === 'realtime_token');
		assert(token && token.httpOnly, 'an HttpOnly token cookie');
		assert(!cookies.some((c) => c.name === 'realtime_token_meta'), 'no meta cookie for anonymous visitors');
		const claims = jwtClaims(token.value);
		assert(claims.sub === res.body.member && JSON.stringify(claims.channels) === JSON.stringify([channel]) && !('info' in claims), `anonymous claims: ${JSON.stringify(claims)}`);
		const again = await ask(anon.page, channel);
		assert(again.body.member === res.body.member, 'the same visitor keeps its id (one member across tabs and reloads)');
		const refused = await ask(anon.page, 'presence-post.999999999');
		assert(refused.status === 403, `no such post: ${refused.status}`);
		notes.anonymous_member = res.body.member;

		// A logged-in browser is never handed an anonymous token: the nonce is required.
		const reader = await newVisitor(browser, 'reader-grant');
		const readerAdmin = await login(reader.ctx, 'reader', env('RT_READER_PASSWORD'));
		await reader.page.goto(env('RT_READING_URL'), { waitUntil: 'load' });
		const noNonce = await ask(reader.page, channel);
		assert(noNonce.status === 401 && noNonce.body.code === 'realtime_events_nonce_required', `without the nonce: ${JSON.stringify(noNonce)}`);
		const withNonce = await ask(reader.page, channel, await restNonce(readerAdmin));
		assert(withNonce.status === 200 && withNonce.body.anonymous === false && withNonce.body.member === String(READER_ID), `with the nonce: ${JSON.stringify(withNonce)}`);
		cookies = await reader.ctx.cookies(SITE);
		const userClaims = jwtClaims(cookies.find((c) => c.name === 'realtime_token').value);
		assert(JSON.stringify(userClaims.channels) === JSON.stringify([`private-user.${READER_ID}`, channel]), `user channels: ${JSON.stringify(userClaims.channels)}`);
		assert(userClaims.info && userClaims.info.name === 'reader' && /^https?:\/\//.test(userClaims.info.avatar), `user info: ${JSON.stringify(userClaims.info)}`);
		const meta = JSON.parse(decodeURIComponent(cookies.find((c) => c.name === 'realtime_token_meta').value));
		assert(JSON.stringify(meta.channels) === JSON.stringify([`private-user.${READER_ID}`]), `the meta cookie lists no presence channel: ${JSON.stringify(meta)}`);
		await anon.ctx.close();
		await reader.ctx.close();
	});

	await step('presence: signed webhooks feed the "Online now" widget and the settings page', async () => {
		// The live page's channel: no browser joins it, so with a hub that sends webhooks
		// of its own nothing but these events reaches it.
		const channel = 'presence-post.' + env('RT_PAGE_ID');
		const writer = String(env('RT_WRITER_ID'));
		const anonId = 'anon-' + crypto.randomBytes(16).toString('hex');
		const id = () => 'browser-' + crypto.randomBytes(8).toString('hex');
		const added = await postWebhook([
			{ name: 'member_added', channel, user_id: String(READER_ID), id: id() },
			{ name: 'member_added', channel, user_id: writer, id: id() },
			{ name: 'member_added', channel, user_id: anonId, id: id() },
		]);
		assert(added.status === 200 && added.body.processed === 3, `webhook: ${JSON.stringify(added)}`);
		const w = await onlineWidget(adminPage);
		const c = w.channels[channel];
		assert(c && c.title === 'Live', `widget channel: ${JSON.stringify(w)}`);
		assert(JSON.stringify(c.ids) === JSON.stringify([String(READER_ID), writer].sort()), `widget members: ${JSON.stringify(c)}`);
		assert(c.names.includes(WRITER_NAME) && c.names.includes('reader'), `names as text: ${JSON.stringify(c.names)}`);
		assert(/^1 anonymous visitor$/.test(c.anonymous), `anonymous count: ${c.anonymous}`);
		assert(w.xss === undefined, 'a display name that is HTML runs nothing');
		assert(/Last webhook from the hub/.test(w.status), `widget status: ${w.status}`);
		await adminPage.locator('#realtime_events_online').screenshot({ path: path.join(OUT, '08-online-now-widget.png') }).catch(() => {});

		await adminPage.goto(SITE + '/wp-admin/options-general.php?page=realtime-events');
		const settings = await adminPage.evaluate(() => ({
			url: document.querySelector('.realtime-events-webhook-url').textContent,
			caddyfile: document.querySelector('.realtime-events-webhook-caddyfile').textContent,
			last: document.querySelector('.realtime-events-webhook-last').textContent.trim(),
			config: document.querySelector('#realtime-events-config').textContent.replace(/\s+/g, ' '),
		}));
		assert(settings.url === WEBHOOK_URL(), `webhook URL: ${settings.url}`);
		assert(settings.caddyfile.includes('webhook ' + WEBHOOK_URL()) && settings.caddyfile.includes('secret {env.REALTIME_WEBHOOK_SECRET}'), `Caddyfile lines: ${settings.caddyfile}`);
		// The last delivery may be the hub's own (when it sends webhooks) rather than ours.
		assert(/^received .* ago with \d+ events?; \d+ deliveries so far$/.test(settings.last), `last webhook: ${settings.last}`);
		assert(!settings.config.includes(env('RT_WEBHOOK_SECRET')), 'the webhook secret is not shown');
		await adminPage.locator('#realtime-events-webhook-status').screenshot({ path: path.join(OUT, '08-settings-webhook.png') }).catch(() => {});
		notes.settings_webhook = settings;

		const removed = await postWebhook([
			{ name: 'member_removed', channel, user_id: String(READER_ID), id: id() },
			{ name: 'member_removed', channel, user_id: writer, id: id() },
			{ name: 'member_removed', channel, user_id: anonId, id: id() },
		]);
		assert(removed.status === 200 && removed.body.processed === 3, `webhook: ${JSON.stringify(removed)}`);
		const after = await onlineWidget(adminPage);
		assert(!after.channels[channel], `the widget forgets who left: ${JSON.stringify(after)}`);
	});
}

// Presence live (issue 12): needs the hub's presence, a short presence_leave_delay and the
// hub's webhook pointed at WordPress (Caddyfile.tmpl), and a client with presence().
async function presenceChecks(browser) {
	const channel = READING_CHANNEL();
	const writerId = String(env('RT_WRITER_ID'));
	const admin = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
	const adminPage = await login(admin, 'admin', env('RT_ADMIN_PASSWORD'));
	const reader = await newVisitor(browser, 'reader');
	const writer = await newVisitor(browser, 'writer');
	const anon = await newVisitor(browser, 'anonymous');
	await login(reader.ctx, 'reader', env('RT_READER_PASSWORD'));
	await login(writer.ctx, 'writer', env('RT_READER_PASSWORD'));

	await step('presence: two logged-in users on one post see each other appear', async () => {
		// The reader's page has only [realtime_presence] (its script starts the client);
		// the writer's also has the notification area (the client is already connected).
		await reader.page.goto(env('RT_READING_URL'), { waitUntil: 'load' });
		await waitPresence(reader.page, 1, ['reader']);
		const t0 = Date.now();
		await writer.page.goto(env('RT_READING_LIVE_URL'), { waitUntil: 'load' });
		const seen = await waitPresence(reader.page, 2, ['reader', WRITER_NAME]);
		notes.member_added_ms = Date.now() - t0;
		const other = await waitPresence(writer.page, 2, ['reader', WRITER_NAME]);
		for (const v of [seen, other]) {
			assert(v.xss === undefined && v.strayImages === 0, `a display name that is HTML is text (${v === seen ? "reader" : "writer"}): ${JSON.stringify(v)}`);
			assert(JSON.stringify(v.ids) === JSON.stringify([String(READER_ID), writerId].sort()), `member ids: ${JSON.stringify(v.ids)}`);
		}
		assert(reader.page.__dialogs.length === 0 && writer.page.__dialogs.length === 0, 'no alert dialog');
		assert(/2/.test(seen.text), `count text: ${seen.text}`);
		await shot(reader.page, '09-presence-reader');
		await shot(writer.page, '09-presence-writer');
	});

	await step('presence: an anonymous page shows the count only', async () => {
		await anon.page.goto(env('RT_READING_URL'), { waitUntil: 'load' });
		const v = await waitPresence(anon.page, 3);
		assert(!v.list && v.names.length === 0, `no names for an anonymous viewer: ${JSON.stringify(v)}`);
		const r = await waitPresence(reader.page, 3, ['reader', WRITER_NAME]);
		assert(r.ids.length === 2, 'the anonymous visitor is counted, not listed');
		await waitPresence(writer.page, 3);
		await shot(anon.page, '10-presence-anonymous');
	});

	await step('presence: the dashboard widget shows them (webhooks from the hub)', async () => {
		const w = await waitWidget(adminPage, 'reader, writer and 1 anonymous visitor', (w) => {
			const c = w.channels[channel];
			return c && JSON.stringify(c.ids) === JSON.stringify([String(READER_ID), writerId].sort()) && /^1 anonymous visitor$/.test(c.anonymous);
		});
		assert(w.channels[channel].names.includes(WRITER_NAME) && w.xss === undefined, `widget names as text: ${JSON.stringify(w)}`);
		await adminPage.locator('#realtime_events_online').screenshot({ path: path.join(OUT, '11-online-now-live.png') }).catch(() => {});
	});

	await step('presence: a user who leaves is removed for the others and from the widget', async () => {
		const t0 = Date.now();
		await writer.ctx.close();
		await waitPresence(reader.page, 2, ['reader']);
		notes.member_removed_ms = Date.now() - t0; // includes the hub's presence_leave_delay
		await waitPresence(anon.page, 2);
		await waitWidget(adminPage, 'the writer is gone', (w) => {
			const c = w.channels[channel];
			return c && JSON.stringify(c.ids) === JSON.stringify([String(READER_ID)]);
		});
		await anon.ctx.close();
		await waitPresence(reader.page, 1, ['reader']);
		await reader.ctx.close();
		await waitWidget(adminPage, 'nobody is left', (w) => !w.channels[channel]);
	});
}

(async () => {
	const browser = await chromium.launch({
		executablePath: env('CHROMIUM', '/usr/bin/chromium'),
		headless: true,
		args: [
			'--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
			'--disable-background-networking', '--disable-component-update', '--disable-sync',
			// Loopback only: any host name fails to resolve; 127.0.0.1 needs no resolver.
			'--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
		],
	});
	let exitCode = 0;
	try {
		if (GROUP === 'presence') await presenceChecks(browser);
		else await coreChecks(browser);
	} catch (err) {
		results.push({ name: 'setup', ok: false, error: String(err && err.stack || err) });
		console.log('FAIL setup: ' + (err && err.stack || err));
	} finally {
		await browser.close().catch(() => {});
	}
	const passed = results.filter((r) => r.ok).length;
	const failed = results.length - passed;
	fs.writeFileSync(path.join(OUT, GROUP === 'core' ? 'results.json' : `results-${GROUP}.json`), JSON.stringify({ results, notes }, null, 2));
	console.log('notes: ' + JSON.stringify(notes));
	console.log(`browser: ${passed} passed, ${failed} failed`);
	if (failed) exitCode = 1;
	process.exit(exitCode);
})();
