package server

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/bolt"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/plugins/broker"
)

// userBroker keeps one user per binding, as a database broker does in its
// server.
type userBroker struct {
	mu    sync.Mutex
	users map[string]bool
}

func (b *userBroker) Configure(context.Context, map[string]string) error { return nil }
func (b *userBroker) Catalog(context.Context) (*broker.Catalog, error) {
	return &broker.Catalog{Services: []broker.Service{{ID: "users", Plans: []broker.Plan{{ID: "small"}}}}}, nil
}
func (b *userBroker) Provision(context.Context, broker.ProvisionRequest) (*broker.ProvisionResponse, error) {
	return &broker.ProvisionResponse{}, nil
}
func (b *userBroker) Deprovision(context.Context, broker.DeprovisionRequest) (*broker.DeprovisionResponse, error) {
	return &broker.DeprovisionResponse{}, nil
}
func (b *userBroker) Bind(_ context.Context, req broker.BindRequest) (*broker.BindResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.users[req.BindingID] = true
	return &broker.BindResponse{Credentials: map[string]string{"DB_USER": req.BindingID, "DB_PASSWORD": "pw"}}, nil
}
func (b *userBroker) Unbind(_ context.Context, req broker.UnbindRequest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.users[req.BindingID] {
		return broker.ErrGone
	}
	delete(b.users, req.BindingID)
	return nil
}
func (b *userBroker) LastOperation(context.Context, broker.LastOperationRequest) (*broker.LastOperationResponse, error) {
	return &broker.LastOperationResponse{State: broker.StateSucceeded}, nil
}
func (b *userBroker) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.users)
}

type userBrokers struct{ b *userBroker }

func (m userBrokers) Check(string) error { return nil }
func (m userBrokers) Broker(context.Context, string, string, map[string]string) (broker.Broker, error) {
	return m.b, nil
}
func (m userBrokers) Stop(string) {}

// noCommitStore refuses the transaction that commits an app's change of
// desired state (it writes the app's deploy record): the redeploy after a
// binding change cannot be started.
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

// bindServer is a server with a userBroker, a ready instance "db1" and a
// deployed app "hello".
func bindServer(t *testing.T) (*Server, *userBroker) {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	st, err := bolt.Open(filepath.Join(dir, "berth.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := sealed.Open(filepath.Join(dir, "secrets"), sealed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ub := &userBroker{users: map[string]bool{}}
	s, err := New(Deps{Config: cfg, Logger: hclog.NewNullLogger(), Store: st, StoreName: "bolt", Secrets: sec, SecretsName: "sealed", Brokers: userBrokers{ub}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); sec.Close(); st.Close() })
	ctx := t.Context()
	must := func(_ uint64, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(state.Create(ctx, st, state.ServiceKey("usersvc"), &state.Service{Name: "usersvc", Broker: "users"}))
	must(state.Create(ctx, st, state.InstanceKey("db1"), &state.ServiceInstance{Name: "db1", ServiceName: "usersvc", State: state.InstanceReady, Apps: []string{}}))
	must(state.Create(ctx, st, state.AppKey("hello"), &state.App{Name: "hello", Deployed: true, MetaVersion: "v1", Generation: 1}))
	return s, ub
}

func adminCall(ctx context.Context) *call {
	c := callAs(ctx, "admin@b.co")
	c.id.Admin = true
	return c
}

// answer is what the wrapper would write for a handler's (value, error).
func answer(t *testing.T, v any, err error) (int, map[string]any) {
	t.Helper()
	if err != nil {
		status, msg := errorStatus(err)
		body := map[string]any{"error": msg}
		for k, x := range errorExtra(err) {
			body[k] = x
		}
		return status, body
	}
	if v == nil {
		return http.StatusOK, map[string]any{"status": "ok"}
	}
	b, jerr := json.Marshal(v)
	if jerr != nil {
		t.Fatal(jerr)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return http.StatusOK, m
}

// A bind whose redeploy cannot be started does not answer success: the
// app would be bound to credentials its processes never get. The binding
// is undone (no broker user, no record) and the answer says why.
func TestBindWhoseRedeployFailsSaysSo(t *testing.T) {
	s, ub := bindServer(t)
	ctx := t.Context()
	real := s.eng.ReplaceStore(noCommitStore{s.eng.Store(), "hello"})
	v, err := s.bindInstance(adminCall(ctx), "db1", "hello")
	s.eng.ReplaceStore(real)
	status, body := answer(t, v, err)
	if status < 400 {
		t.Fatalf("a bind whose redeploy could not be started answered %d %v", status, body)
	}
	if msg, _ := body["error"].(string); !strings.Contains(msg, "redeploy") || !strings.Contains(msg, "undone") {
		t.Errorf("the answer does not say the redeploy failed and the binding was undone: %v", body)
	}
	if body["redeployed"] != false || body["binding"] != "undone" {
		t.Errorf("the answer's fields: redeployed=%v binding=%v", body["redeployed"], body["binding"])
	}
	a, _ := state.GetApp(ctx, real, "hello")
	inst, _, _ := state.Get[state.ServiceInstance](ctx, real, state.InstanceKey("db1"))
	if len(a.Bindings) != 0 || len(inst.Apps) != 0 {
		t.Errorf("after the failed bind: app bindings %v, instance apps %v", a.Bindings, inst.Apps)
	}
	if n := ub.count(); n != 0 {
		t.Errorf("after the failed bind the broker keeps %d user(s)", n)
	}
	// The lease was released and nothing is left over: the same bind
	// now goes through.
	v, err = s.bindInstance(adminCall(ctx), "db1", "hello")
	if status, body := answer(t, v, err); status != http.StatusOK || body["DB_USER"] == nil {
		t.Fatalf("the bind after the failed one: %d %v", status, body)
	}
}

// An unbind cannot be undone (the broker revoked the credentials): when
// the redeploy cannot be started, the unbind is 200 but its status, instead
// of "ok", says the app was not redeployed, and why.
func TestUnbindWhoseRedeployFailsSaysSo(t *testing.T) {
	s, ub := bindServer(t)
	ctx := t.Context()
	v, err := s.bindInstance(adminCall(ctx), "db1", "hello")
	if status, body := answer(t, v, err); status != http.StatusOK {
		t.Fatalf("bind: %d %v", status, body)
	}
	// The bind's redeploy holds the lease until the reconciler has
	// converged; there is no reconciler here.
	s.eng.UnlockApp(ctx, "hello", -1)
	real := s.eng.ReplaceStore(noCommitStore{s.eng.Store(), "hello"})
	v, err = s.unbindInstance(adminCall(ctx), "db1", "hello")
	s.eng.ReplaceStore(real)
	status, body := answer(t, v, err)
	if status != http.StatusOK {
		t.Fatalf("unbind: %d %v", status, body)
	}
	if st, _ := body["status"].(string); st == "ok" || !strings.Contains(st, "not redeployed") {
		t.Errorf("the unbind's answer does not say the app was not redeployed: %v", body)
	}
	if n := ub.count(); n != 0 {
		t.Errorf("after the unbind the broker keeps %d user(s)", n)
	}
	a, _ := state.GetApp(ctx, real, "hello")
	if len(a.Bindings) != 0 {
		t.Errorf("after the unbind the app records bindings %v", a.Bindings)
	}
	// The lease was released: the app can be bound again.
	v, err = s.bindInstance(adminCall(ctx), "db1", "hello")
	if status, body := answer(t, v, err); status != http.StatusOK {
		t.Fatalf("the bind after the unbind: %d %v", status, body)
	}
}
