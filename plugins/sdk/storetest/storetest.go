// Package storetest is the conformance suite of sdk.Store (and sdk.Locker)
// implementations: what NewBroker relies on, checked against a real store.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/sdk"
)

// Namespace returns a fresh namespace name: "sdkt_" and 8 random hex digits,
// valid as a database name or a key prefix.
func Namespace() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "sdkt_" + hex.EncodeToString(b[:])
}

// Run runs the suite. open returns a store in namespace; called twice with
// one namespace it returns two stores on the same records (and locks), as
// two broker processes on one server have.
func Run(t *testing.T, open func(t testing.TB, namespace string) sdk.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("Records", func(t *testing.T) {
		s := open(t, Namespace())
		if v, ok, err := s.Get(ctx, "instance/a"); err != nil || ok || v != nil {
			t.Fatalf("Get of a missing key = %q, %v, %v; want nothing, false, nil", v, ok, err)
		}
		if err := s.Delete(ctx, "instance/a"); err != nil {
			t.Errorf("Delete of a missing key: %v", err)
		}
		keys := []string{"instance/a", "instance/ab", "binding/a/x", "binding/a/y", "binding/ab/z", "binding/a_/q", "binding/a%/r", "binding/b/x"}
		for _, k := range keys {
			if err := s.Put(ctx, k, []byte("value of "+k)); err != nil {
				t.Fatalf("Put %s: %v", k, err)
			}
		}
		if err := s.Put(ctx, "instance/a", []byte(`{"new":true}`)); err != nil {
			t.Fatalf("Put over an existing key: %v", err)
		}
		if v, ok, err := s.Get(ctx, "instance/a"); err != nil || !ok || string(v) != `{"new":true}` {
			t.Errorf("Get after overwrite = %q, %v, %v", v, ok, err)
		}
		if v, ok, err := s.Get(ctx, "binding/a/y"); err != nil || !ok || string(v) != "value of binding/a/y" {
			t.Errorf("Get = %q, %v, %v", v, ok, err)
		}
		for prefix, want := range map[string][]string{
			"binding/a/":  {"binding/a/x", "binding/a/y"},
			"binding/a_/": {"binding/a_/q"},
			"binding/a%/": {"binding/a%/r"},
			"instance/":   {"instance/a", "instance/ab"},
			"binding/c/":  nil,
		} {
			got, err := s.List(ctx, prefix)
			if err != nil {
				t.Fatalf("List %q: %v", prefix, err)
			}
			if len(got) == 0 {
				got = nil
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("List %q = %q, want %q", prefix, got, want)
			}
		}
		if err := s.Delete(ctx, "binding/a/x"); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := s.Get(ctx, "binding/a/x"); ok || err != nil {
			t.Errorf("Get after Delete: ok=%v err=%v", ok, err)
		}
		if got, err := s.List(ctx, "binding/a/"); err != nil || !reflect.DeepEqual(got, []string{"binding/a/y"}) {
			t.Errorf("List after Delete = %q, %v", got, err)
		}
	})

	t.Run("SharedRecords", func(t *testing.T) {
		ns := Namespace()
		a, b := open(t, ns), open(t, ns)
		if err := a.Put(ctx, "instance/x", []byte("1")); err != nil {
			t.Fatal(err)
		}
		if v, ok, err := b.Get(ctx, "instance/x"); err != nil || !ok || string(v) != "1" {
			t.Errorf("a second store on the namespace reads %q, %v, %v", v, ok, err)
		}
		if v, ok, err := open(t, Namespace()).Get(ctx, "instance/x"); err != nil || ok {
			t.Errorf("a store on another namespace reads %q, %v, %v", v, ok, err)
		}
	})

	t.Run("Lock", func(t *testing.T) {
		ns := Namespace()
		stores := []sdk.Store{open(t, ns), open(t, ns)}
		lockers := make([]sdk.Locker, len(stores))
		for i, s := range stores {
			l, ok := s.(sdk.Locker)
			if !ok {
				t.Skipf("%T is not an sdk.Locker", s)
			}
			lockers[i] = l
		}
		// 32 goroutines on two stores: never two holders at once.
		const n = 32
		var inside, most, done atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(l sdk.Locker) {
				defer wg.Done()
				unlock, err := l.Lock(ctx, "inst-1")
				if err != nil {
					errs <- err
					return
				}
				now := inside.Add(1)
				for {
					m := most.Load()
					if now <= m || most.CompareAndSwap(m, now) {
						break
					}
				}
				time.Sleep(2 * time.Millisecond)
				inside.Add(-1)
				done.Add(1)
				unlock()
			}(lockers[i%2])
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("Lock: %v", err)
		}
		if most.Load() != 1 || done.Load() != n {
			t.Errorf("%d goroutines held the lock at once (want 1); %d of %d got it", most.Load(), done.Load(), n)
		}

		// A held lock makes a waiter wait until its context ends, and
		// does not hold up other names.
		unlock, err := lockers[0].Lock(ctx, "inst-2")
		if err != nil {
			t.Fatal(err)
		}
		short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err = lockers[1].Lock(short, "inst-2")
		cancelShort()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Lock of a held lock from the other store: err = %v, want context.DeadlineExceeded", err)
		}
		other, err := lockers[1].Lock(ctx, "inst-3")
		if err != nil {
			t.Fatalf("Lock of another name while inst-2 is held: %v", err)
		}
		other()
		unlock()
		quick, cancelQuick := context.WithTimeout(ctx, 10*time.Second)
		again, err := lockers[1].Lock(quick, "inst-2")
		cancelQuick()
		if err != nil {
			t.Fatalf("Lock after unlock: %v", err)
		}
		again()
	})

	t.Run("BrokerOnTwoStores", func(t *testing.T) {
		ns := Namespace()
		p := &countingProvider{}
		brokers := []broker.Broker{sdk.NewBroker(p, open(t, ns)), sdk.NewBroker(p, open(t, ns))}
		if _, err := brokers[0].Provision(ctx, broker.ProvisionRequest{InstanceID: "inst"}); err != nil {
			t.Fatal(err)
		}
		const n = 32
		var wg sync.WaitGroup
		results := make([]*broker.BindResponse, n)
		errs := make([]error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				results[i], errs[i] = brokers[i%2].Bind(ctx, broker.BindRequest{InstanceID: "inst", BindingID: "web", AppName: "hello"})
			}(i)
		}
		wg.Wait()
		created := 0
		for i := 0; i < n; i++ {
			if errs[i] != nil {
				t.Fatalf("Bind %d: %v", i, errs[i])
			}
			if !results[i].AlreadyExisted {
				created++
			}
			if !broker.EqualParams(results[i].Credentials, results[0].Credentials) {
				t.Errorf("Bind %d returned other credentials", i)
			}
		}
		if created != 1 || p.bindings.Load() != 1 {
			t.Errorf("32 Binds of one ID on two brokers: %d say they created it, the provider made %d bindings; want 1 and 1", created, p.bindings.Load())
		}
		if _, err := brokers[1].Deprovision(ctx, broker.DeprovisionRequest{InstanceID: "inst"}); err != nil {
			t.Fatal(err)
		}
		if p.unbound.Load() != 1 {
			t.Errorf("Deprovision on the other broker deleted %d bindings, want 1", p.unbound.Load())
		}
	})
}

// countingProvider counts what it was asked to make; credentials are random
// so that two creations of one binding cannot look like one.
type countingProvider struct {
	bindings, unbound atomic.Int32
}

func (p *countingProvider) Catalog() *broker.Catalog {
	return &broker.Catalog{Services: []broker.Service{{ID: "s", Name: "s", Plans: []broker.Plan{{ID: "p", Name: "p"}}}}}
}

func (p *countingProvider) CreateInstance(context.Context, broker.ProvisionRequest) error { return nil }
func (p *countingProvider) DeleteInstance(context.Context, string) error                  { return nil }

func (p *countingProvider) CreateBinding(_ context.Context, req broker.BindRequest) (map[string]string, error) {
	p.bindings.Add(1)
	time.Sleep(5 * time.Millisecond) // widen the window a missing lock would leave open
	return map[string]string{"TOKEN": fmt.Sprintf("%s-%s", req.BindingID, Namespace())}, nil
}

func (p *countingProvider) DeleteBinding(context.Context, string, string) error {
	p.unbound.Add(1)
	return nil
}
