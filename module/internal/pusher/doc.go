// Package pusher is the Pusher Channels protocol, version 7, as pusher-js,
// Laravel Echo and the Pusher server SDKs speak it: the client messages
// (message.go), the hub.Codec that encodes the engine's events and control
// messages as Pusher frames (codec.go), the close and error codes that
// pusher-js acts on (codes.go), channel auth signatures (auth.go), the
// signed HTTP API's request check (apisign.go) and its request bodies
// (api.go).
//
// It is pure: no Caddy, no net/http, no sockets. The realtime_pusher
// handler in the module package puts it on the wire.
//
// Conventions that matter to clients, checked against pusher-js 8.6.0:
//
//   - data of connection_established, subscription_succeeded and member
//     events is a JSON string holding JSON; data of pusher:error, ping and
//     pong is an object;
//   - channel events carry data as a string: the string a trigger gave,
//     verbatim, or the JSON text of any other payload;
//   - close codes 4000-4099 and 4300 and above stop pusher-js for good, so
//     the server only closes with those when it means it (unknown key,
//     unsupported protocol, origin refused); a rejected client event is a
//     pusher:error frame, never a close.
package pusher
