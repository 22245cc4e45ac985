package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/bolt"
	"github.com/berthpaas/berth/backends/consul"
	"github.com/berthpaas/berth/backends/devagent"
	"github.com/berthpaas/berth/engine/state"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(devagent.RunThenShutdown(m))
}

// stores are the Store implementations every test runs on: a bbolt file,
// and Consul KV on a real dev agent (skipped when its binary is missing).
var stores = []struct {
	name string
	open func(t testing.TB) backends.Store
}{
	{"bolt", func(t testing.TB) backends.Store {
		s, err := bolt.Open(filepath.Join(t.TempDir(), "berth.db"), bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}},
	{"consul", func(t testing.TB) backends.Store {
		addr := devagent.Consul(t)
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		s, err := consul.New(consul.Config{Address: addr, Prefix: "berth-audit-test/" + hex.EncodeToString(b) + "/"}, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _ = s.DeleteTree(ctx, "")
			_ = s.Close()
		})
		return s
	}},
}

func each(t *testing.T, f func(t *testing.T, st backends.Store)) {
	for _, s := range stores {
		t.Run(s.name, func(t *testing.T) { f(t, s.open(t)) })
	}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newWriter(t testing.TB, st backends.Store, cfg Config) *Writer {
	t.Helper()
	w, err := New(st, hclog.NewNullLogger(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close(context.Background()) })
	return w
}

func event(t time.Time, n int) *state.Event {
	return &state.Event{ID: NewID(t, fmt.Sprintf("r%05d", n)), Time: t, Actor: "a@example.com", Action: "app.create", Target: fmt.Sprintf("app-%d", n), Outcome: "success"}
}

// all lists the whole log page by page.
func all(t testing.TB, st backends.Store) []string {
	t.Helper()
	var ids []string
	cursor := ""
	for {
		evs, next, err := List(ctxT(t), st, cursor, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			ids = append(ids, e.ID)
		}
		if next == "" {
			return ids
		}
		cursor = next
	}
}

func counter(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s is not registered", name)
	return 0
}

// gated is a real Store whose transactions wait while the gate is shut.
type gated struct {
	backends.Store
	mu      sync.Mutex
	open    chan struct{}
	entered chan struct{}
	txns    atomic.Int32
}

func newGated(st backends.Store) *gated {
	return &gated{Store: st, open: make(chan struct{}), entered: make(chan struct{}, 1000)}
}

func (g *gated) Txn(ctx context.Context, ops []backends.TxnOp) (*backends.WriteMeta, error) {
	g.txns.Add(1)
	g.entered <- struct{}{}
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	select {
	case <-open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Store.Txn(ctx, ops)
}

func (g *gated) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

func TestFullQueueDropsWithoutBlocking(t *testing.T) {
	each(t, func(t *testing.T, st backends.Store) {
		g := newGated(st)
		reg := prometheus.NewRegistry()
		w := newWriter(t, g, Config{Queue: 3, Registerer: reg})
		now := time.Now().UTC()
		w.Record(event(now, 0))
		<-g.entered // the writer holds record 0 in a transaction that waits
		start := time.Now()
		for i := 1; i <= 10; i++ {
			w.Record(event(now.Add(time.Duration(i)), i))
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("10 records on a full queue took %v", d)
		}
		if n := counter(t, reg, "berth_audit_dropped_total"); n != 7 {
			t.Errorf("berth_audit_dropped_total = %v, want 7 (queue of 3, one record in flight)", n)
		}
		g.release()
		if err := w.Sync(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		want := []string{event(now.Add(3), 3).ID, event(now.Add(2), 2).ID, event(now.Add(1), 1).ID, event(now, 0).ID}
		if got := all(t, st); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("written: %v, want %v", got, want)
		}
		// The three queued records went in one transaction.
		if n := g.txns.Load(); n != 2 {
			t.Errorf("%d transactions for a record and a batch of three, want 2", n)
		}
	})
}

func TestCloseDrainsAndStops(t *testing.T) {
	each(t, func(t *testing.T, st backends.Store) {
		g := newGated(st)
		w, err := New(g, hclog.NewNullLogger(), Config{})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		for i := 0; i < 500; i++ {
			w.Record(event(now.Add(time.Duration(i)*time.Millisecond), i))
		}
		g.release()
		if err := w.Close(ctxT(t)); err != nil {
			t.Fatalf("Close: %v", err)
		}
		select {
		case <-w.done:
		default:
			t.Fatal("Close returned before the writer's goroutine stopped")
		}
		if got := all(t, st); len(got) != 500 {
			t.Errorf("after Close, %d of 500 records are in the log", len(got))
		}
		// After Close records are dropped, not queued, and Record does not block.
		w.Record(event(now.Add(time.Hour), 999))
		if got := all(t, st); len(got) != 500 {
			t.Errorf("a record after Close was written")
		}
	})
}

func TestCloseBoundedByContext(t *testing.T) {
	each(t, func(t *testing.T, st backends.Store) {
		g := newGated(st) // never released: the store hangs
		w, err := New(g, hclog.NewNullLogger(), Config{})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		for i := 0; i < 5; i++ {
			w.Record(event(now, i))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		err = w.Close(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Close on a hung store: %v, want the deadline's error", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Close took %v past its deadline", d)
		}
		select {
		case <-w.done:
		default:
			t.Fatal("Close returned before the writer's goroutine stopped")
		}
	})
}

func TestRetention(t *testing.T) {
	each(t, func(t *testing.T, st backends.Store) {
		now := time.Date(2026, 11, 30, 12, 30, 0, 0, time.UTC)
		clock := func() time.Time { return now }
		w := newWriter(t, st, Config{Now: clock, Retention: 1000 * time.Hour})
		old := []time.Time{now.Add(-900 * time.Hour), now.Add(-722 * time.Hour), now.Add(-721*time.Hour - 31*time.Minute)}
		kept := []time.Time{now.Add(-719 * time.Hour), now.Add(-time.Hour), now}
		for i, at := range append(append([]time.Time{}, old...), kept...) {
			w.Record(event(at, i))
		}
		if err := w.Close(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		if got := all(t, st); len(got) != 6 {
			t.Fatalf("before retention: %d records", len(got))
		}
		// A writer with 720h retention deletes at start what is older.
		newWriter(t, st, Config{Now: clock, Retention: 720 * time.Hour})
		got := all(t, st)
		var want []string
		for i := len(kept) - 1; i >= 0; i-- {
			want = append(want, event(kept[i], len(old)+i).ID)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("after retention:\n%v\nwant\n%v", got, want)
		}
		hours, err := listHours(ctxT(t), st)
		if err != nil || len(hours) != 3 {
			t.Errorf("buckets left: %v %v, want the 3 recent ones", hours, err)
		}
		// And hourly: time passes, the sweep deletes the 719h-old record.
		var shift atomic.Int64
		moving := func() time.Time { return now.Add(time.Duration(shift.Load())) }
		newWriter(t, st, Config{Now: moving, Retention: 720 * time.Hour, SweepEvery: 50 * time.Millisecond})
		if got := all(t, st); len(got) != 3 {
			t.Fatalf("a writer at the same time deleted records: %d left", len(got))
		}
		shift.Store(int64(3 * time.Hour))
		deadline := time.Now().Add(10 * time.Second)
		for len(all(t, st)) != 2 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if got := all(t, st); len(got) != 2 {
			t.Errorf("the periodic sweep left %d records, want 2", len(got))
		}
	})
}

func TestLegacyRecordsMoved(t *testing.T) {
	each(t, func(t *testing.T, st backends.Store) {
		ctx := ctxT(t)
		now := time.Now().UTC()
		var want []string
		for i := 0; i < 70; i++ { // more than one transaction's worth
			ev := event(now.Add(-time.Duration(i)*time.Minute), i)
			if _, err := state.Create(ctx, st, LegacyPrefix+ev.ID, ev); err != nil {
				t.Fatal(err)
			}
			want = append(want, ev.ID)
		}
		ancient := event(now.Add(-2000*time.Hour), 100)
		if _, err := state.Create(ctx, st, LegacyPrefix+ancient.ID, ancient); err != nil {
			t.Fatal(err)
		}
		newWriter(t, st, Config{})
		if got := all(t, st); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("after the move:\n%v\nwant\n%v", got, want)
		}
		if left, _, err := st.List(ctx, LegacyPrefix, nil); err != nil || len(left) != 0 {
			t.Errorf("legacy records left: %d %v", len(left), err)
		}
	})
}

func TestPagingUnderConcurrentAppends(t *testing.T) {
	each(t, func(t *testing.T, st backends.Store) {
		w := newWriter(t, st, Config{})
		now := time.Now().UTC()
		const n = 300
		var want []string
		for i := 0; i < n; i++ {
			// One a minute: the log spans several hourly buckets.
			ev := event(now.Add(-time.Duration(n-i)*time.Minute), i)
			w.Record(ev)
			want = append(want, ev.ID)
		}
		sort.Sort(sort.Reverse(sort.StringSlice(want)))
		if err := w.Sync(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				w.Record(event(time.Now().UTC(), 10000+i))
				time.Sleep(time.Millisecond)
			}
		}()
		// The first page is taken at the newest of the initial records, so
		// that appends (all newer) are outside what is paged.
		var got []string
		seen := map[string]int{}
		cursor := NewID(now, "~")
		for page := 0; page < 1000; page++ {
			evs, next, err := List(ctxT(t), st, cursor, 7)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) > 7 || (next != "" && len(evs) != 7) {
				t.Fatalf("page %d: %d events, next %q", page, len(evs), next)
			}
			for _, e := range evs {
				got = append(got, e.ID)
				seen[e.ID]++
			}
			if next == "" {
				break
			}
			cursor = next
		}
		close(stop)
		wg.Wait()
		w.Record(event(time.Now().UTC(), 99999)) // at least one append
		if err := w.Sync(ctxT(t)); err != nil {
			t.Fatal(err)
		}
		for id, c := range seen {
			if c != 1 {
				t.Errorf("%s listed %d times", id, c)
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("paged %d records, want %d, newest first", len(got), len(want))
		}
		// From the top, the appended records come first and the rest follow.
		if top := all(t, st); len(top) <= n || strings.Join(top[len(top)-n:], ",") != strings.Join(want, ",") {
			t.Errorf("the whole log (%d records) does not end with the initial %d", len(top), n)
		}
	})
}

func TestBadCursor(t *testing.T) {
	st := stores[0].open(t)
	for _, c := range []string{"x", "12345", "0000000000000000000a-x", "-1"} {
		if _, _, err := List(ctxT(t), st, c, 10); !errors.Is(err, ErrBadCursor) {
			t.Errorf("cursor %q: %v", c, err)
		}
	}
}
