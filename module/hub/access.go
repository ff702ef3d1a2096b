package hub

import (
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// Policy is what one endpoint (a realtime_ws route, say) decides for the
// sessions it accepts. A session keeps the policy it was accepted under; a
// reload's new policy applies to new sessions. Hub-wide limits are the
// hub's (Limits), and so are the hub's own private patterns
// (Hub.SetPrivate), which add to every endpoint's.
type Policy struct {
	DefaultChannels []string
	Private         []string      // patterns of channels that need a token, beyond private-*
	Tokens          TokenVerifier // nil: no private channels
	// Limits, when set, replace the hub's limits for this endpoint's
	// sessions: the deprecated per-handler spelling of the hub's
	// max_connections and max_connections_per_ip.
	Limits           *Limits
	MaxSubscriptions int // per session; 0 = unlimited
	SendQueue        int // events queued per session before it is a slow consumer
	PingInterval     time.Duration
}

// IsPrivate reports whether channel needs a token under this policy alone;
// Session.IsPrivate adds the hub's patterns.
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

// SetPrivate sets the hub's private patterns: * globs of channels that need
// a token (or, on the Pusher protocol, an auth signature) on every
// endpoint of the hub, whatever the endpoint's own Policy says. So a
// channel private on one endpoint can be made private on all of them,
// including the Pusher protocol's, whose clients decide a channel's kind by
// its name prefix alone. They apply to subscriptions from now on.
func (h *Hub) SetPrivate(patterns []string) {
	p := append([]string(nil), patterns...)
	h.private.Store(&p)
}

// isPrivate reports whether channel matches the hub's private patterns.
func (h *Hub) isPrivate(channel string) bool {
	p := h.private.Load()
	if p == nil {
		return false
	}
	for _, pat := range *p {
		if Glob(pat, channel) {
			return true
		}
	}
	return false
}

// IsPrivate reports whether channel needs a token for this session: by its
// policy, or by the hub's private patterns.
func (s *Session) IsPrivate(channel string) bool {
	return s.policy.IsPrivate(channel) || s.hub.isPrivate(channel)
}

// Grant is what a verified token allows.
type Grant struct {
	Subject  string
	Channels []string // names or * globs
	// Info is what the other members of a presence channel see of the
	// subject: a compact JSON object of at most MaxInfoSize bytes, or nil.
	Info    json.RawMessage
	Expires time.Time
}

// Allows reports whether the grant covers channel at time now.
func (g *Grant) Allows(channel string, now time.Time) bool {
	return now.Before(g.Expires) && g.Covers(channel)
}

// Covers reports whether the grant names channel, whatever its expiry.
func (g *Grant) Covers(channel string) bool {
	for _, pat := range g.Channels {
		if Glob(pat, channel) {
			return true
		}
	}
	return false
}

// sameAccess reports whether g and o grant the same channels to the same
// subject: o is a renewal of g.
func (g *Grant) sameAccess(o *Grant) bool {
	if g.Subject != o.Subject || len(g.Channels) != len(o.Channels) {
		return false
	}
	for i := range g.Channels {
		if g.Channels[i] != o.Channels[i] {
			return false
		}
	}
	return true
}

// TokenVerifier checks a subscriber token and says what it grants. The
// JWT implementation lives outside the engine (module/internal/token).
type TokenVerifier interface {
	// Verify returns the token's grant, or ErrTokenInvalid or
	// ErrTokenExpired.
	Verify(token string) (*Grant, error)
}

// Token errors, mapped to error codes by TokenErrorCode.
var (
	ErrTokenInvalid = errors.New("token is invalid")
	ErrTokenExpired = errors.New("token has expired")
)

// TokenErrorCode maps a Verify error to its error code.
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
