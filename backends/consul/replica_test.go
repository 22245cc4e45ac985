package consul

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/devagent"
	"github.com/berthpaas/berth/backends/storetest"
	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
)

// newReplica is a Replica on a fresh prefix; its keys are removed at cleanup.
func newReplica(t testing.TB) *Replica {
	t.Helper()
	s := newStore(t)
	r := NewReplica(s)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// The suite runs on both read paths of a replica that is not complete: a
// direct read of Consul (the default) and a wait for the watch.
func TestReplicaConformance(t *testing.T) {
	storetest.Run(t, func(t testing.TB) backends.Store { return newReplica(t) })
}

func TestReplicaWaitingConformance(t *testing.T) {
	storetest.Run(t, func(t testing.TB) backends.Store { r := newReplica(t); r.waitWatch = true; return r })
}

// Two replicas on one prefix (two servers): a write through either is read
// through the other at once, with no wait for its watch: every read starts
// with the shared consistent index request.
func TestReplicaReadsOtherServersWrites(t *testing.T) {
	for _, wait := range []bool{false, true} {
		t.Run(fmt.Sprintf("waitWatch=%v", wait), func(t *testing.T) { testReadsOtherServersWrites(t, wait) })
	}
}

func testReadsOtherServersWrites(t *testing.T, wait bool) {
	a := newReplica(t)
	a.waitWatch = wait
	s2, err := New(Config{Address: devagent.Consul(t), Prefix: a.prefix}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	b := NewReplica(s2)
	b.waitWatch = wait
	t.Cleanup(func() { _ = b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var idx uint64
	for i := 0; i < 200; i++ {
		w, r := a, b
		if i%2 == 1 {
			w, r = b, a
		}
		ok, wm, err := w.CAS(ctx, &backends.KVPair{Key: "apps/hello", Value: []byte(fmt.Sprint(i)), ModifyIndex: idx})
		if err != nil || !ok {
			t.Fatalf("CAS %d at %d: %v %v", i, idx, ok, err)
		}
		idx = wm.Index
		p, _, err := r.Get(ctx, "apps/hello", nil)
		if err != nil || p == nil || string(p.Value) != fmt.Sprint(i) || p.ModifyIndex != idx {
			t.Fatalf("after write %d at %d through one replica, the other reads %+v, %v", i, idx, p, err)
		}
		ps, _, err := r.List(ctx, "apps/", nil)
		if err != nil || len(ps) != 1 || string(ps[0].Value) != fmt.Sprint(i) {
			t.Fatalf("after write %d the other lists %v, %v", i, ps, err)
		}
		ps, _, err = r.ListPage(ctx, "apps/", "", 5)
		if err != nil || len(ps) != 1 || string(ps[0].Value) != fmt.Sprint(i) {
			t.Fatalf("after write %d the other pages %v, %v", i, ps, err)
		}
		if i%10 == 9 {
			if _, err := w.Delete(ctx, "apps/hello"); err != nil {
				t.Fatal(err)
			}
			if p, _, err := r.Get(ctx, "apps/hello", nil); err != nil || p != nil {
				t.Fatalf("after a delete through one replica, the other reads %+v, %v", p, err)
			}
			idx = 0
		}
	}
}

// A write made straight to Consul (not through any Store) is read at once too.
func TestReplicaSeesRawWrites(t *testing.T) {
	r := newReplica(t)
	kv := rawClient(t).KV()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := r.Get(ctx, "x", nil); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if _, err := kv.Put(&api.KVPair{Key: r.prefix + "raw/k", Value: []byte(fmt.Sprint(i))}, nil); err != nil {
			t.Fatal(err)
		}
		p, _, err := r.Get(ctx, "raw/k", nil)
		if err != nil || p == nil || string(p.Value) != fmt.Sprint(i) {
			t.Fatalf("after raw Put %d the replica reads %+v, %v", i, p, err)
		}
	}
}

// Many concurrent reads share index requests: fewer requests than reads.
func TestReplicaSharesIndexRequests(t *testing.T) {
	r := newReplica(t)
	r.waitWatch = true // the first read confirms the prefix before it returns
	var probes, confirms atomic.Int64
	r.globalBatch.hook = func() { probes.Add(1) }
	r.prefixBatch.hook = func() { confirms.Add(1) }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := r.Put(ctx, &backends.KVPair{Key: "k", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	// One read first: it confirms the prefix at the current KV index.
	if _, _, err := r.Get(ctx, "k", nil); err != nil {
		t.Fatal(err)
	}
	probes.Store(0)
	confirms.Store(0)
	var wg sync.WaitGroup
	const readers, reads = 16, 50
	errs := make(chan error, readers)
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < reads; j++ {
				if p, _, err := r.Get(ctx, "k", nil); err != nil || p == nil {
					errs <- fmt.Errorf("Get: %+v, %v", p, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := probes.Load(); n >= readers*reads {
		t.Fatalf("%d reads sent %d index requests, want them shared", readers*reads, n)
	} else {
		t.Logf("%d reads, %d index requests, %d prefix confirmations", readers*reads, n, confirms.Load())
	}
	if n := confirms.Load(); n != 0 {
		t.Fatalf("%d reads with no write anywhere in Consul since the last one sent %d prefix confirmations, want 0", readers*reads, n)
	}
}

// With the agent unreachable, reads through the replica fail as unavailable
// within the call timeout.
func TestReplicaUnavailable(t *testing.T) {
	s, err := New(Config{Address: "127.0.0.1:1", CallTimeout: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReplica(s)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := r.Get(ctx, "k", nil); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("Get with no agent: %v, want ErrUnavailable", err)
	}
	if _, _, err := r.List(ctx, "", nil); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("List with no agent: %v, want ErrUnavailable", err)
	}
}

// In a ReadScope (one API request), the reads after the first reuse its
// index: one index request for all of them. A write in the scope makes the
// next read ask again, so the request reads its own writes.
func TestReplicaReadScope(t *testing.T) {
	for _, wait := range []bool{false, true} {
		t.Run(fmt.Sprintf("waitWatch=%v", wait), func(t *testing.T) { testReadScope(t, wait) })
	}
}

func testReadScope(t *testing.T, wait bool) {
	r := newReplica(t)
	r.waitWatch = wait
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var probes atomic.Int64
	r.globalBatch.hook = func() { probes.Add(1) }
	for i := 0; i < 100; i++ {
		sctx := backends.WithReadScope(ctx)
		before := probes.Load()
		for _, k := range []string{"tokens/t", "users/u", "apps/a"} {
			if _, _, err := r.Get(sctx, k, nil); err != nil {
				t.Fatal(err)
			}
		}
		if n := probes.Load() - before; n != 1 {
			t.Fatalf("three reads in one scope sent %d index requests, want 1", n)
		}
		if _, err := r.Put(sctx, &backends.KVPair{Key: "apps/a", Value: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
		p, _, err := r.Get(sctx, "apps/a", nil)
		if err != nil || p == nil || string(p.Value) != fmt.Sprint(i) {
			t.Fatalf("a read after the scope's own write %d: %+v, %v", i, p, err)
		}
		if n := probes.Load() - before; n != 2 {
			t.Fatalf("a read after a write in the scope: %d index requests in all, want 2", n)
		}
	}
}

// After Sync, reads come from memory until something is written; the first
// read after a write (here: by another server) goes to Consul and sees it.
func TestReplicaSyncThenMemory(t *testing.T) {
	r := newReplica(t)
	var direct atomic.Int64
	r.onDirect = func() { direct.Add(1) }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	other, err := New(Config{Address: devagent.Consul(t), Prefix: r.prefix}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for i := 0; i < 20; i++ {
		wm, err := other.Put(ctx, &backends.KVPair{Key: "apps/a", Value: []byte(fmt.Sprint(i))})
		if err != nil {
			t.Fatal(err)
		}
		p, _, err := r.Get(ctx, "apps/a", nil)
		if err != nil || p == nil || p.ModifyIndex != wm.Index {
			t.Fatalf("after another server's write %d at %d: %+v, %v", i, wm.Index, p, err)
		}
		if err := r.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		mid := direct.Load()
		for j := 0; j < 10; j++ {
			p, _, err := r.Get(ctx, "apps/a", nil)
			if err != nil || p == nil || p.ModifyIndex != wm.Index {
				t.Fatalf("after Sync: %+v, %v", p, err)
			}
			ps, _, err := r.List(ctx, "apps/", nil)
			if err != nil || len(ps) != 1 || ps[0].ModifyIndex != wm.Index {
				t.Fatalf("after Sync: List %v, %v", ps, err)
			}
			ps, _, err = r.ListPage(ctx, "apps/", "", 10)
			if err != nil || len(ps) != 1 || ps[0].ModifyIndex != wm.Index {
				t.Fatalf("after Sync: ListPage %v, %v", ps, err)
			}
		}
		if n := direct.Load() - mid; n != 0 {
			t.Fatalf("30 reads after Sync with nothing written: %d went to Consul directly, want 0", n)
		}
	}
}
