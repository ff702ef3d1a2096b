// Tests of the browser client (examples/wordpress/realtime-events/assets)
// that need no browser: node --test test/jsclient/
//
// Each test makes its own client with RealtimeEvents.create() and fake
// WebSocket and EventSource classes that record what the client opens and
// let the test play the hub. The fakes dispatch like a browser: an
// EventSource hands a named event only to listeners of that name and an
// unnamed one to onmessage; its error event leaves readyState CONNECTING
// when it reconnects by itself and CLOSED when it gives up. Timers are
// node:test's mock timers.

import { test, mock } from 'node:test';
import assert from 'node:assert/strict';

import RealtimeEvents, * as esm from '../../examples/wordpress/realtime-events/assets/realtime-events.mjs';

const PAGE = 'https://site.example/page';

class FakeWebSocket {
	static OPEN = 1;
	constructor(url) {
		this.url = new URL(url);
		this.readyState = 0;
		this.sent = [];
		this.closedWith = null;
		this.world.sockets.push(this);
	}
	send(data) {
		this.sent.push(JSON.parse(data));
	}
	close(code, reason) {
		this.readyState = 3;
		this.closedWith = { code, reason };
	}
	// The hub's side.
	message(obj) {
		this.readyState = 1;
		this.onmessage?.({ data: JSON.stringify(obj) });
	}
	end(code, reason = '') {
		this.readyState = 3;
		this.onclose?.({ code, reason });
	}
}

class FakeEventSource {
	constructor(url, opts) {
		this.url = new URL(url);
		this.withCredentials = !!(opts && opts.withCredentials);
		this.readyState = 0;
		this.listeners = {};
		this.lastEventId = '';
		this.closed = false;
		this.world.streams.push(this);
	}
	addEventListener(name, fn) {
		(this.listeners[name] ||= []).push(fn);
	}
	close() {
		this.readyState = 2;
		this.closed = true;
	}
	// The hub's side: one event of the stream.
	event(obj, { name, id } = {}) {
		this.readyState = 1;
		if (id !== undefined) this.lastEventId = id;
		const e = { data: JSON.stringify(obj), lastEventId: this.lastEventId };
		if (name) (this.listeners[name] || []).forEach((fn) => fn(e));
		else this.onmessage?.(e);
	}
	control(obj, id) {
		this.event(obj, { name: obj.type, id });
	}
	// The stream ended: EventSource reconnects by itself.
	end() {
		this.readyState = 0;
		this.onerror?.({});
	}
	// The answer was not a stream: EventSource gives up.
	refuse() {
		this.readyState = 2;
		this.onerror?.({});
	}
}

// world makes a client over fakes and records what it does.
function world(t, config) {
	if (!t.timersOn) {
		mock.timers.enable({ apis: ['setTimeout'] });
		t.after(() => mock.timers.reset());
		t.timersOn = true;
	}
	const w = { sockets: [], streams: [], log: [], listeners: {} };
	class WS extends FakeWebSocket {}
	WS.prototype.world = w;
	class ES extends FakeEventSource {}
	ES.prototype.world = w;
	const win = {
		location: { href: PAGE },
		navigator: { onLine: true },
		addEventListener(type, fn) {
			(w.listeners[type] ||= []).push(fn);
		},
	};
	w.client = RealtimeEvents.create({ window: win, document: null, WebSocket: WS, EventSource: ES });
	for (const type of ['realtime:open', 'realtime:close', 'realtime:gap', 'realtime:transport', 'realtime:error', '*']) {
		w.client.on(type, (d) => w.log.push([type, d]));
	}
	w.events = () => w.log.filter(([k]) => k === '*').map(([, d]) => d.type + ':' + d.payload);
	w.of = (type) => w.log.filter(([k]) => k === type).map(([, d]) => d);
	if (config) w.client.connect(config);
	t.after(() => w.client.disconnect());
	return w;
}

let n = 0;
const cursor = () => `e${'a'.repeat(12)}-${++n}-0`;

function welcome(c, { resuming } = {}) {
	const msg = { type: 'realtime:welcome', connection_id: '1.2', cursor: c, ping_interval: 25 };
	return [msg, resuming ? undefined : c];
}

// hello plays the hub's greeting on a stream: welcome (with its cursor as
// id unless resuming) and one subscribed per channel.
function hello(es, channels, { resuming, recovered, head = cursor() } = {}) {
	const [msg, id] = welcome(head, { resuming });
	es.control(msg, id);
	for (const ch of channels) {
		const m = { type: 'realtime:subscribed', channel: ch };
		if (recovered !== undefined) m.recovered = recovered;
		es.control(m);
	}
	return head;
}

function publish(conn, channel, type, payload) {
	const c = cursor();
	const ev = { type, channel, cursor: c, payload, timestamp: '2026-12-01T00:00:00Z' };
	if (conn instanceof FakeEventSource) conn.event(ev, { id: c });
	else conn.message(ev);
	return c;
}

test('WebSocket first', (t) => {
	const w = world(t, { channels: ['a'] });
	assert.equal(w.sockets.length, 1);
	assert.equal(w.streams.length, 0);
	assert.equal(w.sockets[0].url.href, 'wss://site.example/realtime/ws?channels=a');
	w.sockets[0].message({ type: 'realtime:welcome', connection_id: '1.2', cursor: cursor(), ping_interval: 25 });
	assert.equal(w.client.state(), 'open');
	assert.equal(w.client.transport(), 'websocket');
});

test('two WebSocket attempts that never got a welcome: an event stream', (t) => {
	const w = world(t, { channels: ['a', 'b'] });
	w.sockets[0].end(1006);
	assert.equal(w.streams.length, 0, 'one failure is not enough');
	mock.timers.tick(60_000);
	assert.equal(w.sockets.length, 2, 'the second attempt is a WebSocket');
	w.sockets[1].end(1006);
	mock.timers.tick(0);
	assert.equal(w.streams.length, 1, 'then an EventSource');
	const es = w.streams[0];
	assert.equal(es.url.href, 'https://site.example/realtime/ws?channels=a,b');
	assert.equal(es.withCredentials, false, 'same origin: no credentials mode');
	assert.equal(w.client.transport(), 'sse');
	hello(es, ['a', 'b']);
	assert.equal(w.client.state(), 'open');
	assert.equal(w.of('realtime:open').at(-1).transport, 'sse');
	// Every event type reaches the page, "message" included: events are unnamed.
	publish(es, 'a', 'post_published', 'p1');
	publish(es, 'b', 'message', 'p2');
	assert.deepEqual(w.events(), ['post_published:p1', 'message:p2']);
});

test('a WebSocket that was welcomed and then dropped is no reason to fall back', (t) => {
	const w = world(t, { channels: ['a'] });
	for (let i = 0; i < 4; i++) {
		const s = w.sockets.at(-1);
		s.message(welcome(cursor())[0]);
		s.end(1006);
		mock.timers.tick(60_000);
	}
	assert.equal(w.streams.length, 0);
	assert.equal(w.sockets.length, 5);
});

test('transport "websocket" never falls back; "sse" starts with a stream', (t) => {
	const w = world(t, { channels: ['a'], transport: 'websocket' });
	for (let i = 0; i < 5; i++) {
		w.sockets.at(-1).end(1006);
		mock.timers.tick(60_000);
	}
	assert.equal(w.streams.length, 0);
	const v = world(t, { channels: ['a'], transport: 'sse' });
	assert.equal(v.sockets.length, 0);
	assert.equal(v.streams.length, 1);
	hello(v.streams[0], ['a']);
	mock.timers.tick(3_600_000);
	assert.equal(v.sockets.length, 0, 'no WebSocket attempts with transport "sse"');
});

test('cross-origin stream sends credentials (the token cookie)', (t) => {
	const w = world(t, { url: 'https://hub.example/realtime/ws', channels: ['a'], transport: 'sse' });
	assert.equal(w.streams[0].withCredentials, true);
	assert.equal(w.streams[0].url.origin, 'https://hub.example');
});

test('a subscription change opens the stream again with every channel and the last cursor', (t) => {
	const w = world(t, { channels: ['a'], transport: 'sse' });
	const es = w.streams[0];
	hello(es, ['a']);
	publish(es, 'a', 't', 1);
	const last = publish(es, 'a', 't', 2);
	w.client.subscribe('b');
	w.client.subscribe('c');
	w.client.unsubscribe('a');
	assert.equal(w.streams.length, 1, 'changes of one turn are batched');
	mock.timers.tick(0);
	assert.equal(w.streams.length, 2);
	assert.ok(es.closed, 'the old stream is closed');
	const next = w.streams[1];
	assert.equal(next.url.searchParams.get('channels'), 'b,c');
	assert.equal(next.url.searchParams.get('since'), last);
	assert.equal(w.client.state(), 'open', 'no reconnecting flicker for a subscription change');
	hello(next, ['b', 'c'], { resuming: true, recovered: true });
	// An event both streams carried is shown once.
	next.event({ type: 't', channel: 'a', cursor: last, payload: 2 }, { id: last });
	publish(next, 'b', 't', 3);
	assert.deepEqual(w.events(), ['t:1', 't:2', 't:3']);
	assert.equal(w.of('realtime:gap').length, 0);
	assert.deepEqual(w.client.channels(), ['b', 'c']);
});

test('the server default channels are learned before a stream names channels', (t) => {
	const w = world(t, { transport: 'sse' });
	const es = w.streams[0];
	assert.equal(es.url.searchParams.get('channels'), null, 'no channels named: the defaults');
	w.client.subscribe('extra'); // before the defaults are known
	hello(es, ['default', 'news']);
	mock.timers.tick(200);
	const next = w.streams.at(-1);
	assert.notEqual(next, es);
	assert.deepEqual(next.url.searchParams.get('channels').split(',').sort(), ['default', 'extra', 'news']);
});

test('a stream that ends is resumed by EventSource; recovered:false is a gap and reopens from the welcome', (t) => {
	const w = world(t, { channels: ['a'], transport: 'sse' });
	const es = w.streams[0];
	hello(es, ['a']);
	publish(es, 'a', 't', 1);
	es.control({ type: 'realtime:error', code: 'shutdown', message: 'server going away' });
	es.end();
	const close = w.of('realtime:close').at(-1);
	assert.equal(close.code, 1001);
	assert.equal(close.reconnect, true);
	assert.equal(close.transport, 'sse');
	assert.equal(w.client.state(), 'reconnecting');
	assert.equal(w.streams.length, 1, 'EventSource reconnects by itself');
	// A restarted hub does not know the old cursor.
	const head = hello(es, ['a'], { resuming: true, recovered: false });
	assert.equal(w.client.state(), 'open');
	assert.equal(w.of('realtime:gap').length, 1);
	assert.equal(w.client.cursor(), head, 'the refetch is as of the welcome');
	mock.timers.tick(0);
	assert.equal(w.streams.length, 2, 'the stream opens again from the new cursor');
	assert.equal(w.streams[1].url.searchParams.get('since'), head);
});

test('a refused stream is retried with backoff from the last cursor', (t) => {
	const w = world(t, { channels: ['a'], transport: 'sse' });
	hello(w.streams[0], ['a']);
	const last = publish(w.streams[0], 'a', 't', 1);
	w.streams[0].refuse(); // a 503 while the hub restarts, say
	assert.equal(w.of('realtime:close').at(-1).delay >= 0, true);
	mock.timers.tick(60_000);
	assert.equal(w.streams.length, 2);
	assert.equal(w.streams[1].url.searchParams.get('since'), last);
});

test('on a stream, a WebSocket is tried again every wsRetryInterval and takes over once welcomed', (t) => {
	const w = world(t, { channels: ['a'], wsRetryInterval: 120 });
	w.sockets[0].end(1006);
	mock.timers.tick(60_000);
	w.sockets[1].end(1006);
	mock.timers.tick(0);
	const es = w.streams[0];
	hello(es, ['a']);
	publish(es, 'a', 't', 1);

	mock.timers.tick(119_000);
	assert.equal(w.sockets.length, 2, 'not yet');
	mock.timers.tick(1_000);
	assert.equal(w.sockets.length, 3, 'a WebSocket attempt beside the stream');
	const probe = w.sockets[2];
	const since = w.client.cursor();
	assert.equal(probe.url.searchParams.get('since'), since);
	assert.equal(probe.url.searchParams.get('channels'), 'a');
	probe.end(1006); // still blocked
	assert.equal(w.client.transport(), 'sse');
	assert.ok(!es.closed);

	const c2 = publish(es, 'a', 't', 2);
	mock.timers.tick(120_000);
	const probe2 = w.sockets[3];
	assert.ok(probe2, 'tried again');
	probe2.message(welcome(cursor())[0]);
	assert.equal(w.client.transport(), 'websocket');
	assert.ok(es.closed, 'the stream is closed once the WebSocket is welcomed');
	probe2.message({ type: 'realtime:subscribed', channel: 'a', recovered: true });
	probe2.message({ type: 't', channel: 'a', cursor: c2, payload: 2 }); // replayed: already shown
	publish(probe2, 'a', 't', 3);
	assert.deepEqual(w.events(), ['t:1', 't:2', 't:3']);
	assert.equal(w.of('realtime:gap').length, 0);
	// Subscriptions go as frames again.
	w.client.subscribe('b');
	assert.deepEqual(probe2.sent.at(-1), { type: 'realtime:subscribe', channel: 'b', since: w.client.cursor() });
});

test('reconnect() opens a new stream from the cursor (a renewed token cookie is read)', (t) => {
	const w = world(t, { channels: ['a'], transport: 'sse' });
	hello(w.streams[0], ['a']);
	const last = publish(w.streams[0], 'a', 't', 1);
	w.client.reconnect();
	assert.ok(w.streams[0].closed);
	assert.equal(w.streams[1].url.searchParams.get('since'), last);
});

test('disconnect() closes the stream and stops the WebSocket attempts', (t) => {
	const w = world(t, { channels: ['a'] });
	w.sockets[0].end(1006);
	mock.timers.tick(60_000);
	w.sockets[1].end(1006);
	mock.timers.tick(0);
	hello(w.streams[0], ['a']);
	w.client.disconnect();
	assert.ok(w.streams[0].closed);
	assert.equal(w.client.state(), 'closed');
	mock.timers.tick(3_600_000);
	assert.equal(w.sockets.length, 2);
	assert.equal(w.streams.length, 1);
});

test('the ES module exports the page client and independent ones', () => {
	assert.equal(RealtimeEvents, globalThis.RealtimeEvents);
	for (const name of ['connect', 'disconnect', 'reconnect', 'on', 'off', 'subscribe', 'unsubscribe', 'cursor', 'state', 'channels', 'connectionId', 'transport', 'create']) {
		assert.equal(typeof esm[name], 'function', name);
	}
	assert.equal(esm.state(), 'idle');
	const other = esm.create({ window: { location: { href: PAGE } } });
	assert.notEqual(other, RealtimeEvents);
	assert.equal(other.state(), 'idle');
});
