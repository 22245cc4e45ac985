package engine

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/plugins/broker"
)

// recBroker is a broker that keeps its users in memory, as a database
// broker keeps them in its server. Like a real broker client it honours
// its context: a call on a dead context does nothing.
type recBroker struct {
	mu    sync.Mutex
	users map[string]bool // binding id -> user exists
	// bindHangs makes Bind create the user, then hang until its context
	// ends (a broker that answers after the caller gave up).
	bindHangs bool
	unbinds   int
}

func newRecBroker() *recBroker { return &recBroker{users: map[string]bool{}} }

func (b *recBroker) Configure(context.Context, map[string]string) error { return nil }
func (b *recBroker) Catalog(context.Context) (*broker.Catalog, error) {
	return &broker.Catalog{Services: []broker.Service{{ID: "rec", Plans: []broker.Plan{{ID: "small"}}}}}, nil
}
func (b *recBroker) Provision(ctx context.Context, req broker.ProvisionRequest) (*broker.ProvisionResponse, error) {
	return &broker.ProvisionResponse{}, ctx.Err()
}
func (b *recBroker) Deprovision(ctx context.Context, req broker.DeprovisionRequest) (*broker.DeprovisionResponse, error) {
	return &broker.DeprovisionResponse{}, ctx.Err()
}
func (b *recBroker) Bind(ctx context.Context, req broker.BindRequest) (*broker.BindResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.users[req.BindingID] = true
	b.mu.Unlock()
	if b.bindHangs {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &broker.BindResponse{Credentials: map[string]string{"REC_USER": req.BindingID, "REC_PASSWORD": "s3cret"}}, nil
}
func (b *recBroker) Unbind(ctx context.Context, req broker.UnbindRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.unbinds++
	if !b.users[req.BindingID] {
		return broker.ErrGone
	}
	delete(b.users, req.BindingID)
	return nil
}
func (b *recBroker) LastOperation(ctx context.Context, req broker.LastOperationRequest) (*broker.LastOperationResponse, error) {
	return &broker.LastOperationResponse{State: broker.StateSucceeded}, ctx.Err()
}

func (b *recBroker) userCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.users)
}

// admin is a site admin (no teams needed).
var admin = &Identity{Email: "admin@b.co", Admin: true}

// recBrokers hands out one recBroker for every service.
type recBrokers struct{ b *recBroker }

func (m recBrokers) Check(string) error { return nil }
func (m recBrokers) Broker(context.Context, string, string, map[string]string) (broker.Broker, error) {
	return m.b, nil
}
func (m recBrokers) Stop(string) {}

// bindFixture is an engine with a recBroker, a ready instance "db1" of
// service "recsvc" and an app "hello" (deployed as asked).
func bindFixture(t *testing.T, deployed bool) (*Engine, *recBroker) {
	t.Helper()
	rb := newRecBroker()
	e, _ := newTestEngine(t, func(cfg *config.Config, d *Deps) {
		cfg.Plugins.CallTimeoutDur = 2 * time.Second
		d.Brokers = recBrokers{rb}
	})
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := state.Create(ctx, e.store, state.ServiceKey("recsvc"), &state.Service{Name: "recsvc", Broker: "rec", Teams: []string{}, OwnerTeams: []string{}})
	must(err)
	_, err = state.Create(ctx, e.store, state.InstanceKey("db1"), &state.ServiceInstance{Name: "db1", ServiceName: "recsvc", State: state.InstanceReady, Apps: []string{}})
	must(err)
	_, err = state.Create(ctx, e.store, state.AppKey("hello"), &state.App{Name: "hello", Owner: "a@b.co", Deployed: deployed, Generation: 1})
	must(err)
	return e, rb
}

// A bind the client gives up on while the broker is still creating the
// user: the undo must run anyway, and the broker must not keep a user that
// no binding records.
func TestBindTimedOutLeavesNoBrokerUser(t *testing.T) {
	e, rb := bindFixture(t, false)
	rb.bindHangs = true
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := e.BindApp(ctx, admin, "db1", "hello")
	if err == nil {
		t.Fatal("a bind whose broker did not answer in time succeeded")
	}
	if !errors.Is(err, ErrTimeout) {
		t.Errorf("want a timeout error, got %v", err)
	}
	if n := rb.userCount(); n != 0 {
		t.Errorf("after a timed-out bind the broker still has %d user(s) (Unbind calls: %d)", n, rb.unbinds)
	}
	a, _ := state.GetApp(context.Background(), e.store, "hello")
	if len(a.Bindings) != 0 {
		t.Errorf("after a timed-out bind the app records bindings %v", a.Bindings)
	}
}

// noCommitStore refuses the transaction that commits an app's change of
// desired state (it writes the app's deploy record).
type noCommitStore struct {
	backends.Store
	app string
}

func (s noCommitStore) Txn(ctx context.Context, ops []backends.TxnOp) (*backends.WriteMeta, error) {
	for _, op := range ops {
		if op.Key == state.DeployKey(s.app) {
			return nil, backends.ErrUnavailable
		}
	}
	return s.Store.Txn(ctx, ops)
}

func TestBindAndUnbindDeployedApp(t *testing.T) {
	e, rb := bindFixture(t, true)
	ctx := context.Background()
	creds, err := e.BindApp(ctx, admin, "db1", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if creds["REC_USER"] == "" || rb.userCount() != 1 {
		t.Fatalf("bind answered %v; broker users %d", creds, rb.userCount())
	}
	a, _ := state.GetApp(ctx, e.store, "hello")
	if strings.Join(a.Bindings, ",") != "db1" || a.Generation != 2 {
		t.Errorf("after bind: bindings %v generation %d; want [db1] and a redeploy (generation 2)", a.Bindings, a.Generation)
	}
	d, err := e.GetDeploy(ctx, "hello")
	if err != nil || d.Operation != "bind db1" {
		t.Errorf("the redeploy's record: %+v %v", d, err)
	}
	// The redeploy holds the app's lease until the reconciler has
	// converged: another binding change waits.
	if _, err := e.UnbindApp(ctx, admin, "db1", "hello"); !errors.Is(err, ErrConflict) {
		t.Errorf("unbind while the bind's redeploy runs: %v, want conflict", err)
	}
	e.UnlockApp(ctx, "hello", -1)
	if _, err := e.BindApp(ctx, admin, "db1", "hello"); !errors.Is(err, ErrConflict) {
		t.Errorf("a second bind: %v, want conflict", err)
	}
	if err := e.RemoveInstance(ctx, admin, "db1"); !errors.Is(err, ErrForbidden) {
		t.Errorf("removing a bound instance: %v, want forbidden", err)
	}
	res, err := e.UnbindApp(ctx, admin, "db1", "hello")
	if err != nil || res.Warning != "" {
		t.Fatalf("unbind: %+v %v", res, err)
	}
	if rb.userCount() != 0 {
		t.Errorf("after unbind the broker keeps %d user(s)", rb.userCount())
	}
	if _, err := e.secrets.Get(ctx, bindingPath("hello", "db1"), 0); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("after unbind the credentials are still in Secrets: %v", err)
	}
	e.UnlockApp(ctx, "hello", -1)
	if _, err := e.UnbindApp(ctx, admin, "db1", "hello"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unbinding what is not bound: %v, want not found", err)
	}
}

func TestBindNotDeployedAppReleasesLease(t *testing.T) {
	e, _ := bindFixture(t, false)
	ctx := context.Background()
	if _, err := e.BindApp(ctx, admin, "db1", "hello"); err != nil {
		t.Fatal(err)
	}
	// No redeploy for an app that is not deployed: the lease is free.
	if _, err := e.UnbindApp(ctx, admin, "db1", "hello"); err != nil {
		t.Errorf("unbind right after the bind of an undeployed app: %v", err)
	}
}

// The engine's side of TestBindWhoseRedeployFailsSaysSo (server/).
func TestBindRedeployFailureUndoesBinding(t *testing.T) {
	e, rb := bindFixture(t, true)
	ctx := context.Background()
	real := e.ReplaceStore(noCommitStore{e.store, "hello"})
	_, err := e.BindApp(ctx, admin, "db1", "hello")
	e.ReplaceStore(real)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "undone") {
		t.Fatalf("a bind whose redeploy could not be started: %v", err)
	}
	a, _ := state.GetApp(ctx, e.store, "hello")
	inst, _, _ := state.Get[state.ServiceInstance](ctx, e.store, state.InstanceKey("db1"))
	if len(a.Bindings) != 0 || len(inst.Apps) != 0 || rb.userCount() != 0 {
		t.Errorf("left behind: app bindings %v, instance apps %v, broker users %d", a.Bindings, inst.Apps, rb.userCount())
	}
	if _, err := e.BindApp(ctx, admin, "db1", "hello"); err != nil {
		t.Errorf("binding again: %v", err)
	}
}

// goneStore is the client going away while the binding is recorded: the
// transaction that links the binding cancels the request and fails.
type goneStore struct {
	backends.Store
	cancel context.CancelFunc
}

func (s goneStore) Txn(ctx context.Context, ops []backends.TxnOp) (*backends.WriteMeta, error) {
	for _, op := range ops {
		if op.Key == state.InstanceKey("db1") {
			s.cancel()
			return nil, context.Canceled
		}
	}
	return s.Store.Txn(ctx, ops)
}

// The later undo steps (credentials out of Secrets, the broker's Unbind)
// run although the request's context is gone.
func TestBindClientGoneUndoesOnFreshContext(t *testing.T) {
	e, rb := bindFixture(t, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	real := e.ReplaceStore(goneStore{e.store, cancel})
	_, err := e.BindApp(ctx, admin, "db1", "hello")
	e.ReplaceStore(real)
	if err == nil {
		t.Fatal("a bind whose client went away succeeded")
	}
	if n := rb.userCount(); n != 0 {
		t.Errorf("the broker keeps %d user(s) after a bind whose client went away", n)
	}
	if _, err := e.secrets.Get(context.Background(), bindingPath("hello", "db1"), 0); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("the credentials stay in Secrets: %v", err)
	}
	// The lease was released on a fresh context too: the app is not busy.
	if _, err := e.BindApp(context.Background(), admin, "db1", "hello"); err != nil {
		t.Errorf("binding again: %v", err)
	}
}
