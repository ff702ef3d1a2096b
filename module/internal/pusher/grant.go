package pusher

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// A Pusher subscription's auth signature is the credential that lets a
// session into a private or presence channel, as a subscriber token is for
// the module's own protocol. Authorizer plugs it into the engine's access
// checks: the handler passes Credential(socket, subscription) as the
// subscribe's token, and the engine keeps the grant it verifies to, so
// private channels follow one rule whatever the wire format.

// Authorizer verifies subscription credentials for one app. It implements
// hub.TokenVerifier.
type Authorizer struct {
	Key    string
	Secret []byte
}

// credential is a subscription's auth, bound to the socket it was made for.
type credential struct {
	SocketID       string `json:"s"`
	Channel        string `json:"c"`
	Auth           string `json:"a"`
	ChannelData    string `json:"d,omitempty"`
	HasChannelData bool   `json:"h,omitempty"`
}

// Credential encodes a subscription and the socket it was made on as the
// token the engine verifies with Authorizer.
func Credential(socketID string, sub Subscription) string {
	b, _ := json.Marshal(credential{SocketID: socketID, Channel: sub.Channel, Auth: sub.Auth, ChannelData: sub.ChannelData, HasChannelData: sub.HasChannelData})
	return string(b)
}

// neverExpires is when a signature's grant ends: a Pusher signature has no
// expiry of its own; it is only good for the socket it names.
var neverExpires = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

var errNotACredential = errors.New("invalid auth")

// Verify checks a Credential and grants its one channel. The channel must
// be a valid name, which has no '*': the grant's channel is matched as a
// pattern. On a presence channel the grant's subject and info are the
// member that channel_data names, read from the exact bytes the signature
// covers: a client can only join as the user the application signed.
func (a Authorizer) Verify(token string) (*hub.Grant, error) {
	var c credential
	if err := json.Unmarshal([]byte(token), &c); err != nil || !hub.ValidChannel(c.Channel) || !ValidSocketID(c.SocketID) {
		return nil, errNotACredential
	}
	sub := Subscription{Channel: c.Channel, Auth: c.Auth, ChannelData: c.ChannelData, HasChannelData: c.HasChannelData}
	if err := VerifyChannel(a.Key, a.Secret, c.SocketID, sub); err != nil {
		return nil, err
	}
	g := &hub.Grant{Channels: []string{c.Channel}, Expires: neverExpires}
	if IsPresence(c.Channel) {
		m, err := ParseChannelData(c.ChannelData)
		if err != nil {
			return nil, err
		}
		g.Subject, g.Info = m.ID, m.Info
	}
	return g, nil
}

var _ hub.TokenVerifier = Authorizer{}
