package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends/bolt"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/osb"
)

// osbBrokers starts a new osb broker for every call, in process (as a
// restarted plugin process would be: it remembers nothing).
type osbBrokers struct{}

func (osbBrokers) Check(name string) error {
	if name != "osb" {
		return fmt.Errorf("unknown broker %q", name)
	}
	return nil
}

func (osbBrokers) Broker(ctx context.Context, _, _ string, settings map[string]string) (broker.Broker, error) {
	b := osb.New(nil)
	return b, b.Configure(ctx, settings)
}

func (osbBrokers) Stop(string) {}

// slowOSB is an external OSB broker whose asynchronous provisions end
// when the test says so.
type slowOSB struct {
	mu          sync.Mutex
	state       string // what last_operation answers ("gone": 410)
	deletes     []string
	asyncDelete bool // DELETE answers 202
}

func (f *slowOSB) set(s string) { f.mu.Lock(); f.state = s; f.mu.Unlock() }

func (f *slowOSB) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	p := r.URL.Path
	switch {
	case p == "/v2/catalog":
		fmt.Fprint(w, `{"services":[{"id":"s1","name":"slow","description":"d","bindable":true,"plans":[{"id":"p1","name":"p","description":"d"}]}]}`)
	case r.Method == http.MethodPut && r.URL.Query().Get("accepts_incomplete") == "true":
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprint(w, `{"operation":"op-`+strings.TrimPrefix(p, "/v2/service_instances/")+`"}`)
	case strings.HasSuffix(p, "/last_operation"):
		f.mu.Lock()
		s := f.state
		f.mu.Unlock()
		if s == "gone" {
			w.WriteHeader(http.StatusGone)
			fmt.Fprint(w, `{}`)
			return
		}
		w.Header().Set("Retry-After", "1")
		fmt.Fprintf(w, `{"state":%q}`, s)
	case r.Method == http.MethodDelete:
		f.mu.Lock()
		f.deletes = append(f.deletes, p)
		async := f.asyncDelete
		f.mu.Unlock()
		if async {
			w.WriteHeader(http.StatusAccepted)
			fmt.Fprint(w, `{"operation":"del"}`)
			return
		}
		fmt.Fprint(w, `{}`)
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{}`)
	}
}

// openEngine opens an engine on the Store and Secrets in dir, with the
// osb broker and a target for the fake's url, and a broker call budget
// of budget: short before the restart (so that the operations outlive
// the requests), roomy after it (polls that must not be cut short on a
// loaded machine).
func openEngine(t *testing.T, dir, url string, budget time.Duration) (*Engine, func()) {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Plugins.CallTimeoutDur = budget
	cfg.BrokerTargets = []*config.BrokerTarget{{Name: "slow", Broker: "osb", Resolved: map[string]string{"url": url}}}
	st, err := bolt.Open(filepath.Join(dir, "berth.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := sealed.Open(filepath.Join(dir, "secrets"), sealed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Deps{Config: cfg, Store: st, StoreName: "bolt", Secrets: sec, SecretsName: "sealed", Brokers: osbBrokers{}})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { e.Close(); _ = sec.Close(); _ = st.Close() }) }
	t.Cleanup(stop)
	return e, stop
}

// An asynchronous provision on an external OSB broker that outlives the
// request is recorded with its operation; after a restart of Berth,
// ResumeOperations (what the reconciler runs when it starts) polls it: a
// success makes the instance ready, a failure deprovisions it (orphan
// mitigation) and removes it.
func TestAsyncProvisionResumedAfterRestart(t *testing.T) {
	fake := &slowOSB{state: broker.StateInProgress}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	dir := t.TempDir()
	e, stop := openEngine(t, dir, srv.URL, 500*time.Millisecond)
	ctx := context.Background()
	admin := &Identity{Email: "admin@berth.local", Admin: true}
	if _, err := e.CreateTeam(ctx, admin, "ops"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.CreateService(ctx, admin, strings.NewReader("id: slow\nbroker: osb\ntarget: slow\nteam: ops\n")); err != nil {
		t.Fatal(err)
	}
	svcs, err := e.TeamServices(ctx, "ops")
	if err != nil || len(svcs) != 1 {
		t.Fatalf("TeamServices = %v, %v", svcs, err)
	}
	for _, name := range []string{"ok-1", "bad-1"} {
		inst, err := e.ProvisionForTeam(ctx, "ops", "test", name, svcs[0], "", "", nil)
		if err != nil {
			t.Fatalf("provision %s: %v", name, err)
		}
		if inst.State != state.InstanceProvisioning || !inst.Async || inst.Operation != "op-"+name {
			t.Fatalf("provision %s = %+v; want provisioning with its pending operation", name, inst)
		}
	}
	stop() // Berth stops while both operations are in progress.

	e2, _ := openEngine(t, dir, srv.URL, 2*time.Second)
	if got := e2.ResumeOperations(ctx); len(got) != 0 {
		t.Errorf("ResumeOperations while still in progress = %v; want nothing done", got)
	}
	for _, name := range []string{"ok-1", "bad-1"} {
		if inst, _, err := state.Get[state.ServiceInstance](ctx, e2.store, state.InstanceKey(name)); err != nil || inst.State != state.InstanceProvisioning || !inst.Async {
			t.Fatalf("%s after a poll in progress: %+v, %v", name, inst, err)
		}
	}
	// ok-1's operation succeeded.
	fake.set(broker.StateSucceeded)
	e2.pollPending(ctx, svcs[0], mustInstance(t, e2, "ok-1"))
	if inst := mustInstance(t, e2, "ok-1"); inst.State != state.InstanceReady || inst.Async || inst.Operation != "" {
		t.Errorf("ok-1 after its operation succeeded: %+v", inst)
	}
	// bad-1's failed: deprovisioned (orphan mitigation) and removed.
	fake.set(broker.StateFailed)
	got := e2.ResumeOperations(ctx)
	if len(got) != 1 || !strings.Contains(got[0], "bad-1") {
		t.Errorf("ResumeOperations = %v; want bad-1 cleaned up", got)
	}
	if _, _, err := state.Get[state.ServiceInstance](ctx, e2.store, state.InstanceKey("bad-1")); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("bad-1 is still recorded after its provision failed: %v", err)
	}
	fake.mu.Lock()
	dels := fake.deletes
	fake.mu.Unlock()
	if len(dels) == 0 || dels[0] != "/v2/service_instances/bad-1" {
		t.Errorf("DELETEs %v; want bad-1 deprovisioned (orphan mitigation)", dels)
	}
}

func mustInstance(t *testing.T, e *Engine, name string) *state.ServiceInstance {
	t.Helper()
	inst, _, err := state.Get[state.ServiceInstance](context.Background(), e.store, state.InstanceKey(name))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// An asynchronous deprovision that outlives the request leaves the
// instance deprovisioning with its operation; after a restart it is
// polled, and the record goes when the broker says the instance is gone.
func TestAsyncDeprovisionResumedAfterRestart(t *testing.T) {
	fake := &slowOSB{state: broker.StateSucceeded}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	dir := t.TempDir()
	e, stop := openEngine(t, dir, srv.URL, 500*time.Millisecond)
	ctx := context.Background()
	admin := &Identity{Email: "admin@berth.local", Admin: true}
	if _, err := e.CreateTeam(ctx, admin, "ops"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.CreateService(ctx, admin, strings.NewReader("id: slow\nbroker: osb\ntarget: slow\nteam: ops\n")); err != nil {
		t.Fatal(err)
	}
	svcs, _ := e.TeamServices(ctx, "ops")
	if inst, err := e.ProvisionForTeam(ctx, "ops", "test", "del-1", svcs[0], "", "", nil); err != nil || inst.State != state.InstanceReady {
		t.Fatalf("provision: %+v, %v", inst, err)
	}
	fake.mu.Lock()
	fake.asyncDelete, fake.state = true, broker.StateInProgress
	fake.mu.Unlock()
	pending, err := e.DeprovisionForTeam(ctx, "ops", "del-1")
	if err != nil || !pending {
		t.Fatalf("DeprovisionForTeam = %v, %v; want still pending", pending, err)
	}
	if inst := mustInstance(t, e, "del-1"); inst.State != state.InstanceDeprovisioning || !inst.Async || inst.Operation != "del" {
		t.Fatalf("after the request: %+v; want deprovisioning with operation del", inst)
	}
	stop()
	e2, _ := openEngine(t, dir, srv.URL, 2*time.Second)
	fake.set("gone")
	if got := e2.ResumeOperations(ctx); len(got) != 1 || !strings.Contains(got[0], "del-1") {
		t.Errorf("ResumeOperations = %v; want del-1 deprovisioned", got)
	}
	if _, _, err := state.Get[state.ServiceInstance](ctx, e2.store, state.InstanceKey("del-1")); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("del-1 is still recorded after its deprovision ended: %v", err)
	}
}
