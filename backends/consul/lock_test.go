package consul

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/devagent"
	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
)

// storeOn is another Store on the same agent and prefix as s (another
// server of one cluster).
func storeOn(t *testing.T, s *Store) *Store {
	t.Helper()
	o, err := New(Config{Address: devagent.Consul(t), Prefix: s.prefix}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close() })
	return o
}

// elect is Elect that skips the test when the agent refuses short TTLs
// (an agent of CONSUL_HTTP_ADDR without session_ttl_min lowered).
func elect(t *testing.T, ctx context.Context, s *Store, value string, o backends.ElectOptions) (backends.Leadership, error) {
	t.Helper()
	l, err := s.Elect(ctx, "locks/leader", []byte(value), o)
	if err != nil && strings.Contains(err.Error(), "Invalid Session TTL") {
		t.Skipf("the Consul agent refuses a session TTL of %v (session_ttl_min): %v", o.TTL, err)
	}
	return l, err
}

func release(t *testing.T, l backends.Leadership) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Release(ctx); err != nil {
		t.Errorf("Release: %v", err)
	}
}

func holderOf(t *testing.T, s *Store) (value, session string) {
	t.Helper()
	p, _, err := s.kv.Get(s.prefix+"locks/leader", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p == nil {
		return "", ""
	}
	return string(p.Value), p.Session
}

// One holder at a time; a Release hands the lock over at once, without
// waiting out the lock delay.
func TestElectOneHolderReleaseHandsOver(t *testing.T) {
	a := newStore(t)
	b := storeOn(t, a)
	o := backends.ElectOptions{TTL: 2 * time.Second, LockDelay: 30 * time.Second}
	ctx := context.Background()
	la, err := elect(t, ctx, a, "a", o)
	if err != nil {
		t.Fatalf("Elect on a free lock: %v", err)
	}
	if v, sess := holderOf(t, a); v != "a" || sess == "" {
		t.Fatalf("after the election the key holds %q (session %q), want a's value and session", v, sess)
	}
	// b waits while a holds it, past several of a's renewals.
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	lb, err := elect(t, wctx, b, "b", o)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		if lb != nil {
			release(t, lb)
		}
		t.Fatalf("a second Elect while the lock is held returned %v, want it to wait until its context ended", err)
	}
	select {
	case <-la.Lost():
		t.Fatal("the holder lost the lock while it renewed it")
	default:
	}
	// Release: b takes it although the lock delay is 30s.
	got := make(chan backends.Leadership, 1)
	go func() {
		l, err := b.Elect(ctx, "locks/leader", []byte("b"), o)
		if err != nil {
			t.Errorf("Elect after the release: %v", err)
		}
		got <- l
	}()
	release(t, la)
	select {
	case <-la.Lost():
	default:
		t.Error("Lost is not closed after Release")
	}
	var lb2 backends.Leadership
	select {
	case lb2 = <-got:
	case <-time.After(15 * time.Second):
		t.Fatal("the lock was not handed over within 15s of the holder's Release (a lock delay applied to a release?)")
	}
	if lb2 == nil {
		t.FailNow()
	}
	if v, _ := holderOf(t, a); v != "b" {
		t.Errorf("after the hand-over the key holds %q, want b", v)
	}
	release(t, lb2)
	if v, sess := holderOf(t, a); sess != "" {
		t.Errorf("after the last release the key still names session %q (value %q)", sess, v)
	}
}

// A holder whose session Consul invalidates (as when it stops renewing)
// sees Lost, and another takes the lock after the lock delay.
func TestElectSessionInvalidated(t *testing.T) {
	a := newStore(t)
	b := storeOn(t, a)
	o := backends.ElectOptions{TTL: 2 * time.Second, LockDelay: 500 * time.Millisecond}
	ctx := context.Background()
	la, err := elect(t, ctx, a, "a", o)
	if err != nil {
		t.Fatal(err)
	}
	defer release(t, la)
	_, sess := holderOf(t, a)
	got := make(chan backends.Leadership, 1)
	go func() {
		l, err := b.Elect(ctx, "locks/leader", []byte("b"), o)
		if err != nil {
			t.Errorf("Elect: %v", err)
		}
		got <- l
	}()
	if _, err := a.client.Session().Destroy(sess, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-la.Lost():
	case <-time.After(10 * time.Second):
		t.Fatal("the holder did not see that its session was destroyed")
	}
	select {
	case lb := <-got:
		if lb == nil {
			t.FailNow()
		}
		if v, _ := holderOf(t, a); v != "b" {
			t.Errorf("the key holds %q, want b", v)
		}
		release(t, lb)
	case <-time.After(15 * time.Second):
		t.Fatal("nobody took the lock within 15s of the holder's session's end")
	}
}

// The key is a lock `consul lock` (api.Lock) respects: while Berth holds
// it, api.Lock waits.
func TestElectCompatibleWithAPILock(t *testing.T) {
	a := newStore(t)
	la, err := elect(t, context.Background(), a, "a", backends.ElectOptions{TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	lk, err := a.client.LockOpts(&api.LockOptions{Key: a.prefix + "locks/leader", LockTryOnce: true, LockWaitTime: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := lk.Lock(nil)
	if err != nil {
		t.Fatalf("api.Lock: %v", err)
	}
	if ch != nil {
		_ = lk.Unlock()
		t.Fatal("api.Lock took a lock Berth holds")
	}
	release(t, la)
	ch, err = lk.Lock(nil)
	if err != nil || ch == nil {
		t.Fatalf("api.Lock after the release: %v (held: %v)", err, ch != nil)
	}
	_ = lk.Unlock()
	// api.Lock's session renewal and monitor end with the unlock.
	time.Sleep(100 * time.Millisecond)
}
