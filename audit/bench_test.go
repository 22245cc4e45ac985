package audit

import (
	"context"
	"encoding/json"
	"sort"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/state"
)

// BenchmarkListPage lists the newest page of 50 of a log of 10,000 events,
// the old way (read the whole events/ prefix, sort, cut: what GET
// /api/v1/events did before) and the new (List), and reports the ratio
// old/new. The events are spread one every 259s (30 days' worth) or one a
// second (a busy server: ~3,600 in each hourly bucket, the new way's worst
// case).
func BenchmarkListPage(b *testing.B) {
	const total, page = 10000, 50
	for _, s := range stores {
		for _, d := range []struct {
			name  string
			every time.Duration
		}{{"spread-30d", 259 * time.Second}, {"busy-1s", time.Second}} {
			b.Run(s.name+"/"+d.name, func(b *testing.B) {
				st := s.open(b)
				ctx := context.Background()
				now := time.Now().UTC()
				var legacy, bucketed []*state.Event
				for i := 0; i < total; i++ {
					ev := event(now.Add(-time.Duration(total-i)*d.every), i)
					bucketed = append(bucketed, ev)
					old := *ev
					legacy = append(legacy, &old)
				}
				// The old layout under a prefix of its own, so neither way
				// reads the other's records.
				const oldPrefix = "bench-old/"
				var ops []backends.TxnOp
				for _, ev := range legacy {
					v, _ := json.Marshal(ev)
					ops = append(ops, backends.TxnOp{Verb: backends.TxnSet, Key: oldPrefix + ev.ID, Value: v})
					if len(ops) == backends.MaxTxnOps {
						if _, err := st.Txn(ctx, ops); err != nil {
							b.Fatal(err)
						}
						ops = ops[:0]
					}
				}
				if len(ops) > 0 {
					if _, err := st.Txn(ctx, ops); err != nil {
						b.Fatal(err)
					}
				}
				for i := 0; i < len(bucketed); i += maxBatch {
					chunks, err := batchOps(bucketed[i:min(i+maxBatch, len(bucketed))])
					if err != nil {
						b.Fatal(err)
					}
					for _, c := range chunks {
						if _, err := st.Txn(ctx, c); err != nil {
							b.Fatal(err)
						}
					}
				}
				oldWay := func() []*state.Event {
					evs, err := state.List[state.Event](ctx, st, oldPrefix)
					if err != nil {
						b.Fatal(err)
					}
					sort.Slice(evs, func(i, j int) bool { return evs[i].ID > evs[j].ID })
					return evs[:page]
				}
				newWay := func() []*state.Event {
					evs, _, err := List(ctx, st, "", page)
					if err != nil {
						b.Fatal(err)
					}
					return evs
				}
				o, n := oldWay(), newWay()
				for i := range o {
					if o[i].ID != n[i].ID {
						b.Fatalf("the two ways differ at %d: %s %s", i, o[i].ID, n[i].ID)
					}
				}
				b.ResetTimer()
				var oldDur, newDur time.Duration
				for i := 0; i < b.N; i++ {
					t0 := time.Now()
					oldWay()
					t1 := time.Now()
					newWay()
					oldDur += t1.Sub(t0)
					newDur += time.Since(t1)
				}
				b.ReportMetric(float64(oldDur.Nanoseconds())/float64(b.N), "old-ns/page")
				b.ReportMetric(float64(newDur.Nanoseconds())/float64(b.N), "new-ns/page")
				b.ReportMetric(float64(oldDur)/float64(newDur), "old/new")
			})
		}
	}
}
