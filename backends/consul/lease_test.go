package consul

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/devagent"
	"github.com/berthpaas/berth/backends/storetest"
)

// testLease is short, so that the tests of members that stop answering
// take seconds.
const testLease = time.Second

// joined is a Replica on prefix (a fresh one when empty) that has joined
// the prefix's read leases and holds its lease; with counters of the reads
// that asked Consul (a read-index request or a direct read).
type joinedReplica struct {
	*Replica
	asked atomic.Int64
}

func newJoined(t testing.TB, prefix string) *joinedReplica {
	t.Helper()
	if prefix == "" {
		prefix = uniquePrefix(t)
	}
	s, err := New(Config{Address: devagent.Consul(t), Prefix: prefix, ChangeLog: true}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	j := &joinedReplica{Replica: NewReplica(s)}
	j.onDirect = func() { j.asked.Add(1) }
	j.globalBatch.hook = func() { j.asked.Add(1) }
	if err := j.Join(LeaseOptions{Listen: "127.0.0.1:0", LeaseTTL: testLease, IntentTimeout: 500 * time.Millisecond, IntentTTL: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = j.Store.DeleteTree(ctx, "")
		_ = j.Close()
	})
	waitLeased(t, j)
	return j
}

func waitLeased(t testing.TB, j *joinedReplica) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := j.Member(); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the replica did not join the read leases in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fromMemoryWithin waits until a Get of key is answered with no request to
// Consul (the shard's watch has caught up), and reports whether it was.
func fromMemoryWithin(t testing.TB, j *joinedReplica, key string, d time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		before := j.asked.Load()
		if _, _, err := j.Get(context.Background(), key, nil); err != nil {
			t.Fatal(err)
		}
		if j.asked.Load() == before {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

func TestLeaseConformance(t *testing.T) {
	storetest.Run(t, func(t testing.TB) backends.Store { return newJoined(t, "").Replica })
}

// Under the lease, reads are answered from memory: no read-index request,
// no direct read, however many reads.
func TestLeaseReadsFromMemory(t *testing.T) {
	j := newJoined(t, "")
	ctx := context.Background()
	if _, err := j.Put(ctx, &backends.KVPair{Key: "apps/hello", Value: []byte("v1")}); err != nil {
		t.Fatal(err)
	}
	if !fromMemoryWithin(t, j, "apps/hello", 5*time.Second) {
		t.Fatal("reads still ask Consul 5s after the last write")
	}
	before := j.asked.Load()
	for i := 0; i < 500; i++ {
		p, _, err := j.Get(ctx, "apps/hello", nil)
		if err != nil || p == nil || string(p.Value) != "v1" {
			t.Fatalf("Get: %+v %v", p, err)
		}
		if ps, _, err := j.List(ctx, "apps/", nil); err != nil || len(ps) != 1 {
			t.Fatalf("List: %v %v", ps, err)
		}
	}
	if n := j.asked.Load() - before; n != 0 {
		t.Fatalf("1000 reads under the lease asked Consul %d times, want 0", n)
	}
	// locks/ is written outside the Store's transactions: never from memory.
	if _, err := j.Put(ctx, &backends.KVPair{Key: "locks/x", Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	before = j.asked.Load()
	if _, _, err := j.Get(ctx, "locks/x", nil); err != nil {
		t.Fatal(err)
	}
	if j.asked.Load() == before {
		t.Fatal("a read of locks/ was answered from memory")
	}
}

// Three servers: a write through any is read through every other at once,
// while readers on all of them read continuously from memory; and the
// reads between writes are from memory.
func TestLeaseReadsOtherServersWrites(t *testing.T) {
	a := newJoined(t, "")
	b := newJoined(t, a.prefix)
	c := newJoined(t, a.prefix)
	rs := []*joinedReplica{a, b, c}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Background readers: a read that began after write i returned must
	// see at least i (checked against the last acknowledged write).
	var acked atomic.Int64
	acked.Store(-1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var bad atomic.Value
	for _, r := range rs {
		wg.Add(1)
		go func(r *joinedReplica) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				floor := acked.Load()
				p, _, err := r.Get(ctx, "apps/hello", nil)
				if err != nil {
					bad.Store(err.Error())
					return
				}
				var v int64 = -1
				if p != nil {
					fmt.Sscan(string(p.Value), &v)
				}
				if v < floor {
					bad.Store(fmt.Sprintf("a read that began after write %d returned read %d", floor, v))
					return
				}
			}
		}(r)
	}
	var idx uint64
	for i := 0; i < 150; i++ {
		w, r := rs[i%3], rs[(i+1)%3]
		ok, wm, err := w.CAS(ctx, &backends.KVPair{Key: "apps/hello", Value: []byte(fmt.Sprint(i)), ModifyIndex: idx})
		if err != nil || !ok {
			t.Fatalf("CAS %d at %d: %v %v", i, idx, ok, err)
		}
		acked.Store(int64(i))
		idx = wm.Index
		p, _, err := r.Get(ctx, "apps/hello", nil)
		if err != nil || p == nil || string(p.Value) != fmt.Sprint(i) || p.ModifyIndex != idx {
			t.Fatalf("after write %d at %d through one server, another reads %+v, %v", i, idx, p, err)
		}
		ps, _, err := r.ListPage(ctx, "apps/", "", 5)
		if err != nil || len(ps) != 1 || string(ps[0].Value) != fmt.Sprint(i) {
			t.Fatalf("after write %d another pages %v, %v", i, ps, err)
		}
	}
	close(stop)
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
	for _, r := range rs {
		if !fromMemoryWithin(t, r, "apps/hello", 5*time.Second) {
			t.Fatal("a server still asks Consul for every read 5s after the last write")
		}
	}
}

// A member that stops answering (frozen, as under SIGSTOP) is removed by
// the next writer, which waits for its lease to run out: the write
// completes, and the frozen member, asked afterwards, does not answer
// from memory what it held before the write. Thawed, it joins again.
func TestLeaseFrozenMemberEvicted(t *testing.T) {
	a := newJoined(t, "")
	b := newJoined(t, a.prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := a.Put(ctx, &backends.KVPair{Key: "apps/hello", Value: []byte("old")}); err != nil {
		t.Fatal(err)
	}
	if !fromMemoryWithin(t, b, "apps/hello", 5*time.Second) {
		t.Fatal("b does not read from memory")
	}
	b.lease.frozen.Store(true)
	start := time.Now()
	if _, err := a.Put(ctx, &backends.KVPair{Key: "apps/hello", Value: []byte("new")}); err != nil {
		t.Fatalf("a write with a frozen member: %v", err)
	}
	took := time.Since(start)
	if took < testLease {
		t.Fatalf("the write took %v: it did not wait for the frozen member's lease (%v)", took, testLease)
	}
	if _, leased := b.Member(); leased {
		t.Fatal("the frozen member still holds its lease after the write")
	}
	p, _, err := b.Get(ctx, "apps/hello", nil)
	if err != nil || p == nil || string(p.Value) != "new" {
		t.Fatalf("the frozen member reads %+v, %v after the write returned", p, err)
	}
	t.Logf("a write with a frozen member took %v", took.Round(time.Millisecond))
	b.lease.frozen.Store(false)
	waitLeased(t, b)
	start = time.Now()
	if _, err := a.Put(ctx, &backends.KVPair{Key: "apps/hello", Value: []byte("newer")}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > testLease {
		t.Fatalf("a write after the member joined again took %v", d)
	}
	if p, _, err := b.Get(ctx, "apps/hello", nil); err != nil || p == nil || string(p.Value) != "newer" {
		t.Fatalf("the member that joined again reads %+v, %v", p, err)
	}
}

// An intent whose write never reports (its writer died mid-write) is
// closed by the member holding it with an epoch bump: the write, sent
// late, is rolled back, and the member answers from memory again.
func TestLeaseIntentOfADeadWriterExpires(t *testing.T) {
	a := newJoined(t, "")
	b := newJoined(t, a.prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := b.Put(ctx, &backends.KVPair{Key: "apps/hello", Value: []byte("v1")}); err != nil {
		t.Fatal(err)
	}
	if !fromMemoryWithin(t, b, "apps/hello", 5*time.Second) {
		t.Fatal("b does not read from memory")
	}
	g, err := a.Store.guard.begin(ctx, footprint{Keys: []string{"apps/hello"}})
	if err != nil {
		t.Fatal(err)
	}
	// b holds the intent: its reads of apps/ ask Consul.
	before := b.asked.Load()
	if _, _, err := b.Get(ctx, "apps/hello", nil); err != nil {
		t.Fatal(err)
	}
	if b.asked.Load() == before {
		t.Fatal("a read under an open intent was answered from memory")
	}
	if !fromMemoryWithin(t, b, "apps/hello", 10*time.Second) {
		t.Fatal("b did not answer from memory again after the intent expired")
	}
	// The dead writer's transaction arrives late: rolled back.
	k, _ := a.key("apps/hello")
	ops := api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVSet, Key: k, Value: []byte("late")}}}
	ok, _, _, err := a.client.Txn().Txn(append(ops, g.ops...), nil)
	if err != nil || ok {
		t.Fatalf("the late write of an expired intent: committed=%v err=%v", ok, err)
	}
	g.end(0, rolledBack)
	if p, _, err := b.Get(ctx, "apps/hello", nil); err != nil || string(p.Value) != "v1" {
		t.Fatalf("read %+v %v", p, err)
	}
}

// A peer message without the member's token is refused, and changes nothing.
func TestLeasePeerTokenChecked(t *testing.T) {
	j := newJoined(t, "")
	l := j.lease
	for _, tok := range []string{"", "wrong"} {
		err := l.post(context.Background(), l.ln.Addr().String(), "/intent", intentMsg{From: "x", Token: tok, ID: "i", footprint: footprint{Keys: []string{"apps/x"}}})
		if err == nil {
			t.Fatalf("an intent with token %q was taken", tok)
		}
	}
	j.mu.Lock()
	n := len(l.open)
	j.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d intents open after refused messages", n)
	}
}

// A member whose key is deleted by hand (writers no longer announce to it)
// stops answering from memory and joins again.
func TestLeaseMemberKeyDeleted(t *testing.T) {
	a := newJoined(t, "")
	b := newJoined(t, a.prefix)
	id, _ := b.Member()
	kv := rawClient(t).KV()
	if _, err := kv.Delete(a.prefix+memberDir+id, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.mu.Lock()
		joined := b.lease.joined
		b.mu.Unlock()
		if !joined {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the member still answers from memory 5s after its key was deleted")
		}
		time.Sleep(time.Millisecond)
	}
	waitLeased(t, b)
	p, _, err := kv.Get(a.prefix+memberDir+id, nil)
	if err != nil || p == nil || p.Session == "" {
		t.Fatalf("the member did not take its key again: %+v %v", p, err)
	}
	ctx := context.Background()
	if _, err := a.Put(ctx, &backends.KVPair{Key: "apps/x", Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if p, _, err := b.Get(ctx, "apps/x", nil); err != nil || p == nil || string(p.Value) != "1" {
		t.Fatalf("b reads %+v %v", p, err)
	}
}

// An intent covers the keys its write changes: a write in flight to
// apps/a sends reads of apps/a and lists of apps/ to Consul, while apps/b
// is still read from memory; a DeleteTree's intent covers its prefix.
func TestLeaseIntentCoversItsKeys(t *testing.T) {
	a := newJoined(t, "")
	b := newJoined(t, a.prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, k := range []string{"apps/a", "apps/b", "users/u"} {
		if _, err := a.Put(ctx, &backends.KVPair{Key: k, Value: []byte("1")}); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"apps/a", "apps/b", "users/u"} {
		if !fromMemoryWithin(t, b, k, 5*time.Second) {
			t.Fatalf("b does not read %s from memory", k)
		}
	}
	asks := func(read func() error) bool {
		t.Helper()
		before := b.asked.Load()
		if err := read(); err != nil {
			t.Fatal(err)
		}
		return b.asked.Load() != before
	}
	get := func(k string) func() error {
		return func() error { _, _, err := b.Get(ctx, k, nil); return err }
	}
	list := func(p string) func() error {
		return func() error { _, _, err := b.List(ctx, p, nil); return err }
	}
	for _, tc := range []struct {
		fp   footprint
		read map[string]func() error // read -> must ask Consul
		want map[string]bool
	}{
		{footprint{Keys: []string{"apps/a"}},
			map[string]func() error{"get apps/a": get("apps/a"), "get apps/b": get("apps/b"), "list apps/": list("apps/"), "list apps/b": list("apps/b"), "get users/u": get("users/u")},
			map[string]bool{"get apps/a": true, "get apps/b": false, "list apps/": true, "list apps/b": false, "get users/u": false}},
		{footprint{Trees: []string{"apps/"}},
			map[string]func() error{"get apps/a": get("apps/a"), "get apps/b": get("apps/b"), "list apps/": list("apps/"), "get users/u": get("users/u")},
			map[string]bool{"get apps/a": true, "get apps/b": true, "list apps/": true, "get users/u": false}},
	} {
		g, err := a.Store.guard.begin(ctx, tc.fp)
		if err != nil {
			t.Fatal(err)
		}
		for name, read := range tc.read {
			if got := asks(read); got != tc.want[name] {
				t.Errorf("with a write of %+v in flight, %s asked Consul: %v, want %v", tc.fp, name, got, tc.want[name])
			}
		}
		g.end(0, rolledBack)
		time.Sleep(100 * time.Millisecond) // the "done" reaches b
		for name, read := range tc.read {
			if asks(read) {
				t.Errorf("after the write of %+v was rolled back, %s still asked Consul", tc.fp, name)
			}
		}
	}
}

// A write that bypasses Berth (consul kv put) is not announced: a member
// sees it within its next confirmation round.
func TestLeaseSeesRawWritesWithinARound(t *testing.T) {
	j := newJoined(t, "")
	ctx := context.Background()
	if _, err := j.Put(ctx, &backends.KVPair{Key: "apps/raw", Value: []byte("berth")}); err != nil {
		t.Fatal(err)
	}
	if !fromMemoryWithin(t, j, "apps/raw", 5*time.Second) {
		t.Fatal("no memory reads")
	}
	if _, err := rawClient(t).KV().Put(&api.KVPair{Key: j.prefix + "apps/raw", Value: []byte("raw")}, nil); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		p, _, err := j.Get(ctx, "apps/raw", nil)
		if err != nil {
			t.Fatal(err)
		}
		if string(p.Value) == "raw" {
			break
		}
		if time.Since(start) > 3*confirmEvery {
			t.Fatalf("a raw write is not seen %v later", time.Since(start))
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("a raw write was seen after %v", time.Since(start).Round(time.Millisecond))
}

// A write whose caller gives up while its intent is being announced evicts
// no member: the members stay, and answer from memory.
func TestLeaseCanceledWriteEvictsNobody(t *testing.T) {
	a := newJoined(t, "")
	b := newJoined(t, a.prefix)
	b.lease.frozen.Store(true) // holds the intent until the writer gives up
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err := a.Put(ctx, &backends.KVPair{Key: "apps/x", Value: []byte("1")})
	cancel()
	if err == nil {
		t.Fatal("a write whose caller gave up succeeded")
	}
	b.lease.frozen.Store(false)
	time.Sleep(200 * time.Millisecond)
	if _, leased := b.Member(); !leased {
		t.Fatal("a canceled write evicted a member")
	}
	id, _ := b.Member()
	p, _, err := rawClient(t).KV().Get(a.prefix+memberDir+id, nil)
	if err != nil || p == nil || p.Session == "" {
		t.Fatalf("the member's key after a canceled write: %+v %v", p, err)
	}
}
