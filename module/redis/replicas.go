package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// min_replicas_acked: an append is answered only once Redis's WAIT says
// that enough replicas have it, so that a failover to one of them keeps
// it. WAIT counts the replicas that have everything the connection wrote,
// so it follows the append script on the same connection (one pipeline).
// Every append script that runs writes the meta hash, a duplicate too, so
// that WAIT after a retried publish also covers the first attempt's
// entries.

// defaultMinReplicasTimeout is how long WAIT waits by default.
const defaultMinReplicasTimeout = 500 * time.Millisecond

// waitReplyMargin is the time WAIT's answer has to reach the node before
// the append's deadline.
const waitReplyMargin = 100 * time.Millisecond

// errUnconfirmed answers an append that Redis applied but fewer replicas
// than min_replicas_acked confirmed in time: it may be delivered, and may
// be lost in a failover; a retry with the same id is answered duplicate.
var errUnconfirmed = errors.New("redis append: fewer replicas than min_replicas_acked confirmed the append in time")

// runAppend runs the append script, and WAIT after it when appends wait
// for replicas. With errUnconfirmed it also returns the script's reply:
// the entries are in Redis.
func (l *Log) runAppend(ctx context.Context, deadline time.Time, keys []string, args []any) ([]any, error) {
	if l.minReplicas == 0 {
		return appendScript.Run(ctx, l.rdb, keys, args...).Slice()
	}
	c, err := l.primary(ctx)
	if err != nil {
		return nil, err
	}
	wait := min(l.minReplicasTimeout, time.Until(deadline)-waitReplyMargin)
	wait = max(wait, time.Millisecond) // WAIT 0 would wait for ever
	res, acked, err := l.appendAndWait(ctx, c, true, keys, args, wait)
	if err != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") {
		res, acked, err = l.appendAndWait(ctx, c, false, keys, args, wait)
	}
	if err != nil {
		if cc, ok := l.rdb.(*goredis.ClusterClient); ok && isRedirect(err) {
			cc.ReloadState(ctx) // the slot moved: the next append finds its node
		}
		return res, err
	}
	if acked < int64(l.minReplicas) {
		return res, errUnconfirmed
	}
	return res, nil
}

// appendAndWait sends the append script (by its hash, or whole) and WAIT
// in one pipeline on c, and returns the script's reply and how many
// replicas confirmed.
func (l *Log) appendAndWait(ctx context.Context, c *goredis.Client, bySHA bool, keys []string, args []any, wait time.Duration) ([]any, int64, error) {
	pipe := c.Pipeline()
	var ev *goredis.Cmd
	if bySHA {
		ev = appendScript.EvalSha(ctx, pipe, keys, args...)
	} else {
		ev = appendScript.Eval(ctx, pipe, keys, args...)
	}
	wt := goredis.NewIntCmd(ctx, "WAIT", l.minReplicas, wait.Milliseconds())
	_ = pipe.Process(ctx, wt)
	_, _ = pipe.Exec(ctx)
	res, err := ev.Slice()
	if err != nil {
		return nil, 0, err
	}
	acked, err := wt.Result()
	if err != nil {
		return res, 0, fmt.Errorf("%w: WAIT: %v", errUnconfirmed, err)
	}
	return res, acked, nil
}

// primary returns the client of the connection that holds the hub's keys:
// the log's own, or a cluster's client of the node that serves the hub's
// slot (WAIT has no key that a cluster client could route by).
func (l *Log) primary(ctx context.Context) (*goredis.Client, error) {
	switch c := l.rdb.(type) {
	case *goredis.Client:
		return c, nil
	case *goredis.ClusterClient:
		return c.MasterForKey(ctx, l.stream)
	}
	return nil, errors.New("redis: min_replicas_acked needs a single, Sentinel or cluster client")
}
