package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// The presence reader: a goroutine that reads the change stream after its
// position with a blocking XREAD and delivers the changes to the hub in
// stream order. It reads the presence meta hash with every XREAD, on the
// same connection (the head script), and follows the event stream's rules:
//
//   - another epoch (Redis lost the presence keys, or a node declared a
//     loss): the node registers again and the hub takes new snapshots;
//   - changes numbered past the last one read (the stream was trimmed
//     before this node read them): the hub takes new snapshots before the
//     changes after the gap are delivered;
//   - fewer changes than this node knows Redis had (a failover promoted a
//     replica without them): the node declares a new epoch (lua/lost.lua),
//     so that every node registers again.
//
// A second blocking connection per node, rather than the event stream's
// XREAD: presence then never holds up events, nor events presence, and the
// event reader's epoch and loss rules stay its own.

// psEntry is one decoded change.
type psEntry struct {
	n int64
	c hub.PresenceChange
}

// read is the reader goroutine. It reads while Redis decides and waits
// while the node decides alone.
func (p *presence) read() {
	defer p.l.wg.Done()
	ctx := p.l.ctx
	fails := 0
	for ctx.Err() == nil {
		p.mu.Lock()
		up, mode, gen, epoch, pos := p.up, p.modeCh, p.gen, p.epoch, p.pos
		p.mu.Unlock()
		if !up {
			select {
			case <-ctx.Done():
				return
			case <-mode:
			}
			continue
		}
		n, err := p.readOnce(ctx, gen, epoch, pos)
		if err == nil {
			fails = 0
			if n > 0 && n < p.l.batch {
				// Busy: let a few milliseconds of changes gather, so that
				// churn costs one read per batch, not per change. An idle
				// stream's first change is read at once.
				select {
				case <-ctx.Done():
					return
				case <-time.After(readCoalesce):
				}
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if p.outage(err) {
			p.down(err)
		} else {
			p.log.Warn("redis presence: reading the change stream", zap.Error(err))
		}
		fails++
		select {
		case <-ctx.Done():
			return
		case <-time.After(p.backoff(fails)):
		}
	}
}

// readCoalesce is how long the reader lets changes gather after a read
// that found some: presence frames come that much later, at most, under
// churn.
const readCoalesce = 5 * time.Millisecond

// readOnce waits for changes after pos and delivers them, unless a
// registration or an outage (gen) came meanwhile. It returns how many it
// read.
func (p *presence) readOnce(ctx context.Context, gen uint64, epoch string, pos hub.Position) (int, error) {
	block := p.l.block
	ctx, cancel := context.WithTimeout(ctx, block+time.Second)
	defer cancel()
	known := p.known.Load() // before the reads: Redis had it by then
	pipe := p.l.rdb.Pipeline()
	xr := goredis.NewCmd(ctx, "XREAD", "COUNT", p.l.batch, "BLOCK", block.Milliseconds(), "STREAMS", p.stream, formatID(pos))
	xr.SetFirstKeyPos(6)
	_ = pipe.Process(ctx, xr)
	hd := headScript.Eval(ctx, pipe, []string{p.meta})
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, goredis.Nil) {
		return 0, err
	}
	res, err := hd.Slice()
	if err != nil {
		return 0, err
	}
	h, err := decodeHead(res)
	if err != nil {
		return 0, err
	}
	p.l.clock.observe(h.now, time.Now())
	if h.epoch != epoch {
		// Redis lost the presence keys (h.epoch ""), or began a new
		// epoch: what this node registered may be gone.
		return 0, p.awaitRegistration()
	}
	if known.lostBy(h.epoch, h.n, h.last) {
		if err := p.declareLoss(ctx, h.epoch); err != nil {
			return 0, err
		}
		return 0, p.awaitRegistration()
	}
	reply, err := xr.Result()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	entries, err := decodeChanges(reply, epoch)
	if err != nil || len(entries) == 0 {
		return 0, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gen != gen || !p.up {
		return 0, nil // a registration moved the reader, or Redis went away
	}
	if first := entries[0].n; first != p.n+1 {
		// Trimmed before this node read them (it fell more than
		// changeStreamLen behind), or numbered back: the mirrors cannot
		// be kept by changes. New snapshots, before the changes after.
		p.log.Warn("redis presence: changes were trimmed from the stream before this node read them; taking new snapshots",
			zap.Int64("expected", p.n+1), zap.Int64("got", first))
		p.pn.Resync()
	}
	changes := make([]hub.PresenceChange, len(entries))
	for i := range entries {
		changes[i] = entries[i].c
		p.applyCachedLocked(&entries[i].c)
	}
	last := entries[len(entries)-1]
	p.pos, p.n = last.c.Pos.Pos, last.n
	p.learn(epoch, last.n, last.c.Pos.Pos)
	if p.pn.Deliver != nil {
		p.pn.Deliver(changes)
	}
	return len(entries), nil
}

// declareLoss declares that Redis lost changes of epoch that this node
// had seen: a new epoch (unless another node declared one first), so that
// every node registers what it holds again.
func (p *presence) declareLoss(ctx context.Context, epoch string) error {
	p.log.Error("redis presence: Redis lost presence changes it had acknowledged (a failover to a replica that had not received them?); starting a new presence epoch")
	if _, err := lostScript.Run(ctx, p.l.rdb, []string{p.stream, p.meta}, epoch, hub.NewEpoch()).Text(); err != nil {
		return fmt.Errorf("redis presence: declaring lost changes: %w", err)
	}
	return nil
}

// awaitRegistration makes a registration due and waits for it, so that
// the reader reads again from where it puts it.
func (p *presence) awaitRegistration() error {
	select {
	case <-p.registerSoon():
	case <-p.l.ctx.Done():
	case <-time.After(p.l.backoffMax):
		// Not yet (Redis refuses it, say): check again.
	}
	return nil
}

// decodeChanges reads an XREAD reply of the change stream.
func decodeChanges(reply any, epoch string) ([]psEntry, error) {
	var items []any
	switch v := reply.(type) {
	case []any:
		if len(v) == 0 {
			return nil, nil
		}
		s, ok := v[0].([]any)
		if !ok || len(s) != 2 {
			return nil, errors.New("redis presence: bad XREAD reply")
		}
		items, _ = s[1].([]any)
	case map[any]any:
		for _, e := range v {
			items, _ = e.([]any)
		}
	case nil:
		return nil, nil
	default:
		return nil, errors.New("redis presence: bad XREAD reply")
	}
	out := make([]psEntry, 0, len(items))
	for _, it := range items {
		e, err := decodeChange(it, epoch)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

// decodeChange reads one change stream entry: {id, {k, a|r, c, ..., u,
// ..., n, ..., m, ...[, i, ...]}}.
func decodeChange(r any, epoch string) (psEntry, error) {
	item, ok := r.([]any)
	if !ok || len(item) != 2 {
		return psEntry{}, errors.New("redis presence: bad change entry")
	}
	id := str(item[0])
	pos, err := parseID(id)
	if err != nil {
		return psEntry{}, err
	}
	e := psEntry{c: hub.PresenceChange{Pos: hub.Cursor{Epoch: epoch, Pos: pos}}}
	fields, _ := item[1].([]any)
	for i := 0; i+1 < len(fields); i += 2 {
		v := str(fields[i+1])
		switch str(fields[i]) {
		case "k":
			e.c.Added = v == "a"
		case "c":
			e.c.Channel = v
		case "u":
			e.c.Member.ID = v
		case "i":
			e.c.Member.Info = []byte(v)
		case "n":
			e.n, _ = strconv.ParseInt(v, 10, 64)
		case "m":
			m, _ := strconv.Atoi(v)
			e.c.Count = m
		}
	}
	if e.c.Channel == "" || e.n == 0 {
		return psEntry{}, fmt.Errorf("redis presence: change %s is incomplete", id)
	}
	return e, nil
}
