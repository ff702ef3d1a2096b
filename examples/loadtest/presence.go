package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"time"
)

// Presence mode (-presence N): every subscriber joins a presence channel
// as a user of its own, N users a channel (subscriber i is user "u<i>" on
// presence-<channel>.<i/N>), with a token of its own in an Authorization
// header, so that idle memory can be compared with plain subscriptions.
// With -private, the same on private-* channels: everything but presence.

// presenceChannel is subscriber i's presence channel.
func (r *run) presenceChannel(i int) string {
	kind := "presence"
	if r.cfg.private {
		kind = "private"
	}
	return fmt.Sprintf("%s-%s.%d", kind, r.cfg.channel, i/r.cfg.presence)
}

// presenceURL is u with subscriber i's channel.
func (r *run) presenceURL(u *url.URL, i int) *url.URL {
	cu := *u
	q := cu.Query()
	q.Set("channels", r.presenceChannel(i))
	cu.RawQuery = q.Encode()
	return &cu
}

// presenceToken is subscriber i's token: HS256 over the hub's token_secret,
// granting its presence channel, with a little info as a site would send.
func (r *run) presenceToken(i int) string {
	head := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{
		"sub":      fmt.Sprintf("u%d", i),
		"exp":      time.Now().Add(time.Hour).Unix(),
		"channels": []string{r.presenceChannel(i)},
		"info":     map[string]string{"name": fmt.Sprintf("User %d", i)},
	})
	body := head + "." + base64.RawURLEncoding.EncodeToString(claims)
	m := hmac.New(sha256.New, []byte(r.cfg.tokenSecret))
	m.Write([]byte(body))
	return body + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}
