// Package redis is the Redis backplane of caddy-realtime: a hub.Log over one
// Redis stream per hub, shared by every node that names the same Redis, key
// prefix and hub.
//
// Keys (P is the prefix, H the hub name, in braces so that they share a
// cluster slot: every script touches one slot, and hubs spread over a
// cluster):
//
//	P{H}:stream   the events, one entry per event and channel
//	P{H}:meta     epoch, trim floor, last entry ID, event count, epoch base,
//	              and the epoch this one replaced after a declared loss
//	P{H}:id:<id>  an idempotency key, kept for history_ttl
//
// and the hub's presence and webhooks (presence.go lists their keys):
// pmeta, ps, pm:<channel>, pn:<channel>, nu:<node>, occ, oc:<node>,
// nodes, wh, whpos, whlease:<target>, under the same hash tag.
//
// One URL per deployment form (url.go) picks go-redis's own client: one
// server (redis://, rediss://, unix://), Sentinel (redis-sentinel://: the
// failover client) or Redis Cluster (redis-cluster://: the cluster client,
// which follows MOVED and ASK; connect.go keeps it from running an append
// twice). Every command that names the hub's keys is routed by them: the
// scripts by their first key, XREAD by its stream, and Redis's clock comes
// from a script (lua/head.lua), not TIME, so that it is the clock of the
// node that runs the appends.
//
// Appends run as one Lua script (lua/append.lua): the idempotency keys are
// checked and set and the entries added atomically, then the stream is
// trimmed. An append carries a fence in Redis's clock and applies nothing
// when Redis runs it too late, so that an append whose caller was answered
// with an error (Redis stalled past the 2 s bound) cannot appear later
// (fence.go says when it still can). Every node reads the stream from its
// last position with a reader and delivers the events to its hub in stream
// order, so all nodes deliver the same events in the same order, and a
// cursor (the epoch and the entry ID) means the same on every node.
//
// An epoch is one lifetime of the stream: when Redis loses the meta hash or
// the stream (restart without persistence, FLUSHALL, eviction) the next
// script starts a new epoch, and cursors of the old one resume with
// recovered:false instead of a silent gap. A failover that promotes a
// replica which had not received the last acknowledged events is found by
// the nodes that knew of them (lost.go) and declared in a new epoch too:
// then every node also resyncs its clients.
//
// Start checks what Redis refuses (check.go): credentials, the ACL, TLS,
// the deployment form, Sentinel's master name. Those fail Start with their
// cause; a Redis that does not answer does not.
//
// The log is also a hub.PresenceLog: it keeps the hub's presence for every
// node (presence*.go: Lua decides each transition of the whole hub,
// appends it to a change stream with a position and queues its webhook in
// the same step; nodes beat, and survivors reap a dead node's members) and
// its webhook queue (webhooks.go: a stream, a lease per target, positions
// acknowledged), so that a node's crash loses no webhook.
//
// # Files
//
//	log.go      Config, the Log type, New, Start, Close, Head
//	append.go   Append and the appender (group commit)
//	fence.go    the append fence: Redis's clock, estimated from TIME replies
//	reader.go   the fetcher and the deliverer
//	range.go    Range (resume reads) and the read script's caller
//	codec.go    decoding replies: the stream entry decoder, IDs, records
//	health.go   Healthy and the up/down transitions
//	scripts.go  the Lua scripts of lua/, embedded
//	url.go      ParseURL: the URL of a hub (each deployment form) and its rules
//	connect.go  go-redis's client for the form; no blind retry of a script
//	check.go    the start check: what Redis refuses, named
//	lost.go     acknowledged events lost in a failover: found and declared
//	replicas.go min_replicas_acked: WAIT after the append, same connection
//	presence.go         the presence store: keys, calls, registration
//	presence_reader.go  the change stream's reader
//	presence_nodes.go   heartbeats, the sweep, reaping, goodbye
//	presence_outage.go  deciding alone while Redis does not answer
//	webhooks.go         the webhook queue and its leases
//
// # Goroutines and what they own
//
// Start starts three goroutines; Close cancels l.ctx, closes the client
// (which breaks a blocked read) and waits for them.
//
//   - The appender receives Append calls from l.calls (unbuffered: a call
//     it has not received is not in Redis, so its caller can give up
//     without a trace), takes every call already waiting into one group of
//     at most maxGroup publications and runs one append script for the
//     group, then closes each call's done. It owns the group in flight.
//   - The fetcher runs a blocking XREAD after its own position (fEpoch,
//     fPos, fN, which only it touches), learns the epoch again when it
//     changes, reconnects with backoff, and records the backplane's health.
//     It compares what Redis has with the node's mark (known: the highest
//     event it read or appended) and declares a loss it finds (lossIn,
//     set by it or by the appender); it remembers the ids it read last
//     (fIDs), so that after a loss it does not deliver a publisher's retry
//     of an event its clients had. It sends
//     what it read on l.batches (bounded: it waits when about maxQueued
//     entries, in batches of Config.Batch, are not delivered yet), and
//     reads Redis's clock with every XREAD for the append fence.
//   - The deliverer receives from l.batches and applies each batch: it
//     moves the delivered head (and lastN, the head's event number, for
//     gap detection) under l.mu and hands the events to the hub.
//   - A gap report runs onGap under l.mu, before the events after the gap
//     are delivered: the hub's handler takes only the hub's lock and
//     schedules the closes (hub.GapReporter).
//
// Start runs the first sync and apply itself, before these goroutines
// exist. Append, Range and Head run on their callers' goroutines.
//
// The presence store's Start (the hub calls it before the log's) starts
// two more, and the webhook queue one while it holds a lease:
//
//   - The presence reader reads the change stream with its own blocking
//     XREAD and delivers the changes to the hub (hub.PresenceNode.Deliver)
//     under pres.mu; it idles while the node decides alone.
//   - The keeper registers the node when that is due (at start, after an
//     outage, a new epoch, a declared loss, or being taken for dead),
//     beats, sweeps for dead nodes and reaps them.
//   - The lease renewer extends the webhook leases this node holds.
//
// The hub's store calls (Join, Leave, Occupy, Vacate, Snapshot) run on the
// hub's goroutines. Close says goodbye (a heartbeat that expires after the
// leave delay, the leases released) before it closes the client.
//
// # Locks
//
// One mutex, l.mu, guards the delivered state (epoch, pos, lastN, changed,
// the deliver and onGap functions, started, closed). apply holds it while it
// calls the hub's deliver function, so that Head never runs ahead of what
// the hub was handed: l.mu comes before every lock of the hub, and the hub
// must not call Head or Range while holding a lock its deliver takes. l.mu
// is the event log's only lock. Everything else is a channel (l.calls,
// l.batches, l.changed), an atomic (retention, health, the gap count,
// running, the clock estimate of the append fence, the mark and the
// pending loss) or owned by one goroutine.
//
// Presence has its own locks, never held with l.mu: pres.beating (a
// heartbeat or a registration, and goodbye), then pres.calls (read-held by
// each store call that changes what the node holds, write-held by a
// registration, so that it compares what the hub holds with Redis while no
// call runs), then pres.mu (the reader's position, the mode, what the node
// registered, the caches; the hub's Deliver and Resync run under it, so it
// comes before every lock of the hub, and the hub never calls the store
// holding one). whq.mu is a leaf.
package redis
