// Package token verifies subscriber tokens: JWT HS256 signed with the
// endpoint's token_secret, with exp required and a channels claim. It
// implements hub.TokenVerifier, so the engine never sees a JWT library.
package token

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// Leeway is the clock difference tolerated between the application that
// signs tokens and this server. A token is good until exp plus Leeway, both
// for the signature check and for the grant it gives, so a token inside the
// leeway is never refused as forbidden.
const Leeway = 5 * time.Second

// maxLen bounds what the JWT parser is given.
const maxLen = 8192

// Verifier checks HS256 tokens signed with one secret.
type Verifier struct {
	secret []byte
	parser *jwt.Parser
}

// NewVerifier returns a verifier for HS256 tokens signed with secret.
func NewVerifier(secret string) *Verifier {
	return &Verifier{
		secret: []byte(secret),
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{"HS256"}),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(Leeway),
		),
	}
}

type claims struct {
	Channels []string `json:"channels"`
	// Info is shown to the other members of presence channels: a JSON
	// object of at most hub.MaxInfoSize bytes once compacted.
	Info json.RawMessage `json:"info,omitempty"`
	jwt.RegisteredClaims
}

// Verify implements hub.TokenVerifier.
func (v *Verifier) Verify(tok string) (*hub.Grant, error) {
	if tok == "" || len(tok) > maxLen {
		return nil, hub.ErrTokenInvalid
	}
	var c claims
	_, err := v.parser.ParseWithClaims(tok, &c, func(*jwt.Token) (any, error) { return v.secret, nil })
	if errors.Is(err, jwt.ErrTokenExpired) {
		return nil, hub.ErrTokenExpired
	}
	if err != nil || c.ExpiresAt == nil {
		return nil, hub.ErrTokenInvalid
	}
	// An info that is not an object, or too large, makes the whole token
	// invalid rather than silently dropped: the application would
	// otherwise show members without the names it meant to show.
	info, err := hub.NormalizeInfo(c.Info)
	if err != nil {
		return nil, hub.ErrTokenInvalid
	}
	return &hub.Grant{Subject: c.Subject, Channels: c.Channels, Info: info, Expires: c.ExpiresAt.Add(Leeway)}, nil
}

var _ hub.TokenVerifier = (*Verifier)(nil)
