#!/usr/bin/env node
// End-to-end check of the JS client's Server-Sent Events fallback in a real
// browser, on a network that refuses WebSockets.
//
//   node test/e2e/sse.mjs --front http://127.0.0.1:F --hub http://127.0.0.1:H \
//     --caddy BIN --hub-config FILE --reload-config FILE --hub-admin 127.0.0.1:A \
//     --secret S --out DIR
//
// The page is loaded from the front site (a Caddy that answers 403 to every
// WebSocket upgrade and reverse-proxies everything else to the hub), so the
// client's two WebSocket attempts fail and it reads the hub as an event
// stream through the proxy. The hub is a Caddy process this script starts
// (`caddy run`, its child, stopped by its PID), reloads (`caddy reload`) and
// restarts (SIGTERM, then a new process on the same port). Events are
// published straight to the hub. Checks: live delivery over SSE, markup shown
// as text, every event once and in order across the reload and the restart.
// One PASS/FAIL line per check, "N passed, M failed", exit 1 on a failure.

import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

function parseArgs(argv) {
	const opts = {
		front: '', hub: '', caddy: '', 'hub-config': '', 'reload-config': '', 'hub-admin': '',
		secret: '', out: 'e2e-out', chromium: '/usr/bin/chromium',
	};
	for (let i = 0; i < argv.length; i++) {
		const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]);
		if (!m || !(m[1] in opts)) {
			console.error(`usage: node sse.mjs --front URL --hub URL --caddy BIN --hub-config FILE --reload-config FILE --hub-admin ADDR --secret S [--out DIR] (bad argument ${argv[i]})`);
			process.exit(2);
		}
		opts[m[1]] = m[2] !== undefined ? m[2] : argv[++i];
	}
	for (const k of ['front', 'hub', 'caddy', 'hub-config', 'reload-config', 'hub-admin', 'secret']) {
		if (!opts[k]) {
			console.error(`--${k} is required`);
			process.exit(2);
		}
	}
	return opts;
}

const opts = parseArgs(process.argv.slice(2));
fs.mkdirSync(opts.out, { recursive: true });
const run = Date.now().toString(36);

const watchdog = setTimeout(() => {
	console.error('FAIL watchdog: the run took longer than 150 s');
	stopHub().finally(() => process.exit(1));
}, 150_000);
watchdog.unref();

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

// ------------------------------------------------------------------- hub

let hub = null; // the running hub process
const hubPort = Number(new URL(opts.hub).port);

function portOpen(port) {
	return new Promise((resolve) => {
		const s = net.connect({ host: '127.0.0.1', port });
		s.once('connect', () => { s.destroy(); resolve(true); });
		s.once('error', () => resolve(false));
	});
}

async function waitPort(port, open, timeout) {
	const end = Date.now() + timeout;
	while (Date.now() < end) {
		if (await portOpen(port) === open) return;
		await sleep(50);
	}
	throw new Error(`port ${port} still ${open ? 'closed' : 'open'} after ${timeout} ms`);
}

async function startHub() {
	const log = fs.openSync(path.join(opts.out, 'sse-hub.log'), 'a');
	hub = spawn(opts.caddy, ['run', '--config', opts['hub-config'], '--adapter', 'caddyfile'], { stdio: ['ignore', log, log] });
	hub.exited = new Promise((r) => hub.once('exit', r));
	await waitPort(hubPort, true, 20_000);
}

async function stopHub() {
	if (!hub) return;
	const p = hub;
	hub = null;
	p.kill('SIGTERM');
	const t = setTimeout(() => p.kill('SIGKILL'), 5000);
	await p.exited;
	clearTimeout(t);
}

function caddy(args) {
	return new Promise((resolve, reject) => {
		const p = spawn(opts.caddy, args, { stdio: ['ignore', 'pipe', 'pipe'] });
		let out = '';
		p.stdout.on('data', (d) => { out += d; });
		p.stderr.on('data', (d) => { out += d; });
		p.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`caddy ${args[0]} exited ${code}: ${out.slice(-300)}`))));
	});
}

async function publish(event) {
	const res = await fetch(`${opts.hub}/realtime/broadcast`, {
		method: 'POST',
		headers: { Authorization: `Bearer ${opts.secret}`, 'Content-Type': 'application/json' },
		body: JSON.stringify(event),
		signal: AbortSignal.timeout(5000),
	});
	const text = await res.text();
	assert(res.status === 200, `publish answered ${res.status}: ${text.slice(0, 200)}`);
	return JSON.parse(text);
}

// ------------------------------------------------------------------ page

const AREA = '#realtime-notification-area';
const published = []; // titles, in publish order

async function publishTitles(page, prefix, n) {
	const titles = [];
	for (let i = 1; i <= n; i++) {
		const title = `${prefix} ${i} ${run}`;
		await publish({ channel: i % 2 ? 'default' : 'posts', type: 'note', payload: { title, message: prefix } });
		published.push(title);
		titles.push(title);
	}
	await page.waitForFunction(
		({ sel, wanted }) => {
			const got = [...document.querySelectorAll(sel)].map((e) => e.textContent);
			return wanted.every((t) => got.includes(t));
		},
		{ sel: `${AREA} .realtime-event-title`, wanted: titles },
		{ timeout: 15_000, polling: 100 },
	);
	return titles;
}

function waitState(page, states, timeout) {
	return page.waitForFunction(
		(states) => window.RealtimeEvents && states.includes(window.RealtimeEvents.state()),
		states,
		{ timeout, polling: 50 },
	);
}

// Everything the page received, in order, and what its streams did.
function record(page) {
	return page.evaluate(() => window.__rec);
}

let browser;
try {
	await startHub();
	browser = await chromium.launch({
		executablePath: opts.chromium,
		headless: true,
		args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
			'--disable-background-networking', '--disable-component-update', '--disable-sync'],
	});
	const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
	const page = await context.newPage();
	const pageErrors = [];
	page.on('pageerror', (err) => pageErrors.push(`uncaught: ${err.message}`));
	const upgrades = [];
	page.on('websocket', (ws) => upgrades.push(ws.url()));
	// Hook the client before the page's own script connects it.
	await page.addInitScript(() => {
		window.__rec = { titles: [], cursors: [], transports: [], closes: [], gaps: [] };
		let rt;
		Object.defineProperty(window, 'RealtimeEvents', {
			configurable: true,
			get: () => rt,
			set: (v) => {
				rt = v;
				const r = window.__rec;
				v.on('*', (e) => { r.titles.push(e.payload && e.payload.title); r.cursors.push(e.cursor); });
				v.on('realtime:transport', (t) => r.transports.push(t.transport));
				v.on('realtime:close', (c) => r.closes.push([c.code, c.transport]));
				v.on('realtime:gap', (g) => r.gaps.push(g.channel));
			},
		});
	});

	const ok = await check('WebSockets refused: the client falls back to an event stream', async () => {
		const res = await page.goto(`${opts.front}/`, { waitUntil: 'load', timeout: 15_000 });
		assert(res && res.ok(), `GET ${opts.front}/ answered ${res && res.status()}`);
		await page.waitForFunction(() => window.RealtimeEvents && window.RealtimeEvents.transport() === 'sse' &&
			window.RealtimeEvents.state() === 'open', null, { timeout: 20_000, polling: 50 });
		const rec = await record(page);
		assert(upgrades.length >= 2, `${upgrades.length} WebSocket attempts before the fallback, want 2`);
		return `${upgrades.length} WebSocket attempts refused, transports ${rec.transports.join(' -> ')}`;
	});
	if (!ok) throw new Error('cannot continue without a stream');

	await check('live events arrive over SSE and render as text', async () => {
		await publishTitles(page, 'Live', 3);
		const title = `<img src=x onerror="window.__xss=1"> ${run}`;
		await publish({ channel: 'default', type: 'xss', payload: { title, message: '<b>bold</b>' } });
		published.push(title);
		await page.waitForFunction((t) => [...document.querySelectorAll('#realtime-notification-area .realtime-event-title')]
			.some((e) => e.textContent === t), title, { timeout: 5000 });
		await sleep(300);
		const res = await page.evaluate((sel) => ({
			xss: typeof window.__xss,
			elements: document.querySelectorAll(`${sel} img, ${sel} b`).length,
		}), AREA);
		assert(res.xss === 'undefined' && res.elements === 0, 'markup in an event became elements');
		assert(await page.evaluate(() => window.RealtimeEvents.transport()) === 'sse', 'no longer on the event stream');
		await page.locator(AREA).screenshot({ path: path.join(opts.out, 'sse-live.png') });
	});

	await check('caddy reload: the stream carries on, every event once and in order', async () => {
		const before = (await record(page)).closes.length;
		const reload = caddy(['reload', '--config', opts['reload-config'], '--adapter', 'caddyfile', '--address', opts['hub-admin']]);
		const during = publishTitles(page, 'Reload', 4);
		await reload;
		await during;
		await publishTitles(page, 'After reload', 2);
		const rec = await record(page);
		assert(rec.closes.length === before, `the stream ended across the reload: ${JSON.stringify(rec.closes.slice(before))}`);
	});

	await check('hub restart: the page comes back over SSE and gets every later event once, in order', async () => {
		await stopHub();
		await waitState(page, ['reconnecting', 'offline'], 10_000);
		// Longer than the stream's last retry (at most 3 s): EventSource's own
		// reconnect gets the proxy's 502 and gives up; the client's backoff goes on.
		await sleep(3500);
		await startHub();
		await waitState(page, ['open'], 40_000);
		await publishTitles(page, 'Restarted', 3);
		const rec = await record(page);
		assert(rec.transports.at(-1) === 'sse', `transport after the restart: ${rec.transports.join(' -> ')}`);
		assert(rec.closes.some(([code, tr]) => code === 1001 && tr === 'sse'), `no realtime:close 1001 from the stream: ${JSON.stringify(rec.closes)}`);
		return `closes ${JSON.stringify(rec.closes)}, gaps ${rec.gaps.length} (a restarted in-memory hub cannot resume the old cursor)`;
	});

	await check('every published event was received once, in publish order', async () => {
		await sleep(500); // a duplicate would arrive right behind
		const rec = await record(page);
		const got = rec.titles.filter((t) => published.includes(t));
		assert(JSON.stringify(got) === JSON.stringify(published),
			`received ${got.length} of ${published.length}: ${JSON.stringify(got)} want ${JSON.stringify(published)}`);
		assert(new Set(rec.cursors).size === rec.cursors.length, 'a cursor was received twice');
		const shown = await page.$$eval(`${AREA} .realtime-event-title`, (els) => els.map((e) => e.textContent));
		assert(JSON.stringify(shown) === JSON.stringify([...published].reverse()), `rendered (newest first): ${JSON.stringify(shown)}`);
		await page.screenshot({ path: path.join(opts.out, 'sse-page.png'), fullPage: true });
		return `${published.length} events`;
	});

	await check('no uncaught page errors', async () => {
		assert(pageErrors.length === 0, pageErrors.join(' | '));
	});
} catch (err) {
	if (!/cannot continue/.test(err.message)) {
		failed++;
		console.log(`FAIL run aborted: ${err.message.split('\n')[0]}`);
	}
} finally {
	if (browser) await browser.close().catch(() => {});
	await stopHub();
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
