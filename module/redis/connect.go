package redis

import (
	"context"
	"errors"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Sentinel makes a log find its primary through Redis Sentinel (go-redis's
// failover client): the sentinels are asked for the primary's address on
// every new connection, and connections to an old primary are closed when
// the sentinels announce a new one.
type Sentinel struct {
	// MasterName is the name the sentinels monitor the primary under.
	MasterName string
	// Addrs are the sentinels' host:port addresses.
	Addrs []string
	// Username and Password are the sentinels' own credentials; the data
	// nodes' are Config.Client's.
	Username, Password string
}

// Cluster makes a log use a Redis Cluster (go-redis's cluster client),
// which learns the slots from the seed nodes and follows MOVED and ASK.
type Cluster struct {
	// Addrs are seed nodes' host:port addresses.
	Addrs []string
}

// clusterRedirects is how many MOVED, ASK and TRYAGAIN answers one command
// follows (go-redis's default is 3): a resharding of a hub's slot answers
// TRYAGAIN to a script while its keys are split between two nodes. The
// publish's 2 s still bound the whole.
const clusterRedirects = 6

// connDefaults sets the connection options the log needs where they are
// zero. The publish path has 2 s; a command must fail within that when
// Redis is down or unreachable, and never be retried blindly (a retried
// append could be applied twice).
func connDefaults(o *goredis.Options) {
	if o.DialTimeout == 0 {
		o.DialTimeout = time.Second
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = 2 * time.Second
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 2 * time.Second
	}
	if o.PoolTimeout == 0 {
		o.PoolTimeout = 2 * time.Second
	}
	o.MaxRetries = -1
	o.ContextTimeoutEnabled = true
	if o.Protocol == 0 {
		o.Protocol = 2
	}
	o.DisableIdentity = true
}

// newClient makes go-redis's client for the deployment form of c, with the
// options o (connDefaults applied).
func newClient(c Config, o *goredis.Options) goredis.UniversalClient {
	switch {
	case c.Sentinel != nil:
		return goredis.NewFailoverClient(failoverOptions(o, c.Sentinel))
	case c.Cluster != nil:
		return goredis.NewClusterClient(clusterOptions(o, c.Cluster))
	}
	return goredis.NewClient(o)
}

// failoverOptions are the options of a Sentinel client: o for the data
// nodes, s for the sentinels (same TLS and timeouts).
func failoverOptions(o *goredis.Options, s *Sentinel) *goredis.FailoverOptions {
	return &goredis.FailoverOptions{
		MasterName:       s.MasterName,
		SentinelAddrs:    append([]string(nil), s.Addrs...),
		SentinelUsername: s.Username,
		SentinelPassword: s.Password,

		ClientName: o.ClientName,
		Dialer:     o.Dialer,
		OnConnect:  o.OnConnect,
		Protocol:   o.Protocol,
		Username:   o.Username,
		Password:   o.Password,
		DB:         o.DB,

		MaxRetries:      o.MaxRetries,
		MinRetryBackoff: o.MinRetryBackoff,
		MaxRetryBackoff: o.MaxRetryBackoff,

		DialTimeout:           o.DialTimeout,
		ReadTimeout:           o.ReadTimeout,
		WriteTimeout:          o.WriteTimeout,
		ContextTimeoutEnabled: o.ContextTimeoutEnabled,

		PoolFIFO:        o.PoolFIFO,
		PoolSize:        o.PoolSize,
		PoolTimeout:     o.PoolTimeout,
		MinIdleConns:    o.MinIdleConns,
		MaxIdleConns:    o.MaxIdleConns,
		MaxActiveConns:  o.MaxActiveConns,
		ConnMaxIdleTime: o.ConnMaxIdleTime,
		ConnMaxLifetime: o.ConnMaxLifetime,

		TLSConfig:       o.TLSConfig,
		DisableIdentity: o.DisableIdentity,
		IdentitySuffix:  o.IdentitySuffix,
	}
}

// clusterOptions are the options of a cluster client: o for every node.
// Its node clients carry finalAppendHook, because the cluster client
// retries a command that failed on the network, which for an append
// script that Redis ran before the connection broke would apply it twice.
func clusterOptions(o *goredis.Options, cl *Cluster) *goredis.ClusterOptions {
	return &goredis.ClusterOptions{
		Addrs:        append([]string(nil), cl.Addrs...),
		MaxRedirects: clusterRedirects,
		NewClient: func(opt *goredis.Options) *goredis.Client {
			c := goredis.NewClient(opt)
			c.AddHook(finalAppendHook{})
			return c
		},

		ClientName: o.ClientName,
		Dialer:     o.Dialer,
		OnConnect:  o.OnConnect,
		Protocol:   o.Protocol,
		Username:   o.Username,
		Password:   o.Password,

		MaxRetries:      o.MaxRetries,
		MinRetryBackoff: o.MinRetryBackoff,
		MaxRetryBackoff: o.MaxRetryBackoff,

		DialTimeout:           o.DialTimeout,
		ReadTimeout:           o.ReadTimeout,
		WriteTimeout:          o.WriteTimeout,
		ContextTimeoutEnabled: o.ContextTimeoutEnabled,

		PoolFIFO:        o.PoolFIFO,
		PoolSize:        o.PoolSize,
		PoolTimeout:     o.PoolTimeout,
		MinIdleConns:    o.MinIdleConns,
		MaxIdleConns:    o.MaxIdleConns,
		MaxActiveConns:  o.MaxActiveConns,
		ConnMaxIdleTime: o.ConnMaxIdleTime,
		ConnMaxLifetime: o.ConnMaxLifetime,

		TLSConfig:       o.TLSConfig,
		DisableIdentity: o.DisableIdentity,
		IdentitySuffix:  o.IdentitySuffix,
	}
}

// finalAppendHook is a hook of a cluster's node clients: it makes a
// network error of a script final, so that the cluster client does not
// run it again (it still follows MOVED, ASK and TRYAGAIN, which Redis
// answers without running anything). Reads keep go-redis's retries.
type finalAppendHook struct{}

// DialHook implements goredis.Hook.
func (finalAppendHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

// ProcessHook implements goredis.Hook.
func (finalAppendHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		err := next(ctx, cmd)
		if err == nil || !isScript(cmd) {
			return err
		}
		if _, ok := err.(goredis.Error); ok || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return finalError{err}
	}
}

// ProcessPipelineHook implements goredis.Hook.
func (finalAppendHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}

// isScript reports whether cmd runs a script.
func isScript(cmd goredis.Cmder) bool {
	n := cmd.Name()
	return n == "evalsha" || n == "eval"
}

// finalError is a network error that go-redis must not retry: it is
// neither io.EOF nor a net.Error, the errors its cluster client retries.
type finalError struct{ err error }

func (e finalError) Error() string { return e.err.Error() }
func (e finalError) Unwrap() error { return e.err }

// isRedirect reports whether err is a cluster redirection or a refusal
// during a resharding: Redis ran nothing.
func isRedirect(err error) bool {
	if _, ok := err.(goredis.Error); !ok {
		return false
	}
	s := err.Error()
	return strings.HasPrefix(s, "MOVED ") || strings.HasPrefix(s, "ASK ") || strings.HasPrefix(s, "TRYAGAIN") || strings.HasPrefix(s, "CLUSTERDOWN")
}

var _ goredis.Hook = finalAppendHook{}
