// Package storetest is the conformance suite for backends.Store. Every Store
// implementation runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t testing.TB) backends.Store { ... a fresh, empty store ... })
//	}
//
// The factory must return a fresh, empty store for every call (a store on a
// unique key prefix is fine) and arrange its cleanup with t.Cleanup. The
// suite assumes only that indexes are monotonic, never that they start at 0
// or 1, nor that they are contiguous.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
)

// testTimeout bounds every single call the suite makes.
const testTimeout = 30 * time.Second

// Factory returns a fresh, empty store.
type Factory func(t testing.TB) backends.Store

// Run runs the whole conformance suite against the stores factory returns.
func Run(t *testing.T, factory func(t testing.TB) backends.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s backends.Store)
	}{
		{"GetMissing", testGetMissing},
		{"PutGet", testPutGet},
		{"IndexesMonotonic", testIndexesMonotonic},
		{"ValuesAreCopies", testValuesAreCopies},
		{"List", testList},
		{"ListPage", testListPage},
		{"ListPageOddKeys", testListPageOddKeys},
		{"ListPageWalkWhileWriting", testListPageWalkWhileWriting},
		{"Delete", testDelete},
		{"DeleteTree", testDeleteTree},
		{"CAS", testCAS},
		{"DeleteCAS", testDeleteCAS},
		{"Txn", testTxn},
		{"TxnAllOrNothing", testTxnAllOrNothing},
		{"TxnVerbs", testTxnVerbs},
		{"TxnLimit", testTxnLimit},
		{"InvalidKey", testInvalidKey},
		{"OddKeys", testOddKeys},
		{"LargeValues", testLargeValues},
		{"WatchGetWakes", testWatchGetWakes},
		{"WatchGetWakesOnDelete", testWatchGetWakesOnDelete},
		{"WatchGetWakesOnCreate", testWatchGetWakesOnCreate},
		{"WatchListWakesOnCreate", testWatchListWakesOnCreate},
		{"WatchListWakes", testWatchListWakes},
		{"WatchListWakesOnDelete", testWatchListWakesOnDelete},
		{"WatchListWakesOnDeleteTree", testWatchListWakesOnDeleteTree},
		{"WatchListWakesOnTxn", testWatchListWakesOnTxn},
		{"WatchTimesOut", testWatchTimesOut},
		{"WatchIgnoresOtherPrefixes", testWatchIgnoresOtherPrefixes},
		{"WatchStaleIndexReturnsAtOnce", testWatchStaleIndex},
		{"ContextCanceledWatch", testContextCanceledWatch},
		{"ContextDeadlineWatch", testContextDeadlineWatch},
		{"ContextCanceledWrite", testContextCanceledWrite},
		{"ConcurrentCASCounter", testConcurrentCASCounter},
		{"ConcurrentTxnTransfers", testConcurrentTxnTransfers},
		{"Health", testHealth},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := factory(t)
			if s == nil {
				t.Fatal("factory returned a nil store")
			}
			tc.fn(t, s)
		})
	}
}

// Bench runs the Store benchmarks: "Get" (read of one small key) and
// "CASPut" (read-free check-and-set of one key, chaining ModifyIndex).
func Bench(b *testing.B, factory func(t testing.TB) backends.Store) {
	b.Run("Get", func(b *testing.B) {
		s := factory(b)
		ctx := context.Background()
		val := bytes.Repeat([]byte("v"), 256)
		if _, err := s.Put(ctx, &backends.KVPair{Key: "bench/get", Value: val}); err != nil {
			b.Fatalf("Put: %v", err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			p, _, err := s.Get(ctx, "bench/get", nil)
			if err != nil || p == nil {
				b.Fatalf("Get: %v, %v", p, err)
			}
		}
	})
	b.Run("CASPut", func(b *testing.B) {
		s := factory(b)
		ctx := context.Background()
		val := bytes.Repeat([]byte("v"), 256)
		var idx uint64
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			ok, wm, err := s.CAS(ctx, &backends.KVPair{Key: "bench/cas", Value: val, ModifyIndex: idx})
			if err != nil || !ok {
				b.Fatalf("CAS at %d: ok=%v err=%v", idx, ok, err)
			}
			idx = wm.Index
		}
	})
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func mustPut(t testing.TB, s backends.Store, key string, val []byte) uint64 {
	t.Helper()
	wm, err := s.Put(ctxT(t), &backends.KVPair{Key: key, Value: val})
	if err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
	if wm == nil || wm.Index == 0 {
		t.Fatalf("Put(%q): WriteMeta %+v, want a non-zero index", key, wm)
	}
	return wm.Index
}

func mustGet(t testing.TB, s backends.Store, key string) (*backends.KVPair, uint64) {
	t.Helper()
	p, qm, err := s.Get(ctxT(t), key, nil)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if qm == nil {
		t.Fatalf("Get(%q): nil QueryMeta", key)
	}
	if p != nil && p.Key != key {
		t.Fatalf("Get(%q) returned key %q", key, p.Key)
	}
	return p, qm.LastIndex
}

func mustList(t testing.TB, s backends.Store, prefix string) ([]*backends.KVPair, uint64) {
	t.Helper()
	ps, qm, err := s.List(ctxT(t), prefix, nil)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	if qm == nil {
		t.Fatalf("List(%q): nil QueryMeta", prefix)
	}
	return ps, qm.LastIndex
}

func keysOf(ps []*backends.KVPair) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.Key)
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func wantValue(t testing.TB, s backends.Store, key string, want []byte) *backends.KVPair {
	t.Helper()
	p, _ := mustGet(t, s, key)
	if want == nil {
		if p != nil {
			t.Fatalf("Get(%q) = %q, want absent", key, p.Value)
		}
		return nil
	}
	if p == nil {
		t.Fatalf("Get(%q) = absent, want %q", key, abbrev(want))
	}
	if !bytes.Equal(p.Value, want) {
		t.Fatalf("Get(%q) = %q, want %q", key, abbrev(p.Value), abbrev(want))
	}
	return p
}

func abbrev(b []byte) string {
	if len(b) > 40 {
		return fmt.Sprintf("%q...(%d bytes)", b[:40], len(b))
	}
	return string(b)
}

func testGetMissing(t *testing.T, s backends.Store) {
	p, qm, err := s.Get(ctxT(t), "missing/key", nil)
	if err != nil {
		t.Fatalf("Get of a missing key: err = %v, want nil", err)
	}
	if p != nil {
		t.Fatalf("Get of a missing key returned %+v", p)
	}
	if qm == nil {
		t.Fatal("Get of a missing key: nil QueryMeta")
	}
	ps, qm, err := s.List(ctxT(t), "missing/", nil)
	if err != nil || len(ps) != 0 || qm == nil {
		t.Fatalf("List of an empty prefix = %v, %+v, %v; want empty, meta, nil", keysOf(ps), qm, err)
	}
}

func testPutGet(t *testing.T, s backends.Store) {
	idx := mustPut(t, s, "app/hello", []byte(`{"name":"hello"}`))
	p := wantValue(t, s, "app/hello", []byte(`{"name":"hello"}`))
	if p.ModifyIndex != idx || p.CreateIndex != idx {
		t.Fatalf("after Put at %d: CreateIndex=%d ModifyIndex=%d, want both %d", idx, p.CreateIndex, p.ModifyIndex, idx)
	}
	_, last := mustGet(t, s, "app/hello")
	if last != idx {
		t.Fatalf("Get LastIndex = %d, want the key's ModifyIndex %d", last, idx)
	}

	idx2 := mustPut(t, s, "app/hello", []byte(`{"name":"hello2"}`))
	if idx2 <= idx {
		t.Fatalf("second Put index %d, want > %d", idx2, idx)
	}
	p = wantValue(t, s, "app/hello", []byte(`{"name":"hello2"}`))
	if p.CreateIndex != idx || p.ModifyIndex != idx2 {
		t.Fatalf("after update: CreateIndex=%d ModifyIndex=%d, want %d and %d", p.CreateIndex, p.ModifyIndex, idx, idx2)
	}

	// Empty value is a value, not an absence.
	mustPut(t, s, "app/empty", nil)
	p, _ = mustGet(t, s, "app/empty")
	if p == nil || len(p.Value) != 0 {
		t.Fatalf("Get of a key with an empty value = %+v, want present and empty", p)
	}
}

func testIndexesMonotonic(t *testing.T, s backends.Store) {
	var last uint64
	for i := 0; i < 20; i++ {
		idx := mustPut(t, s, fmt.Sprintf("mono/%d", i%3), []byte(strconv.Itoa(i)))
		if idx <= last {
			t.Fatalf("write %d committed at %d, not after the previous write at %d", i, idx, last)
		}
		last = idx
	}
	_, li := mustList(t, s, "mono/")
	if li != last {
		t.Fatalf("List LastIndex = %d, want the last write's index %d", li, last)
	}
}

func testValuesAreCopies(t *testing.T, s backends.Store) {
	// Enough data that an embedded store cannot keep it all inline.
	for i := 0; i < 16; i++ {
		mustPut(t, s, fmt.Sprintf("copy/fill/%02d", i), bytes.Repeat([]byte{byte('a' + i)}, 1024))
	}
	orig := append([]byte("original"), bytes.Repeat([]byte("."), 2048)...)
	in := bytes.Clone(orig)
	mustPut(t, s, "copy/k", in)
	in[0] = 'X' // the caller's buffer is the caller's
	p := wantValue(t, s, "copy/k", orig)
	p.Value[0] = 'Y' // and so is what Get returned
	wantValue(t, s, "copy/k", orig)
	ps, _ := mustList(t, s, "copy/")
	if len(ps) != 17 || ps[16].Key != "copy/k" {
		t.Fatalf("List = %v", keysOf(ps))
	}
	ps[16].Value[0] = 'Z'
	ps[0].Value[0] = 'Z'
	wantValue(t, s, "copy/k", orig)
	wantValue(t, s, "copy/fill/00", bytes.Repeat([]byte{'a'}, 1024))
}

func testList(t *testing.T, s backends.Store) {
	keys := []string{"apps/b", "apps/a", "apps/c/x", "apple", "apps/c/y", "other/z"}
	idx := map[string]uint64{}
	for _, k := range keys {
		idx[k] = mustPut(t, s, k, []byte("v:"+k))
	}
	ps, last := mustList(t, s, "apps/")
	want := []string{"apps/a", "apps/b", "apps/c/x", "apps/c/y"}
	if got := keysOf(ps); !equalStrings(got, want) {
		t.Fatalf("List(apps/) = %v, want %v (sorted, prefix only)", got, want)
	}
	for _, p := range ps {
		if string(p.Value) != "v:"+p.Key {
			t.Fatalf("List value of %q = %q", p.Key, p.Value)
		}
		if p.ModifyIndex != idx[p.Key] || p.CreateIndex != idx[p.Key] {
			t.Fatalf("List %q: indexes %d/%d, want %d", p.Key, p.CreateIndex, p.ModifyIndex, idx[p.Key])
		}
	}
	if last != idx["apps/c/y"] {
		t.Fatalf("List(apps/) LastIndex = %d, want the highest index under the prefix %d", last, idx["apps/c/y"])
	}
	// A plain string prefix, as in Consul: "app" covers "apple" and "apps/...".
	ps, _ = mustList(t, s, "app")
	if got, want := keysOf(ps), []string{"apple", "apps/a", "apps/b", "apps/c/x", "apps/c/y"}; !equalStrings(got, want) {
		t.Fatalf("List(app) = %v, want %v", got, want)
	}
	ps, last = mustList(t, s, "")
	sorted := append([]string(nil), keys...)
	sort.Strings(sorted)
	if got := keysOf(ps); !equalStrings(got, sorted) {
		t.Fatalf("List(\"\") = %v, want %v", got, sorted)
	}
	if last < idx["other/z"] {
		t.Fatalf("List(\"\") LastIndex = %d, want >= %d", last, idx["other/z"])
	}
}

func mustPage(t *testing.T, s backends.Store, prefix, after string, limit int) []*backends.KVPair {
	t.Helper()
	ps, m, err := s.ListPage(ctxT(t), prefix, after, limit)
	if err != nil {
		t.Fatalf("ListPage(%q, after %q, %d): %v", prefix, after, limit, err)
	}
	if m == nil {
		t.Fatalf("ListPage(%q): nil QueryMeta", prefix)
	}
	return ps
}

// walkPages reads prefix page by page (limit keys each), passing the last
// key of a page as the next one's start, until a short page.
func walkPages(t *testing.T, s backends.Store, prefix string, limit int, between func()) []string {
	t.Helper()
	var all []string
	after := ""
	for range 10000 {
		ps := mustPage(t, s, prefix, after, limit)
		if len(ps) > limit {
			t.Fatalf("ListPage(%q, after %q, %d) returned %d pairs", prefix, after, limit, len(ps))
		}
		all = append(all, keysOf(ps)...)
		if len(ps) < limit {
			return all
		}
		after = ps[len(ps)-1].Key
		if between != nil {
			between()
		}
	}
	t.Fatal("ListPage walk does not end")
	return nil
}

func testListPage(t *testing.T, s backends.Store) {
	keys := []string{"apps/b", "apps/a", "apps/c/x", "apple", "apps/c/y", "other/z", "apps/d"}
	idx := map[string]uint64{}
	for _, k := range keys {
		idx[k] = mustPut(t, s, k, []byte("v:"+k))
	}
	all := []string{"apps/a", "apps/b", "apps/c/x", "apps/c/y", "apps/d"}
	if got := keysOf(mustPage(t, s, "apps/", "", 0)); !equalStrings(got, all) {
		t.Fatalf("ListPage(apps/, no limit) = %v, want %v", got, all)
	}
	ps := mustPage(t, s, "apps/", "", 2)
	if got := keysOf(ps); !equalStrings(got, all[:2]) {
		t.Fatalf("ListPage(apps/, 2) = %v, want %v", got, all[:2])
	}
	for _, p := range ps {
		if string(p.Value) != "v:"+p.Key || p.ModifyIndex != idx[p.Key] || p.CreateIndex != idx[p.Key] {
			t.Fatalf("ListPage pair %q: value %q, indexes %d/%d, want v:%s at %d", p.Key, p.Value, p.CreateIndex, p.ModifyIndex, p.Key, idx[p.Key])
		}
	}
	// after is exclusive, and need not be a key that exists.
	if got := keysOf(mustPage(t, s, "apps/", "apps/b", 2)); !equalStrings(got, []string{"apps/c/x", "apps/c/y"}) {
		t.Fatalf("ListPage(apps/, after apps/b, 2) = %v", got)
	}
	if got := keysOf(mustPage(t, s, "apps/", "apps/bb", 10)); !equalStrings(got, all[2:]) {
		t.Fatalf("ListPage(apps/, after apps/bb) = %v, want %v", got, all[2:])
	}
	if got := mustPage(t, s, "apps/", "apps/d", 10); len(got) != 0 {
		t.Fatalf("ListPage after the last key = %v, want none", keysOf(got))
	}
	// An after before the prefix starts at the prefix; one past it is empty.
	if got := keysOf(mustPage(t, s, "apps/", "a", 1)); !equalStrings(got, all[:1]) {
		t.Fatalf("ListPage(apps/, after a, 1) = %v, want %v", got, all[:1])
	}
	if got := mustPage(t, s, "apps/", "b", 10); len(got) != 0 {
		t.Fatalf("ListPage(apps/, after b) = %v, want none", keysOf(got))
	}
	if got := walkPages(t, s, "apps/", 2, nil); !equalStrings(got, all) {
		t.Fatalf("walking apps/ 2 by 2 = %v, want %v", got, all)
	}
	if got := mustPage(t, s, "nothing/", "", 5); len(got) != 0 {
		t.Fatalf("ListPage of an empty prefix = %v", keysOf(got))
	}
	sorted := append([]string(nil), keys...)
	sort.Strings(sorted)
	if got := walkPages(t, s, "", 3, nil); !equalStrings(got, sorted) {
		t.Fatalf("walking everything 3 by 3 = %v, want %v", got, sorted)
	}
	// More keys than one transaction or batch holds.
	var many []string
	for i := range 150 {
		k := fmt.Sprintf("many/%04d", i)
		mustPut(t, s, k, []byte(k))
		many = append(many, k)
	}
	ps = mustPage(t, s, "many/", many[9], 130)
	if len(ps) != 130 || ps[0].Key != many[10] || ps[129].Key != many[139] {
		t.Fatalf("ListPage(many/, after %s, 130): %d pairs %v..., want %s..%s", many[9], len(ps), keysOf(ps[:min(3, len(ps))]), many[10], many[139])
	}
	for _, p := range ps {
		if string(p.Value) != p.Key {
			t.Fatalf("ListPage pair %q has value %q", p.Key, p.Value)
		}
	}
	if got := walkPages(t, s, "many/", 100, nil); !equalStrings(got, many) {
		t.Fatalf("walking many/ by 100: %d keys, want %d", len(got), len(many))
	}
}

// Keys whose escaping (in stores that escape) sorts differently from the
// keys themselves still page in key order.
func testListPageOddKeys(t *testing.T, s backends.Store) {
	keys := []string{"odd/%a", "odd/-b", "odd/.c", "odd/a b", "odd/é", "odd/~", "odd/0"}
	for _, k := range keys {
		mustPut(t, s, k, []byte(k))
	}
	sorted := append([]string(nil), keys...)
	sort.Strings(sorted)
	for _, limit := range []int{1, 2, 3} {
		if got := walkPages(t, s, "odd/", limit, nil); !equalStrings(got, sorted) {
			t.Fatalf("walking odd/ %d by %d = %q, want %q", limit, limit, got, sorted)
		}
	}
}

// A walk while keys are created and deleted between pages sees every key
// that stays throughout exactly once, in order.
func testListPageWalkWhileWriting(t *testing.T, s backends.Store) {
	var stay []string
	for i := range 40 {
		k := fmt.Sprintf("walk/%03d", i*2)
		mustPut(t, s, k, []byte("x"))
		if i%5 != 0 {
			stay = append(stay, k)
		}
	}
	n := 0
	got := walkPages(t, s, "walk/", 7, func() {
		n++
		mustPut(t, s, fmt.Sprintf("walk/%03d", n*9+1), []byte("new")) // odd: new keys here and there
		if _, err := s.Delete(ctxT(t), fmt.Sprintf("walk/%03d", (n-1)*10)); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	})
	seen := map[string]bool{}
	for i, k := range got {
		if seen[k] {
			t.Fatalf("walk saw %q twice: %v", k, got)
		}
		seen[k] = true
		if i > 0 && got[i-1] >= k {
			t.Fatalf("walk out of order: %q then %q", got[i-1], k)
		}
	}
	for _, k := range stay {
		if !seen[k] {
			t.Fatalf("walk missed %q, present throughout: %v", k, got)
		}
	}
}

func testDelete(t *testing.T, s backends.Store) {
	idx := mustPut(t, s, "del/a", []byte("a"))
	mustPut(t, s, "del/b", []byte("b"))
	wm, err := s.Delete(ctxT(t), "del/a")
	if err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if wm == nil {
		t.Fatal("Delete: nil WriteMeta")
	}
	wantValue(t, s, "del/a", nil)
	wantValue(t, s, "del/b", []byte("b"))
	_, last := mustGet(t, s, "del/a")
	if last <= idx {
		t.Fatalf("Get of a deleted key: LastIndex %d, want > its last ModifyIndex %d", last, idx)
	}
	if wm.Index != 0 && last < wm.Index {
		t.Fatalf("Get of a deleted key: LastIndex %d, want >= the delete's index %d", last, wm.Index)
	}
	ps, _ := mustList(t, s, "del/")
	if got := keysOf(ps); !equalStrings(got, []string{"del/b"}) {
		t.Fatalf("List after delete = %v", got)
	}
	if _, err := s.Delete(ctxT(t), "del/never-existed"); err != nil {
		t.Fatalf("Delete of an absent key: %v, want success", err)
	}
	// Re-creating a deleted key starts a new life.
	idx3 := mustPut(t, s, "del/a", []byte("again"))
	p := wantValue(t, s, "del/a", []byte("again"))
	if p.CreateIndex != idx3 || idx3 <= idx {
		t.Fatalf("re-created key: CreateIndex %d (write at %d, first life at %d)", p.CreateIndex, idx3, idx)
	}
}

func testDeleteTree(t *testing.T, s backends.Store) {
	for _, k := range []string{"tree/a", "tree/b/c", "tree/b/d", "treetop", "keep/x"} {
		mustPut(t, s, k, []byte(k))
	}
	_, before := mustList(t, s, "tree/")
	if _, err := s.DeleteTree(ctxT(t), "tree/"); err != nil {
		t.Fatalf("DeleteTree: %v", err)
	}
	ps, after := mustList(t, s, "tree/")
	if len(ps) != 0 {
		t.Fatalf("List after DeleteTree = %v, want empty", keysOf(ps))
	}
	if after <= before {
		t.Fatalf("List LastIndex after DeleteTree = %d, want > %d", after, before)
	}
	ps, _ = mustList(t, s, "")
	if got := keysOf(ps); !equalStrings(got, []string{"keep/x", "treetop"}) {
		t.Fatalf("keys left after DeleteTree(tree/) = %v, want [keep/x treetop]", got)
	}
	if _, err := s.DeleteTree(ctxT(t), "nothing/here/"); err != nil {
		t.Fatalf("DeleteTree of an empty prefix: %v", err)
	}
}

func testCAS(t *testing.T, s backends.Store) {
	ctx := ctxT(t)
	ok, wm, err := s.CAS(ctx, &backends.KVPair{Key: "cas/k", Value: []byte("v1"), ModifyIndex: 0})
	if err != nil || !ok {
		t.Fatalf("CAS create (index 0) on an absent key: ok=%v err=%v, want success", ok, err)
	}
	if wm == nil || wm.Index == 0 {
		t.Fatalf("CAS create: WriteMeta %+v, want a non-zero index", wm)
	}
	i1 := wm.Index
	p := wantValue(t, s, "cas/k", []byte("v1"))
	if p.ModifyIndex != i1 {
		t.Fatalf("ModifyIndex %d, want the CAS's index %d", p.ModifyIndex, i1)
	}

	ok, wm, err = s.CAS(ctx, &backends.KVPair{Key: "cas/k", Value: []byte("create-again"), ModifyIndex: 0})
	if err != nil || ok {
		t.Fatalf("CAS create (index 0) on an existing key: ok=%v err=%v, want false, nil", ok, err)
	}
	if wm != nil && wm.Index != 0 {
		t.Fatalf("failed CAS: WriteMeta.Index %d, want 0", wm.Index)
	}
	wantValue(t, s, "cas/k", []byte("v1"))

	ok, wm, err = s.CAS(ctx, &backends.KVPair{Key: "cas/k", Value: []byte("v2"), ModifyIndex: i1})
	if err != nil || !ok {
		t.Fatalf("CAS at the current index: ok=%v err=%v", ok, err)
	}
	i2 := wm.Index
	if i2 <= i1 {
		t.Fatalf("CAS index %d, want > %d", i2, i1)
	}

	// A stale index (the one just replaced) is a conflict.
	ok, wm, err = s.CAS(ctx, &backends.KVPair{Key: "cas/k", Value: []byte("stale"), ModifyIndex: i1})
	if err != nil || ok {
		t.Fatalf("CAS at a stale index: ok=%v err=%v, want false, nil", ok, err)
	}
	if wm != nil && wm.Index != 0 {
		t.Fatalf("failed CAS: WriteMeta.Index %d, want 0", wm.Index)
	}
	// A future index is a conflict too.
	ok, _, err = s.CAS(ctx, &backends.KVPair{Key: "cas/k", Value: []byte("future"), ModifyIndex: i2 + 1000})
	if err != nil || ok {
		t.Fatalf("CAS at a future index: ok=%v err=%v, want false, nil", ok, err)
	}
	p = wantValue(t, s, "cas/k", []byte("v2"))
	if p.ModifyIndex != i2 || p.CreateIndex != i1 {
		t.Fatalf("after conflicts: CreateIndex %d ModifyIndex %d, want %d %d", p.CreateIndex, p.ModifyIndex, i1, i2)
	}

	// CAS with a non-zero index on an absent key fails.
	ok, _, err = s.CAS(ctx, &backends.KVPair{Key: "cas/absent", Value: []byte("x"), ModifyIndex: i2})
	if err != nil || ok {
		t.Fatalf("CAS with an index on an absent key: ok=%v err=%v, want false, nil", ok, err)
	}
	wantValue(t, s, "cas/absent", nil)

	// After a delete, index 0 creates again.
	if _, err := s.Delete(ctx, "cas/k"); err != nil {
		t.Fatal(err)
	}
	ok, _, err = s.CAS(ctx, &backends.KVPair{Key: "cas/k", Value: []byte("reborn"), ModifyIndex: 0})
	if err != nil || !ok {
		t.Fatalf("CAS create after delete: ok=%v err=%v", ok, err)
	}
	wantValue(t, s, "cas/k", []byte("reborn"))
}

func testDeleteCAS(t *testing.T, s backends.Store) {
	ctx := ctxT(t)
	i1 := mustPut(t, s, "dcas/k", []byte("v1"))
	i2 := mustPut(t, s, "dcas/k", []byte("v2"))
	ok, wm, err := s.DeleteCAS(ctx, "dcas/k", i1)
	if err != nil || ok {
		t.Fatalf("DeleteCAS at a stale index: ok=%v err=%v, want false, nil", ok, err)
	}
	if wm != nil && wm.Index != 0 {
		t.Fatalf("failed DeleteCAS: WriteMeta.Index %d, want 0", wm.Index)
	}
	wantValue(t, s, "dcas/k", []byte("v2"))
	ok, _, err = s.DeleteCAS(ctx, "dcas/k", i2)
	if err != nil || !ok {
		t.Fatalf("DeleteCAS at the current index: ok=%v err=%v", ok, err)
	}
	wantValue(t, s, "dcas/k", nil)
}

func testTxn(t *testing.T, s backends.Store) {
	ctx := ctxT(t)
	mustPut(t, s, "txn/old", []byte("old"))
	wm, err := s.Txn(ctx, []backends.TxnOp{
		{Verb: backends.TxnSet, Key: "txn/a", Value: []byte("A")},
		{Verb: backends.TxnSet, Key: "txn/b", Value: []byte("B")},
		{Verb: backends.TxnDelete, Key: "txn/old"},
	})
	if err != nil {
		t.Fatalf("Txn: %v", err)
	}
	if wm == nil || wm.Index == 0 {
		t.Fatalf("Txn: WriteMeta %+v, want a non-zero index", wm)
	}
	a := wantValue(t, s, "txn/a", []byte("A"))
	b := wantValue(t, s, "txn/b", []byte("B"))
	wantValue(t, s, "txn/old", nil)
	if a.ModifyIndex != wm.Index || b.ModifyIndex != wm.Index {
		t.Fatalf("keys written by one Txn at %d have ModifyIndex %d and %d; want one index for the whole transaction", wm.Index, a.ModifyIndex, b.ModifyIndex)
	}
	_, last := mustList(t, s, "txn/")
	if last != wm.Index {
		t.Fatalf("List LastIndex after Txn = %d, want %d", last, wm.Index)
	}
	// An empty transaction is fine and writes nothing.
	if _, err := s.Txn(ctx, nil); err != nil {
		t.Fatalf("empty Txn: %v", err)
	}
}

func testTxnAllOrNothing(t *testing.T, s backends.Store) {
	ctx := ctxT(t)
	ci := mustPut(t, s, "aon/c", []byte("c"))
	mustPut(t, s, "aon/d", []byte("d"))
	_, before := mustList(t, s, "aon/")

	wm, err := s.Txn(ctx, []backends.TxnOp{
		{Verb: backends.TxnSet, Key: "aon/a", Value: []byte("A")},
		{Verb: backends.TxnDelete, Key: "aon/d"},
		{Verb: backends.TxnSet, Key: "aon/c", Value: []byte("C")},
		{Verb: backends.TxnCheckIndex, Key: "aon/c", Index: ci}, // fails: op 2 changed it
		{Verb: backends.TxnSet, Key: "aon/e", Value: []byte("E")},
	})
	if err == nil {
		t.Fatal("Txn with a failing check succeeded")
	}
	var te *backends.TxnError
	if !errors.As(err, &te) {
		t.Fatalf("Txn error %v (%T), want a *backends.TxnError", err, err)
	}
	if !errors.Is(err, backends.ErrCASConflict) {
		t.Fatalf("Txn error %v does not match ErrCASConflict", err)
	}
	if te.OpIndex != 3 || te.Key != "aon/c" {
		t.Fatalf("TxnError names op %d (%q), want op 3 (aon/c)", te.OpIndex, te.Key)
	}
	if wm != nil && wm.Index != 0 {
		t.Fatalf("failed Txn: WriteMeta.Index %d, want 0", wm.Index)
	}
	wantValue(t, s, "aon/a", nil)
	wantValue(t, s, "aon/c", []byte("c"))
	wantValue(t, s, "aon/d", []byte("d"))
	wantValue(t, s, "aon/e", nil)
	ps, after := mustList(t, s, "aon/")
	if got := keysOf(ps); !equalStrings(got, []string{"aon/c", "aon/d"}) {
		t.Fatalf("keys after a failed Txn = %v, want [aon/c aon/d]", got)
	}
	if after != before {
		t.Fatalf("List LastIndex moved from %d to %d after a failed Txn", before, after)
	}

	// Each precondition verb fails the whole transaction the same way.
	fails := []backends.TxnOp{
		{Verb: backends.TxnCAS, Key: "aon/c", Value: []byte("x"), Index: ci + 1000},
		{Verb: backends.TxnCAS, Key: "aon/c", Value: []byte("x"), Index: 0},
		{Verb: backends.TxnDeleteCAS, Key: "aon/c", Index: ci + 1000},
		{Verb: backends.TxnCheckIndex, Key: "aon/c", Index: 0},
		{Verb: backends.TxnCheckIndex, Key: "aon/missing", Index: ci},
		{Verb: backends.TxnCheckNotExists, Key: "aon/c"},
	}
	for i, f := range fails {
		_, err := s.Txn(ctx, []backends.TxnOp{
			{Verb: backends.TxnSet, Key: "aon/z", Value: []byte("Z")},
			f,
		})
		if !errors.Is(err, backends.ErrCASConflict) || !errors.As(err, &te) || te.OpIndex != 1 {
			t.Fatalf("case %d (%s %s @%d): err = %v, want a TxnError at op 1 matching ErrCASConflict", i, f.Verb, f.Key, f.Index, err)
		}
		wantValue(t, s, "aon/z", nil)
		wantValue(t, s, "aon/c", []byte("c"))
	}
}

func testTxnVerbs(t *testing.T, s backends.Store) {
	ctx := ctxT(t)
	ki := mustPut(t, s, "verb/k", []byte("k"))
	di := mustPut(t, s, "verb/d", []byte("d"))
	wm, err := s.Txn(ctx, []backends.TxnOp{
		{Verb: backends.TxnCheckNotExists, Key: "verb/new"},
		{Verb: backends.TxnCheckIndex, Key: "verb/absent", Index: 0},
		{Verb: backends.TxnCAS, Key: "verb/new", Value: []byte("N"), Index: 0},
		{Verb: backends.TxnCheckIndex, Key: "verb/k", Index: ki},
		{Verb: backends.TxnCAS, Key: "verb/k", Value: []byte("K2"), Index: ki},
		{Verb: backends.TxnDeleteCAS, Key: "verb/d", Index: di},
		{Verb: backends.TxnDelete, Key: "verb/absent"},
	})
	if err != nil {
		t.Fatalf("Txn of passing preconditions: %v", err)
	}
	n := wantValue(t, s, "verb/new", []byte("N"))
	k := wantValue(t, s, "verb/k", []byte("K2"))
	wantValue(t, s, "verb/d", nil)
	if n.ModifyIndex != wm.Index || k.ModifyIndex != wm.Index || k.CreateIndex != ki {
		t.Fatalf("indexes after Txn at %d: new %d, k %d (created %d, want %d)", wm.Index, n.ModifyIndex, k.ModifyIndex, k.CreateIndex, ki)
	}
}

func testTxnLimit(t *testing.T, s backends.Store) {
	ctx := ctxT(t)
	ops := make([]backends.TxnOp, backends.MaxTxnOps+1)
	for i := range ops {
		ops[i] = backends.TxnOp{Verb: backends.TxnSet, Key: fmt.Sprintf("lim/%02d", i), Value: []byte{byte(i)}}
	}
	if _, err := s.Txn(ctx, ops); !errors.Is(err, backends.ErrTxnTooLarge) {
		t.Fatalf("Txn of %d ops: err = %v, want ErrTxnTooLarge", len(ops), err)
	}
	if ps, _ := mustList(t, s, "lim/"); len(ps) != 0 {
		t.Fatalf("a rejected Txn wrote %d keys", len(ps))
	}
	wm, err := s.Txn(ctx, ops[:backends.MaxTxnOps])
	if err != nil {
		t.Fatalf("Txn of exactly %d ops: %v", backends.MaxTxnOps, err)
	}
	ps, last := mustList(t, s, "lim/")
	if len(ps) != backends.MaxTxnOps || last != wm.Index {
		t.Fatalf("after a %d-op Txn: %d keys, LastIndex %d (Txn at %d)", backends.MaxTxnOps, len(ps), last, wm.Index)
	}
}

func testInvalidKey(t *testing.T, s backends.Store) {
	ctx := ctxT(t)
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, backends.ErrInvalidKey) {
			t.Errorf("%s with an empty key: err = %v, want ErrInvalidKey", op, err)
		}
	}
	_, _, err := s.Get(ctx, "", nil)
	check("Get", err)
	_, err = s.Put(ctx, &backends.KVPair{Key: "", Value: []byte("x")})
	check("Put", err)
	_, _, err = s.CAS(ctx, &backends.KVPair{Key: "", Value: []byte("x")})
	check("CAS", err)
	_, err = s.Delete(ctx, "")
	check("Delete", err)
	_, _, err = s.DeleteCAS(ctx, "", 1)
	check("DeleteCAS", err)
	_, err = s.Txn(ctx, []backends.TxnOp{
		{Verb: backends.TxnSet, Key: "inv/ok", Value: []byte("x")},
		{Verb: backends.TxnSet, Key: "", Value: []byte("x")},
	})
	check("Txn", err)
	if ps, _ := mustList(t, s, ""); len(ps) != 0 {
		t.Fatalf("invalid writes left keys behind: %v", keysOf(ps))
	}
}

// OddKeys are keys a Store must hold as they are.
var OddKeys = []string{
	"odd/with space",
	"odd/ünïcødé/ключ/键",
	"odd/per%cent%20and%2F",
	"odd/colon:key:1",
	"odd/question?mark=1&and=2",
	"odd/hash#tag",
	"odd/plus+sign",
	"odd/semi;colon,comma",
	"odd/quote\"and'apos",
	"odd/back\\slash",
	"odd/emoji-🚢",
	"odd/brackets[0]{x}<y>",
	"odd/tilde~star*bang!at@dollar$",
	"odd/trailing/",
}

func testOddKeys(t *testing.T, s backends.Store) {
	ctx := ctxT(t)
	for _, k := range OddKeys {
		mustPut(t, s, k, []byte("v:"+k))
	}
	for _, k := range OddKeys {
		wantValue(t, s, k, []byte("v:"+k))
	}
	ps, _ := mustList(t, s, "odd/")
	want := append([]string(nil), OddKeys...)
	sort.Strings(want)
	if got := keysOf(ps); !equalStrings(got, want) {
		t.Fatalf("List(odd/) = %q\nwant %q", got, want)
	}
	ps, _ = mustList(t, s, "odd/ünïcødé/")
	if got := keysOf(ps); !equalStrings(got, []string{"odd/ünïcødé/ключ/键"}) {
		t.Fatalf("List with a unicode prefix = %q", got)
	}
	ok, _, err := s.CAS(ctx, &backends.KVPair{Key: "odd/with space", Value: []byte("cas"), ModifyIndex: ps[0].ModifyIndex + 100000})
	if err != nil || ok {
		t.Fatalf("CAS conflict on an odd key: ok=%v err=%v", ok, err)
	}
	if _, err := s.Txn(ctx, []backends.TxnOp{
		{Verb: backends.TxnSet, Key: "odd/txn ключ%3A", Value: []byte("t")},
		{Verb: backends.TxnDelete, Key: "odd/hash#tag"},
	}); err != nil {
		t.Fatalf("Txn on odd keys: %v", err)
	}
	wantValue(t, s, "odd/txn ключ%3A", []byte("t"))
	wantValue(t, s, "odd/hash#tag", nil)
	for _, k := range OddKeys {
		if _, err := s.Delete(ctx, k); err != nil {
			t.Fatalf("Delete(%q): %v", k, err)
		}
	}
	ps, _ = mustList(t, s, "odd/")
	if got := keysOf(ps); !equalStrings(got, []string{"odd/txn ключ%3A"}) {
		t.Fatalf("after deleting the odd keys, List = %q", got)
	}
}

// LargeValueSize is the size of the large values the suite writes: large,
// yet under Consul's default 512 KiB limit even base64-encoded in a Txn.
const LargeValueSize = 256 << 10

func testLargeValues(t *testing.T, s backends.Store) {
	big := make([]byte, LargeValueSize)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "large/random", big)
	wantValue(t, s, "large/random", big)

	all := make([]byte, 256*4)
	for i := range all {
		all[i] = byte(i)
	}
	mustPut(t, s, "large/every-byte", all)
	wantValue(t, s, "large/every-byte", all)

	_, err := s.Txn(ctxT(t), []backends.TxnOp{
		{Verb: backends.TxnSet, Key: "large/txn", Value: big[:LargeValueSize/2]},
	})
	if err != nil {
		t.Fatalf("Txn with a %d-byte value: %v", LargeValueSize/2, err)
	}
	wantValue(t, s, "large/txn", big[:LargeValueSize/2])
	ps, _ := mustList(t, s, "large/")
	if len(ps) != 3 || !bytes.Equal(ps[0].Value, all) || !bytes.Equal(ps[1].Value, big) {
		t.Fatalf("List of large values: %d pairs or wrong contents", len(ps))
	}
}

type result struct {
	pairs []*backends.KVPair
	pair  *backends.KVPair
	index uint64
	err   error
	took  time.Duration
}

// watchGet starts a blocking Get in the background.
func watchGet(ctx context.Context, s backends.Store, key string, q *backends.QueryOptions) <-chan result {
	ch := make(chan result, 1)
	go func() {
		start := time.Now()
		p, qm, err := s.Get(ctx, key, q)
		r := result{pair: p, err: err, took: time.Since(start)}
		if qm != nil {
			r.index = qm.LastIndex
		}
		ch <- r
	}()
	return ch
}

// watchList starts a blocking List in the background.
func watchList(ctx context.Context, s backends.Store, prefix string, q *backends.QueryOptions) <-chan result {
	ch := make(chan result, 1)
	go func() {
		start := time.Now()
		ps, qm, err := s.List(ctx, prefix, q)
		r := result{pairs: ps, err: err, took: time.Since(start)}
		if qm != nil {
			r.index = qm.LastIndex
		}
		ch <- r
	}()
	return ch
}

// longWait is the WaitTime of watches that must be woken by a change: a watch
// that returns well before it was woken, not by timing out.
const longWait = 2 * time.Minute

func await(t testing.TB, ch <-chan result) result {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("watch returned an error: %v", r.err)
		}
		return r
	case <-time.After(testTimeout):
		t.Fatalf("watch did not return within %v", testTimeout)
	}
	return result{}
}

// settle gives a background watch a moment to start blocking. The suite's
// assertions hold whether or not it has: a change made before the watch
// starts makes it return at once.
func settle() { time.Sleep(30 * time.Millisecond) }

func testWatchGetWakes(t *testing.T, s backends.Store) {
	ctx := ctxT(t)
	idx := mustPut(t, s, "wg/k", []byte("v1"))
	ch := watchGet(ctx, s, "wg/k", &backends.QueryOptions{WaitIndex: idx, WaitTime: longWait})
	settle()
	select {
	case r := <-ch:
		t.Fatalf("watch returned before any change: %+v", r)
	default:
	}
	idx2 := mustPut(t, s, "wg/k", []byte("v2"))
	r := await(t, ch)
	if r.pair == nil || string(r.pair.Value) != "v2" || r.index != idx2 {
		t.Fatalf("woken Get = %+v at %d, want v2 at %d", r.pair, r.index, idx2)
	}
	if r.took >= longWait {
		t.Fatalf("watch took %v: it timed out instead of waking", r.took)
	}
}

func testWatchGetWakesOnDelete(t *testing.T, s backends.Store) {
	ctx := ctxT(t)
	idx := mustPut(t, s, "wgd/k", []byte("v1"))
	ch := watchGet(ctx, s, "wgd/k", &backends.QueryOptions{WaitIndex: idx, WaitTime: longWait})
	settle()
	if _, err := s.Delete(ctx, "wgd/k"); err != nil {
		t.Fatal(err)
	}
	r := await(t, ch)
	if r.pair != nil || r.index <= idx {
		t.Fatalf("Get woken by a delete = %+v at %d, want absent at an index > %d", r.pair, r.index, idx)
	}
}

func testWatchGetWakesOnCreate(t *testing.T, s backends.Store) {
	ctx := ctxT(t)
	mustPut(t, s, "wgc/other", []byte("o"))
	p, idx := mustGet(t, s, "wgc/k")
	if p != nil || idx == 0 {
		t.Fatalf("Get of an absent key = %+v at %d, want absent at a non-zero index to wait on", p, idx)
	}
	ch := watchGet(ctx, s, "wgc/k", &backends.QueryOptions{WaitIndex: idx, WaitTime: longWait})
	settle()
	ci := mustPut(t, s, "wgc/k", []byte("born"))
	// Any wake-up is allowed to be early (the index of an absent key may be
	// the store's); loop until the key shows, within a bound.
	for i := 0; ; i++ {
		r := await(t, ch)
		if r.pair != nil {
			if string(r.pair.Value) != "born" || r.index != ci {
				t.Fatalf("woken Get = %q at %d, want born at %d", r.pair.Value, r.index, ci)
			}
			return
		}
		if i > 100 || r.index <= idx {
			t.Fatalf("watch on an absent key returned absent at %d (waiting from %d) after its creation", r.index, idx)
		}
		idx = r.index
		ch = watchGet(ctx, s, "wgc/k", &backends.QueryOptions{WaitIndex: idx, WaitTime: longWait})
	}
}

func testWatchListWakesOnCreate(t *testing.T, s backends.Store) {
	ctx := ctxT(t)
	mustPut(t, s, "wlc-other/x", []byte("o"))
	ps, idx := mustList(t, s, "wlc/")
	if len(ps) != 0 || idx == 0 {
		t.Fatalf("List of an empty prefix = %v at %d, want empty at a non-zero index to wait on", keysOf(ps), idx)
	}
	ch := watchList(ctx, s, "wlc/", &backends.QueryOptions{WaitIndex: idx, WaitTime: longWait})
	settle()
	ci := mustPut(t, s, "wlc/first", []byte("1"))
	for i := 0; ; i++ {
		r := await(t, ch)
		if len(r.pairs) > 0 {
			if got := keysOf(r.pairs); !equalStrings(got, []string{"wlc/first"}) || r.index != ci {
				t.Fatalf("woken List = %v at %d, want [wlc/first] at %d", got, r.index, ci)
			}
			return
		}
		if i > 100 || r.index <= idx {
			t.Fatalf("watch on an empty prefix returned empty at %d (waiting from %d) after a write under it", r.index, idx)
		}
		idx = r.index
		ch = watchList(ctx, s, "wlc/", &backends.QueryOptions{WaitIndex: idx, WaitTime: longWait})
	}
}

func testWatchListWakes(t *testing.T, s backends.Store) {
	ctx := ctxT(t)
	mustPut(t, s, "wl/a", []byte("a"))
	_, idx := mustList(t, s, "wl/")
	ch := watchList(ctx, s, "wl/", &backends.QueryOptions{WaitIndex: idx, WaitTime: longWait})
	settle()
	idx2 := mustPut(t, s, "wl/b", []byte("b"))
	r := await(t, ch)
	if got := keysOf(r.pairs); !equalStrings(got, []string{"wl/a", "wl/b"}) || r.index != idx2 {
		t.Fatalf("woken List = %v at %d, want [wl/a wl/b] at %d", got, r.index, idx2)
	}
}

func testWatchListWakesOnDelete(t *testing.T, s backends.Store) {
	ctx := ctxT(t)
	mustPut(t, s, "wld/a", []byte("a"))
	mustPut(t, s, "wld/b", []byte("b"))
	_, idx := mustList(t, s, "wld/")
	ch := watchList(ctx, s, "wld/", &backends.QueryOptions{WaitIndex: idx, WaitTime: longWait})
	settle()
	if _, err := s.Delete(ctx, "wld/a"); err != nil {
		t.Fatal(err)
	}
	r := await(t, ch)
	if got := keysOf(r.pairs); !equalStrings(got, []string{"wld/b"}) || r.index <= idx {
		t.Fatalf("List woken by a delete = %v at %d, want [wld/b] at > %d", got, r.index, idx)
	}
	// The index stays advanced: a watch from the new index blocks again.
	_, now := mustList(t, s, "wld/")
	if now != r.index {
		t.Fatalf("List LastIndex after the delete = %d, the woken watch saw %d", now, r.index)
	}
	// Deleting the last key empties the prefix and still wakes the watch.
	ch = watchList(ctx, s, "wld/", &backends.QueryOptions{WaitIndex: now, WaitTime: longWait})
	settle()
	if _, err := s.Delete(ctx, "wld/b"); err != nil {
		t.Fatal(err)
	}
	r = await(t, ch)
	if len(r.pairs) != 0 || r.index <= now {
		t.Fatalf("List woken by deleting the last key = %v at %d, want empty at > %d", keysOf(r.pairs), r.index, now)
	}
}

func testWatchListWakesOnDeleteTree(t *testing.T, s backends.Store) {
	ctx := ctxT(t)
	mustPut(t, s, "wlt/a/1", []byte("1"))
	mustPut(t, s, "wlt/a/2", []byte("2"))
	mustPut(t, s, "wlt/b", []byte("b"))
	_, idx := mustList(t, s, "wlt/")
	ch := watchList(ctx, s, "wlt/", &backends.QueryOptions{WaitIndex: idx, WaitTime: longWait})
	settle()
	if _, err := s.DeleteTree(ctx, "wlt/a/"); err != nil {
		t.Fatal(err)
	}
	r := await(t, ch)
	if got := keysOf(r.pairs); !equalStrings(got, []string{"wlt/b"}) || r.index <= idx {
		t.Fatalf("List woken by DeleteTree = %v at %d, want [wlt/b] at > %d", got, r.index, idx)
	}
}

func testWatchListWakesOnTxn(t *testing.T, s backends.Store) {
	ctx := ctxT(t)
	mustPut(t, s, "wtx/a", []byte("a"))
	_, idx := mustList(t, s, "wtx/")
	ch := watchList(ctx, s, "wtx/", &backends.QueryOptions{WaitIndex: idx, WaitTime: longWait})
	settle()
	wm, err := s.Txn(ctx, []backends.TxnOp{
		{Verb: backends.TxnDelete, Key: "wtx/a"},
		{Verb: backends.TxnSet, Key: "wtx/b", Value: []byte("b")},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := await(t, ch)
	if got := keysOf(r.pairs); !equalStrings(got, []string{"wtx/b"}) || r.index != wm.Index {
		t.Fatalf("List woken by a Txn = %v at %d, want [wtx/b] at %d", got, r.index, wm.Index)
	}
}

// shortWait is the WaitTime of watches that must time out.
const shortWait = 300 * time.Millisecond

func testWatchTimesOut(t *testing.T, s backends.Store) {
	ctx := ctxT(t)
	idx := mustPut(t, s, "wto/k", []byte("v"))
	r := await(t, watchGet(ctx, s, "wto/k", &backends.QueryOptions{WaitIndex: idx, WaitTime: shortWait}))
	if r.pair == nil || string(r.pair.Value) != "v" || r.index != idx {
		t.Fatalf("timed-out Get = %+v at %d, want the current value at the unchanged index %d", r.pair, r.index, idx)
	}
	if r.took < shortWait*9/10 {
		t.Fatalf("Get with WaitIndex=%d returned after %v, before its WaitTime %v, with nothing changed", idx, r.took, shortWait)
	}
	_, lidx := mustList(t, s, "wto/")
	r = await(t, watchList(ctx, s, "wto/", &backends.QueryOptions{WaitIndex: lidx, WaitTime: shortWait}))
	if got := keysOf(r.pairs); !equalStrings(got, []string{"wto/k"}) || r.index != lidx {
		t.Fatalf("timed-out List = %v at %d, want [wto/k] at %d", got, r.index, lidx)
	}
	if r.took < shortWait*9/10 {
		t.Fatalf("List with WaitIndex=%d returned after %v, before its WaitTime %v, with nothing changed", lidx, r.took, shortWait)
	}
}

func testWatchIgnoresOtherPrefixes(t *testing.T, s backends.Store) {
	ctx := ctxT(t)
	mustPut(t, s, "wip/mine/a", []byte("a"))
	mustPut(t, s, "wip/other/x", []byte("x"))
	_, idx := mustList(t, s, "wip/mine/")
	ch := watchList(ctx, s, "wip/mine/", &backends.QueryOptions{WaitIndex: idx, WaitTime: shortWait})
	settle()
	mustPut(t, s, "wip/other/x", []byte("x2"))
	mustPut(t, s, "wip/other/y", []byte("y"))
	if _, err := s.Delete(ctx, "wip/other/x"); err != nil {
		t.Fatal(err)
	}
	r := await(t, ch)
	if r.index != idx || r.took < shortWait*9/10 {
		t.Fatalf("List(wip/mine/) returned after %v at %d (watching from %d): woken by changes outside its prefix", r.took, r.index, idx)
	}
}

func testWatchStaleIndex(t *testing.T, s backends.Store) {
	ctx := ctxT(t)
	i1 := mustPut(t, s, "stale/k", []byte("v1"))
	i2 := mustPut(t, s, "stale/k", []byte("v2"))
	r := await(t, watchGet(ctx, s, "stale/k", &backends.QueryOptions{WaitIndex: i1, WaitTime: longWait}))
	if r.pair == nil || string(r.pair.Value) != "v2" || r.index != i2 {
		t.Fatalf("Get with a stale WaitIndex = %+v at %d, want v2 at %d at once", r.pair, r.index, i2)
	}
	r = await(t, watchList(ctx, s, "stale/", &backends.QueryOptions{WaitIndex: i1, WaitTime: longWait}))
	if len(r.pairs) != 1 || r.index != i2 {
		t.Fatalf("List with a stale WaitIndex = %v at %d, want at once at %d", keysOf(r.pairs), r.index, i2)
	}
}

func testContextCanceledWatch(t *testing.T, s backends.Store) {
	idx := mustPut(t, s, "cc/k", []byte("v"))
	for _, kind := range []string{"Get", "List"} {
		ctx, cancel := context.WithCancel(ctxT(t))
		var ch <-chan result
		q := &backends.QueryOptions{WaitIndex: idx, WaitTime: longWait}
		if kind == "Get" {
			ch = watchGet(ctx, s, "cc/k", q)
		} else {
			ch = watchList(ctx, s, "cc/", q)
		}
		settle()
		cancel()
		select {
		case r := <-ch:
			if !errors.Is(r.err, context.Canceled) {
				t.Fatalf("blocking %s after cancel: err = %v, want context.Canceled", kind, r.err)
			}
		case <-time.After(testTimeout):
			t.Fatalf("blocking %s ignored the cancelled context", kind)
		}
	}
}

func testContextDeadlineWatch(t *testing.T, s backends.Store) {
	idx := mustPut(t, s, "cd/k", []byte("v"))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	ch := watchList(ctx, s, "cd/", &backends.QueryOptions{WaitIndex: idx, WaitTime: longWait})
	select {
	case r := <-ch:
		// Either answer honours the deadline: an error saying so, or the
		// unchanged data as if WaitTime had been the deadline.
		if r.err != nil && !errors.Is(r.err, context.DeadlineExceeded) {
			t.Fatalf("blocking List past its deadline: err = %v, want context.DeadlineExceeded", r.err)
		}
		if r.err == nil && r.index != idx {
			t.Fatalf("blocking List past its deadline: index %d, want unchanged %d", r.index, idx)
		}
	case <-time.After(testTimeout):
		t.Fatal("blocking List ignored its context's deadline")
	}
}

func testContextCanceledWrite(t *testing.T, s backends.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Put(ctx, &backends.KVPair{Key: "ccw/put", Value: []byte("x")}); err == nil {
		t.Error("Put with a cancelled context succeeded")
	}
	if _, _, err := s.CAS(ctx, &backends.KVPair{Key: "ccw/cas", Value: []byte("x")}); err == nil {
		t.Error("CAS with a cancelled context succeeded")
	}
	if _, err := s.Txn(ctx, []backends.TxnOp{{Verb: backends.TxnSet, Key: "ccw/txn", Value: []byte("x")}}); err == nil {
		t.Error("Txn with a cancelled context succeeded")
	}
	if _, _, err := s.Get(ctx, "ccw/put", nil); err == nil {
		t.Error("Get with a cancelled context succeeded")
	}
	if ps, _ := mustList(t, s, "ccw/"); len(ps) != 0 {
		t.Fatalf("writes with a cancelled context left %v", keysOf(ps))
	}
}

// Concurrency of the read-modify-write test: 64 writers, each adding
// perWriter increments to one counter through CAS.
const (
	writers   = 64
	perWriter = 5
)

func testConcurrentCASCounter(t *testing.T, s backends.Store) {
	ctx := ctxT(t)
	const key = "counter/n"
	var wg sync.WaitGroup
	errs := make(chan error, writers*(perWriter+1)) // never blocks a writer
	var mu sync.Mutex
	seen := map[uint64]bool{} // every successful CAS got its own index
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < perWriter; n++ {
				if err := incr(ctx, s, key, func(idx uint64) {
					mu.Lock()
					defer mu.Unlock()
					if seen[idx] {
						errs <- fmt.Errorf("two successful CAS writes reported index %d", idx)
					}
					seen[idx] = true
				}); err != nil {
					errs <- err
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
	p := wantValue(t, s, key, []byte(strconv.Itoa(writers*perWriter)))
	if len(seen) != writers*perWriter {
		t.Fatalf("%d distinct successful CAS indexes, want %d", len(seen), writers*perWriter)
	}
	_ = p
}

// incr adds one to the decimal counter at key with a read-modify-write loop.
func incr(ctx context.Context, s backends.Store, key string, won func(uint64)) error {
	const maxAttempts = 20000
	for attempt := 0; attempt < maxAttempts; attempt++ {
		p, _, err := s.Get(ctx, key, nil)
		if err != nil {
			return fmt.Errorf("Get: %w", err)
		}
		var n int
		var idx uint64
		if p != nil {
			n, err = strconv.Atoi(string(p.Value))
			if err != nil {
				return fmt.Errorf("counter holds %q", p.Value)
			}
			idx = p.ModifyIndex
		}
		ok, wm, err := s.CAS(ctx, &backends.KVPair{Key: key, Value: []byte(strconv.Itoa(n + 1)), ModifyIndex: idx})
		if err != nil {
			return fmt.Errorf("CAS: %w", err)
		}
		if ok {
			if wm == nil || wm.Index <= idx {
				return fmt.Errorf("successful CAS from %d reported WriteMeta %+v", idx, wm)
			}
			won(wm.Index)
			return nil
		}
		// Back off a little, with jitter, so that 64 writers converge.
		if attempt > 2 {
			time.Sleep(time.Duration(mrand.IntN(200*min(attempt, 10))) * time.Microsecond)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return fmt.Errorf("no successful CAS on %s in %d attempts", key, maxAttempts)
}

// testConcurrentTxnTransfers moves units between accounts with guarded
// transactions; the total must be conserved.
func testConcurrentTxnTransfers(t *testing.T, s backends.Store) {
	ctx := ctxT(t)
	const accounts, start, workers, moves = 4, 100, 16, 10
	for i := 0; i < accounts; i++ {
		mustPut(t, s, fmt.Sprintf("bank/%d", i), []byte(strconv.Itoa(start)))
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := mrand.New(mrand.NewPCG(uint64(w), 7))
			for m := 0; m < moves; m++ {
				from, to := r.IntN(accounts), r.IntN(accounts-1)
				if to >= from {
					to++
				}
				if err := transfer(ctx, s, fmt.Sprintf("bank/%d", from), fmt.Sprintf("bank/%d", to)); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ps, _ := mustList(t, s, "bank/")
	total := 0
	for _, p := range ps {
		n, err := strconv.Atoi(string(p.Value))
		if err != nil {
			t.Fatalf("%s holds %q", p.Key, p.Value)
		}
		total += n
	}
	if len(ps) != accounts || total != accounts*start {
		t.Fatalf("after transfers: %d accounts, total %d; want %d, %d", len(ps), total, accounts, accounts*start)
	}
}

func transfer(ctx context.Context, s backends.Store, from, to string) error {
	for attempt := 0; attempt < 20000; attempt++ {
		a, _, err := s.Get(ctx, from, nil)
		if err != nil {
			return err
		}
		b, _, err := s.Get(ctx, to, nil)
		if err != nil {
			return err
		}
		if a == nil || b == nil {
			return fmt.Errorf("account vanished")
		}
		na, _ := strconv.Atoi(string(a.Value))
		nb, _ := strconv.Atoi(string(b.Value))
		_, err = s.Txn(ctx, []backends.TxnOp{
			{Verb: backends.TxnCAS, Key: from, Value: []byte(strconv.Itoa(na - 1)), Index: a.ModifyIndex},
			{Verb: backends.TxnCAS, Key: to, Value: []byte(strconv.Itoa(nb + 1)), Index: b.ModifyIndex},
		})
		if err == nil {
			return nil
		}
		if !errors.Is(err, backends.ErrCASConflict) {
			return err
		}
		if attempt > 2 {
			time.Sleep(time.Duration(mrand.IntN(200*min(attempt, 10))) * time.Microsecond)
		}
	}
	return fmt.Errorf("transfer %s -> %s never committed", from, to)
}

func testHealth(t *testing.T, s backends.Store) {
	if err := s.Health(ctxT(t)); err != nil {
		t.Fatalf("Health of a fresh store: %v", err)
	}
}
