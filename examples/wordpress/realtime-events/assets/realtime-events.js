/*!
 * realtime-events.js: the browser client of caddy-realtime.
 *
 * Plain ES2017, no dependencies, no build step; load it as a classic <script>.
 * The wire protocol is the one in the README ("WebSocket protocol"):
 * JSON text frames, `realtime:*` control frames, every other frame is an event
 * {type, channel, cursor, payload, timestamp, id}.
 *
 *   RealtimeEvents.connect({channels: ["default", "posts"]});
 *   RealtimeEvents.on("post_published", function (event) { ... });
 *
 * If window.RealtimeEventsConfig exists when this script runs (the WordPress
 * plugin and the demo page set it), connect() is called with it.
 *
 * Config: url (ws://, wss://, http(s):// or a path; default: this host's
 * /realtime/ws, wss on https), channels (array; none = the server's defaults),
 * container (selector or element; default #realtime-notification-area, no
 * rendering when absent), maxItems (default 20), pingInterval (seconds;
 * default: the welcome frame's ping_interval).
 *
 * API: connect(config), disconnect(), reconnect() (new handshake now, same
 * cursor and channels), on(type, fn) -> off function,
 * off(type, fn), subscribe(channel), unsubscribe(channel), and the read-only
 * cursor(), state(), channels(), connectionId(), presence(channel).
 * on("*") gets every event. Lifecycle pseudo-events: realtime:state {state},
 * realtime:open, realtime:close {code, reason, reconnect, delay},
 * realtime:subscribed, realtime:unsubscribed, realtime:error (the server's
 * frames), realtime:gap {channel, since}: we resumed from a cursor and the hub
 * answered recovered:false (it could not replay what was missed), so the page
 * should refetch its data. A subscription made without a cursor has nothing
 * to recover: its realtime:subscribed frame carries no `recovered` and is
 * never a gap.
 * States (state(), and realtime:state {state} on every change):
 *   idle          nothing started yet (no connect() so far);
 *   connecting    the first handshake after connect() is in flight;
 *   open          the hub's welcome arrived: events flow, subscribe() is sent;
 *   reconnecting  the connection was lost, reconnect() was called or the page
 *                 was hidden (back/forward cache); a new handshake is in
 *                 flight or waits for its backoff delay;
 *   offline       as reconnecting, while the browser reports no network
 *                 (navigator.onLine false); the "online" event retries at once;
 *   closed        stopped for good: disconnect(), or the server closed with a
 *                 code that forbids retrying (1003, 1007, 1008, 1009), or the
 *                 URL is malformed. connect() starts again.
 */
(function (window, document) {
	'use strict';

	if (window.RealtimeEvents && window.RealtimeEvents.__client) {
		return; // loaded twice (two plugins, a theme...): keep the first instance
	}

	var BACKOFF_BASE_MS = 500;
	var BACKOFF_CAP_MS = 30000;
	// A connection only counts as healthy (backoff reset) once it has been
	// welcomed and then stayed up this long; a server that accepts and drops at
	// once must not turn every client into a tight reconnect loop.
	var STABLE_MS = 5000;
	// 1001 going away, 1012 service restart, 1013 try again later: the server
	// asks us to come back now (with our cursor), so only a small jitter to
	// spread a whole fleet of clients over a second.
	var FAST_CODES = { 1001: true, 1012: true, 1013: true };
	var FAST_JITTER_MS = 1000;
	// 1008 policy violation; 1003, 1007, 1009 mean this client sent something
	// the server refuses. Retrying would fail the same way: stop.
	var FATAL_CODES = { 1003: true, 1007: true, 1008: true, 1009: true };
	var DEFAULT_PING_INTERVAL_S = 25;
	var PONG_TIMEOUT_MS = 10000;
	// A handshake that neither completes nor fails (black-holed network)
	// would otherwise keep us waiting for the browser's own TCP timeout.
	var CONNECT_TIMEOUT_MS = 15000;
	var SEEN_MAX = 1000; // cursors remembered for de-duplication
	var DEFAULTS = { container: '#realtime-notification-area', maxItems: 20 };

	var config = null;     // normalized config of the current connect()
	var ws = null;         // the live WebSocket, or null
	var state = 'idle';    // idle | connecting | open | reconnecting | offline | closed
	var cursor = null;     // cursor of the last processed event (opaque string)
	var cursorUrl = null;  // the URL the cursor belongs to (cursors are per hub)
	var channels = [];     // channels to (re)join, in order
	var adoptChannels = false; // we named none: learn the server's default channels
	var defaultsKnown = false; // ... and a subscribed frame has told us them
	var connectionId = null;
	var welcomeCursor = null; // the hub's latest cursor when this connection began
	var received = 0;      // events processed on this connection
	var pingIntervalMs = DEFAULT_PING_INTERVAL_S * 1000;
	var attempt = 0;       // consecutive failed attempts, drives the backoff
	var fastUsed = false;  // one fast reconnect per healthy connection
	var welcomedAt = 0;
	var resuming = {};     // channel -> the `since` sent, until its answer comes
	var outbox = [];       // frames sent before the welcome, flushed on it
	var lastSeen = 0;      // when the last frame arrived
	var timers = { retry: 0, idle: 0, pong: 0, connect: 0 };
	var handlers = {};     // type -> [fn]
	var seen = new Set();  // cursors already processed in this page
	var seenOrder = [];
	var containerEl = null;
	var listening = false;

	// ---------------------------------------------------------------- events

	function on(type, fn) {
		if (typeof fn !== 'function') {
			throw new TypeError('RealtimeEvents.on: handler must be a function');
		}
		(handlers[type] = handlers[type] || []).push(fn);
		return function () { off(type, fn); };
	}

	function off(type, fn) {
		var list = handlers[type];
		if (!list) return;
		if (fn === undefined) {
			delete handlers[type];
			return;
		}
		var i = list.indexOf(fn);
		if (i !== -1) list.splice(i, 1);
	}

	function emit(type, data) {
		var list = (handlers[type] || []).slice();
		// "*" means "every event"; lifecycle pseudo-events have their own names.
		if (type.indexOf('realtime:') !== 0 && handlers['*']) {
			list = list.concat(handlers['*']);
		}
		for (var i = 0; i < list.length; i++) {
			try {
				list[i](data);
			} catch (err) {
				// One broken handler must not starve the others or kill the socket.
				console.error('RealtimeEvents: "' + type + '" handler failed', err);
			}
		}
	}

	function setState(next) {
		if (state === next) return;
		state = next;
		emit('realtime:state', { state: next });
	}

	// ------------------------------------------------------------ connection

	function connect(options) {
		var next = normalize(options || {});
		if (config) stop(1000, 'reconfigured');
		config = next;
		if (cursorUrl !== config.url) {
			cursor = null; // another hub's cursor means nothing here
			cursorUrl = config.url;
		}
		channels = config.channels.slice();
		adoptChannels = channels.length === 0;
		defaultsKnown = false;
		containerEl = null;
		attempt = 0;
		fastUsed = false;
		listen();
		open();
		return api;
	}

	function normalize(options) {
		var out = {
			url: wsUrl(options.url),
			channels: [],
			container: options.container === undefined ? DEFAULTS.container : options.container,
			maxItems: DEFAULTS.maxItems,
			pingInterval: 0
		};
		var list = options.channels;
		if (typeof list === 'string') list = list.split(',');
		if (Array.isArray(list)) {
			list.forEach(function (c) { addChannel(out.channels, c); });
		}
		var max = parseInt(options.maxItems, 10);
		if (max > 0) out.maxItems = max;
		var ping = Number(options.pingInterval); // seconds, like the welcome frame
		if (ping > 0) out.pingInterval = ping;
		return out;
	}

	// Accepts ws(s)://, http(s):// or a path; default is this host's /realtime/ws.
	function wsUrl(raw) {
		var u = new URL(raw || '/realtime/ws', window.location.href);
		if (u.protocol === 'https:') u.protocol = 'wss:';
		else if (u.protocol === 'http:') u.protocol = 'ws:';
		u.searchParams.delete('channels');
		u.searchParams.delete('since');
		u.hash = '';
		return u.toString();
	}

	function addChannel(list, name) {
		name = typeof name === 'string' ? name.trim() : '';
		if (name && list.indexOf(name) === -1) list.push(name);
		return name;
	}

	function open() {
		clearTimers();
		if (!config) return;
		var url = config.url;
		var query = [];
		// Until we know the server's default channels, name none so that it
		// joins them; channels added by subscribe() meanwhile follow as frames.
		var named = adoptChannels && !defaultsKnown ? [] : channels;
		if (named.length) {
			query.push('channels=' + named.map(encodeURIComponent).join(','));
		}
		resuming = {};
		if (cursor !== null) {
			query.push('since=' + encodeURIComponent(cursor));
			named.forEach(function (c) { resuming[c] = cursor; });
			if (!named.length) resuming['*'] = cursor; // the defaults resume too
		}
		if (query.length) url += (url.indexOf('?') === -1 ? '?' : '&') + query.join('&');
		outbox = [];
		if (named !== channels) outbox = channels.map(subscribeFrame);

		if (state === 'idle' || state === 'closed') setState('connecting');
		else if (navigator.onLine !== false) setState('reconnecting');
		welcomedAt = 0;
		received = 0;
		connectionId = null;
		var sock;
		try {
			sock = new WebSocket(url);
		} catch (err) {
			// Only a malformed URL throws here: retrying cannot help.
			console.error('RealtimeEvents: cannot open ' + url, err);
			setState('closed');
			return;
		}
		ws = sock;
		timers.connect = setTimeout(function () { drop(sock, 'connect timeout'); }, CONNECT_TIMEOUT_MS);
		sock.onmessage = function (msg) { if (sock === ws) receive(msg.data); };
		sock.onclose = function (ev) { if (sock === ws) closed(ev.code, ev.reason); };
		// onerror is always followed by onclose, which does the work.
	}

	// Give up on a socket that looks dead. Its close handshake could take
	// minutes to time out, so we detach it and act as if it had closed.
	function drop(sock, reason) {
		if (sock !== ws) return;
		ws = null;
		sock.onmessage = sock.onclose = null;
		try { sock.close(4000, reason); } catch (e) { /* already closing */ }
		closed(1006, reason);
	}

	function closed(code, reason) {
		var wasWelcomed = welcomedAt > 0;
		if (wasWelcomed && Date.now() - welcomedAt >= STABLE_MS) {
			attempt = 0;
			fastUsed = false;
		}
		ws = null;
		welcomedAt = 0;
		clearTimers();

		if (FATAL_CODES[code]) {
			console.error('RealtimeEvents: server closed the connection (' + code +
				(reason ? ' ' + reason : '') + '); not reconnecting');
			setState('closed');
			emit('realtime:close', { code: code, reason: reason, reconnect: false });
			return;
		}
		var delay;
		if (FAST_CODES[code] && wasWelcomed && !fastUsed) {
			fastUsed = true;
			delay = Math.random() * FAST_JITTER_MS;
		} else {
			// Full jitter: random(0, min(cap, base * 2^attempt)).
			delay = Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * Math.pow(2, attempt));
			attempt++;
		}
		setState(navigator.onLine === false ? 'offline' : 'reconnecting');
		emit('realtime:close', { code: code, reason: reason, reconnect: true, delay: Math.round(delay) });
		timers.retry = setTimeout(open, delay);
	}

	// Stop for good (disconnect(), or before connect() with a new config).
	function stop(code, reason) {
		clearTimers();
		var sock = ws;
		ws = null;
		if (sock) {
			sock.onmessage = sock.onclose = null;
			try { sock.close(code, reason); } catch (e) { /* already closing */ }
		}
		config = null;
		setState('closed');
	}

	function disconnect() {
		if (!config && !ws) return;
		stop(1000, 'client disconnect');
		emit('realtime:close', { code: 1000, reason: 'client disconnect', reconnect: false });
	}

	// A new handshake now, keeping cursor and channels: the hub reads the token
	// cookie only at the handshake, so a page that renewed it calls this.
	function reconnect() {
		if (!config) return;
		clearTimers();
		var sock = ws;
		ws = null;
		if (sock) {
			sock.onmessage = sock.onclose = null;
			try { sock.close(1000, 'client reconnect'); } catch (e) { /* closing */ }
		}
		attempt = 0;
		open();
	}

	// Retry at once if we are waiting to reconnect, e.g. the network is back.
	function retryNow() {
		if (!config || ws || state === 'closed' || state === 'idle') return;
		attempt = 0;
		open();
	}

	function clearTimers() {
		Object.keys(timers).forEach(function (k) {
			clearTimeout(timers[k]);
			timers[k] = 0;
		});
	}

	// Frames are only sent after the welcome. With queue set, a frame written
	// while the handshake is in flight (its URL went out without the new
	// channel) waits for the welcome instead of being lost.
	function send(frame, queue) {
		if (ws && welcomedAt && ws.readyState === WebSocket.OPEN) {
			ws.send(JSON.stringify(frame));
			return true;
		}
		if (queue && ws) outbox.push(frame);
		return false;
	}

	// -------------------------------------------------------------- liveness

	// Called on every frame: the connection is alive, re-arm the idle timer.
	function alive() {
		lastSeen = Date.now();
		clearTimeout(timers.pong);
		clearTimeout(timers.idle);
		timers.pong = 0;
		var sock = ws;
		timers.idle = setTimeout(function () { probe(sock); }, pingIntervalMs);
	}

	// Nothing heard for a while: ask. A connection that died silently (laptop
	// sleep, NAT timeout, Wi-Fi change) never fires onclose by itself.
	function probe(sock) {
		if (sock !== ws || timers.pong) return;
		if (!send({ type: 'realtime:ping' })) return;
		timers.pong = setTimeout(function () { drop(sock, 'ping timeout'); }, PONG_TIMEOUT_MS);
	}

	function listen() {
		if (listening) return;
		listening = true;
		window.addEventListener('online', function () {
			if (ws) probe(ws); else retryNow();
		});
		window.addEventListener('offline', function () {
			if (ws) probe(ws); else if (state === 'reconnecting') setState('offline');
		});
		// Back from a hidden tab or a sleeping laptop: timers may not have run,
		// so check now instead of waiting for the next idle ping.
		document.addEventListener('visibilitychange', function () {
			if (document.visibilityState !== 'visible') return;
			if (!ws) retryNow();
			else if (Date.now() - lastSeen > PONG_TIMEOUT_MS) probe(ws);
		});
		// Leaving the page: close cleanly (the server frees the connection at
		// once, and an open socket would keep the page out of the back/forward
		// cache); coming back from that cache: resume from the cursor.
		window.addEventListener('pagehide', function () {
			if (!config || state === 'closed') return;
			clearTimers();
			var sock = ws;
			ws = null;
			if (sock) {
				sock.onmessage = sock.onclose = null;
				try { sock.close(1000, 'page hidden'); } catch (e) { /* closing */ }
			}
			setState('reconnecting');
		});
		window.addEventListener('pageshow', function (e) {
			if (e.persisted) retryNow();
		});
	}

	// -------------------------------------------------------------- messages

	function receive(data) {
		var frame;
		try {
			frame = JSON.parse(data);
		} catch (err) {
			console.error('RealtimeEvents: frame is not JSON', err);
			return;
		}
		if (!frame || typeof frame !== 'object' || typeof frame.type !== 'string') return;
		alive();
		if (frame.type.indexOf('realtime:') === 0) control(frame);
		else event(frame);
	}

	function control(frame) {
		if (presenceFrame(frame)) return;
		switch (frame.type) {
		case 'realtime:welcome':
			clearTimeout(timers.connect);
			welcomedAt = Date.now();
			connectionId = frame.connection_id || null;
			welcomeCursor = typeof frame.cursor === 'string' && frame.cursor !== '' ? frame.cursor : null;
			var secs = config.pingInterval || Number(frame.ping_interval) || DEFAULT_PING_INTERVAL_S;
			pingIntervalMs = secs * 1000;
			alive(); // re-arm with the server's interval
			// The welcome cursor is "now": adopting it when we have none makes a
			// reconnect resume from here instead of losing what happens meanwhile.
			if (cursor === null) cursor = welcomeCursor;
			setState('open');
			var queued = outbox;
			outbox = [];
			queued.forEach(function (f) { send(f); });
			emit('realtime:open', { connectionId: connectionId, cursor: cursor });
			break;
		case 'realtime:subscribed':
			if (adoptChannels) {
				addChannel(channels, frame.channel);
				defaultsKnown = true;
			}
			var since = resuming[frame.channel] || resuming['*'];
			delete resuming[frame.channel];
			emit('realtime:subscribed', frame);
			// Only an explicit recovered:false after a `since` is a gap. Without
			// a `since` the hub omits the field: nothing was missed, so an
			// absent (or any other) value must not make the page refetch.
			if (since && frame.recovered === false) {
				// The hub cannot prove we missed nothing: the page must refetch.
				// Its refetch is as of now, so later reconnects resume from this
				// connection's start; the old cursor would fail every time again.
				if (welcomeCursor !== null && received === 0) cursor = welcomeCursor;
				emit('realtime:gap', { channel: frame.channel, since: since });
			}
			break;
		case 'realtime:unsubscribed':
		case 'realtime:error':
			emit(frame.type, frame);
			break;
		default:
			// realtime:pong and unknown control frames: alive() was enough.
		}
	}

	function event(ev) {
		var c = ev.cursor;
		if (typeof c === 'string' && c !== '') {
			// The server promises no duplicates; this guards against our own
			// overlaps (resuming several channels from one cursor) and bugs.
			if (seen.has(c)) return;
			seen.add(c);
			seenOrder.push(c);
			if (seenOrder.length > SEEN_MAX) seen.delete(seenOrder.shift());
			cursor = c;
		}
		received++;
		render(ev);
		emit(ev.type, ev);
	}

	// ------------------------------------------------- presence [presence]
	// Presence channels (presence-* and the hub's `presence` patterns). After
	// realtime:subscribed the server sends a snapshot (realtime:presence), then
	// realtime:member_added / realtime:member_removed, or, above the hub's
	// member limit, realtime:presence_count. Every snapshot resets the channel:
	// a later one (after a reconnect, or back under the limit) is compared with
	// what we had, and the difference is reported as member_added and
	// member_removed, so handlers see every change exactly once.
	//   presence(channel) -> {channel, count, members: [{id, info}] or null
	//     (counts only)}, or null before the first snapshot;
	//   on("presence", fn): {channel, count, members} on every change;
	//   on("member_added" | "member_removed", fn): {channel, member, count}.
	// These three names are presence's: on("*") does not get them.
	var rosters = {}; // channel -> {count, members: Map(id -> {id, info}) or null}

	function presenceFrame(frame) {
		var ch = frame.channel;
		if (typeof ch !== 'string') return false;
		var old = rosters[ch];
		switch (frame.type) {
		case 'realtime:presence':
			var next = { count: Number(frame.count) || 0, members: null };
			if (Array.isArray(frame.members)) {
				next.members = new Map();
				frame.members.forEach(function (m) {
					if (m && typeof m.id === 'string') next.members.set(m.id, presenceMember(m));
				});
			}
			rosters[ch] = next;
			if (old && old.members && next.members) {
				old.members.forEach(function (m, id) {
					if (!next.members.has(id)) emitPresence('member_removed', { channel: ch, member: m, count: next.count });
				});
				next.members.forEach(function (m, id) {
					if (!old.members.has(id)) emitPresence('member_added', { channel: ch, member: m, count: next.count });
				});
			}
			break;
		case 'realtime:member_added':
		case 'realtime:member_removed':
			if (!old || !old.members || !frame.member || typeof frame.member.id !== 'string') return true;
			var m = presenceMember(frame.member);
			if (frame.type === 'realtime:member_added') old.members.set(m.id, m);
			else old.members.delete(m.id);
			old.count = typeof frame.count === 'number' ? frame.count : old.members.size;
			emitPresence(frame.type.slice('realtime:'.length), { channel: ch, member: m, count: old.count });
			break;
		case 'realtime:presence_count':
			if (!old) return true;
			old.count = Number(frame.count) || 0;
			old.members = null;
			break;
		case 'realtime:unsubscribed':
			delete rosters[ch];
			return false; // handled as usual too
		default:
			return false;
		}
		emitPresence('presence', presence(ch));
		return true;
	}

	function presenceMember(m) {
		return { id: m.id, info: m.info === undefined ? null : m.info };
	}

	function presence(channel) {
		var r = rosters[channel];
		if (!r) return null;
		return { channel: channel, count: r.count, members: r.members ? Array.from(r.members.values()) : null };
	}

	// Presence handlers only, never the "*" ones (those are for events).
	function emitPresence(type, data) {
		var list = (handlers[type] || []).slice();
		for (var i = 0; i < list.length; i++) {
			try {
				list[i](data);
			} catch (err) {
				console.error('RealtimeEvents: "' + type + '" handler failed', err);
			}
		}
	}
	// ------------------------------------------------ [/presence]

	// ------------------------------------------------------------- rendering

	function container() {
		if (containerEl && containerEl.isConnected) return containerEl;
		var c = config && config.container;
		containerEl = typeof c === 'string' ? document.querySelector(c) : c || null;
		if (containerEl && !containerEl.hasAttribute('aria-live')) {
			containerEl.setAttribute('aria-live', 'polite');
		}
		return containerEl;
	}

	function text(v) {
		return typeof v === 'string' || typeof v === 'number' ? String(v) : '';
	}

	// DOM built with createElement/textContent only: titles come from post
	// authors and publishers and must never become markup.
	function render(ev) {
		var box = config && container();
		if (!box) return;
		var p = ev.payload;
		var title = p && typeof p === 'object' ? text(p.title) : '';
		var message = p && typeof p === 'object' ? text(p.message) : text(p);

		var item = document.createElement('div');
		item.className = 'realtime-event';
		item.setAttribute('data-type', ev.type);
		if (ev.channel) item.setAttribute('data-channel', String(ev.channel));
		if (ev.cursor) item.setAttribute('data-cursor', String(ev.cursor));

		var head = document.createElement('div');
		head.className = 'realtime-event-meta';
		var type = document.createElement('span');
		type.className = 'realtime-event-type';
		type.textContent = ev.type;
		var time = document.createElement('time');
		time.className = 'realtime-event-time';
		var when = ev.timestamp ? new Date(ev.timestamp) : new Date();
		if (isNaN(when.getTime())) {
			time.textContent = String(ev.timestamp);
		} else {
			time.dateTime = when.toISOString();
			time.textContent = when.toLocaleTimeString();
		}
		head.appendChild(type);
		head.appendChild(document.createTextNode(' '));
		head.appendChild(time);
		item.appendChild(head);

		if (title) {
			var strong = document.createElement('strong');
			strong.className = 'realtime-event-title';
			strong.textContent = title;
			item.appendChild(strong);
		}
		if (message) {
			var span = document.createElement('span');
			span.className = 'realtime-event-message';
			span.textContent = message;
			item.appendChild(span);
		}

		box.insertBefore(item, box.firstChild);
		var items = box.getElementsByClassName('realtime-event'); // live list
		while (items.length > config.maxItems) {
			items[items.length - 1].remove();
		}
	}

	// ------------------------------------------------------- subscriptions

	function subscribe(channel) {
		var name = addChannel(channels, channel);
		if (!name) return false;
		// With no socket at all, the channel simply goes into the next URL.
		send(subscribeFrame(name), true);
		return true;
	}

	function subscribeFrame(name) {
		var frame = { type: 'realtime:subscribe', channel: name };
		// From our cursor, so events published since we connected are not lost.
		if (cursor !== null) {
			frame.since = cursor;
			resuming[name] = cursor;
		}
		return frame;
	}

	function unsubscribe(channel) {
		var i = channels.indexOf(channel);
		if (i !== -1) channels.splice(i, 1);
		delete resuming[channel];
		send({ type: 'realtime:unsubscribe', channel: channel }, true);
	}

	// ------------------------------------------------------------ public API

	var api = {
		__client: true,
		connect: connect,
		disconnect: disconnect,
		reconnect: reconnect,
		on: on,
		off: off,
		subscribe: subscribe,
		unsubscribe: unsubscribe,
		cursor: function () { return cursor; },
		state: function () { return state; },
		channels: function () { return channels.slice(); },
		connectionId: function () { return connectionId; },
		presence: presence
	};
	window.RealtimeEvents = api;

	if (window.RealtimeEventsConfig && typeof window.RealtimeEventsConfig === 'object') {
		connect(window.RealtimeEventsConfig);
	}
})(window, document);
