// Package rtproto is the module's own protocol: JSON messages whose type
// starts with "realtime:" for control, and events in the recipe's shape.
// It carries them over WebSocket (text frames: the WebSocket codec) and
// over Server-Sent Events (the same JSON as data lines: the SSE codec).
// Handle turns a client's messages into the engine's requests.
package rtproto
