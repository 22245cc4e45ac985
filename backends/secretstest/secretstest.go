// Package secretstest is the conformance suite for backends.Secrets. Every
// Secrets implementation runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		secretstest.Run(t, func(t testing.TB) backends.Secrets { ... a fresh, empty backend ... })
//	}
//
// The factory must return a fresh, empty backend for every call (one rooted
// at a unique path prefix is fine) and arrange its cleanup with t.Cleanup.
// The suite assumes implementations keep at least MinVersions versions.
package secretstest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
)

// MinVersions is the number of recent versions every implementation must keep.
const MinVersions = 5

const testTimeout = 30 * time.Second

// Run runs the whole conformance suite against the backends factory returns.
func Run(t *testing.T, factory func(t testing.TB) backends.Secrets) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s backends.Secrets)
	}{
		{"PutGet", testPutGet},
		{"GetMissing", testGetMissing},
		{"Versions", testVersions},
		{"Delete", testDelete},
		{"List", testList},
		{"InvalidPaths", testInvalidPaths},
		{"OddPaths", testOddPaths},
		{"OddValues", testOddValues},
		{"LargeValues", testLargeValues},
		{"DataIsCopied", testDataIsCopied},
		{"ContextCanceled", testContextCanceled},
		{"ConcurrentPuts", testConcurrentPuts},
		{"ConcurrentPaths", testConcurrentPaths},
		{"PutCAS", testPutCAS},
		{"PutCASAfterDelete", testPutCASAfterDelete},
		{"ConcurrentCAS", testConcurrentCAS},
		{"Health", testHealth},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := factory(t)
			if s == nil {
				t.Fatal("factory returned a nil Secrets")
			}
			tc.fn(t, s)
		})
	}
}

// Bench runs the Secrets benchmarks: "Get" (latest version of a small
// secret) and "Put" (a new version of one secret).
func Bench(b *testing.B, factory func(t testing.TB) backends.Secrets) {
	data := map[string]string{
		"username": "app_hello",
		"password": strings.Repeat("p", 32),
		"host":     "127.0.0.1",
		"port":     "3306",
	}
	b.Run("Get", func(b *testing.B) {
		s := factory(b)
		ctx := context.Background()
		if _, err := s.Put(ctx, "bench/get", data); err != nil {
			b.Fatalf("Put: %v", err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			sec, err := s.Get(ctx, "bench/get", 0)
			if err != nil || sec == nil {
				b.Fatalf("Get: %v", err)
			}
		}
	})
	b.Run("Put", func(b *testing.B) {
		s := factory(b)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := s.Put(ctx, "bench/put", data); err != nil {
				b.Fatalf("Put: %v", err)
			}
		}
	})
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

func mustPut(t testing.TB, s backends.Secrets, path string, data map[string]string) int {
	t.Helper()
	v, err := s.Put(ctxT(t), path, data)
	if err != nil {
		t.Fatalf("Put(%q): %v", path, err)
	}
	if v < 1 {
		t.Fatalf("Put(%q) returned version %d, want >= 1", path, v)
	}
	return v
}

func mustGet(t testing.TB, s backends.Secrets, path string, version int) *backends.Secret {
	t.Helper()
	sec, err := s.Get(ctxT(t), path, version)
	if err != nil {
		t.Fatalf("Get(%q, %d): %v", path, version, err)
	}
	if sec == nil {
		t.Fatalf("Get(%q, %d): nil secret and nil error", path, version)
	}
	if sec.Path != path {
		t.Fatalf("Get(%q, %d) returned path %q", path, version, sec.Path)
	}
	return sec
}

func wantData(t testing.TB, sec *backends.Secret, want map[string]string) {
	t.Helper()
	if len(sec.Data) != len(want) {
		t.Fatalf("%s v%d has %d values, want %d", sec.Path, sec.Version, len(sec.Data), len(want))
	}
	for k, v := range want {
		got, ok := sec.Data[k]
		if !ok || got != v {
			if len(got) > 40 {
				got = got[:40] + "..."
			}
			t.Fatalf("%s v%d: %q = %q (present %v), want the value put", sec.Path, sec.Version, k, got, ok)
		}
	}
}

func wantNotFound(t testing.TB, s backends.Secrets, path string, version int) {
	t.Helper()
	sec, err := s.Get(ctxT(t), path, version)
	if !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Get(%q, %d) = %+v, %v; want ErrNotFound", path, version, sec, err)
	}
}

func mustList(t testing.TB, s backends.Secrets, prefix string) []string {
	t.Helper()
	ps, err := s.List(ctxT(t), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return ps
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

func testPutGet(t *testing.T, s backends.Secrets) {
	data := map[string]string{"MYSQL_USER": "u_hello", "MYSQL_PASSWORD": "s3cr3t-value"}
	v := mustPut(t, s, "bindings/hello/mysql-1", data)
	if v != 1 {
		t.Fatalf("first Put returned version %d, want 1", v)
	}
	sec := mustGet(t, s, "bindings/hello/mysql-1", 0)
	if sec.Version != 1 {
		t.Fatalf("latest version %d, want 1", sec.Version)
	}
	wantData(t, sec, data)
	sec = mustGet(t, s, "bindings/hello/mysql-1", 1)
	wantData(t, sec, data)
}

func testGetMissing(t *testing.T, s backends.Secrets) {
	wantNotFound(t, s, "no/such/secret", 0)
	wantNotFound(t, s, "no/such/secret", 3)
	mustPut(t, s, "exists", map[string]string{"k": "v"})
	wantNotFound(t, s, "exists", 2)
	wantNotFound(t, s, "exists/child", 0)
	wantNotFound(t, s, "exi", 0)
}

func testVersions(t *testing.T, s backends.Secrets) {
	const path = "env/hello"
	n := MinVersions + 3
	for i := 1; i <= n; i++ {
		v := mustPut(t, s, path, map[string]string{"GREETING": fmt.Sprintf("hi-%d", i)})
		if v != i {
			t.Fatalf("Put #%d returned version %d, want %d", i, v, i)
		}
	}
	latest := mustGet(t, s, path, 0)
	if latest.Version != n {
		t.Fatalf("latest version %d, want %d", latest.Version, n)
	}
	wantData(t, latest, map[string]string{"GREETING": fmt.Sprintf("hi-%d", n)})
	for i := n - MinVersions + 1; i <= n; i++ {
		sec := mustGet(t, s, path, i)
		if sec.Version != i {
			t.Fatalf("Get version %d returned version %d", i, sec.Version)
		}
		wantData(t, sec, map[string]string{"GREETING": fmt.Sprintf("hi-%d", i)})
	}
	wantNotFound(t, s, path, n+1)
	// A new version replaces the whole map.
	v := mustPut(t, s, path, map[string]string{"OTHER": "x"})
	wantData(t, mustGet(t, s, path, v), map[string]string{"OTHER": "x"})
	if _, err := s.Get(ctxT(t), path, -1); err == nil {
		t.Fatal("Get of version -1 succeeded")
	}
}

func testDelete(t *testing.T, s backends.Secrets) {
	mustPut(t, s, "del/a", map[string]string{"k": "1"})
	mustPut(t, s, "del/a", map[string]string{"k": "2"})
	mustPut(t, s, "del/b", map[string]string{"k": "b"})
	if err := s.Delete(ctxT(t), "del/a"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	wantNotFound(t, s, "del/a", 0)
	wantNotFound(t, s, "del/a", 1)
	wantNotFound(t, s, "del/a", 2)
	wantData(t, mustGet(t, s, "del/b", 0), map[string]string{"k": "b"})
	if got := mustList(t, s, "del/"); !equalStrings(got, []string{"del/b"}) {
		t.Fatalf("List after Delete = %q", got)
	}
	if err := s.Delete(ctxT(t), "del/never"); err != nil {
		t.Fatalf("Delete of an absent path: %v, want success", err)
	}
	// A path written again after Delete holds only the new data.
	mustPut(t, s, "del/a", map[string]string{"k": "new"})
	wantData(t, mustGet(t, s, "del/a", 0), map[string]string{"k": "new"})
}

func testList(t *testing.T, s backends.Secrets) {
	paths := []string{"apps/b/env", "apps/a/env", "apps/a/bind/mysql", "appsx/y", "tokens/abc", "top"}
	for _, p := range paths {
		mustPut(t, s, p, map[string]string{"k": p})
	}
	if got, want := mustList(t, s, "apps/"), []string{"apps/a/bind/mysql", "apps/a/env", "apps/b/env"}; !equalStrings(got, want) {
		t.Fatalf("List(apps/) = %q, want %q (recursive, sorted)", got, want)
	}
	if got, want := mustList(t, s, "apps/a/"), []string{"apps/a/bind/mysql", "apps/a/env"}; !equalStrings(got, want) {
		t.Fatalf("List(apps/a/) = %q, want %q", got, want)
	}
	all := append([]string(nil), paths...)
	sort.Strings(all)
	if got := mustList(t, s, ""); !equalStrings(got, all) {
		t.Fatalf("List(\"\") = %q, want %q", got, all)
	}
	if got := mustList(t, s, "nothing/"); len(got) != 0 {
		t.Fatalf("List of an empty prefix = %q", got)
	}
	// Versions do not multiply entries.
	mustPut(t, s, "tokens/abc", map[string]string{"k": "v2"})
	if got := mustList(t, s, "tokens/"); !equalStrings(got, []string{"tokens/abc"}) {
		t.Fatalf("List(tokens/) = %q", got)
	}
}

// InvalidPaths are paths every implementation rejects with ErrInvalidKey.
var InvalidPaths = []string{"", "..", "a/../b", "../a", "a/..", "a//b", "/a", "a/", ".", "a/./b"}

func testInvalidPaths(t *testing.T, s backends.Secrets) {
	ctx := ctxT(t)
	for _, p := range InvalidPaths {
		if _, err := s.Put(ctx, p, map[string]string{"k": "v"}); !errors.Is(err, backends.ErrInvalidKey) {
			t.Errorf("Put(%q): err = %v, want ErrInvalidKey", p, err)
		}
		if _, err := s.Get(ctx, p, 0); !errors.Is(err, backends.ErrInvalidKey) {
			t.Errorf("Get(%q): err = %v, want ErrInvalidKey", p, err)
		}
		if err := s.Delete(ctx, p); !errors.Is(err, backends.ErrInvalidKey) {
			t.Errorf("Delete(%q): err = %v, want ErrInvalidKey", p, err)
		}
	}
	if got := mustList(t, s, ""); len(got) != 0 {
		t.Fatalf("rejected Puts left %q", got)
	}
}

// OddPaths are valid paths with characters that need care in URLs and files.
var OddPaths = []string{
	"odd/with space",
	"odd/ünïcødé/ключ",
	"odd/colon:x",
	"odd/per%cent",
	"odd/plus+and&amp",
	"odd/emoji-🔑",
}

func testOddPaths(t *testing.T, s backends.Secrets) {
	for _, p := range OddPaths {
		mustPut(t, s, p, map[string]string{"k": "v:" + p})
	}
	for _, p := range OddPaths {
		wantData(t, mustGet(t, s, p, 0), map[string]string{"k": "v:" + p})
	}
	want := append([]string(nil), OddPaths...)
	sort.Strings(want)
	if got := mustList(t, s, "odd/"); !equalStrings(got, want) {
		t.Fatalf("List(odd/) = %q, want %q", got, want)
	}
	for _, p := range OddPaths {
		if err := s.Delete(ctxT(t), p); err != nil {
			t.Fatalf("Delete(%q): %v", p, err)
		}
		wantNotFound(t, s, p, 0)
	}
}

func testOddValues(t *testing.T, s backends.Secrets) {
	data := map[string]string{
		"EMPTY":     "",
		"NEWLINES":  "line1\nline2\r\n",
		"UNICODE":   "pässwörd-密码-🔒",
		"QUOTES":    `"double" 'single' \back`,
		"JSONISH":   `{"a":[1,2]}`,
		"key.dots":  "dotted key",
		"lower_key": "x=y&z",
	}
	mustPut(t, s, "values/odd", data)
	wantData(t, mustGet(t, s, "values/odd", 0), data)
	mustPut(t, s, "values/empty", map[string]string{})
	if sec := mustGet(t, s, "values/empty", 0); len(sec.Data) != 0 {
		t.Fatalf("empty secret read back as %d values", len(sec.Data))
	}
}

func testLargeValues(t *testing.T, s backends.Secrets) {
	big := strings.Repeat("0123456789abcdef", 64<<10/16) // 64 KiB
	data := map[string]string{"CERT": big}
	for i := 0; i < 50; i++ {
		data[fmt.Sprintf("K%02d", i)] = strings.Repeat(string(rune('a'+i%26)), 100)
	}
	mustPut(t, s, "large/cert", data)
	wantData(t, mustGet(t, s, "large/cert", 0), data)
}

func testDataIsCopied(t *testing.T, s backends.Secrets) {
	in := map[string]string{"k": "original"}
	mustPut(t, s, "copy/x", in)
	in["k"] = "changed"
	in["extra"] = "added"
	sec := mustGet(t, s, "copy/x", 0)
	wantData(t, sec, map[string]string{"k": "original"})
	sec.Data["k"] = "mutated"
	wantData(t, mustGet(t, s, "copy/x", 0), map[string]string{"k": "original"})
}

func testContextCanceled(t *testing.T, s backends.Secrets) {
	mustPut(t, s, "ctx/existing", map[string]string{"k": "v"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Put(ctx, "ctx/new", map[string]string{"k": "v"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context: err = %v, want context.Canceled", err)
	}
	if _, err := s.Get(ctx, "ctx/existing", 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context: err = %v, want context.Canceled", err)
	}
	if err := s.Delete(ctx, "ctx/existing"); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete with a cancelled context: err = %v, want context.Canceled", err)
	}
	if _, err := s.List(ctx, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a cancelled context: err = %v, want context.Canceled", err)
	}
	if got := mustList(t, s, "ctx/"); !equalStrings(got, []string{"ctx/existing"}) {
		t.Fatalf("after cancelled calls List(ctx/) = %q, want [ctx/existing]", got)
	}
}

// testConcurrentPuts has 64 writers put one version each to one path: no
// version may be lost or handed out twice.
func testConcurrentPuts(t *testing.T, s backends.Secrets) {
	const writers = 64
	ctx := ctxT(t)
	var wg sync.WaitGroup
	versions := make([]int, writers)
	errs := make([]error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			versions[w], errs[w] = s.Put(ctx, "shared/path", map[string]string{"writer": fmt.Sprint(w)})
		}(w)
	}
	wg.Wait()
	seen := map[int]int{}
	for w := 0; w < writers; w++ {
		if errs[w] != nil {
			t.Fatalf("writer %d: %v", w, errs[w])
		}
		if prev, dup := seen[versions[w]]; dup {
			t.Fatalf("writers %d and %d both got version %d", prev, w, versions[w])
		}
		seen[versions[w]] = w
	}
	for v := 1; v <= writers; v++ {
		if _, ok := seen[v]; !ok {
			t.Fatalf("no writer got version %d", v)
		}
	}
	latest := mustGet(t, s, "shared/path", 0)
	if latest.Version != writers {
		t.Fatalf("latest version %d, want %d", latest.Version, writers)
	}
	wantData(t, latest, map[string]string{"writer": fmt.Sprint(seen[writers])})
	for v := writers - MinVersions + 1; v <= writers; v++ {
		wantData(t, mustGet(t, s, "shared/path", v), map[string]string{"writer": fmt.Sprint(seen[v])})
	}
}

func testConcurrentPaths(t *testing.T, s backends.Secrets) {
	const writers = 64
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			p := fmt.Sprintf("many/%02d", w)
			if _, err := s.Put(ctx, p, map[string]string{"w": fmt.Sprint(w)}); err != nil {
				errs <- err
				return
			}
			sec, err := s.Get(ctx, p, 0)
			if err != nil {
				errs <- err
				return
			}
			if sec.Data["w"] != fmt.Sprint(w) {
				errs <- fmt.Errorf("%s read back %q", p, sec.Data["w"])
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := mustList(t, s, "many/"); len(got) != writers {
		t.Fatalf("List(many/) has %d paths, want %d", len(got), writers)
	}
}

func testHealth(t *testing.T, s backends.Secrets) {
	if err := s.Health(ctxT(t)); err != nil {
		t.Fatalf("Health of a fresh backend: %v", err)
	}
}

// testPutCAS: version 0 creates only an absent secret, N writes only over
// version N, and a refused write changes nothing.
func testPutCAS(t *testing.T, s backends.Secrets) {
	ctx := ctxT(t)
	v, err := s.PutCAS(ctx, "cas/one", map[string]string{"a": "1"}, 0)
	if err != nil || v != 1 {
		t.Fatalf("PutCAS(absent, 0) = %d, %v; want 1, nil", v, err)
	}
	if _, err := s.PutCAS(ctx, "cas/one", map[string]string{"a": "x"}, 0); !errors.Is(err, backends.ErrCASMismatch) {
		t.Fatalf("PutCAS(existing, 0): err = %v, want ErrCASMismatch", err)
	}
	if _, err := s.PutCAS(ctx, "cas/one", map[string]string{"a": "x"}, 2); !errors.Is(err, backends.ErrCASMismatch) {
		t.Fatalf("PutCAS(at 1, 2): err = %v, want ErrCASMismatch", err)
	}
	if _, err := s.PutCAS(ctx, "cas/absent", map[string]string{"a": "x"}, 1); !errors.Is(err, backends.ErrCASMismatch) {
		t.Fatalf("PutCAS(absent, 1): err = %v, want ErrCASMismatch", err)
	}
	wantNotFound(t, s, "cas/absent", 0)
	sec := mustGet(t, s, "cas/one", 0)
	if sec.Version != 1 {
		t.Fatalf("after refused writes the version is %d, want 1", sec.Version)
	}
	wantData(t, sec, map[string]string{"a": "1"})
	v, err = s.PutCAS(ctx, "cas/one", map[string]string{"a": "2"}, 1)
	if err != nil || v != 2 {
		t.Fatalf("PutCAS(at 1, 1) = %d, %v; want 2, nil", v, err)
	}
	wantData(t, mustGet(t, s, "cas/one", 0), map[string]string{"a": "2"})
	// A plain Put moves the version on: the old CAS version no longer fits.
	mustPut(t, s, "cas/one", map[string]string{"a": "3"})
	if _, err := s.PutCAS(ctx, "cas/one", map[string]string{"a": "x"}, 2); !errors.Is(err, backends.ErrCASMismatch) {
		t.Fatalf("PutCAS after a Put with the old version: err = %v, want ErrCASMismatch", err)
	}
	wantData(t, mustGet(t, s, "cas/one", 0), map[string]string{"a": "3"})
	if _, err := s.PutCAS(ctx, "../bad", map[string]string{}, 0); !errors.Is(err, backends.ErrInvalidKey) {
		t.Fatalf("PutCAS(../bad): err = %v, want ErrInvalidKey", err)
	}
}

// testPutCASAfterDelete: a deleted secret is absent again for CAS (version 0).
func testPutCASAfterDelete(t *testing.T, s backends.Secrets) {
	ctx := ctxT(t)
	mustPut(t, s, "cas/del", map[string]string{"a": "1"})
	mustPut(t, s, "cas/del", map[string]string{"a": "2"})
	if err := s.Delete(ctx, "cas/del"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutCAS(ctx, "cas/del", map[string]string{"a": "x"}, 2); !errors.Is(err, backends.ErrCASMismatch) {
		t.Fatalf("PutCAS(deleted, 2): err = %v, want ErrCASMismatch", err)
	}
	if _, err := s.PutCAS(ctx, "cas/del", map[string]string{"a": "new"}, 0); err != nil {
		t.Fatalf("PutCAS(deleted, 0): %v", err)
	}
	wantData(t, mustGet(t, s, "cas/del", 0), map[string]string{"a": "new"})
}

// testConcurrentCAS has writers each add their own key to one shared map
// with a read-modify-write loop over PutCAS: every key must be there at the
// end (no lost update), and each successful CAS hands out a distinct version.
func testConcurrentCAS(t *testing.T, s backends.Secrets) {
	const writers = 24
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	var mu sync.Mutex
	won := map[int]int{}
	mismatches := 0
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for attempt := 0; attempt < 10*writers; attempt++ {
				cur, ver := map[string]string{}, 0
				sec, err := s.Get(ctx, "cas/shared", 0)
				switch {
				case err == nil:
					cur, ver = sec.Data, sec.Version
				case !errors.Is(err, backends.ErrNotFound):
					errs <- err
					return
				}
				next := make(map[string]string, len(cur)+1)
				for k, v := range cur {
					next[k] = v
				}
				next[fmt.Sprintf("k%02d", w)] = fmt.Sprint(w)
				v, err := s.PutCAS(ctx, "cas/shared", next, ver)
				if errors.Is(err, backends.ErrCASMismatch) {
					mu.Lock()
					mismatches++
					mu.Unlock()
					time.Sleep(time.Duration(attempt%5) * time.Millisecond)
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if prev, dup := won[v]; dup {
					errs <- fmt.Errorf("writers %d and %d both won version %d", prev, w, v)
				}
				won[v] = w
				return
			}
			errs <- fmt.Errorf("writer %d never won its check-and-set", w)
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	sec := mustGet(t, s, "cas/shared", 0)
	if sec.Version != writers {
		t.Errorf("latest version %d, want %d", sec.Version, writers)
	}
	for w := 0; w < writers; w++ {
		if sec.Data[fmt.Sprintf("k%02d", w)] != fmt.Sprint(w) {
			t.Errorf("key k%02d was lost (%d keys kept, %d mismatches seen)", w, len(sec.Data), mismatches)
		}
	}
}
