package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/sdk"
	"github.com/berthpaas/berth/plugins/sdk/storetest"
)

func TestCheckProvision(t *testing.T) {
	cat := &broker.Catalog{Services: []broker.Service{
		{ID: "s1", Name: "one", Plans: []broker.Plan{{ID: "p1", Name: "small"}, {ID: "p2", Name: "big"}}},
		{ID: "s2", Name: "two", Plans: []broker.Plan{{ID: "p3", Name: "only"}}},
	}}
	for _, c := range []struct {
		svc, plan, wantSvc, wantPlan string
		bad                          bool
	}{
		{"", "", "s1", "p1", false},
		{"s1", "p2", "s1", "p2", false},
		{"two", "", "s2", "p3", false},
		{"one", "big", "s1", "p2", false},
		{"s3", "", "", "", true},
		{"s2", "p1", "", "", true},
	} {
		got, err := sdk.CheckProvision(broker.ProvisionRequest{InstanceID: "i", ServiceID: c.svc, PlanID: c.plan}, cat)
		if c.bad {
			if !errors.Is(err, broker.ErrBadRequest) {
				t.Errorf("(%q,%q): err = %v, want ErrBadRequest", c.svc, c.plan, err)
			}
			continue
		}
		if err != nil || got.ServiceID != c.wantSvc || got.PlanID != c.wantPlan {
			t.Errorf("(%q,%q) = (%q,%q), %v; want (%q,%q)", c.svc, c.plan, got.ServiceID, got.PlanID, err, c.wantSvc, c.wantPlan)
		}
	}
	if _, err := sdk.CheckProvision(broker.ProvisionRequest{InstanceID: "Bad"}, cat); !errors.Is(err, broker.ErrBadRequest) {
		t.Errorf("bad instance ID: err = %v", err)
	}
	if err := sdk.CheckBind("i", "b_x"); !errors.Is(err, broker.ErrBadRequest) {
		t.Errorf("bad binding ID: err = %v", err)
	}
}

func TestErrorHelpers(t *testing.T) {
	if !errors.Is(sdk.Gone("binding", "b"), broker.ErrGone) || !errors.Is(sdk.NotFound("i"), broker.ErrNotFound) ||
		!errors.Is(sdk.Conflict("instance", "i"), broker.ErrConflict) {
		t.Error("helpers do not wrap their sentinels")
	}
}

// memoryStores opens one MemoryStore per namespace, shared like a server.
func memoryStores() func(testing.TB, string) sdk.Store {
	var mu sync.Mutex
	m := map[string]sdk.Store{}
	return func(_ testing.TB, ns string) sdk.Store {
		mu.Lock()
		defer mu.Unlock()
		if m[ns] == nil {
			m[ns] = sdk.MemoryStore()
		}
		return m[ns]
	}
}

func TestMemoryStore(t *testing.T) { storetest.Run(t, memoryStores()) }

// plainStore hides MemoryStore's Locker: only the broker's own lock is left.
type plainStore struct{ sdk.Store }

// provider makes bindings whose credentials are unique, counting them.
type provider struct {
	mu        sync.Mutex
	instances map[string]bool
	bindings  map[string]string
	made      atomic.Int32
	failBind  bool
	deadlines []bool // DeleteBinding calls: whether their context was alive
}

func newProvider() *provider {
	return &provider{instances: map[string]bool{}, bindings: map[string]string{}}
}

func (p *provider) Catalog() *broker.Catalog {
	return &broker.Catalog{Services: []broker.Service{{ID: "s", Name: "s", Plans: []broker.Plan{{ID: "p", Name: "p"}}}}}
}

func (p *provider) CreateInstance(_ context.Context, req broker.ProvisionRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.instances[req.InstanceID] = true
	return nil
}

func (p *provider) DeleteInstance(_ context.Context, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.instances, id)
	return nil
}

func (p *provider) CreateBinding(ctx context.Context, req broker.BindRequest) (map[string]string, error) {
	n := p.made.Add(1)
	time.Sleep(2 * time.Millisecond)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bindings[req.InstanceID+"/"+req.BindingID] = fmt.Sprint(n)
	if p.failBind {
		<-ctx.Done() // the caller gave up
		return nil, ctx.Err()
	}
	return map[string]string{"TOKEN": fmt.Sprint(n)}, nil
}

func (p *provider) DeleteBinding(ctx context.Context, id, binding string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deadlines = append(p.deadlines, ctx.Err() == nil)
	delete(p.bindings, id+"/"+binding)
	return nil
}

func TestBindConcurrentOneProcess(t *testing.T) {
	ctx := context.Background()
	p := newProvider()
	b := sdk.NewBroker(p, plainStore{sdk.MemoryStore()})
	if _, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: "inst"}); err != nil {
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
			// Half bind the same ID, half bind and unbind their own.
			if i%2 == 0 {
				results[i], errs[i] = b.Bind(ctx, broker.BindRequest{InstanceID: "inst", BindingID: "web", AppName: "hello"})
				return
			}
			id := fmt.Sprintf("b%d", i)
			if _, errs[i] = b.Bind(ctx, broker.BindRequest{InstanceID: "inst", BindingID: id, AppName: "hello"}); errs[i] == nil {
				errs[i] = b.Unbind(ctx, broker.UnbindRequest{InstanceID: "inst", BindingID: id})
			}
		}(i)
	}
	wg.Wait()
	created := 0
	for i := 0; i < n; i++ {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if i%2 == 0 {
			if !results[i].AlreadyExisted {
				created++
			}
			if results[i].Credentials["TOKEN"] != results[0].Credentials["TOKEN"] {
				t.Errorf("Bind %d returned token %s, Bind 0 %s", i, results[i].Credentials["TOKEN"], results[0].Credentials["TOKEN"])
			}
		}
	}
	if created != 1 {
		t.Errorf("%d of 16 Binds of one ID say they created it, want 1", created)
	}
	if got := p.made.Load(); got != 1+n/2 {
		t.Errorf("provider made %d bindings, want %d (one for the shared ID, one each for the others)", got, 1+n/2)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.bindings) != 1 || p.bindings["inst/web"] == "" {
		t.Errorf("bindings left on the server: %v, want only inst/web", p.bindings)
	}
}

func TestBindUndoOnFreshContext(t *testing.T) {
	p := newProvider()
	p.failBind = true
	b := sdk.NewBroker(p, sdk.MemoryStore())
	if _, err := b.Provision(context.Background(), broker.ProvisionRequest{InstanceID: "inst"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.Bind(ctx, broker.BindRequest{InstanceID: "inst", BindingID: "web", AppName: "hello"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Bind whose provider timed out: err = %v", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.bindings) != 0 || len(p.deadlines) != 1 || !p.deadlines[0] {
		t.Errorf("after a timed-out Bind: bindings %v, undo calls with a live context %v; want none left, one undo on a live context", p.bindings, p.deadlines)
	}
	if err := b.Unbind(context.Background(), broker.UnbindRequest{InstanceID: "inst", BindingID: "web"}); !errors.Is(err, broker.ErrGone) {
		t.Errorf("Unbind after a failed Bind: err = %v, want ErrGone (no record kept)", err)
	}
}

// connector keeps its records in the store Connect returns.
type connector struct {
	*provider
	stores map[string]sdk.Store
}

func (c *connector) Connect(_ context.Context, settings map[string]string) (sdk.Store, error) {
	s := c.stores[settings["server"]]
	if s == nil {
		return nil, fmt.Errorf("%w: no server %q", broker.ErrUnavailable, settings["server"])
	}
	return s, nil
}

func TestConnector(t *testing.T) {
	ctx := context.Background()
	c := &connector{provider: newProvider(), stores: map[string]sdk.Store{"one": sdk.MemoryStore(), "two": sdk.MemoryStore()}}
	b := sdk.NewBroker(c, nil)
	if _, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: "inst"}); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Provision before Configure: err = %v, want ErrUnavailable", err)
	}
	if _, err := b.LastOperation(ctx, broker.LastOperationRequest{InstanceID: "inst"}); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("LastOperation before Configure: err = %v, want ErrUnavailable", err)
	}
	if err := b.Configure(ctx, map[string]string{"server": "three"}); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Configure on a missing server: err = %v", err)
	}
	if err := b.Configure(ctx, map[string]string{"server": "one"}); err != nil {
		t.Fatal(err)
	}
	if r, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: "inst"}); err != nil || r.AlreadyExisted {
		t.Fatalf("Provision = %+v, %v", r, err)
	}
	if v, ok, _ := c.stores["one"].Get(ctx, "instance/inst"); !ok || len(v) == 0 {
		t.Errorf("the instance's record is not in the connected store")
	}
	// Configured for another server, the broker reads that server's records.
	if err := b.Configure(ctx, map[string]string{"server": "two"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.LastOperation(ctx, broker.LastOperationRequest{InstanceID: "inst"}); !errors.Is(err, broker.ErrGone) {
		t.Errorf("LastOperation on the second server: err = %v, want ErrGone", err)
	}
}

func TestImport(t *testing.T) {
	ctx := context.Background()
	s := sdk.MemoryStore()
	p := newProvider()
	b := sdk.NewBroker(p, s)
	if _, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: "kept", Params: map[string]string{"v": "new"}}); err != nil {
		t.Fatal(err)
	}
	err := sdk.Import(ctx, s,
		[]broker.ProvisionRequest{{InstanceID: "old", ServiceID: "s", PlanID: "p", Params: map[string]string{"v": "1"}},
			{InstanceID: "kept", ServiceID: "s", PlanID: "p", Params: map[string]string{"v": "imported"}}},
		[]sdk.Binding{{Request: broker.BindRequest{InstanceID: "old", BindingID: "web", AppName: "hello"}, Credentials: map[string]string{"TOKEN": "old"}}})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: "old", Params: map[string]string{"v": "1"}}); err != nil || !r.AlreadyExisted {
		t.Errorf("Provision of an imported instance = %+v, %v; want AlreadyExisted", r, err)
	}
	if r, err := b.Provision(ctx, broker.ProvisionRequest{InstanceID: "kept", Params: map[string]string{"v": "new"}}); err != nil || !r.AlreadyExisted {
		t.Errorf("Import overwrote a record the store had: Provision = %+v, %v", r, err)
	}
	r, err := b.Bind(ctx, broker.BindRequest{InstanceID: "old", BindingID: "web", AppName: "hello"})
	if err != nil || !r.AlreadyExisted || r.Credentials["TOKEN"] != "old" {
		t.Errorf("Bind of an imported binding = %+v, %v; want AlreadyExisted with the imported credentials", r, err)
	}
	if p.made.Load() != 0 {
		t.Errorf("the provider made %d bindings, want 0", p.made.Load())
	}
}
