// realtime-events.mjs: the browser client of caddy-realtime as an ES module.
//
//   import RealtimeEvents from './realtime-events.mjs';
//   RealtimeEvents.connect({ channels: ['default', 'posts'] });
//
// It runs realtime-events.js (the one source, also loaded as a classic
// <script> by the WordPress plugin and the demo page), which keeps one
// client per page in window.RealtimeEvents, and exports that client.
// create() makes independent clients. Types: realtime-events.d.ts.
import './realtime-events.js';

const client = globalThis.RealtimeEvents;

export default client;

export const connect = (config) => client.connect(config);
export const disconnect = () => client.disconnect();
export const reconnect = () => client.reconnect();
export const on = (type, fn) => client.on(type, fn);
export const off = (type, fn) => client.off(type, fn);
export const subscribe = (channel) => client.subscribe(channel);
export const unsubscribe = (channel) => client.unsubscribe(channel);
export const cursor = () => client.cursor();
export const state = () => client.state();
export const channels = () => client.channels();
export const connectionId = () => client.connectionId();
export const transport = () => client.transport();
export const presence = (channel) => client.presence(channel);
export const create = (env) => client.create(env);
