package module

import (
	"net"
	"net/http"
	"net/url"
	"strings"
)

// originPolicy decides which browser origins may open a WebSocket. The
// default is the request's own origin; an explicit list replaces it.
type originPolicy struct {
	any      bool
	exact    map[string]bool // normalized scheme://host:port
	wildcard []originPattern // https://*.example.com
}

type originPattern struct {
	scheme, suffix, port string // suffix keeps its leading dot
}

func newOriginPolicy(list []string) (*originPolicy, error) {
	p := &originPolicy{exact: make(map[string]bool)}
	for _, o := range list {
		if o == "*" {
			p.any = true
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			return nil, errOrigin(o)
		}
		host, port := u.Hostname(), u.Port()
		if port == "" {
			port = defaultPort(u.Scheme)
		}
		if rest, ok := strings.CutPrefix(host, "*."); ok {
			if rest == "" || strings.Contains(rest, "*") {
				return nil, errOrigin(o)
			}
			p.wildcard = append(p.wildcard, originPattern{scheme: u.Scheme, suffix: "." + strings.ToLower(rest), port: port})
			continue
		}
		if strings.Contains(host, "*") {
			return nil, errOrigin(o)
		}
		p.exact[u.Scheme+"://"+net.JoinHostPort(strings.ToLower(host), port)] = true
	}
	return p, nil
}

type errOrigin string

func (e errOrigin) Error() string {
	return "invalid origin " + string(e) + ": want scheme://host[:port], scheme://*.domain[:port] or *"
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// allowed reports whether the request's Origin may connect. A request
// without Origin is not from a browser and cannot be a cross-site attack.
func (p *originPolicy) allowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if p.any {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = defaultPort(u.Scheme)
	}
	if len(p.exact) == 0 && len(p.wildcard) == 0 {
		return sameOrigin(r, u.Scheme, host, port)
	}
	if p.exact[u.Scheme+"://"+net.JoinHostPort(host, port)] {
		return true
	}
	for _, w := range p.wildcard {
		if u.Scheme == w.scheme && port == w.port && strings.HasSuffix(host, w.suffix) {
			return true
		}
	}
	return false
}

// sameOrigin compares an origin with the request's own scheme, host and port.
func sameOrigin(r *http.Request, scheme, host, port string) bool {
	reqScheme := "http"
	if r.TLS != nil {
		reqScheme = "https"
	}
	reqHost, reqPort, err := net.SplitHostPort(r.Host)
	if err != nil {
		reqHost, reqPort = r.Host, defaultPort(reqScheme)
	}
	return scheme == reqScheme && host == strings.ToLower(reqHost) && port == reqPort
}
