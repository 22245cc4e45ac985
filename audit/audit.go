// Package audit is Berth's audit log: a writer that records events in the
// background through a bounded queue, deletes them after a retention
// period, and a reader that lists them newest first, page by page.
//
// Records are kept in the Store in hourly buckets, with a small index key
// per bucket:
//
//	audit/hours/<yyyy-mm-ddThh>          present while the hour has records
//	audit/events/<yyyy-mm-ddThh>/<id>    one record (JSON state.Event)
//
// An id is "<unix nanoseconds, 20 digits>-<request id>", so keys sort by
// time within a bucket. A page reads the index (at most one key per hour of
// retention) and then only the buckets it needs, newest first; retention
// deletes whole buckets. Neither ever reads the whole log.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/state"
)

// Key prefixes of the audit log.
const (
	HoursPrefix  = "audit/hours/"
	EventsPrefix = "audit/events/"
	// LegacyPrefix is where records were kept, one flat key each, before
	// the log was bucketed; New moves them into buckets once.
	LegacyPrefix = state.EventsPrefix
)

// hourLayout names a bucket; names sort as the hours do.
const hourLayout = "2006-01-02T15"

// Defaults of Config.
const (
	DefaultQueue      = 4096
	DefaultRetention  = 720 * time.Hour
	DefaultSweepEvery = time.Hour
)

// ErrBadCursor is returned by List for a cursor that is not an event id.
var ErrBadCursor = errors.New("the cursor is not an event id")

// Config configures a Writer. Zero values take the defaults.
type Config struct {
	Queue      int           // records that may wait to be written
	Retention  time.Duration // records older than this are deleted
	SweepEvery time.Duration // how often retention runs (and once at start)
	// Registerer gets the writer's metrics (berth_audit_dropped_total).
	Registerer prometheus.Registerer
	// Now is the clock retention reads (tests); time.Now if nil.
	Now func() time.Time
}

// maxBatch is the most records one write carries: a transaction holds at
// most backends.MaxTxnOps operations, and a batch adds one index key per
// hour it spans.
const maxBatch = backends.MaxTxnOps - 2

// Writer writes audit records in the background. Record never blocks;
// Close drains the queue and stops the writer's one goroutine.
type Writer struct {
	store   backends.Store
	log     hclog.Logger
	cfg     Config
	q       chan *state.Event
	dropped prometheus.Counter

	mu        sync.Mutex
	closed    bool
	enqueued  uint64        // records accepted by Record
	processed uint64        // records the goroutine has written (or failed to)
	failed    uint64        // records whose write failed
	progress  chan struct{} // closed and replaced whenever processed grows

	stop     chan struct{}
	done     chan struct{}
	runCtx   context.Context
	cancel   context.CancelFunc
	stopOnce sync.Once
}

// New starts a writer on store. It moves records of the legacy layout into
// buckets and applies retention once before it returns (failures there are
// logged and retried at the next sweep), then starts its goroutine.
func New(store backends.Store, log hclog.Logger, cfg Config) (*Writer, error) {
	if store == nil {
		return nil, errors.New("audit: a store is required")
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = DefaultSweepEvery
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	w := &Writer{
		store: store, log: log, cfg: cfg,
		q: make(chan *state.Event, cfg.Queue),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_audit_dropped_total",
			Help: "Audit records dropped because the audit queue was full.",
		}),
		progress: make(chan struct{}),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(w.dropped); err != nil {
			return nil, fmt.Errorf("audit: registering metrics: %w", err)
		}
	}
	w.runCtx, w.cancel = context.WithCancel(context.Background())
	ctx, cancel := context.WithTimeout(w.runCtx, 30*time.Second)
	w.maintain(ctx)
	cancel()
	go w.run()
	return w, nil
}

// NewID returns the id of an event at t: it sorts by time, and the suffix
// (a request id) keeps events of the same instant apart.
func NewID(t time.Time, suffix string) string {
	return fmt.Sprintf("%020d-%s", t.UnixNano(), suffix)
}

// Record queues ev to be written and returns at once. When the queue is
// full (or the writer closed) the record is dropped and counted. An empty
// ev.ID is filled in from ev.Time.
func (w *Writer) Record(ev *state.Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	if ev.ID == "" {
		ev.ID = NewID(ev.Time, state.NewID()[:16])
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		w.dropped.Inc()
		return
	}
	select {
	case w.q <- ev:
		w.enqueued++
	default:
		w.dropped.Inc()
	}
}

// Sync waits until every record queued before the call has been written
// (or its write has failed), or ctx is done. A reader calls it to see its
// own requests in the log.
func (w *Writer) Sync(ctx context.Context) error {
	w.mu.Lock()
	target := w.enqueued
	w.mu.Unlock()
	for {
		w.mu.Lock()
		if w.processed >= target {
			w.mu.Unlock()
			return nil
		}
		ch := w.progress
		w.mu.Unlock()
		select {
		case <-ch:
		case <-w.done:
			return errors.New("audit: the writer is closed")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops taking records, writes what is queued until ctx is done, and
// returns when the writer's goroutine has stopped. It returns ctx's error
// if records were left unwritten.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	w.closed = true
	failed := w.failed
	w.mu.Unlock()
	w.stopOnce.Do(func() { close(w.stop) })
	select {
	case <-w.done:
	case <-ctx.Done():
		w.cancel() // abort the Store call in flight; the goroutine then ends
		<-w.done
	}
	w.cancel()
	w.mu.Lock()
	n := len(w.q) + int(w.failed-failed)
	w.mu.Unlock()
	if n > 0 {
		w.log.Warn("audit records left unwritten at close", "count", n)
		if err := ctx.Err(); err != nil {
			return err
		}
		return fmt.Errorf("audit: %d records left unwritten", n)
	}
	return nil
}

func (w *Writer) run() {
	defer close(w.done)
	tick := time.NewTicker(w.cfg.SweepEvery)
	defer tick.Stop()
	batch := make([]*state.Event, 0, maxBatch)
	for {
		select {
		case ev := <-w.q:
			batch = w.fill(append(batch[:0], ev))
			w.write(batch)
		case <-tick.C:
			ctx, cancel := context.WithTimeout(w.runCtx, 5*time.Minute)
			w.maintain(ctx)
			cancel()
		case <-w.stop:
			for len(w.q) > 0 && w.runCtx.Err() == nil {
				batch = w.fill(batch[:0])
				w.write(batch)
			}
			return
		}
	}
}

// fill adds what is queued to batch, up to maxBatch, without waiting.
func (w *Writer) fill(batch []*state.Event) []*state.Event {
	for len(batch) < maxBatch {
		select {
		case ev := <-w.q:
			batch = append(batch, ev)
		default:
			return batch
		}
	}
	return batch
}

// write stores batch in transactions (retrying a failed one briefly) and
// counts it processed.
func (w *Writer) write(batch []*state.Event) {
	lost := 0
	defer func() {
		w.mu.Lock()
		w.processed += uint64(len(batch))
		w.failed += uint64(lost)
		close(w.progress)
		w.progress = make(chan struct{})
		w.mu.Unlock()
	}()
	ops, err := batchOps(batch)
	if err != nil {
		w.log.Error("could not encode audit records", "error", err)
		lost = len(batch)
		return
	}
	for _, chunk := range ops {
		var err error
		for attempt, wait := 0, 200*time.Millisecond; attempt < 3; attempt, wait = attempt+1, wait*4 {
			ctx, cancel := context.WithTimeout(w.runCtx, 10*time.Second)
			_, err = w.store.Txn(ctx, chunk)
			cancel()
			if err == nil || w.runCtx.Err() != nil {
				break
			}
			select {
			case <-time.After(wait):
			case <-w.runCtx.Done():
			}
		}
		if err != nil {
			n := 0
			for _, op := range chunk {
				if strings.HasPrefix(op.Key, EventsPrefix) {
					n++
				}
			}
			lost += n
			w.log.Warn("could not record audit events", "count", n, "error", err)
		}
	}
}

// batchOps turns records into transactions of at most MaxTxnOps
// operations, each carrying the index key of every hour it writes into.
func batchOps(batch []*state.Event) ([][]backends.TxnOp, error) {
	var out [][]backends.TxnOp
	var cur []backends.TxnOp
	hours := map[string]bool{}
	for _, ev := range batch {
		b, err := json.Marshal(ev)
		if err != nil {
			return nil, err
		}
		h := hourOf(ev)
		need := 1
		if !hours[h] {
			need = 2
		}
		if len(cur)+need > backends.MaxTxnOps {
			out = append(out, cur)
			cur, hours = nil, map[string]bool{}
			need = 2
		}
		if need == 2 {
			hours[h] = true
			cur = append(cur, backends.TxnOp{Verb: backends.TxnSet, Key: HoursPrefix + h, Value: []byte(h)})
		}
		cur = append(cur, backends.TxnOp{Verb: backends.TxnSet, Key: EventsPrefix + h + "/" + ev.ID, Value: b})
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out, nil
}

// idTime reads the time out of an event id.
func idTime(id string) (time.Time, bool) {
	if len(id) < 20 {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(id[:20], 10, 64)
	if err != nil || n < 0 || (len(id) > 20 && id[20] != '-') {
		return time.Time{}, false
	}
	return time.Unix(0, n).UTC(), true
}

// hourOf is the bucket of ev: the hour of its id, or of its time for an id
// that carries none.
func hourOf(ev *state.Event) string {
	t, ok := idTime(ev.ID)
	if !ok {
		t = ev.Time.UTC()
	}
	return t.Format(hourLayout)
}

// maintain moves legacy records into buckets and applies retention.
func (w *Writer) maintain(ctx context.Context) {
	if err := w.migrate(ctx); err != nil {
		w.log.Warn("could not move audit records to the bucketed layout; will retry", "error", err)
	}
	if err := w.sweep(ctx); err != nil {
		w.log.Warn("could not delete old audit records; will retry", "error", err)
	}
}

// migrate moves records from the legacy flat layout (events/<id>) into
// buckets, dropping those already past retention. After the first run the
// legacy prefix is empty and this costs one empty List.
func (w *Writer) migrate(ctx context.Context) error {
	pairs, _, err := w.store.List(ctx, LegacyPrefix, nil)
	if err != nil {
		return err
	}
	cutoff := w.cfg.Now().Add(-w.cfg.Retention)
	var ops []backends.TxnOp
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		_, err := w.store.Txn(ctx, ops)
		ops = ops[:0]
		return err
	}
	moved := 0
	for _, p := range pairs {
		var ev state.Event
		if err := json.Unmarshal(p.Value, &ev); err == nil && ev.ID != "" && !ev.Time.Before(cutoff) {
			if len(ops)+3 > backends.MaxTxnOps {
				if err := flush(); err != nil {
					return err
				}
			}
			h := hourOf(&ev)
			ops = append(ops,
				backends.TxnOp{Verb: backends.TxnSet, Key: HoursPrefix + h, Value: []byte(h)},
				backends.TxnOp{Verb: backends.TxnSet, Key: EventsPrefix + h + "/" + ev.ID, Value: p.Value})
			moved++
		} else if len(ops)+1 > backends.MaxTxnOps {
			if err := flush(); err != nil {
				return err
			}
		}
		ops = append(ops, backends.TxnOp{Verb: backends.TxnDeleteCAS, Key: p.Key, Index: p.ModifyIndex})
	}
	if err := flush(); err != nil {
		return err
	}
	if len(pairs) > 0 {
		w.log.Info("moved audit records to the bucketed layout", "moved", moved, "dropped", len(pairs)-moved)
	}
	return nil
}

// sweep deletes every bucket whose hour ended before now - retention: one
// List of the index, then one DeleteTree per old bucket.
func (w *Writer) sweep(ctx context.Context) error {
	hours, err := listHours(ctx, w.store)
	if err != nil {
		return err
	}
	cutoff := w.cfg.Now().Add(-w.cfg.Retention).UTC()
	for _, h := range hours {
		t, err := time.Parse(hourLayout, h)
		if err == nil && !t.Add(time.Hour).Before(cutoff) {
			break // hours are sorted: the rest are newer
		}
		if _, err := w.store.DeleteTree(ctx, EventsPrefix+h+"/"); err != nil {
			return err
		}
		if _, err := w.store.Delete(ctx, HoursPrefix+h); err != nil {
			return err
		}
	}
	return nil
}

// listHours returns the buckets that hold records, oldest first.
func listHours(ctx context.Context, st backends.Store) ([]string, error) {
	pairs, _, err := st.List(ctx, HoursPrefix, nil)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(pairs))
	for _, p := range pairs {
		out = append(out, strings.TrimPrefix(p.Key, HoursPrefix))
	}
	sort.Strings(out)
	return out, nil
}

// List returns up to limit events, newest first, older than the event id
// before ("" = from the newest). next is the cursor of the following page
// (the id of the last event returned), "" when there are no older events.
// It reads the bucket index and then only the buckets the page needs.
func List(ctx context.Context, st backends.Store, before string, limit int) (events []*state.Event, next string, err error) {
	if limit < 1 {
		return nil, "", errors.New("audit: limit must be at least 1")
	}
	top := ""
	if before != "" {
		t, ok := idTime(before)
		if !ok {
			return nil, "", ErrBadCursor
		}
		top = t.Format(hourLayout)
	}
	hours, err := listHours(ctx, st)
	if err != nil {
		return nil, "", err
	}
	out := make([]*state.Event, 0, limit+1)
	for i := len(hours) - 1; i >= 0 && len(out) <= limit; i-- {
		h := hours[i]
		if top != "" && h > top {
			continue
		}
		pairs, _, err := st.List(ctx, EventsPrefix+h+"/", nil)
		if err != nil {
			return nil, "", err
		}
		for j := len(pairs) - 1; j >= 0 && len(out) <= limit; j-- {
			id := strings.TrimPrefix(pairs[j].Key, EventsPrefix+h+"/")
			if before != "" && id >= before {
				continue
			}
			ev := new(state.Event)
			if err := json.Unmarshal(pairs[j].Value, ev); err != nil {
				return nil, "", fmt.Errorf("audit record %s is corrupt: %w", pairs[j].Key, err)
			}
			out = append(out, ev)
		}
	}
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	return out, next, nil
}
