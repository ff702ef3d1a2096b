/*!
 * realtime-presence.js: fills the [realtime_presence] placeholders with who is reading.
 *
 * Each placeholder is <div class="realtime-presence" data-channel="presence-post.7"
 * data-members="yes" hidden>. This script joins the channel through the browser client
 * (window.RealtimeEvents: on(), subscribe(), reconnect(), connect(), presence()) and shows
 * the number of members, plus, to logged-in viewers, the names and avatars of the members
 * that have them (logged-in users). Anonymous members are counted, never listed. Every
 * name is set with textContent; an avatar is used only when its URL is http(s).
 *
 * Presence channels are private: the hub admits a connection when the token cookie of its
 * handshake grants the channel. The script first simply subscribes (a token from an
 * earlier page often grants it already); when the hub refuses, it asks WordPress for a
 * grant (POST /wp-json/realtime-events/v1/presence: with the REST nonce for logged-in
 * users, without for anonymous visitors), which renews the HttpOnly cookie, and then
 * reconnects the client so that the new handshake carries it.
 *
 * Without a client that has presence() (older realtime-events.js), or when the visitor
 * may not join, the placeholders stay hidden.
 */
(function (window, document) {
	'use strict';

	var cfg = window.RealtimePresenceConfig;
	var client = window.RealtimeEvents;
	if (!cfg || !client || typeof client.on !== 'function' || typeof client.presence !== 'function' ||
		typeof client.subscribe !== 'function' || !window.fetch || !document.querySelectorAll) {
		return;
	}

	var REGRANT_GAP_MS = 15000; // at most one grant request per channel in this time
	var TOKEN_ERRORS = { forbidden: true, token_expired: true, token_invalid: true };
	var text = cfg.text || {};
	var maxShown = cfg.maxShown > 0 ? cfg.maxShown : 24;

	// channel -> {boxes, granted (a grant request succeeded), pending (promise),
	// lastGrant, failed (refused for good), count, members (Map id -> member, or null)}
	var channels = {};
	var names = [];
	Array.prototype.forEach.call(document.querySelectorAll('.realtime-presence[data-channel]'), function (el) {
		var name = el.getAttribute('data-channel');
		if (!name) return;
		if (!channels[name]) {
			channels[name] = { boxes: [], granted: false, pending: null, lastGrant: 0, failed: false, count: null, members: null };
			names.push(name);
		}
		channels[name].boxes.push(el);
	});
	if (!names.length) return;

	// ------------------------------------------------------------ who am I

	function metaCookie() {
		var m = document.cookie.match(new RegExp('(?:^|; )' + cfg.metaCookie + '=([^;]*)'));
		return m ? m[1] : null;
	}

	// The meta cookie (script-readable, no token in it) exists for logged-in users only.
	function loggedIn() {
		return metaCookie() !== null;
	}

	// ------------------------------------------------------------ grants

	var nonce = null;

	function getNonce() {
		if (nonce) return Promise.resolve(nonce);
		return fetch(cfg.nonceUrl, { credentials: 'same-origin', cache: 'no-store' }).then(function (r) {
			// admin-ajax answers 400 "0" to visitors who are not logged in.
			if (!r.ok) return null;
			return r.text().then(function (t) {
				nonce = t.trim() || null;
				return nonce;
			});
		}, function () { return null; });
	}

	function post(channel, withNonce) {
		var headers = { 'Content-Type': 'application/json' };
		if (withNonce) headers['X-WP-Nonce'] = withNonce;
		return fetch(cfg.restUrl, {
			method: 'POST',
			credentials: 'same-origin',
			cache: 'no-store',
			headers: headers,
			body: JSON.stringify({ channel: channel })
		}).then(function (r) {
			return r.json().then(function (body) { return { status: r.status, body: body }; }, function () {
				return { status: r.status, body: null };
			});
		});
	}

	// Resolves true once the token cookie grants the channel, false when it cannot.
	function grant(channel) {
		var st = channels[channel];
		if (st.pending) return st.pending;
		st.lastGrant = Date.now();
		st.pending = (loggedIn() ? getNonce() : Promise.resolve(null)).then(function (n) {
			return post(channel, n).then(function (res) {
				// A login cookie without the nonce (the meta cookie was gone): ask again
				// as the user, never as an anonymous visitor.
				if (res.status === 401 && res.body && res.body.code === 'realtime_events_nonce_required' && !n) {
					return getNonce().then(function (n2) { return n2 ? post(channel, n2) : res; });
				}
				if (res.status === 403 && res.body && res.body.code === 'rest_cookie_invalid_nonce') {
					nonce = null; // expired nonce: one more try with a fresh one
					return getNonce().then(function (n2) { return post(channel, n2); });
				}
				return res;
			});
		}).then(function (res) {
			st.pending = null;
			if (res.status === 200) {
				st.granted = true;
				return true;
			}
			// 400/401/403/404: this visitor may not join (or presence is off). 429 and
			// errors: not now; the next refusal by the hub may try again.
			if (res.status >= 400 && res.status < 500 && res.status !== 429) st.failed = true;
			return false;
		}, function () {
			st.pending = null;
			return false;
		});
		return st.pending;
	}

	// The hub reads the token cookie at the handshake: after a grant, a new handshake
	// (same cursor and channels, nothing missed) is what makes it count.
	function regrant(list) {
		var now = Date.now();
		list = list.filter(function (c) {
			var st = channels[c];
			return !st.failed && !st.pending && now - st.lastGrant >= REGRANT_GAP_MS;
		});
		if (!list.length) return;
		Promise.all(list.map(grant)).then(function (results) {
			if (results.some(Boolean)) start(true);
			list.forEach(function (c) { if (channels[c].failed) hide(c); });
		});
	}

	// ------------------------------------------------------------ joining

	function start(afterGrant) {
		var joinable = names.filter(function (c) { return !channels[c].failed; });
		if (!joinable.length) return;
		var state = typeof client.state === 'function' ? client.state() : 'idle';
		if (state === 'idle' || state === 'closed') {
			// No [realtime_notifications] on this page: the client is ours to start.
			client.connect({ url: cfg.url, channels: joinable, container: null });
			return;
		}
		if (afterGrant && typeof client.reconnect === 'function') client.reconnect();
		// Channels the client already lists go into the handshake URL; the others follow
		// as subscribe frames (sent after the welcome).
		var listed = typeof client.channels === 'function' ? client.channels() : [];
		joinable.forEach(function (c) {
			if (listed.indexOf(c) === -1) client.subscribe(c);
		});
	}

	// ------------------------------------------------------------ members

	function listOf(members) {
		if (!members) return null;
		if (Array.isArray(members)) return members;
		if (typeof Map !== 'undefined' && members instanceof Map) return Array.from(members.values());
		if (typeof members === 'object') {
			return Object.keys(members).map(function (id) {
				var m = members[id];
				return m && typeof m === 'object' && 'id' in m ? m : { id: id, info: m && m.info !== undefined ? m.info : m };
			});
		}
		return null;
	}

	function setMembers(st, members) {
		var list = listOf(members);
		if (!list) {
			st.members = null;
			return;
		}
		st.members = new Map();
		list.forEach(function (m) {
			if (m && m.id !== undefined && m.id !== null) st.members.set(String(m.id), m);
		});
	}

	// The client's own view when it has one; otherwise what the frames told us.
	function snapshot(channel) {
		var st = channels[channel];
		var p = null;
		try { p = client.presence(channel); } catch (e) { p = null; }
		if (p && typeof p.count === 'number') {
			var list = listOf(p.members);
			return { count: p.count, members: list };
		}
		if (st.count === null) return null;
		return { count: st.count, members: st.members ? Array.from(st.members.values()) : null };
	}

	function named(m) {
		var info = m && m.info;
		return info && typeof info === 'object' && typeof info.name === 'string' && info.name !== '';
	}

	function avatarUrl(info) {
		var url = info && typeof info.avatar === 'string' ? info.avatar : '';
		try {
			var u = new URL(url, window.location.href);
			return u.protocol === 'https:' || u.protocol === 'http:' ? u.href : '';
		} catch (e) {
			return '';
		}
	}

	function format(template, n) {
		return String(template || '%s').replace('%s', String(n));
	}

	function hide(channel) {
		channels[channel].boxes.forEach(function (box) {
			box.hidden = true;
			while (box.firstChild) box.removeChild(box.firstChild);
		});
	}

	function render(channel) {
		var snap = snapshot(channel);
		if (!snap) return;
		var showNames = loggedIn();
		var people = (snap.members || []).filter(named).sort(function (a, b) {
			return a.info.name.localeCompare(b.info.name);
		});
		channels[channel].boxes.forEach(function (box) {
			while (box.firstChild) box.removeChild(box.firstChild);
			var count = document.createElement('span');
			count.className = 'realtime-presence-count';
			count.setAttribute('data-count', String(snap.count));
			count.textContent = format(snap.count === 1 ? text.one : text.other, snap.count);
			box.appendChild(count);

			if (showNames && box.getAttribute('data-members') !== 'no' && people.length) {
				var ul = document.createElement('ul');
				ul.className = 'realtime-presence-members';
				if (text.list) ul.setAttribute('aria-label', text.list);
				people.slice(0, maxShown).forEach(function (m) {
					var li = document.createElement('li');
					li.className = 'realtime-presence-member';
					li.setAttribute('data-member-id', String(m.id));
					var src = avatarUrl(m.info);
					if (src) {
						var img = document.createElement('img');
						img.className = 'realtime-presence-avatar';
						img.alt = '';
						img.width = 24;
						img.height = 24;
						img.loading = 'lazy';
						img.referrerPolicy = 'no-referrer';
						img.onerror = function () { this.remove(); }; // no broken-image box
						img.src = src;
						li.appendChild(img);
					}
					var name = document.createElement('span');
					name.className = 'realtime-presence-name';
					name.textContent = m.info.name;
					li.appendChild(name);
					ul.appendChild(li);
				});
				box.appendChild(ul);
				if (people.length > maxShown) {
					var more = document.createElement('span');
					more.className = 'realtime-presence-more';
					more.textContent = format(text.more, people.length - maxShown);
					box.appendChild(more);
				}
			}
			box.hidden = false;
		});
	}

	// ------------------------------------------------------------ frames

	function mine(frame) {
		return frame && typeof frame.channel === 'string' && channels[frame.channel] ? channels[frame.channel] : null;
	}

	function onSnapshot(frame) {
		var st = mine(frame);
		if (!st) return;
		if (typeof frame.count === 'number') st.count = frame.count;
		setMembers(st, frame.members);
		render(frame.channel);
	}

	function onCount(frame) {
		var st = mine(frame);
		if (!st) return;
		if (typeof frame.count === 'number') st.count = frame.count;
		st.members = null; // above the hub's member limit: counts only
		render(frame.channel);
	}

	function onMember(added) {
		return function (frame) {
			var st = mine(frame);
			if (!st) return;
			if (typeof frame.count === 'number') st.count = frame.count;
			var m = frame.member;
			if (st.members && m && m.id !== undefined && m.id !== null) {
				if (added) st.members.set(String(m.id), m);
				else st.members['delete'](String(m.id));
			}
			render(frame.channel);
		};
	}

	// The client names these events without the "realtime:" prefix; the prefixed names
	// are listened to as well, so that either spelling works. Handling a frame twice is
	// harmless: every handler sets state, it never counts.
	['presence', 'realtime:presence'].forEach(function (t) { client.on(t, onSnapshot); });
	['presence_count', 'realtime:presence_count'].forEach(function (t) { client.on(t, onCount); });
	['member_added', 'realtime:member_added'].forEach(function (t) { client.on(t, onMember(true)); });
	['member_removed', 'realtime:member_removed'].forEach(function (t) { client.on(t, onMember(false)); });

	client.on('realtime:error', function (frame) {
		if (!frame || !TOKEN_ERRORS[frame.code]) return;
		// A refusal of one of our channels, or a token problem not tied to a channel.
		if (frame.channel && !channels[frame.channel]) return;
		regrant(frame.channel ? [frame.channel] : names.slice());
	});

	start(false);
})(window, document);
