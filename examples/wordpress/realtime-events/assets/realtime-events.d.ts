// Type declarations of realtime-events.mjs (and of window.RealtimeEvents,
// which realtime-events.js sets when loaded as a classic script).

/** An event as the hub sends it: the publisher's fields and the hub's cursor. */
export interface RealtimeEvent<P = unknown> {
	type: string;
	channel: string;
	/** Opaque, totally ordered per hub; the client resumes from the last one. */
	cursor: string;
	/** Absent when the publisher sent none. */
	payload?: P;
	timestamp: string;
	/** The publisher's idempotency key, when given. */
	id?: string;
	/** The sending user of a client event on a presence channel. */
	user_id?: string;
}

export interface WelcomeMessage {
	type: 'realtime:welcome';
	connection_id: string;
	cursor: string;
	ping_interval: number;
}

export interface SubscribedMessage {
	type: 'realtime:subscribed';
	channel: string;
	/** Present only when the subscription resumed from a cursor. */
	recovered?: boolean;
}

export interface UnsubscribedMessage {
	type: 'realtime:unsubscribed';
	channel: string;
}

export interface ErrorMessage {
	type: 'realtime:error';
	/** forbidden, token_invalid, token_expired, bad_request, too_many_subscriptions;
	 * on an event stream also the reason it ends: slow_consumer, shutdown, reload, ... */
	code: string;
	message: string;
	channel?: string;
}

/** A user on a presence channel (two tabs of one user are one member). */
export interface Member {
	/** The token's sub. */
	id: string;
	/** The token's info claim; null when it had none. */
	info: Record<string, unknown> | null;
}

/** Who is on a presence channel; members is null above the hub's member limit (counts only). */
export interface Presence {
	channel: string;
	count: number;
	members: Member[] | null;
}

export interface MemberChange {
	channel: string;
	member: Member;
	count: number;
}

export type Transport = 'websocket' | 'sse';

export type State = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'offline' | 'closed';

export interface Config {
	/** ws://, wss://, http(s):// or a path. Default: this host's /realtime/ws. */
	url?: string;
	/** Channels to join (an array or a comma list). None: the hub's default channels. */
	channels?: string[] | string;
	/** Where events are rendered (a selector or an element); default #realtime-notification-area. */
	container?: string | Element | null;
	/** Rendered events kept, newest first. Default 20. */
	maxItems?: number;
	/** Seconds between liveness pings on a WebSocket; default: the hub's ping_interval. */
	pingInterval?: number;
	/** "auto" (default): WebSocket, and Server-Sent Events after two WebSocket attempts
	 * that never got the hub's welcome. "websocket" or "sse": that one only. */
	transport?: 'auto' | Transport;
	/** Seconds between WebSocket attempts while on Server-Sent Events. Default 180. */
	wsRetryInterval?: number;
}

export interface CloseInfo {
	/** The WebSocket close code; for an event stream, the code a WebSocket would have got. */
	code: number;
	reason?: string;
	reconnect: boolean;
	/** Milliseconds until the next attempt; null when EventSource reconnects by itself. */
	delay?: number | null;
	transport: Transport | null;
}

export interface LifecycleEvents {
	'realtime:state': { state: State };
	'realtime:open': { connectionId: string | null; cursor: string | null; transport: Transport | null };
	'realtime:close': CloseInfo;
	'realtime:transport': { transport: Transport | null };
	'realtime:subscribed': SubscribedMessage;
	'realtime:unsubscribed': UnsubscribedMessage;
	'realtime:error': ErrorMessage;
	/** A resume the hub could not prove complete: refetch the page's data. */
	'realtime:gap': { channel: string; since: string };
	/** Presence: the channel's roster after every change. */
	presence: Presence;
	member_added: MemberChange;
	member_removed: MemberChange;
}

/** What create() may replace; tests pass fakes. */
export interface Environment {
	window?: unknown;
	document?: unknown;
	WebSocket?: unknown;
	EventSource?: unknown;
}

export interface RealtimeEventsClient {
	connect(config?: Config): RealtimeEventsClient;
	disconnect(): void;
	/** A new handshake now, same cursor and channels (after renewing a token cookie). */
	reconnect(): void;
	on<K extends keyof LifecycleEvents>(type: K, fn: (data: LifecycleEvents[K]) => void): () => void;
	on<P = unknown>(type: string, fn: (event: RealtimeEvent<P>) => void): () => void;
	off(type: string, fn?: (data: any) => void): void;
	subscribe(channel: string): boolean;
	unsubscribe(channel: string): void;
	cursor(): string | null;
	state(): State;
	channels(): string[];
	connectionId(): string | null;
	transport(): Transport | null;
	/** Who is on a presence channel; null before its first snapshot. */
	presence(channel: string): Presence | null;
	/** Another client, independent of this one. */
	create(env?: Environment): RealtimeEventsClient;
}

declare const RealtimeEvents: RealtimeEventsClient;
export default RealtimeEvents;

export declare const connect: RealtimeEventsClient['connect'];
export declare const disconnect: RealtimeEventsClient['disconnect'];
export declare const reconnect: RealtimeEventsClient['reconnect'];
export declare const on: RealtimeEventsClient['on'];
export declare const off: RealtimeEventsClient['off'];
export declare const subscribe: RealtimeEventsClient['subscribe'];
export declare const unsubscribe: RealtimeEventsClient['unsubscribe'];
export declare const cursor: RealtimeEventsClient['cursor'];
export declare const state: RealtimeEventsClient['state'];
export declare const channels: RealtimeEventsClient['channels'];
export declare const connectionId: RealtimeEventsClient['connectionId'];
export declare const transport: RealtimeEventsClient['transport'];
export declare const presence: RealtimeEventsClient['presence'];
export declare const create: RealtimeEventsClient['create'];

declare global {
	interface Window {
		RealtimeEvents: RealtimeEventsClient;
		RealtimeEventsConfig?: Config;
	}
}
