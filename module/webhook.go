package module

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/wprealtime/caddy-realtime/module/hub"
)

// Webhooks: the HTTP side. The engine decides the events and queues them
// (hub.WebhookQueue); a sender per target reads the queue, posts batches
// in Pusher's webhook format, and acknowledges what the receiver answered
// 2xx to. Delivery is at least once: a batch is sent again, with the same
// event ids, until it is answered or its oldest event is an hour old.

// WebhookConfig is a hub's webhook: where the hub posts what happened on
// it, signed with X-Realtime-Signature.
type WebhookConfig struct {
	// URL receives the POSTs (http or https). Placeholders are expanded at
	// provisioning.
	URL string `json:"url"`
	// Secret signs each POST (X-Realtime-Signature, the publish API's
	// scheme). Placeholders are expanded at provisioning. Required.
	Secret string `json:"secret"`
	// Events are the events to send. Default: channel_occupied,
	// channel_vacated, member_added, member_removed.
	Events []string `json:"events,omitempty"`
}

// defaultWebhookEvents are what a webhook sends when it names none.
const defaultWebhookEvents = hub.WebhookChannelOccupied | hub.WebhookChannelVacated | hub.WebhookMemberAdded | hub.WebhookMemberRemoved

// checkWebhookConfig checks what can be checked before placeholders are
// expanded.
func checkWebhookConfig(c *WebhookConfig) error {
	switch {
	case c.URL == "":
		return errors.New("url is required")
	case c.Secret == "":
		return errors.New("secret is required")
	}
	_, err := webhookEvents(c.Events)
	return err
}

// webhookEvents parses event names; none means the default set.
func webhookEvents(names []string) (hub.WebhookSet, error) {
	if len(names) == 0 {
		return defaultWebhookEvents, nil
	}
	var set hub.WebhookSet
	for _, n := range names {
		k, ok := hub.ParseWebhookEvent(n)
		if !ok {
			return 0, fmt.Errorf("events: unknown event %q (want %s)", n, strings.Join(hub.WebhookEventNames(), ", "))
		}
		set |= k
	}
	return set, nil
}

// webhookTarget is a webhook after defaults and placeholders: a URL, how
// to sign, and the events it wants.
type webhookTarget struct {
	url    string
	secret []byte
	events hub.WebhookSet
	// pusherKey, when set, signs the Pusher way: X-Pusher-Key and
	// X-Pusher-Signature (hex HMAC-SHA256 of the body), which Pusher's
	// server SDKs check. realtime_pusher's webhook uses it.
	pusherKey string
}

// newWebhookTarget expands and checks a webhook's settings. pusherKey
// selects the Pusher signature ("" for X-Realtime-Signature).
func newWebhookTarget(c *WebhookConfig, pusherKey string) (*webhookTarget, error) {
	if err := checkWebhookConfig(c); err != nil {
		return nil, err
	}
	repl := caddy.NewReplacer()
	raw := repl.ReplaceAll(c.URL, "")
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("url: want an http:// or https:// URL, got %q", raw)
	}
	secret := repl.ReplaceAll(c.Secret, "")
	if secret == "" {
		return nil, errors.New("secret is empty after placeholder expansion (is its environment variable set?)")
	}
	events, _ := webhookEvents(c.Events)
	return &webhookTarget{url: u.String(), secret: []byte(secret), events: events, pusherKey: pusherKey}, nil
}

// Webhook sending parameters.
const (
	webhookBatch      = 100                    // events per POST at most
	webhookWindow     = 250 * time.Millisecond // a batch waits this long for company (Pusher's window)
	webhookTimeout    = 10 * time.Second       // per POST
	webhookRetryBase  = time.Second            // first retry; doubling
	webhookRetryCap   = time.Minute            // longest wait between attempts
	webhookGiveUp     = time.Hour              // a batch whose oldest event is this old is dropped
	webhookHubTarget  = "hub"                  // the hub's own webhook, in the queue's target names
	webhookBodyToRead = 64 << 10               // of an answer, read to reuse the connection
)

// webhookClient posts webhooks. It follows no redirect: a 3xx is a failed
// delivery, retried, and says so in the log.
var webhookClient = &http.Client{
	Timeout:       webhookTimeout,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// webhooks are a pooled hub's webhook targets and their senders.
type webhooks struct {
	mu      sync.Mutex
	targets map[string]*webhookTarget
	senders map[string]*webhookSender
	// claims are the targets handlers set by name (claimWebhook), oldest
	// first: during a reload two configs claim a name, and the newest
	// live claim is the target.
	claims map[string][]*webhookTarget
	// retiring are the senders of removed targets that have not exited
	// yet: a sender for the same name, added again, waits for the old
	// one, so that two never read one target's queue at once.
	retiring map[string]*webhookSender
	started  bool
	stopped  bool // stopWebhooks ran: no sender starts any more
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// setWebhook sets (t non-nil) or removes a webhook target of the hub, and
// tells the engine which events to queue. A running hub's sender picks
// the new settings up with its next POST.
func (ph *pooledHub) setWebhook(name string, t *webhookTarget) {
	w := &ph.webhooks
	w.mu.Lock()
	defer w.mu.Unlock()
	ph.setWebhookLocked(name, t)
}

// claimWebhook sets a target that a handler owns, and returns the function
// that gives it up (the handler's Cleanup). A reload provisions the new
// handler, which claims the name again, before the old one gives its
// claim up; a failed reload gives up the new claim and the old one is the
// target again.
func (ph *pooledHub) claimWebhook(name string, t *webhookTarget) (release func()) {
	w := &ph.webhooks
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.claims == nil {
		w.claims = make(map[string][]*webhookTarget)
	}
	w.claims[name] = append(w.claims[name], t)
	ph.setWebhookLocked(name, t)
	var once sync.Once
	return func() {
		once.Do(func() {
			w.mu.Lock()
			defer w.mu.Unlock()
			claims := w.claims[name]
			for i, c := range claims {
				if c == t {
					claims = append(claims[:i:i], claims[i+1:]...)
					break
				}
			}
			var current *webhookTarget
			if len(claims) == 0 {
				delete(w.claims, name)
			} else {
				w.claims[name] = claims
				current = claims[len(claims)-1]
			}
			ph.setWebhookLocked(name, current)
		})
	}
}

// setWebhookLocked is setWebhook with ph.webhooks.mu held.
func (ph *pooledHub) setWebhookLocked(name string, t *webhookTarget) {
	w := &ph.webhooks
	if w.targets == nil {
		w.targets = make(map[string]*webhookTarget)
		w.senders = make(map[string]*webhookSender)
	}
	if t == nil {
		delete(w.targets, name)
	} else {
		w.targets[name] = t
	}
	var events hub.WebhookSet
	for _, t := range w.targets {
		events |= t.events
	}
	ph.SetWebhooks(events)
	if s := w.senders[name]; s != nil {
		s.target.Store(t)
		if t == nil {
			// Stop it now: it may be waiting in Read for events that
			// never come, and a sender started for the name meanwhile
			// would read the same queue.
			s.cancel()
			delete(w.senders, name)
			if w.retiring == nil {
				w.retiring = make(map[string]*webhookSender)
			}
			w.retiring[name] = s
		}
		return
	}
	if t != nil && w.started {
		ph.startSenderLocked(name, t)
	}
}

// startWebhooks starts a sender for each target; the hub's Start calls it.
func (ph *pooledHub) startWebhooks() {
	w := &ph.webhooks
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return
	}
	w.started = true
	w.ctx, w.cancel = context.WithCancel(context.Background())
	for name, t := range w.targets {
		ph.startSenderLocked(name, t)
	}
}

func (ph *pooledHub) startSenderLocked(name string, t *webhookTarget) {
	w := &ph.webhooks
	if w.stopped {
		return // the hub is gone: nothing may send for it any more
	}
	ctx, cancel := context.WithCancel(w.ctx)
	s := &webhookSender{ph: ph, name: name, cancel: cancel, done: make(chan struct{})}
	s.target.Store(t)
	w.senders[name] = s
	prev := w.retiring[name]
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer close(s.done)
		defer s.retired()
		defer cancel()
		if prev != nil {
			select {
			case <-prev.done:
			case <-ctx.Done():
				return
			}
		}
		s.run(ctx)
	}()
}

// stopWebhooks stops the senders and waits for them; what they had not
// sent stays queued. No sender starts afterwards.
func (ph *pooledHub) stopWebhooks() {
	w := &ph.webhooks
	w.mu.Lock()
	w.stopped = true
	if w.cancel != nil {
		w.cancel()
	}
	w.mu.Unlock()
	w.wg.Wait()
}

// webhookSender posts one target's events, one batch at a time, in order.
type webhookSender struct {
	ph     *pooledHub
	name   string
	target atomic.Pointer[webhookTarget] // nil: the target was removed
	cancel context.CancelFunc            // stops run: the target was removed
	done   chan struct{}                 // closed once run has returned
}

// run sends until ctx ends. A sender whose target was removed forgets the
// target's position in the queue on its way out.
func (s *webhookSender) run(ctx context.Context) {
	s.send(ctx)
	if s.target.Load() == nil {
		fctx, cancel := context.WithTimeout(context.Background(), webhookTimeout)
		_ = s.ph.Webhooks().Forget(fctx, s.name)
		cancel()
	}
}

// retired forgets an exited sender among those of removed targets.
func (s *webhookSender) retired() {
	w := &s.ph.webhooks
	w.mu.Lock()
	if w.retiring[s.name] == s {
		delete(w.retiring, s.name)
	}
	w.mu.Unlock()
}

// send reads and posts the target's events until ctx ends.
func (s *webhookSender) send(ctx context.Context) {
	q := s.ph.Webhooks()
	log := func() *zap.Logger { return s.ph.log.logger().With(zap.String("webhook", s.name)) }
	for {
		if s.target.Load() == nil {
			return
		}
		events, err := q.Read(ctx, s.name, webhookBatch)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log().Warn("reading the webhook queue", errField(err))
			if !sleep(ctx, webhookRetryBase) {
				return
			}
			continue
		}
		if len(events) < webhookBatch {
			// Let a burst gather into one POST.
			if wait := webhookWindow - time.Since(events[0].Time); wait > 0 {
				if !sleep(ctx, wait) {
					return
				}
				if more, err := q.Read(ctx, s.name, webhookBatch); err == nil && len(more) >= len(events) {
					events = more
				}
			}
		}
		switch s.deliver(ctx, events, log) {
		case deliveryStopped:
			return
		case deliveryHandedOver:
			continue // another node sends them; Read waits for the lease
		}
		if err := q.Ack(ctx, s.name, events[len(events)-1].Pos); err != nil && ctx.Err() == nil {
			log().Warn("acknowledging webhook events", errField(err))
		}
	}
}

// deliveryResult is how a batch's delivery ended.
type deliveryResult int

const (
	deliveryDone       deliveryResult = iota // answered 2xx, or given up on: acknowledge it
	deliveryStopped                          // ctx ended first: the events stay queued
	deliveryHandedOver                       // the queue gave the target to another node, which sends them
)

// leasedQueue is a queue shared by nodes that gives each target to one
// node at a time (the Redis queue): a sender stops retrying a batch once
// its node no longer holds the target, so that two nodes never send it at
// once, out of order.
type leasedQueue interface {
	Holds(target string) bool
}

// deliver posts the events the target wants until the receiver answers
// 2xx or the oldest is too old to keep trying.
func (s *webhookSender) deliver(ctx context.Context, events []hub.WebhookEvent, log func() *zap.Logger) deliveryResult {
	t := s.target.Load()
	if t == nil {
		return deliveryDone
	}
	var send []hub.WebhookEvent
	for _, e := range events {
		if t.events.Has(e.Kind()) {
			send = append(send, e)
		}
	}
	if len(send) == 0 {
		return deliveryDone
	}
	lq, _ := s.ph.Webhooks().(leasedQueue)
	body := webhookBody(send)
	for attempt := 0; ; attempt++ {
		if t = s.target.Load(); t == nil {
			return deliveryDone
		}
		if lq != nil && !lq.Holds(s.name) {
			log().Warn("webhook delivery handed over to another node", zap.Int("events", len(send)))
			return deliveryHandedOver
		}
		err := postWebhook(ctx, t, body)
		if err == nil {
			metrics.webhookEvents.WithLabelValues(s.ph.name, "sent").Add(float64(len(send)))
			return deliveryDone
		}
		if ctx.Err() != nil {
			return deliveryStopped
		}
		metrics.webhookFailures.WithLabelValues(s.ph.name).Inc()
		if time.Since(send[0].Time) > webhookGiveUp {
			metrics.webhookEvents.WithLabelValues(s.ph.name, "dropped").Add(float64(len(send)))
			log().Error("webhook events dropped: the receiver did not take them within an hour", zap.Int("events", len(send)), errField(err))
			return deliveryDone
		}
		wait := retryDelay(attempt)
		log().Warn("webhook delivery failed; retrying", zap.Int("events", len(send)), zap.Duration("retry_in", wait), errField(err))
		if !sleep(ctx, wait) {
			return deliveryStopped
		}
	}
}

// retryDelay is the wait before retry n (from 0): doubling from
// webhookRetryBase up to webhookRetryCap, jittered between half and all
// of it so that senders do not retry in step.
func retryDelay(n int) time.Duration {
	d := webhookRetryCap
	if n < 16 {
		d = min(webhookRetryBase<<n, webhookRetryCap)
	}
	return d/2 + rand.N(d/2+1)
}

// webhookEvent is one event of a webhook body, in Pusher's shape plus id.
type webhookEvent struct {
	Name     string `json:"name"`
	Channel  string `json:"channel"`
	UserID   string `json:"user_id,omitempty"`
	Event    string `json:"event,omitempty"`
	Data     string `json:"data,omitempty"`
	SocketID string `json:"socket_id,omitempty"`
	ID       string `json:"id"`
}

// webhookBody is a POST's body: {"time_ms":…,"events":[…]}. time_ms is
// when the first event was decided, so a batch sent again is the same
// bytes.
func webhookBody(events []hub.WebhookEvent) []byte {
	out := struct {
		TimeMS int64          `json:"time_ms"`
		Events []webhookEvent `json:"events"`
	}{TimeMS: events[0].Time.UnixMilli(), Events: make([]webhookEvent, len(events))}
	for i, e := range events {
		out.Events[i] = webhookEvent{Name: e.Name, Channel: e.Channel, UserID: e.UserID, Event: e.Event, Data: e.Data, SocketID: e.SocketID, ID: e.ID}
	}
	b, _ := json.Marshal(out) // strings and an int
	return b
}

// postWebhook signs and posts one body; any answer but 2xx is an error.
func postWebhook(ctx context.Context, t *webhookTarget, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	// Exactly this: Pusher's SDKs compare the header as a whole.
	req.Header["Content-Type"] = []string{"application/json"}
	req.Header.Set("User-Agent", "caddy-realtime-webhook")
	for k, v := range signWebhook(t, body, time.Now()) {
		req.Header.Set(k, v)
	}
	resp, err := webhookClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, webhookBodyToRead))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("the receiver answered %d", resp.StatusCode)
	}
	return nil
}

// signWebhook returns the signature headers of a body: X-Realtime-Signature
// ("t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>", the publish
// API's scheme), or with a Pusher key, X-Pusher-Key and X-Pusher-Signature
// (hex HMAC-SHA256(secret, body)).
func signWebhook(t *webhookTarget, body []byte, now time.Time) map[string]string {
	m := hmac.New(sha256.New, t.secret)
	if t.pusherKey != "" {
		m.Write(body)
		return map[string]string{"X-Pusher-Key": t.pusherKey, "X-Pusher-Signature": hex.EncodeToString(m.Sum(nil))}
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	m.Write([]byte(ts + "."))
	m.Write(body)
	return map[string]string{"X-Realtime-Signature": "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))}
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
