package consul

import (
	"context"
	"errors"
	"fmt"
	iradix "github.com/hashicorp/go-immutable-radix"
	"os"
	"strings"
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
	r.confirmHook = func() { confirms.Add(1) }
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
// index: at most one index request for all of them (none when the replica
// already knows it is behind, after a write: those reads go to Consul). A
// write in the scope makes the next reads use the write's index, so the
// request reads its own writes without asking for an index again.
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
		n := probes.Load() - before
		if n > 1 || (i == 0 && n != 1) {
			t.Fatalf("three reads in one scope (round %d) sent %d index requests, want 1 (at most 1 after a write)", i, n)
		}
		if _, err := r.Put(sctx, &backends.KVPair{Key: "apps/a", Value: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"apps/a", "users/u"} {
			p, _, err := r.Get(sctx, k, nil)
			if err != nil {
				t.Fatal(err)
			}
			if k == "apps/a" && (p == nil || string(p.Value) != fmt.Sprint(i)) {
				t.Fatalf("a read after the scope's own write %d: %+v", i, p)
			}
		}
		if m := probes.Load() - before; m != n {
			t.Fatalf("reads after a write in the scope sent %d more index requests, want none (the write's index is used)", m-n)
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

// keysListed counts the keys each shard's watch lists from now on.
func keysListed(r *Replica) func() map[string]int {
	var mu sync.Mutex
	n := map[string]int{}
	r.mu.Lock()
	r.onApply = func(shard string, keys int) {
		mu.Lock()
		n[shard] += keys
		mu.Unlock()
	}
	r.mu.Unlock()
	return func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]int{}
		for k, v := range n {
			out[k] = v
		}
		return out
	}
}

// Writes to locks/ (the reconciler lock's heartbeat, deploy locks) and
// events/ re-list those directories alone, not the apps: each directory has
// its own watch. A read of an app after them is still served from memory
// once the apps' index is confirmed, and sees every app written before.
func TestReplicaWriteRelistsItsDirectoryOnly(t *testing.T) {
	r := newReplica(t)
	r.waitWatch = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const apps = 50
	var ops []backends.TxnOp
	for i := 0; i < apps; i++ {
		ops = append(ops, backends.TxnOp{Verb: backends.TxnSet, Key: fmt.Sprintf("apps/app-%02d", i), Value: []byte("{}")})
	}
	for len(ops) > 0 {
		n := min(len(ops), backends.MaxTxnOps)
		if _, err := r.Txn(ctx, ops[:n]); err != nil {
			t.Fatal(err)
		}
		ops = ops[n:]
	}
	if _, err := r.Put(ctx, &backends.KVPair{Key: "locks/reconciler-leader", Value: []byte("0")}); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	listed := keysListed(r)
	const writes = 20
	for i := 0; i < writes; i++ {
		for _, k := range []string{"locks/reconciler-leader", "locks/apps/app-01", fmt.Sprintf("events/%03d", i)} {
			wm, err := r.Put(ctx, &backends.KVPair{Key: k, Value: []byte(fmt.Sprint(i))})
			if err != nil {
				t.Fatal(err)
			}
			if p, _, err := r.Get(ctx, k, nil); err != nil || p == nil || p.ModifyIndex != wm.Index {
				t.Fatalf("write %s at %d, then read %+v, %v", k, wm.Index, p, err)
			}
		}
		if ps, _, err := r.List(ctx, "apps/", nil); err != nil || len(ps) != apps {
			t.Fatalf("List apps/ after the lock writes: %d keys, %v", len(ps), err)
		}
	}
	n := listed()
	if n["apps"] != 0 {
		t.Errorf("%d writes to locks/ and events/ had %d app keys listed, want 0", 3*writes, n["apps"])
	}
	if n["locks"] == 0 || n["events"] == 0 {
		t.Errorf("the locks/ and events/ watches listed %v, want both", n)
	}
	t.Logf("keys listed per shard for %d writes: %v", 3*writes, n)
}

// A directory whose name starts with another's ("apps2/", top-level key
// "apps") is a shard of its own: each holds its own keys only.
func TestReplicaShardsWithCommonStart(t *testing.T) {
	r := newReplica(t)
	r.waitWatch = true
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, k := range []string{"apps/a", "apps2/b", "apps", "appsx", "/apps/c"} {
		if _, err := r.Put(ctx, &backends.KVPair{Key: k, Value: []byte(k)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{{"apps/", []string{"apps/a"}}, {"apps2/", []string{"apps2/b"}}, {"apps", []string{"apps", "apps/a", "apps2/b", "appsx"}}, {"", []string{"/apps/c", "apps", "apps/a", "apps2/b", "appsx"}}, {"/apps/", []string{"/apps/c"}}} {
		ps, _, err := r.List(ctx, c.prefix, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range ps {
			got = append(got, p.Key)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("List(%q) = %v, want %v", c.prefix, got, c.want)
		}
	}
	for _, k := range []string{"apps/a", "apps2/b", "apps", "appsx", "/apps/c"} {
		if p, _, err := r.Get(ctx, k, nil); err != nil || p == nil || string(p.Value) != k {
			t.Errorf("Get(%q) = %+v, %v", k, p, err)
		}
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, want := range map[string]int{"apps": 2, "apps2": 1, "appsx": 1, "%2Fapps": 1} {
		if sh := r.shards[name]; sh == nil || sh.tree.Len() != want {
			t.Errorf("shard %q: %+v, want %d keys", name, sh, want)
		}
	}
}

// The deletions a shard remembers are bounded, and List's index of a
// prefix never goes backwards as they are dropped: it stays at least the
// index of every deletion under the prefix.
func TestReplicaTombstonesBounded(t *testing.T) {
	r := newReplica(t)
	r.waitWatch = true
	r.mu.Lock()
	r.maxTombs = 8
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 60
	var ops []backends.TxnOp
	for i := 0; i < n; i++ {
		ops = append(ops, backends.TxnOp{Verb: backends.TxnSet, Key: fmt.Sprintf("events/%03d", i), Value: []byte("{}")})
	}
	for len(ops) > 0 {
		n := min(len(ops), backends.MaxTxnOps)
		if _, err := r.Txn(ctx, ops[:n]); err != nil {
			t.Fatal(err)
		}
		ops = ops[n:]
	}
	if _, err := r.Put(ctx, &backends.KVPair{Key: "events/zz-kept", Value: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx); err != nil { // the replica of events/ starts before the deletions
		t.Fatal(err)
	}
	var last uint64
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("events/%03d", i)
		wm, err := r.Delete(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		ps, m, err := r.List(ctx, "events/", nil)
		if err != nil || len(ps) != n-i {
			t.Fatalf("List after deleting %s: %d keys, %v", k, len(ps), err)
		}
		if m.LastIndex < wm.Index || m.LastIndex < last {
			t.Fatalf("List(events/) after deleting %s at %d: index %d, the one before %d", k, wm.Index, m.LastIndex, last)
		}
		last = m.LastIndex
		if _, m, err := r.List(ctx, k, nil); err != nil || m.LastIndex < wm.Index {
			t.Fatalf("List(%s) after its deletion at %d: index %v, %v", k, wm.Index, m, err)
		}
	}
	r.mu.Lock()
	tombs := r.shards["events"].tombs.Len()
	r.mu.Unlock()
	if tombs > 8 {
		t.Fatalf("%d deletions: the shard remembers %d, want at most 8", n, tombs)
	}
}

// The replica's pages wait for its own watch of the directory rather than
// start the Store's watch of the prefix's key names (a second query
// re-listing the directory's names at every change).
func TestReplicaListPageStartsNoKeyWatch(t *testing.T) {
	r := newReplica(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 10; i++ {
		wm, err := r.Put(ctx, &backends.KVPair{Key: fmt.Sprintf("apps/a%d", i), Value: []byte("{}")})
		if err != nil {
			t.Fatal(err)
		}
		ps, _, err := r.ListPage(ctx, "apps/", "", 100)
		if err != nil || len(ps) != i+1 || ps[i].ModifyIndex != wm.Index {
			t.Fatalf("ListPage after write %d: %v, %v", i, ps, err)
		}
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	if len(r.watches) != 0 {
		t.Fatalf("the replica's pages started %d key-name watches, want 0", len(r.watches))
	}
}

// A key's shard is the first segment of its escaped key, fast path or not.
func TestKeyShardName(t *testing.T) {
	for _, k := range []string{"apps/hello", "apps", "a/b/c", "/x/y", "//x", ".a/b", "a./b", "%a/b", "é/x", "a\x01/b", "a b/c", "x"} {
		esc := escapeKey(k)
		want := esc
		if i := strings.IndexByte(esc, '/'); i >= 0 {
			want = esc[:i]
		}
		if got := keyShardName(k); got != want {
			t.Errorf("keyShardName(%q) = %q, want %q", k, got, want)
		}
		if !strings.HasPrefix(esc, want) {
			t.Errorf("%q: escaped %q does not start with its shard %q", k, esc, want)
		}
	}
}

// After a write through the replica, its reads of a directory not yet
// known to hold it go to Consul at once (no index request: any index
// learnt now would be at least the write's) and see it; once the watch
// has caught up, reads come from memory again.
func TestReplicaReadsAfterOwnWrite(t *testing.T) {
	r := newReplica(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var probes, direct atomic.Int64
	r.globalBatch.hook = func() { probes.Add(1) }
	r.onDirect = func() { direct.Add(1) }
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if _, err := r.Put(ctx, &backends.KVPair{Key: "apps/own", Value: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
		p0, d0 := probes.Load(), direct.Load()
		p, _, err := r.Get(ctx, "apps/own", nil)
		if err != nil || p == nil || string(p.Value) != fmt.Sprint(i) {
			t.Fatalf("read after own write %d: %+v, %v", i, p, err)
		}
		if probes.Load() != p0 && direct.Load() != d0 {
			t.Fatalf("a read known to be behind asked for an index and then read Consul")
		}
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	d0 := direct.Load()
	for i := 0; i < 10; i++ {
		if p, _, err := r.Get(ctx, "apps/own", nil); err != nil || string(p.Value) != "19" {
			t.Fatalf("read after sync: %+v, %v", p, err)
		}
	}
	if direct.Load() != d0 {
		t.Fatalf("%d reads went to Consul after the replica caught up, want 0", direct.Load()-d0)
	}
}

// With the change log, 60 writes to app records among 3,000 apps cost the
// replica the records written (read by name from the log), not a re-list
// of every app at each write. (Without the log, each write re-lists apps/:
// about 60 x 3,000 records; run with BERTH_TEST_CHANGE_LOG=off to see it
// fail: seen failing so, 180,000 records.)
func TestReplicaAppWritesReadWhatChanged(t *testing.T) {
	s := newStore(t)
	s.changeLog = os.Getenv("BERTH_TEST_CHANGE_LOG") != "off" // on even with BERTH_TEST_CHANGE_LOG=0
	r := NewReplica(s)
	t.Cleanup(func() { _ = r.Close() })
	r.waitWatch = true
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const apps, writes = 3000, 60
	var ops []backends.TxnOp
	for i := 0; i < apps; i++ {
		ops = append(ops, backends.TxnOp{Verb: backends.TxnSet, Key: fmt.Sprintf("apps/app-%04d", i), Value: []byte("{}")})
		if len(ops) == backends.MaxTxnOps || i == apps-1 {
			if _, err := r.Store.Txn(ctx, ops); err != nil {
				t.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	listed := keysListed(r)
	for i := 0; i < writes; i++ {
		k := fmt.Sprintf("apps/app-%04d", i*37%apps)
		wm, err := r.Put(ctx, &backends.KVPair{Key: k, Value: []byte(fmt.Sprint(i))})
		if err != nil {
			t.Fatal(err)
		}
		if p, _, err := r.Get(ctx, k, nil); err != nil || p == nil || p.ModifyIndex != wm.Index || string(p.Value) != fmt.Sprint(i) {
			t.Fatalf("write %s at %d, then read %+v, %v", k, wm.Index, p, err)
		}
	}
	if ps, _, err := r.List(ctx, "apps/", nil); err != nil || len(ps) != apps {
		t.Fatalf("List apps/: %d keys, %v", len(ps), err)
	}
	n := listed()["apps"]
	t.Logf("%d app writes among %d apps: %d app records read by the replica", writes, apps, n)
	if n > 4*writes {
		t.Errorf("%d app writes had the replica read %d app records, want O(%d), not O(%d apps)", writes, n, writes, apps)
	}
}

// The change log is trimmed to about logKeep entries, its floor raised to
// the newest index trimmed; a replica that has applied less than the floor
// re-lists the directory instead of missing the trimmed changes.
func TestChangeLogTrimmed(t *testing.T) {
	s := newStore(t)
	s.changeLog = true
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 300
	for i := 0; i < n; i++ {
		if _, err := s.Put(ctx, &backends.KVPair{Key: fmt.Sprintf("events/%03d", i), Value: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	var floor uint64
	var entries []logEntry
	for deadline := time.Now().Add(20 * time.Second); ; {
		pairs, _, err := s.kv.List(s.logDir("events"), nil)
		if err != nil {
			t.Fatal(err)
		}
		floor, entries = parseLog(pairs)
		if floor > 0 && len(entries) <= logKeep+logSlack {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d writes the log has %d entries, floor %d", n, len(entries), floor)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if entries[0].index <= floor {
		t.Fatalf("an entry at %d is at or below the floor %d", entries[0].index, floor)
	}
	// Store keys never show the log.
	if ps, _, err := s.List(ctx, "", nil); err != nil || len(ps) != n {
		t.Fatalf("List(\"\") = %d keys, %v; want %d", len(ps), err, n)
	}

	r := NewReplica(s)
	t.Cleanup(func() { _ = r.Close() })
	r.waitWatch = true
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	// Make the shard look as if it had missed changes the log no longer has.
	sh := r.shard("events")
	sh.amu.Lock()
	r.mu.Lock()
	sh.tree, sh.applied, sh.complete = iradix.New(), floor-1, 0
	r.mu.Unlock()
	sh.amu.Unlock()
	if _, err := r.Put(ctx, &backends.KVPair{Key: "events/zzz", Value: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	ps, _, err := r.List(ctx, "events/", nil)
	if err != nil || len(ps) != n+1 {
		t.Fatalf("a replica behind the log's floor lists %d events, %v; want %d", len(ps), err, n+1)
	}
}
