package hub

import (
	"errors"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Policy is what one realtime_ws configuration decides for the sessions it
// accepts. A session keeps the policy it was accepted under; a reload's new
// policy applies to new sessions.
type Policy struct {
	DefaultChannels     []string
	Private             []string // patterns of channels that need a token, beyond private-*
	Tokens              *TokenVerifier
	MaxConnections      int // per hub on this node; 0 = unlimited
	MaxConnectionsPerIP int // 0 = unlimited
	MaxSubscriptions    int // per session; 0 = unlimited
	SendQueue           int // events queued per session before 1013
	PingInterval        time.Duration
}

// IsPrivate reports whether channel needs a token.
func (p *Policy) IsPrivate(channel string) bool {
	if strings.HasPrefix(channel, "private-") {
		return true
	}
	for _, pat := range p.Private {
		if Glob(pat, channel) {
			return true
		}
	}
	return false
}

// Grant is what a verified token allows.
type Grant struct {
	Subject  string
	Channels []string // names or * globs
	Expires  time.Time
}

// Allows reports whether the grant covers channel at time now.
func (g *Grant) Allows(channel string, now time.Time) bool {
	if !now.Before(g.Expires) {
		return false
	}
	for _, pat := range g.Channels {
		if Glob(pat, channel) {
			return true
		}
	}
	return false
}

// TokenVerifier checks subscriber tokens: JWT HS256 signed with the secret,
// exp required, channels claim listing names or globs.
type TokenVerifier struct {
	secret []byte
	parser *jwt.Parser
}

// NewTokenVerifier returns a verifier for HS256 tokens signed with secret.
func NewTokenVerifier(secret string) *TokenVerifier {
	return &TokenVerifier{
		secret: []byte(secret),
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{"HS256"}),
			jwt.WithExpirationRequired(),
			jwt.WithLeeway(5*time.Second),
		),
	}
}

type tokenClaims struct {
	Channels []string `json:"channels"`
	jwt.RegisteredClaims
}

// Token errors, mapped to realtime:error codes by TokenErrorCode.
var (
	ErrTokenInvalid = errors.New("token is invalid")
	ErrTokenExpired = errors.New("token has expired")
)

// maxTokenLen bounds what the JWT parser is given.
const maxTokenLen = 8192

// Verify checks a token and returns its grant.
func (v *TokenVerifier) Verify(token string) (*Grant, error) {
	if token == "" || len(token) > maxTokenLen {
		return nil, ErrTokenInvalid
	}
	var c tokenClaims
	_, err := v.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return v.secret, nil })
	if errors.Is(err, jwt.ErrTokenExpired) {
		return nil, ErrTokenExpired
	}
	if err != nil || c.ExpiresAt == nil {
		return nil, ErrTokenInvalid
	}
	return &Grant{Subject: c.Subject, Channels: c.Channels, Expires: c.ExpiresAt.Time}, nil
}

// TokenErrorCode maps a Verify error to its realtime:error code.
func TokenErrorCode(err error) string {
	if errors.Is(err, ErrTokenExpired) {
		return CodeTokenExpired
	}
	return CodeTokenInvalid
}

// Glob reports whether name matches pattern, where * matches any run of
// characters, dots included, and everything else matches itself.
func Glob(pattern, name string) bool {
	// Iterative matching with one backtrack point: linear in practice and
	// never exponential, whatever a token or config holds.
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case p < len(pattern) && pattern[p] == name[n]:
			p++
			n++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
