// Package wsframe is RFC 6455 for the hub's connections: server frames built
// once and written as bytes to every subscriber, the parser of client frames
// read from non-blocking sockets, and the close codes.
//
// "Frame" in this module means a WebSocket frame only; the JSON inside one
// is a message.
package wsframe
