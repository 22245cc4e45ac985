package engine

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/state"
)

// Notify types.
const NotifyImagePush = "imagepush"

// notifySecretPath keeps the generated HMAC key when config has none.
const notifySecretPath = "berth/notify-hmac"

// The delivery queue lives in the Store, so that a restart loses no
// delivery and several servers on one Store deliver each event once:
//
//	notify/queue/<id>           one pending delivery (queuedDelivery)
//	notify/status/<type>/<nid>  the outcome of a notifier's deliveries (NotifyStatus)
//
// A server claims a due delivery with check-and-set (ClaimedBy, with an
// expiry after which another server takes it over), makes one attempt,
// and then either removes it with its outcome recorded (in one
// transaction) or puts it back with its next attempt's time. No worker
// sleeps through a retry delay: a dead webhook's retries wait in the
// Store while the workers deliver to the others.
const (
	notifyQueuePrefix  = "notify/queue/"
	notifyStatusPrefix = "notify/status/"
	// notifyWorkers is how many deliveries a server makes at once.
	notifyWorkers = 4
	// notifyMaxWait is the longest the dispatcher waits on the queue
	// without looking at it again (claims of crashed servers expire).
	notifyMaxWait = 5 * time.Second
	// notifyMaxBackoff caps the delay between attempts.
	notifyMaxBackoff = 5 * time.Minute
)

func notifyStatusKey(typ, nid string) string { return notifyStatusPrefix + typ + "/" + nid }

// queuedDelivery is one pending webhook call, kept in the Store.
type queuedDelivery struct {
	ID         string          `json:"id"`
	Event      string          `json:"event"`
	NotifierID string          `json:"notifier_id"`
	URL        string          `json:"url"`
	Body       json.RawMessage `json:"body"`
	// Attempt is the number of attempts made so far.
	Attempt     int       `json:"attempt"`
	NextAttempt time.Time `json:"next_attempt"`
	Created     time.Time `json:"created"`
	LastError   string    `json:"last_error,omitempty"`
	// ClaimedBy is the server making an attempt now, until ClaimUntil.
	ClaimedBy  string    `json:"claimed_by,omitempty"`
	ClaimUntil time.Time `json:"claim_until,omitempty"`
}

// Outcomes of a delivery.
const (
	NotifyDelivered = "delivered"
	NotifyGaveUp    = "gave up"
)

// NotifyStatus is what became of a notifier's deliveries.
type NotifyStatus struct {
	Delivered int `json:"delivered"`
	GaveUp    int `json:"gave_up"`
	// Last is the outcome of the last finished delivery.
	LastEvent    string    `json:"last_event,omitempty"`
	LastOutcome  string    `json:"last_outcome,omitempty"`
	LastAttempts int       `json:"last_attempts,omitempty"`
	LastAt       time.Time `json:"last_at,omitempty"`
	LastError    string    `json:"last_error,omitempty"`
}

// notifier delivers webhooks asynchronously with retries and backoff. A
// failing notifier never blocks or fails the operation that triggered it.
type notifier struct {
	s       *Engine
	id      string // this server's name in claims
	client  *http.Client
	sem     chan struct{} // one slot per delivery under way
	wg      sync.WaitGroup
	stopped chan struct{}
	ctx     context.Context // ends at stop: calls under way are cut short
	cancel  context.CancelFunc
	once    sync.Once
	keyMu   sync.Mutex
	key     []byte
}

func newNotifier(s *Engine) *notifier {
	ctx, cancel := context.WithCancel(context.Background())
	return &notifier{
		s:  s,
		id: state.NewID()[:16],
		// A transport of its own, whose kept-alive connections (and their
		// goroutines) stop closes.
		client: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: s.cfg.Notify.TimeoutDur,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		sem:     make(chan struct{}, notifyWorkers),
		stopped: make(chan struct{}),
		ctx:     ctx, cancel: cancel,
	}
}

func (n *notifier) start() {
	n.wg.Add(1)
	go n.dispatch()
}

// stop ends the dispatcher and the deliveries under way (cut short; their
// claims are given back) and closes the webhook client's connections; it
// returns when they have stopped.
func (n *notifier) stop() {
	n.once.Do(func() { close(n.stopped); n.cancel() })
	n.wg.Wait()
	n.client.CloseIdleConnections()
}

func (n *notifier) hmacKey(ctx context.Context) ([]byte, error) {
	if n.s.cfg.Notify.Secret != "" {
		return []byte(n.s.cfg.Notify.Secret), nil
	}
	n.keyMu.Lock()
	defer n.keyMu.Unlock()
	if n.key != nil {
		return n.key, nil
	}
	sec, err := n.s.secrets.Get(ctx, notifySecretPath, 0)
	if errors.Is(err, backends.ErrNotFound) {
		k := NewSecret(32)
		// Created only if absent: two servers starting together must not
		// each keep a key of their own.
		_, err = n.s.secrets.PutCAS(ctx, notifySecretPath, map[string]string{"key": k}, 0)
		if err == nil {
			n.key = []byte(k)
			return n.key, nil
		}
		if !errors.Is(err, backends.ErrCASMismatch) {
			return nil, err
		}
		sec, err = n.s.secrets.Get(ctx, notifySecretPath, 0)
	}
	if err != nil {
		return nil, err
	}
	n.key = []byte(sec.Data["key"])
	return n.key, nil
}

// Sign returns the X-Berth-Signature value for body.
func sign(key, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// notify queues a delivery of payload to every notifier of typ, in the
// Store.
func (n *notifier) notify(ctx context.Context, typ string, payload any) {
	ns, err := state.List[state.Notifier](ctx, n.s.store, state.NotifierPrefix(typ))
	if err != nil {
		n.s.log.Warn("could not list notifiers", "type", typ, "error", err)
		return
	}
	body, _ := json.Marshal(payload)
	now := time.Now().UTC()
	for _, nt := range ns {
		d := &queuedDelivery{ID: queueID(now), Event: typ, NotifierID: notifierID(nt.URL), URL: nt.URL, Body: body,
			NextAttempt: now, Created: now}
		if _, err := state.Create(ctx, n.s.store, notifyQueuePrefix+d.ID, d); err != nil {
			n.s.log.Warn("could not queue a delivery", "type", typ, "host", HostOf(nt.URL), "error", err)
		}
	}
}

// queueID orders deliveries by the time they were queued.
func queueID(t time.Time) string {
	return fmt.Sprintf("%016x-%s", t.UnixNano(), state.NewID()[:8])
}

func HostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "?"
	}
	return p.Host
}

// dispatch watches the queue (a blocking read of its prefix, which a new
// delivery or a finished attempt wakes) and starts an attempt for each
// due delivery while a worker slot is free.
func (n *notifier) dispatch() {
	defer n.wg.Done()
	var index uint64
	wait := time.Duration(0)
	errDelay := time.Second // after a failed read, doubling to 30 s
	for {
		select {
		case <-n.stopped:
			return
		default:
		}
		var q *backends.QueryOptions
		if index > 0 && wait > 0 {
			q = &backends.QueryOptions{WaitIndex: index, WaitTime: wait}
		}
		pairs, qm, err := n.s.store.List(n.ctx, notifyQueuePrefix, q)
		if err != nil {
			if n.ctx.Err() != nil {
				return
			}
			n.s.log.Warn("could not read the notify queue", "error", err, "retry_in", errDelay)
			index, wait = 0, 0
			select {
			case <-n.stopped:
				return
			case <-time.After(errDelay):
			}
			errDelay = min(2*errDelay, 30*time.Second)
			continue
		}
		errDelay = time.Second
		if index == qm.LastIndex && wait == 0 {
			// Nothing to wait on (e.g. an index that does not move):
			// look again a little later.
			select {
			case <-n.stopped:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		index = qm.LastIndex
		wait = n.claimDue(pairs)
	}
}

// claimDue claims the due deliveries among pairs while worker slots are
// free and starts them; it returns how long until the next one is due.
func (n *notifier) claimDue(pairs []*backends.KVPair) time.Duration {
	now := time.Now()
	next := now.Add(notifyMaxWait)
	for _, p := range pairs {
		var d queuedDelivery
		if json.Unmarshal(p.Value, &d) != nil {
			n.s.log.Warn("corrupt notify queue record", "key", p.Key)
			continue
		}
		due := d.NextAttempt
		if d.ClaimedBy != "" && d.ClaimUntil.After(due) {
			due = d.ClaimUntil
		}
		if due.After(now) {
			if due.Before(next) {
				next = due
			}
			continue
		}
		select {
		case n.sem <- struct{}{}:
		default:
			// Every worker is busy: a finished attempt frees its slot,
			// then writes the queue, which wakes the dispatcher; look
			// again soon in any case.
			return 100 * time.Millisecond
		}
		d.ClaimedBy, d.ClaimUntil = n.id, now.Add(n.s.cfg.Notify.TimeoutDur+10*time.Second)
		idx, err := state.Put(n.ctx, n.s.store, p.Key, &d, p.ModifyIndex)
		if err != nil {
			<-n.sem
			if !errors.Is(err, state.ErrConflict) && n.ctx.Err() == nil {
				n.s.log.Warn("could not claim a delivery", "error", err)
			}
			continue // another server took it, or the Store failed
		}
		n.wg.Add(1)
		go func(key string, d queuedDelivery, idx uint64) {
			defer n.wg.Done()
			n.attempt(key, &d, idx, func() { <-n.sem })
		}(p.Key, d, idx)
	}
	w := time.Until(next)
	if w < 10*time.Millisecond {
		w = 10 * time.Millisecond
	}
	return w
}

// backoff is the delay after the attempt-th failed attempt.
func (n *notifier) backoff(attempt int) time.Duration {
	b := n.s.cfg.Notify.BackoffDur
	for i := 1; i < attempt && b < notifyMaxBackoff; i++ {
		b *= 2
	}
	return min(b, notifyMaxBackoff)
}

// attempt makes one attempt of the claimed delivery d (at Store index
// idx) and records its result: done (delivered, or given up after
// notify.max_attempts), or due again after a backoff.
// The worker slot is freed (release) once the call is made, before the
// result is written: the write wakes the dispatcher, which then finds the
// slot free.
func (n *notifier) attempt(key string, d *queuedDelivery, idx uint64, release func()) {
	attempt := d.Attempt + 1
	err := n.post(d, attempt)
	release()
	// The outcome is written even as the server stops, on a context of its
	// own: a claim left behind would hold the delivery until it expires.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err != nil && n.ctx.Err() != nil {
		// Cut short by stop: not an attempt; give the claim back.
		d.ClaimedBy, d.ClaimUntil = "", time.Time{}
		if _, perr := state.Put(ctx, n.s.store, key, d, idx); perr != nil {
			n.s.log.Warn("could not give back a delivery's claim", "error", perr)
		}
		return
	}
	if err == nil {
		n.s.log.Debug("notified", "type", d.Event, "host", HostOf(d.URL), "attempt", attempt)
		n.finish(ctx, key, d, idx, attempt, NotifyDelivered, "")
		return
	}
	n.s.log.Warn("notify failed", "type", d.Event, "host", HostOf(d.URL), "attempt", attempt, "error", err)
	if attempt >= n.s.cfg.Notify.MaxAttempts {
		n.finish(ctx, key, d, idx, attempt, NotifyGaveUp, err.Error())
		return
	}
	d.Attempt, d.LastError = attempt, err.Error()
	d.NextAttempt = time.Now().Add(n.backoff(attempt)).UTC()
	d.ClaimedBy, d.ClaimUntil = "", time.Time{}
	if _, perr := state.Put(ctx, n.s.store, key, d, idx); perr != nil {
		n.s.log.Warn("could not schedule a delivery's next attempt", "type", d.Event, "host", HostOf(d.URL), "error", perr)
	}
}

// finish removes the delivery from the queue and records its outcome on
// its notifier's status, in one transaction. Servers finishing
// deliveries to one notifier race on its status record: a conflict on it
// is retried (the delivery stays claimed meanwhile). If the outcome cannot
// be recorded, the delivery is still removed: it is not made again.
func (n *notifier) finish(ctx context.Context, key string, d *queuedDelivery, idx uint64, attempts int, outcome, lastErr string) {
	sk := notifyStatusKey(d.Event, d.NotifierID)
	var err error
	for try := 0; ctx.Err() == nil; try++ {
		var st *NotifyStatus
		var sidx uint64
		st, sidx, err = state.Get[NotifyStatus](ctx, n.s.store, sk)
		if errors.Is(err, state.ErrNotFound) {
			st, sidx, err = &NotifyStatus{}, 0, nil
		}
		if err != nil {
			break
		}
		if outcome == NotifyDelivered {
			st.Delivered++
		} else {
			st.GaveUp++
		}
		st.LastEvent, st.LastOutcome, st.LastAttempts, st.LastAt, st.LastError = d.Event, outcome, attempts, time.Now().UTC(), lastErr
		b, _ := json.Marshal(st)
		_, err = n.s.store.Txn(ctx, []backends.TxnOp{
			{Verb: backends.TxnDeleteCAS, Key: key, Index: idx},
			{Verb: backends.TxnCAS, Key: sk, Value: b, Index: sidx},
		})
		var te *backends.TxnError
		switch {
		case err == nil:
			return
		case errors.As(err, &te) && te.OpIndex == 1 && errors.Is(err, backends.ErrCASConflict):
			// The status changed meanwhile.
			time.Sleep(time.Duration(min(try, 20)) * time.Millisecond)
			continue
		case errors.As(err, &te) && te.OpIndex == 0 && errors.Is(err, backends.ErrCASConflict):
			// The delivery is no longer ours (removed with its notifier).
			return
		}
		break
	}
	n.s.log.Warn("could not record a delivery's outcome", "type", d.Event, "host", HostOf(d.URL), "outcome", outcome, "error", err)
	if _, _, derr := n.s.store.DeleteCAS(ctx, key, idx); derr != nil {
		n.s.log.Warn("could not remove a finished delivery from the queue", "type", d.Event, "host", HostOf(d.URL), "error", derr)
	}
}

// Notifier is a registered notifier with what became of its deliveries.
type Notifier struct {
	state.Notifier
	// Pending is how many deliveries to it wait in the queue.
	Pending int
	NotifyStatus
}

// forget drops the deliveries still queued for a notifier that was
// removed, and its status (an attempt under way may still be made).
func (n *notifier) forget(ctx context.Context, typ, nid string) {
	pairs, _, err := n.s.store.List(ctx, notifyQueuePrefix, nil)
	if err == nil {
		for _, p := range pairs {
			var d queuedDelivery
			if json.Unmarshal(p.Value, &d) == nil && d.Event == typ && d.NotifierID == nid {
				if _, _, derr := n.s.store.DeleteCAS(ctx, p.Key, p.ModifyIndex); derr != nil {
					err = derr
				}
			}
		}
	}
	if _, derr := n.s.store.Delete(ctx, notifyStatusKey(typ, nid)); err == nil {
		err = derr
	}
	if err != nil {
		n.s.log.Warn("could not drop the queued deliveries of a removed notifier", "type", typ, "error", err)
	}
}

// notifyStatus reads the delivery outcomes of typ's notifiers, by
// notifier id, and counts the pending deliveries.
func (s *Engine) notifyStatus(ctx context.Context, typ string) (map[string]*NotifyStatus, map[string]int, error) {
	pairs, _, err := s.store.List(ctx, notifyStatusPrefix+typ+"/", nil)
	if err != nil {
		return nil, nil, err
	}
	out := map[string]*NotifyStatus{}
	for _, p := range pairs {
		var st NotifyStatus
		if json.Unmarshal(p.Value, &st) == nil {
			out[strings.TrimPrefix(p.Key, notifyStatusPrefix+typ+"/")] = &st
		}
	}
	qs, err := state.List[queuedDelivery](ctx, s.store, notifyQueuePrefix)
	if err != nil {
		return nil, nil, err
	}
	pending := map[string]int{}
	for _, d := range qs {
		if d.Event == typ {
			pending[d.NotifierID]++
		}
	}
	return out, pending, nil
}

func (n *notifier) post(d *queuedDelivery, attempt int) error {
	ctx, cancel := context.WithTimeout(n.ctx, n.s.cfg.Notify.TimeoutDur)
	defer cancel()
	key, err := n.hmacKey(ctx)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "berth-notifier")
	req.Header.Set("X-Berth-Event", d.Event)
	req.Header.Set("X-Berth-Attempt", itoa(attempt))
	// The delivery's id: the same on every attempt of it, so a receiver
	// can drop a repeat (a server that dies between a delivery and
	// recording it leaves the delivery to be made again: at least once).
	req.Header.Set("X-Berth-Delivery", d.ID)
	req.Header.Set("X-Berth-Signature", sign(key, d.Body))
	resp, err := n.client.Do(req)
	if err != nil {
		return errors.New("request failed: " + redactURLError(err))
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errors.New("answered " + resp.Status)
	}
	return nil
}

// redactURLError keeps a URL's query (which may carry a token) out of logs.
func redactURLError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + " " + HostOf(ue.URL) + ": " + ue.Err.Error()
	}
	return err.Error()
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
