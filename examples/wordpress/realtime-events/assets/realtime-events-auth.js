/*!
 * realtime-events-auth.js: keeps the subscriber token cookie of a logged-in user fresh.
 *
 * The token is an HttpOnly cookie this script cannot read. A second cookie (the "meta"
 * cookie) tells it when the token expires and which channels it grants. Before the token
 * expires, and when the hub refuses a private channel (expired or missing token), it asks
 * WordPress for a new cookie: GET admin-ajax.php?action=rest-nonce (a REST nonce, only for
 * logged-in users) then POST /wp-json/realtime-events/v1/token with X-WP-Nonce. After a
 * refusal it reconnects the client, which resumes from its cursor.
 *
 * Anonymous visitors have no meta cookie: the script then makes no request at all.
 */
(function (window, document) {
	'use strict';

	var cfg = window.RealtimeEventsAuthConfig;
	if (!cfg || !window.fetch) return;

	var RETRY_MS = 30000;   // after a failed refresh
	var MIN_GAP_MS = 10000; // between two refreshes caused by refusals
	var timer = 0;
	var inflight = null;
	var lastForced = 0;

	function meta() {
		var m = document.cookie.match(new RegExp('(?:^|; )' + cfg.metaCookie + '=([^;]*)'));
		if (!m) return null;
		try {
			var d = JSON.parse(decodeURIComponent(m[1]));
			return d && typeof d.exp === 'number' ? d : null;
		} catch (e) {
			return null;
		}
	}

	function forget() {
		// Logged out elsewhere or session expired: stop trying.
		document.cookie = cfg.metaCookie + '=; Max-Age=0; Path=/; SameSite=Strict';
		clearTimeout(timer);
	}

	function schedule(ms) {
		clearTimeout(timer);
		var d = meta();
		if (!d) return;
		if (ms === undefined) {
			var now = Date.now() / 1000;
			var life = d.iat ? d.exp - d.iat : 600;
			// Renew when a third of the lifetime is left.
			ms = Math.max(1000, (d.exp - life / 3 - now) * 1000);
		}
		timer = setTimeout(function () { refresh(); }, Math.min(ms, 2147483000));
	}

	function refresh() {
		if (inflight) return inflight;
		inflight = fetch(cfg.nonceUrl, { credentials: 'same-origin', cache: 'no-store' })
			.then(function (r) {
				// admin-ajax answers 400 "0" to visitors who are not logged in.
				if (r.status === 400 || r.status === 403) throw new Error('not logged in');
				if (!r.ok) throw new Error('HTTP ' + r.status);
				return r.text();
			})
			.then(function (nonce) {
				return fetch(cfg.restUrl, {
					method: 'POST',
					credentials: 'same-origin',
					cache: 'no-store',
					headers: { 'X-WP-Nonce': nonce.trim() }
				});
			})
			.then(function (r) {
				if (r.status === 401 || r.status === 403) throw new Error('not logged in');
				if (!r.ok) throw new Error('HTTP ' + r.status);
				return r.json();
			})
			.then(function (data) {
				schedule();
				return data;
			}, function (err) {
				if (/not logged in/.test(String(err && err.message))) forget();
				else schedule(RETRY_MS);
				throw err;
			})
			.finally(function () { inflight = null; });
		return inflight;
	}

	function isPrivate(name) {
		return typeof name === 'string' && name.indexOf('private-') === 0;
	}

	var client = window.RealtimeEvents;
	if (client && typeof client.on === 'function') {
		client.on('realtime:error', function (frame) {
			var code = frame && frame.code;
			var tokenProblem = code === 'token_expired' || code === 'token_invalid' ||
				(code === 'forbidden' && isPrivate(frame.channel));
			if (!tokenProblem || !meta()) return;
			var now = Date.now();
			if (now - lastForced < MIN_GAP_MS) return;
			lastForced = now;
			refresh().then(function () {
				// The hub reads the cookie at the handshake: a new handshake (same cursor
				// and channels, so nothing is missed) makes it use the new token.
				if (typeof client.reconnect === 'function') client.reconnect();
				else if (window.RealtimeEventsConfig) client.connect(window.RealtimeEventsConfig);
			}, function () { /* logged out: public channels keep working */ });
		});
	}

	document.addEventListener('visibilitychange', function () {
		if (document.visibilityState === 'visible') schedule();
	});
	window.addEventListener('online', function () { schedule(); });

	window.RealtimeEventsAuth = { refresh: refresh };
	schedule();
})(window, document);
