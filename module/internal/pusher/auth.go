package pusher

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"strings"
)

// Channel auth signatures. The application's auth endpoint (Laravel's
// /broadcasting/auth, say) signs a subscription with the app secret:
//
//	auth = key + ":" + hex(HMAC-SHA256(secret, socket_id + ":" + channel [+ ":" + channel_data]))
//
// channel_data only on presence channels. The server recomputes the
// signature over the exact bytes the client sent and compares in constant
// time.

// Errors of VerifyChannel. Their text reaches the client in
// pusher:subscription_error.
var (
	ErrAuthMissing     = errors.New("this channel needs an auth signature")
	ErrAuthMalformed   = errors.New("invalid auth: want <key>:<hex HMAC-SHA256>")
	ErrAuthWrongKey    = errors.New("invalid auth: the key is not this application's")
	ErrAuthSignature   = errors.New("invalid signature: expected HMAC-SHA256 hex digest of socket_id:channel[:channel_data]")
	ErrChannelDataNone = errors.New("presence channels need channel_data")
)

// ChannelStringToSign is what a subscription's signature covers.
func ChannelStringToSign(socketID, channel, channelData string) string {
	if IsPresence(channel) {
		return socketID + ":" + channel + ":" + channelData
	}
	return socketID + ":" + channel
}

// SignChannel returns the auth string for a subscription, as the Pusher
// SDKs' authorizeChannel computes it.
func SignChannel(key string, secret []byte, socketID, channel, channelData string) string {
	return key + ":" + hex.EncodeToString(channelMAC(secret, socketID, channel, channelData))
}

func channelMAC(secret []byte, socketID, channel, channelData string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ChannelStringToSign(socketID, channel, channelData)))
	return m.Sum(nil)
}

// VerifyChannel checks a subscription's auth string: the key before the
// first ':' must be the app's, and the hex signature after it must be the
// HMAC of the subscription under secret, compared in constant time.
func VerifyChannel(key string, secret []byte, socketID string, sub Subscription) error {
	if sub.Auth == "" {
		return ErrAuthMissing
	}
	if IsPresence(sub.Channel) && !sub.HasChannelData {
		return ErrChannelDataNone
	}
	k, sig, ok := strings.Cut(sub.Auth, ":")
	if !ok || len(sig) != 2*sha256.Size {
		return ErrAuthMalformed
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return ErrAuthMalformed
	}
	if subtle.ConstantTimeCompare([]byte(k), []byte(key)) != 1 {
		return ErrAuthWrongKey
	}
	if !hmac.Equal(got, channelMAC(secret, socketID, sub.Channel, sub.ChannelData)) {
		return ErrAuthSignature
	}
	return nil
}
