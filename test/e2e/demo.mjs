#!/usr/bin/env node
// End-to-end check of the demo page and the JS client in a real browser.
//
//   node test/e2e/demo.mjs --base http://127.0.0.1:8080 --secret S --out DIR
//
// Drives Debian's /usr/bin/chromium through playwright-core (never a downloaded
// browser), prints one PASS/FAIL line per check and "N passed, M failed" at the
// end, and exits non-zero when anything failed.
//
// How "offline" is done. Chromium's offline emulation (context.setOffline(true))
// does NOT close a WebSocket that is already open: checked with Chromium 156,
// frames from the page still reach the server and frames from the server are
// held back until the page is online again. New connections fail with
// ERR_INTERNET_DISCONNECTED. Offline emulation alone would therefore test only
// the client's ping timeout, not a lost connection. So the page is loaded
// through a small TCP proxy on loopback that this script owns (page ->
// proxy -> server, bytes copied unchanged, so the Host and Origin headers
// still match). To go offline the script destroys every proxied connection
// (a real TCP close that the browser sees), makes the proxy drop new
// connections at once, and turns on offline emulation (navigator.onLine false,
// the "offline" and later "online" events). Events are published straight to
// the server meanwhile. Check (d) cuts the proxy only, without offline
// emulation, so the client must find its way back by its backoff alone, like
// after a server restart.

import { chromium } from 'playwright-core';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

// ------------------------------------------------------------------ options

function parseArgs(argv) {
	const opts = {
		base: 'http://127.0.0.1:8080',
		secret: process.env.REALTIME_SECRET || 'dev-secret-change-me',
		out: 'e2e-out',
		chromium: '/usr/bin/chromium',
	};
	for (let i = 0; i < argv.length; i++) {
		const m = /^--([a-z]+)(?:=(.*))?$/.exec(argv[i]);
		if (!m || !(m[1] in opts)) {
			console.error(`usage: node demo.mjs [--base URL] [--secret S] [--out DIR] [--chromium PATH] (bad argument ${argv[i]})`);
			process.exit(2);
		}
		opts[m[1]] = m[2] !== undefined ? m[2] : argv[++i];
	}
	opts.base = opts.base.replace(/\/+$/, '');
	return opts;
}

const opts = parseArgs(process.argv.slice(2));
const base = new URL(opts.base);
if (base.protocol !== 'http:') {
	console.error('--base must be an http:// URL (the proxy copies bytes; it does not terminate TLS)');
	process.exit(2);
}
fs.mkdirSync(opts.out, { recursive: true });
const run = Date.now().toString(36); // makes this run's titles unique

// A run must end by itself even if the browser or the server hangs.
const watchdog = setTimeout(() => {
	console.error('FAIL watchdog: the run took longer than 180 s');
	process.exit(1);
}, 180_000);
watchdog.unref();

// ------------------------------------------------------------------ results

let passed = 0;
let failed = 0;

async function check(name, fn) {
	try {
		const detail = await fn();
		passed++;
		console.log(`PASS ${name}${detail ? ` (${detail})` : ''}`);
		return true;
	} catch (err) {
		failed++;
		console.log(`FAIL ${name}: ${err && err.message ? err.message.split('\n')[0] : err}`);
		return false;
	}
}

function assert(cond, msg) {
	if (!cond) throw new Error(msg);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------- TCP proxy

function startProxy(host, port) {
	const pairs = new Set();
	let refusing = false;
	const server = net.createServer((client) => {
		if (refusing) {
			client.destroy(); // the browser sees the connection fail
			return;
		}
		const upstream = net.connect({ host, port });
		const pair = [client, upstream];
		pairs.add(pair);
		const end = () => {
			pairs.delete(pair);
			client.destroy();
			upstream.destroy();
		};
		client.on('error', end).on('close', end);
		upstream.on('error', end).on('close', end);
		client.pipe(upstream);
		upstream.pipe(client);
	});
	return new Promise((resolve, reject) => {
		server.once('error', reject);
		server.listen(0, '127.0.0.1', () => {
			resolve({
				port: server.address().port,
				// Cut every open connection and drop new ones until restore().
				sever() {
					refusing = true;
					for (const [a, b] of pairs) {
						a.destroy();
						b.destroy();
					}
					pairs.clear();
				},
				restore() {
					refusing = false;
				},
				close() {
					this.sever();
					server.close();
				},
			});
		});
	});
}

// ------------------------------------------------------------- publishing

async function publish(event) {
	const res = await fetch(`${opts.base}/realtime/broadcast`, {
		method: 'POST',
		headers: {
			Authorization: `Bearer ${opts.secret}`,
			'Content-Type': 'application/json',
		},
		body: JSON.stringify(event),
		signal: AbortSignal.timeout(5000),
	});
	const text = await res.text();
	assert(res.status === 200, `publish answered ${res.status}: ${text.slice(0, 200)}`);
	let body;
	try {
		body = JSON.parse(text);
	} catch {
		throw new Error(`publish answered non-JSON: ${text.slice(0, 200)}`);
	}
	assert(body.status === 'success', `publish answered ${text.slice(0, 200)}`);
	return body;
}

// ------------------------------------------------------------------- page

const AREA = '#realtime-notification-area';

// Titles of the rendered events, newest first (the DOM order).
function titles(page) {
	return page.$$eval(`${AREA} .realtime-event-title`, (els) => els.map((e) => e.textContent));
}

async function waitTitles(page, wanted, timeout) {
	await page.waitForFunction(
		({ sel, wanted }) => {
			const got = [...document.querySelectorAll(sel)].map((e) => e.textContent);
			return wanted.every((t) => got.includes(t));
		},
		{ sel: `${AREA} .realtime-event-title`, wanted },
		{ timeout, polling: 100 },
	);
}

function waitState(page, states, timeout) {
	return page.waitForFunction(
		(states) => window.RealtimeEvents && states.includes(window.RealtimeEvents.state()),
		states,
		{ timeout, polling: 100 },
	);
}

async function shot(page, name, selector = AREA) {
	const file = path.join(opts.out, name);
	await page.locator(selector).screenshot({ path: file });
	return file;
}

// ------------------------------------------------------------------- main

const proxy = await startProxy(base.hostname, Number(base.port || 80));
const pageUrl = `http://${base.hostname}:${proxy.port}/`;
let browser;

try {
	// Flags from NOTES.md. playwright adds --headless and gives every launch a
	// fresh temporary profile (its own --user-data-dir), removed on close.
	browser = await chromium.launch({
		executablePath: opts.chromium,
		headless: true,
		args: [
			'--no-sandbox',
			'--disable-gpu',
			'--disable-quic',
			'--no-first-run',
			'--disable-background-networking',
			'--disable-component-update',
			'--disable-sync',
		],
	});
	const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
	const page = await context.newPage();

	// Uncaught exceptions and the client's own errors fail the run; the
	// browser's messages about failed connections during the offline step
	// and a missing favicon are expected.
	const pageErrors = [];
	page.on('pageerror', (err) => pageErrors.push(`uncaught: ${err.message}`));
	page.on('console', (msg) => {
		if (msg.type() === 'error' && msg.text().includes('RealtimeEvents')) pageErrors.push(msg.text());
	});

	const ok = await check('page loads and connects', async () => {
		const res = await page.goto(pageUrl, { waitUntil: 'load', timeout: 15_000 });
		assert(res && res.ok(), `GET ${pageUrl} answered ${res && res.status()}`);
		assert(await page.locator(AREA).count() === 1, `no ${AREA} on the page`);
		assert(/development default secret/i.test(await page.textContent('body')), 'no development-secret banner');
		await waitState(page, ['open'], 10_000);
		const cursor = await page.evaluate(() => window.RealtimeEvents.cursor());
		assert(typeof cursor === 'string' && cursor.length > 0, 'no cursor adopted from the welcome frame');
		return `state ${await page.textContent('#rt-state')}, cursor ${cursor}`;
	});
	if (!ok) throw new Error('cannot continue without a connected page');

	await check('(a) a published event appears in the notification area', async () => {
		const title = `Hello ${run}`;
		const body = await publish({
			channel: 'default',
			type: 'hello',
			payload: { title, message: 'from the e2e test' },
		});
		await waitTitles(page, [title], 5000);
		const item = page.locator(`${AREA} .realtime-event`).first();
		assert(await item.getAttribute('data-type') === 'hello', 'newest item has the wrong data-type');
		assert(await item.locator('.realtime-event-message').textContent() === 'from the e2e test', 'message not rendered');
		const sent = body.events && body.events[0] && body.events[0].cursor;
		assert(await item.getAttribute('data-cursor') === sent, `item cursor differs from the publish answer's ${sent}`);
		const post = `Post ${run}`;
		await publish({ channel: 'posts', type: 'post_published', payload: { id: 1, title: post } });
		await waitTitles(page, [post], 5000);
		await page.waitForFunction((c) => document.getElementById('rt-cursor').textContent === c,
			await page.evaluate(() => window.RealtimeEvents.cursor()), { timeout: 2000 });
		return `screenshot ${await shot(page, 'demo-live.png')}`;
	});

	await check('(c) markup in a title is shown as text, never run', async () => {
		const title = '<img src=x onerror="window.__xss=1">';
		await publish({ channel: 'default', type: 'xss', payload: { title, message: `<b>${run}</b>` } });
		await waitTitles(page, [title], 5000);
		await sleep(500); // give a (wrongly) created <img> time to error
		const res = await page.evaluate((sel) => ({
			xss: typeof window.__xss,
			imgs: document.querySelectorAll(`${sel} img, ${sel} b`).length,
		}), AREA);
		assert(res.xss === 'undefined', 'window.__xss was set: the title ran as HTML');
		assert(res.imgs === 0, 'the title or message became elements');
		return `screenshot ${await shot(page, 'demo-xss.png')}`;
	});

	await check('(b) offline: 3 events published meanwhile show after reconnect, once each, in order', async () => {
		const wanted = [1, 2, 3].map((n) => `Offline ${n} ${run}`);
		proxy.sever();
		await context.setOffline(true);
		// The client must notice; the TCP close does it at once, its ping
		// timeout (about 10 s) would be the fallback.
		await waitState(page, ['offline', 'reconnecting'], 15_000);
		const during = await page.textContent('#rt-state');
		assert(['offline', 'reconnecting'].includes(during), `page shows "${during}" while offline`);
		await shot(page, 'demo-offline.png', '.status');
		for (const title of wanted) {
			await publish({ channel: 'posts', type: 'post_published', payload: { title } });
		}
		await sleep(1000);
		const early = (await titles(page)).filter((t) => wanted.includes(t));
		assert(early.length === 0, `events arrived while offline: ${early}`);

		const t0 = Date.now();
		proxy.restore();
		await context.setOffline(false); // fires "online": the client retries at once
		await waitTitles(page, wanted, 15_000);
		const took = Date.now() - t0;
		await waitState(page, ['open'], 5000);
		await sleep(1000); // a duplicate would arrive right behind
		const got = (await titles(page)).filter((t) => wanted.includes(t));
		assert(got.length === 3, `expected each event once, got ${JSON.stringify(got)}`);
		assert(JSON.stringify(got) === JSON.stringify([...wanted].reverse()),
			`wrong order (newest first expected): ${JSON.stringify(got)}`);
		const cursors = await page.$$eval(`${AREA} .realtime-event`, (els) => els.map((e) => e.dataset.cursor));
		assert(new Set(cursors).size === cursors.length, 'an event is rendered twice');
		return `back ${took} ms after going online, "${during}" while offline; screenshot ${await shot(page, 'demo-resumed.png')}`;
	});

	await check('(d) connection cut without offline emulation: backoff reconnect resumes', async () => {
		const title = `Cut ${run}`;
		proxy.sever();
		await waitState(page, ['reconnecting', 'offline'], 5000);
		await publish({ channel: 'default', type: 'hello', payload: { title } });
		await sleep(1500); // a few attempts fail against the closed proxy
		const t0 = Date.now();
		proxy.restore();
		await waitTitles(page, [title], 40_000); // within the backoff cap
		const took = Date.now() - t0;
		await sleep(500);
		const n = (await titles(page)).filter((t) => t === title).length;
		assert(n === 1, `rendered ${n} times`);
		return `back ${took} ms after the proxy reopened`;
	});

	await check('(e) recovered: absent without since, true on a complete resume (no gap), false past the history (gap)', async () => {
		// A second page, straight to the server: the main page keeps its state.
		const ctx = await browser.newContext();
		const p2 = await ctx.newPage();
		const errors = [];
		p2.on('pageerror', (err) => errors.push(`uncaught: ${err.message}`));
		// The URL of every socket the page opens (it shows whether `since` was sent).
		const sockets = [];
		p2.on('websocket', (ws) => sockets.push(ws.url()));
		// The realtime:subscribed frames and realtime:gap events the client
		// emitted since the last call; its gap handlers have run once it has
		// emitted the subscribed frames (both come from the same frame).
		const take = async (n, what) => {
			await p2.waitForFunction((n) => window.__subs.length >= n, n, { timeout: 10_000, polling: 100 })
				.catch(async () => {
					throw new Error(`${what}: ${n} realtime:subscribed expected, got ${JSON.stringify(await p2.evaluate(() => window.__subs))}`);
				});
			const { subs, gaps } = await p2.evaluate(() => ({ subs: window.__subs.splice(0), gaps: window.__gaps.splice(0) }));
			return { subs, gaps, url: sockets[sockets.length - 1] || '' };
		};
		const notice = () => p2.$eval('#rt-notice', (el) => (el.hidden ? '' : el.textContent));
		try {
			// Hook the client before the page's own script connects it.
			await p2.addInitScript(() => {
				window.__subs = [];
				window.__gaps = [];
				let rt;
				Object.defineProperty(window, 'RealtimeEvents', {
					configurable: true,
					get: () => rt,
					set: (v) => {
						rt = v;
						v.on('realtime:subscribed', (f) => window.__subs.push(f));
						v.on('realtime:gap', (g) => window.__gaps.push(g));
					},
				});
			});
			const res = await p2.goto(`${opts.base}/`, { waitUntil: 'load', timeout: 15_000 });
			assert(res && res.ok(), `GET ${opts.base}/ answered ${res && res.status()}`);

			// 1. A fresh page has no cursor: nothing to recover, so no field.
			let { subs, gaps, url } = await take(2, 'first connection');
			assert(!/[?&]since=/.test(url), `the first connection sent since: ${url}`);
			const stray = subs.filter((f) => 'recovered' in f);
			assert(stray.length === 0, `subscribed without since carries recovered (the hub must omit it): ${JSON.stringify(stray)}`);
			assert(gaps.length === 0, `realtime:gap on a fresh connection: ${JSON.stringify(gaps)}`);
			assert(await notice() === '', `the page shows a notice on a fresh connection: ${await notice()}`);

			// 2. A resume inside the history: recovered:true, no gap.
			await p2.evaluate(() => window.RealtimeEvents.reconnect());
			({ subs, gaps, url } = await take(2, 'complete resume'));
			assert(/[?&]since=/.test(url), `reconnect() did not resume with since: ${url}`);
			assert(subs.every((f) => f.recovered === true), `complete resume: ${JSON.stringify(subs)}`);
			assert(gaps.length === 0, `realtime:gap on a complete resume: ${JSON.stringify(gaps)}`);

			// 3. A resume from a cursor the history has moved past: recovered:false, a gap per channel.
			const since = await p2.evaluate(() => window.RealtimeEvents.cursor());
			await p2.evaluate(() => window.RealtimeEvents.disconnect());
			const flood = `flood-${run}`; // nobody subscribes: only the history moves
			for (let b = 0; b < 11; b++) { // 1,100 events, past the demo's history_size 1000
				await publish(Array.from({ length: 100 }, (_, i) => ({ channel: flood, type: 'tick', payload: b * 100 + i })));
			}
			await p2.evaluate(() => window.RealtimeEvents.connect(window.RealtimeEventsConfig));
			({ subs, gaps, url } = await take(2, 'resume past the history'));
			assert(/[?&]since=/.test(url), `connect() after disconnect() did not resume with since: ${url}`);
			assert(subs.every((f) => f.recovered === false), `resume past the history: ${JSON.stringify(subs)}`);
			const gapChannels = gaps.filter((g) => g.since === since).map((g) => g.channel).sort();
			assert(JSON.stringify(gapChannels) === '["default","posts"]', `realtime:gap expected for default and posts from ${since}, got ${JSON.stringify(gaps)}`);
			assert(/could not be recovered/.test(await notice()), `no gap notice after recovered:false (notice: "${await notice()}")`);
			assert(errors.length === 0, errors.join(' | '));
			return 'fresh: no recovered field; resume: true; past history: false and 2 gaps';
		} finally {
			await ctx.close();
		}
	});

	await check('no uncaught page errors and no client errors', async () => {
		assert(pageErrors.length === 0, pageErrors.join(' | '));
	});

	await page.screenshot({ path: path.join(opts.out, 'demo-page.png'), fullPage: true });
} catch (err) {
	if (!/cannot continue/.test(err.message)) {
		failed++;
		console.log(`FAIL run aborted: ${err.message.split('\n')[0]}`);
	}
} finally {
	if (browser) await browser.close().catch(() => {});
	proxy.close();
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
