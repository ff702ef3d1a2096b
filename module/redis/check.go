package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	goredis "github.com/redis/go-redis/v9"
)

// The start check. A configuration that Redis refuses (a wrong password,
// an unknown user, an ACL that forbids a needed command, a master name no
// sentinel knows, a certificate that does not verify, a URL of the wrong
// deployment form) does not get better by waiting: Start reports it, so
// that `caddy run` fails with the cause instead of a node that answers 503
// for ever. A Redis that does not answer is not such an error: the node
// starts, answers 503 and connects when Redis appears.

// configErr is an error of the configuration that Redis refused.
type configErr struct{ error }

func (e configErr) Unwrap() error { return e.error }

// check runs the start check within ctx. It returns a configErr that names
// the cause when Redis refuses the configuration, another error when Redis
// did not answer (so that Start does not wait for it twice), nil when all
// is well.
func (l *Log) check(ctx context.Context) error {
	if s := l.form.Sentinel; s != nil {
		if err := l.checkSentinels(ctx, s); err != nil {
			return err
		}
	}
	mode, err := l.serverMode(ctx)
	if err != nil {
		return l.classify(err)
	}
	switch {
	case mode == "cluster" && l.form.Cluster == nil:
		return configErr{errors.New("redis: the server is a Redis Cluster node: use a redis-cluster:// (or rediss-cluster://) URL")}
	case mode == "sentinel":
		return configErr{errors.New("redis: the server is a Sentinel: use a redis-sentinel:// URL with master_name=")}
	}
	wait := "0"
	if l.minReplicas > 0 {
		wait = "1"
	}
	keys := []string{l.stream, l.meta, l.idKey + "check", l.pres.meta, l.pres.nodes, l.pres.holdsOf(l.pres.node), l.whq.lease + "check"}
	forbidden, err := checkScript.Run(ctx, l.rdb, keys, wait).StringSlice()
	switch {
	case err != nil && strings.Contains(err.Error(), "acl_check_cmd"):
		// Redis before 7.0: no way to ask; a forbidden command shows
		// when it is first used.
	case err != nil:
		return l.classify(err)
	case len(forbidden) > 0:
		return configErr{fmt.Errorf("redis: the ACL user may not run %s on the hub's keys (the backplane needs them)", strings.Join(forbidden, ", "))}
	}
	return nil
}

// classify returns err as a configErr if waiting does not cure it.
func (l *Log) classify(err error) error {
	if ce := l.configError(err); ce != nil {
		return configErr{ce}
	}
	return err
}

// serverMode asks the server for its mode (standalone, cluster or
// sentinel) with HELLO, or INFO when HELLO is not allowed; "" when
// neither answers it. An error is the server's refusal, or that it did not
// answer.
func (l *Log) serverMode(ctx context.Context) (string, error) {
	reply, err := l.rdb.Do(ctx, "HELLO", "2").Slice()
	if err == nil {
		for i := 0; i+1 < len(reply); i += 2 {
			if k, _ := reply[i].(string); k == "mode" {
				m, _ := reply[i+1].(string)
				return m, nil
			}
		}
		return "", nil
	}
	if !isRedisError(err) || strings.HasPrefix(err.Error(), "WRONGPASS") || strings.HasPrefix(err.Error(), "NOAUTH") {
		return "", err
	}
	info, err := l.rdb.Do(ctx, "INFO", "server").Text()
	if err != nil {
		if isRedisError(err) && strings.HasPrefix(err.Error(), "NOPERM") {
			return "", nil // the ACL allows neither: the data commands still tell
		}
		return "", err
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_mode:"); ok {
			return v, nil
		}
	}
	return "", nil
}

// checkSentinels asks every sentinel for the primary's address: nil when
// one answers with it; a configErr when they refuse the sentinels'
// credentials, or every sentinel that answered knows no master of that
// name; else why none answered.
func (l *Log) checkSentinels(ctx context.Context, s *Sentinel) error {
	type answer struct {
		addr string
		err  error
	}
	answers := make([]answer, len(s.Addrs))
	var wg sync.WaitGroup
	for i, addr := range s.Addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := *l.form.Client
			o.Addr, o.Username, o.Password, o.DB = addr, s.Username, s.Password, 0
			c := goredis.NewSentinelClient(&o)
			defer c.Close()
			answers[i] = answer{addr: addr, err: c.GetMasterAddrByName(ctx, s.MasterName).Err()}
		}()
	}
	wg.Wait()
	unknown := 0
	var last error
	for _, a := range answers {
		switch {
		case a.err == nil:
			return nil
		case errors.Is(a.err, goredis.Nil):
			unknown++
		case isRedisError(a.err) && strings.HasPrefix(a.err.Error(), "ERR unknown command"):
			return configErr{fmt.Errorf("redis: %s is not a Sentinel (the authority and addr= of a redis-sentinel:// URL name sentinels; one server is redis://)", a.addr)}
		default:
			if err := l.configError(a.err); err != nil {
				return configErr{fmt.Errorf("redis: sentinel %s: %v (sentinel_username=, sentinel_password= are the sentinels' own)", a.addr, err)}
			}
			last = fmt.Errorf("redis: sentinel %s: %w", a.addr, a.err)
		}
	}
	if unknown > 0 {
		return configErr{fmt.Errorf("redis: no sentinel knows a master named %q (master_name=)", s.MasterName)}
	}
	return last
}

// configError describes err if it is one that waiting does not cure (the
// credentials, the ACL, TLS, the deployment form); nil for the others,
// such as a server that does not answer. Redis's messages never contain
// the password.
func (l *Log) configError(err error) error {
	if err == nil {
		return nil
	}
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	var he x509.HostnameError
	var cie x509.CertificateInvalidError
	var rhe tls.RecordHeaderError
	switch {
	case errors.As(err, &cve), errors.As(err, &uae), errors.As(err, &he), errors.As(err, &cie):
		return fmt.Errorf("redis: the server's TLS certificate does not verify (tls_ca_file=, tls_server_name=): %v", err)
	case errors.As(err, &rhe):
		return errors.New("redis: the server does not speak TLS: use a URL without the s (redis://, redis-sentinel://, redis-cluster://)")
	case strings.Contains(err.Error(), "remote error: tls:"):
		return fmt.Errorf("redis: the server refused the TLS handshake (its client certificate: tls_cert_file=, tls_key_file=): %v", err)
	}
	if !isRedisError(err) {
		if l.certAsked != nil && l.certAsked.Load() && !errors.Is(err, context.DeadlineExceeded) {
			// With TLS 1.3 a server that rejects the client's
			// certificate says so after the handshake, if at all: the
			// client sees its connection reset.
			return fmt.Errorf("redis: the server refused the TLS handshake: it asked for a client certificate and closed the connection (tls_cert_file=, tls_key_file=): %v", err)
		}
		return nil
	}
	s := err.Error()
	switch {
	case strings.HasPrefix(s, "WRONGPASS"), strings.HasPrefix(s, "NOAUTH"), strings.HasPrefix(s, "ERR AUTH"),
		strings.HasPrefix(s, "ERR invalid password"), strings.HasPrefix(s, "ERR invalid username"),
		strings.HasPrefix(s, "ERR Client sent AUTH"):
		return fmt.Errorf("redis: authentication failed (the URL's user and password): %s", s)
	case strings.HasPrefix(s, "NOPERM"), strings.Contains(s, "can't run this command"), strings.Contains(s, "No permissions to access"):
		return fmt.Errorf("redis: the ACL user may not do what the backplane needs: %s", s)
	case strings.Contains(s, "cluster support disabled"):
		return errors.New("redis: the server is not a Redis Cluster node: use a redis:// or redis-sentinel:// URL")
	case (strings.HasPrefix(s, "MOVED ") || strings.HasPrefix(s, "ASK ")) && l.form.Cluster == nil:
		return errors.New("redis: the server is a Redis Cluster node: use a redis-cluster:// (or rediss-cluster://) URL")
	case strings.HasPrefix(s, "ERR DB index"):
		return fmt.Errorf("redis: %s", s)
	}
	return nil
}

// isRedisError reports whether err is a reply of Redis (not a network
// error).
func isRedisError(err error) bool {
	var re goredis.Error
	return errors.As(err, &re)
}

// watchCertRequests makes o's TLS configuration (a copy) record when a
// server asks for a client certificate, and returns the record; nil
// without TLS. The configured certificate, if any, is still the answer.
func watchCertRequests(o *goredis.Options) *atomic.Bool {
	if o.TLSConfig == nil || o.TLSConfig.GetClientCertificate != nil {
		return nil
	}
	asked := new(atomic.Bool)
	tc := o.TLSConfig.Clone()
	certs := tc.Certificates
	tc.Certificates = nil
	tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		asked.Store(true)
		if len(certs) > 0 {
			return &certs[0], nil
		}
		return &tls.Certificate{}, nil // none: the server decides
	}
	o.TLSConfig = tc
	return asked
}
