package main

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// The Pusher side of the load tool (-target pusher): subscribers speak the
// Pusher protocol to realtime_pusher (subscribe in dialSub, frames in
// handle), and with -pusher-trigger the publishers use the Pusher HTTP API,
// signed as the Pusher SDKs sign it, instead of realtime_broadcast.

// triggerBody appends one trigger of the Pusher HTTP API: the payload goes
// as data, a JSON string, so its quotes are escaped.
func (r *run) triggerBody(b []byte, seq, pub, ts int64) []byte {
	b = append(b, `{"name":"load","channel":"`...)
	b = append(b, r.cfg.channel...)
	b = append(b, `","data":"{\"seq\":`...)
	start := len(b) - len(`{\"seq\":`)
	b = appendInt(b, seq)
	b = append(b, `,\"p\":`...)
	b = appendInt(b, pub)
	b = append(b, `,\"ts\":`...)
	b = appendInt(b, ts)
	b = append(b, `,\"pad\":\"`...)
	// The size counts the payload unescaped (nine backslashes so far), as
	// realtime_broadcast's publishers send it, so both carry as much.
	pad := r.cfg.size - (len(b) - start - 9) - 2
	for i := 0; i < pad; i++ {
		b = append(b, 'x')
	}
	return append(b, `\"}"}`...)
}

// signedURI returns the request URI of a trigger: the path with the
// auth_* query and body_md5 that the Pusher SDKs add.
func (r *run) signedURI(body []byte) string {
	path := r.pubURL.Path
	sum := md5.Sum(body)
	query := "auth_key=" + r.cfg.pusherKey +
		"&auth_timestamp=" + strconv.FormatInt(time.Now().Unix(), 10) +
		"&auth_version=1.0&body_md5=" + hex.EncodeToString(sum[:])
	m := hmac.New(sha256.New, []byte(r.cfg.pusherSecret))
	m.Write([]byte("POST\n" + path + "\n" + query))
	return path + "?" + query + "&auth_signature=" + hex.EncodeToString(m.Sum(nil))
}
