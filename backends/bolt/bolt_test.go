package bolt

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/storetest"
)

// The test binary doubles as a helper process that holds a store open, to
// test the file lock across processes.
const holdEnv = "BERTH_BOLT_TEST_HOLD"

func TestMain(m *testing.M) {
	if path := os.Getenv(holdEnv); path != "" {
		s, err := Open(path, Options{Timeout: time.Second})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("ready")
		// Hold the lock until the parent closes stdin (or a minute passes).
		done := make(chan struct{})
		go func() {
			_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(time.Minute):
		}
		_ = s.Close()
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

func openTemp(t testing.TB, opts Options) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "berth.db"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t testing.TB) backends.Store { return openTemp(t, Options{}) })
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(t testing.TB) backends.Store { return openTemp(t, Options{}) })
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestReopenKeepsDataAndIndex(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "dir", "berth.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	wm, err := s.Put(ctx(t), &backends.KVPair{Key: "apps/hello", Value: []byte("v1")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx(t), &backends.KVPair{Key: "apps/gone", Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	dm, err := s.Delete(ctx(t), "apps/gone")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("store file mode %v, want 0600", perm)
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if perm := di.Mode().Perm(); perm != 0o700 {
		t.Errorf("created directory mode %v, want 0700", perm)
	}

	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	p, _, err := s.Get(ctx(t), "apps/hello", nil)
	if err != nil || p == nil || string(p.Value) != "v1" || p.ModifyIndex != wm.Index {
		t.Fatalf("after reopen Get = %+v, %v; want v1 at %d", p, err, wm.Index)
	}
	// The delete is remembered: the prefix index is the delete's.
	_, qm, err := s.List(ctx(t), "apps/", nil)
	if err != nil || qm.LastIndex != dm.Index {
		t.Fatalf("after reopen List LastIndex = %v (%v), want the delete's index %d", qm, err, dm.Index)
	}
	wm2, err := s.Put(ctx(t), &backends.KVPair{Key: "apps/hello", Value: []byte("v2")})
	if err != nil {
		t.Fatal(err)
	}
	if wm2.Index <= dm.Index {
		t.Fatalf("first write after reopen at index %d, not after %d: the index went backwards", wm2.Index, dm.Index)
	}
}

func TestLockedByAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "berth.db")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holdEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("helper process: %q, %v", line, err)
	}

	start := time.Now()
	s, err := Open(path, Options{Timeout: 300 * time.Millisecond})
	took := time.Since(start)
	if err == nil {
		_ = s.Close()
		t.Fatal("Open of a file another process holds succeeded")
	}
	if !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("Open error %q does not say the file is locked", err)
	}
	if took > 20*time.Second {
		t.Fatalf("Open took %v with a 300ms timeout", took)
	}

	// Once the other process lets go, the file opens.
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper process: %v", err)
	}
	s, err = Open(path, Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("Open after the other process exited: %v", err)
	}
	_ = s.Close()
}

func TestInvalidKeys(t *testing.T) {
	s := openTemp(t, Options{NoSync: true})
	for _, k := range []string{"", "nul\x00byte", "new\nline", "tab\tkey", "bad\xffutf8", strings.Repeat("k", MaxKeyLen+1)} {
		if _, err := s.Put(ctx(t), &backends.KVPair{Key: k, Value: []byte("x")}); !errors.Is(err, backends.ErrInvalidKey) {
			t.Errorf("Put(%q): err = %v, want ErrInvalidKey", k, err)
		}
	}
	if _, _, err := s.List(ctx(t), "bad\x01", nil); !errors.Is(err, backends.ErrInvalidKey) {
		t.Errorf("List with a control character in the prefix: %v, want ErrInvalidKey", err)
	}
	if _, err := s.Txn(ctx(t), []backends.TxnOp{{Verb: "frobnicate", Key: "k"}}); err == nil {
		t.Error("Txn with an unknown verb succeeded")
	}
}

func TestClosed(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "berth.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	wm, err := s.Put(ctx(t), &backends.KVPair{Key: "k", Value: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := s.Get(ctx(t), "k", &backends.QueryOptions{WaitIndex: wm.Index, WaitTime: time.Minute})
		done <- err
	}()
	time.Sleep(30 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) && !errors.Is(err, backends.ErrUnavailable) {
			t.Fatalf("blocking Get on Close: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not wake a blocking Get")
	}
	if _, err := s.Put(ctx(t), &backends.KVPair{Key: "k", Value: []byte("v")}); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("Put after Close: %v, want ErrUnavailable", err)
	}
	if err := s.Health(ctx(t)); err == nil {
		t.Fatal("Health after Close succeeded")
	}
}

func TestReapedTombstonesKeepIndexesMonotonic(t *testing.T) {
	s := openTemp(t, Options{NoSync: true})
	if _, err := s.Put(ctx(t), &backends.KVPair{Key: "a/keep", Value: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx(t), &backends.KVPair{Key: "a/gone", Value: []byte("g")}); err != nil {
		t.Fatal(err)
	}
	dm, err := s.Delete(ctx(t), "a/gone")
	if err != nil {
		t.Fatal(err)
	}
	_, before, err := s.List(ctx(t), "a/", nil)
	if err != nil || before.LastIndex != dm.Index {
		t.Fatalf("List before reaping: %+v, %v; want index %d", before, err, dm.Index)
	}
	// A watcher from before the reap must not be left waiting on an index
	// that can no longer advance past it, nor see the index fall.
	n, err := s.reapTombstones(time.Now().Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("reapTombstones = %d, %v; want 1 tombstone reaped", n, err)
	}
	_, after, err := s.List(ctx(t), "a/", nil)
	if err != nil || after.LastIndex < before.LastIndex {
		t.Fatalf("List index after reaping %d, before %d: went backwards", after.LastIndex, before.LastIndex)
	}
	_, gm, err := s.Get(ctx(t), "a/gone", nil)
	if err != nil || gm.LastIndex < dm.Index {
		t.Fatalf("Get of the deleted key after reaping: index %d, want >= %d", gm.LastIndex, dm.Index)
	}
	// Nothing left to reap.
	if n, err := s.reapTombstones(time.Now().Add(time.Hour)); err != nil || n != 0 {
		t.Fatalf("second reap = %d, %v", n, err)
	}
}

func TestFreshStoreWatchWakesOnFirstWrite(t *testing.T) {
	s := openTemp(t, Options{NoSync: true})
	_, qm, err := s.List(ctx(t), "", nil)
	if err != nil || qm.LastIndex == 0 {
		t.Fatalf("List of a fresh store: %+v, %v; want a non-zero index to block on", qm, err)
	}
	done := make(chan uint64, 1)
	go func() {
		_, m, err := s.List(ctx(t), "", &backends.QueryOptions{WaitIndex: qm.LastIndex, WaitTime: time.Minute})
		if err != nil {
			done <- 0
			return
		}
		done <- m.LastIndex
	}()
	time.Sleep(30 * time.Millisecond)
	wm, err := s.Put(ctx(t), &backends.KVPair{Key: "first", Value: []byte("1")})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case idx := <-done:
		if idx != wm.Index {
			t.Fatalf("woken List at %d, want %d", idx, wm.Index)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the first write to a fresh store did not wake a watch")
	}
}
