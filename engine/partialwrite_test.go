package engine

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine/state"
)

// writeFailStore is a Store whose writes fail, while failing is set, as a
// Consul that went away between a request's reads and its write does.
type writeFailStore struct {
	backends.Store
	failing atomic.Bool
	txnOnly atomic.Bool // only transactions fail (the commit after a lease)
}

func (w *writeFailStore) down() error {
	if !w.failing.Load() {
		return nil
	}
	return &backends.UnavailableError{Backend: "consul", Role: "store", Op: "txn", Reason: "connection refused", Err: errors.New("connection refused")}
}

func (w *writeFailStore) Txn(ctx context.Context, ops []backends.TxnOp) (*backends.WriteMeta, error) {
	if err := w.down(); err != nil {
		return nil, err
	}
	return w.Store.Txn(ctx, ops)
}

func (w *writeFailStore) CAS(ctx context.Context, p *backends.KVPair) (bool, *backends.WriteMeta, error) {
	if err := w.down(); err != nil && !w.txnOnly.Load() {
		return false, nil, err
	}
	return w.Store.CAS(ctx, p)
}

func (w *writeFailStore) Put(ctx context.Context, p *backends.KVPair) (*backends.WriteMeta, error) {
	if err := w.down(); err != nil && !w.txnOnly.Load() {
		return nil, err
	}
	return w.Store.Put(ctx, p)
}

// TestStoreDownLeavesNoHalfWrite: when the store fails the write of an
// app create or an env set (the secret already written to Secrets), the
// answer is the backend's unavailability, and nothing is left half-made:
// no app record and no quota used; no private value in Secrets without its
// variable in the app record; no deploy record of a redeploy that was not
// committed.
func TestStoreDownLeavesNoHalfWrite(t *testing.T) {
	var ws *writeFailStore
	e, _ := newTestEngine(t, func(cfg *config.Config, d *Deps) {
		ws = &writeFailStore{Store: d.Store}
		d.Store = ws
	})
	ctx := context.Background()
	dev := addUser(t, e, "dev@b.co")
	addApp(t, e, dev, "hello", "")

	unavailable := func(what string, err error) {
		t.Helper()
		var ue *backends.UnavailableError
		if !errors.As(err, &ue) || ue.Backend != "consul" {
			t.Fatalf("%s with the store down: %v, want the store's unavailability", what, err)
		}
	}
	ws.failing.Store(true)
	_, err := e.RegisterApp(ctx, dev, NewApp{Name: "other"})
	unavailable("creating an app", err)
	_, err = e.SetEnv(ctx, dev, "hello", []EnvSet{{Name: "TOKEN", Value: "s3cret-value"}}, false)
	unavailable("setting a private variable", err)
	ws.failing.Store(false)

	if _, err := state.GetApp(ctx, e.store, "other"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("the app whose create failed: %v, want no record", err)
	}
	if u, _, err := state.Get[state.User](ctx, e.store, state.UserKey(dev.Email)); err != nil || u.Owned != 1 {
		t.Errorf("the creator's quota count: %+v %v, want 1 (hello only)", u, err)
	}
	if sec, err := e.secrets.Get(ctx, envSecretPath("hello"), 0); err == nil && sec.Data["TOKEN"] != "" {
		t.Errorf("the private value of a failed env set is in Secrets: %v", sec.Data)
	}

	// A deployed app: the env set goes through a redeploy (lease, app,
	// deploy record in one transaction).
	if _, _, err := state.Update(ctx, e.store, state.AppKey("hello"), func(a *state.App) error { a.Deployed = true; return nil }); err != nil {
		t.Fatal(err)
	}
	before, _, _ := e.getDeployIndex(ctx, "hello")
	for _, txnOnly := range []bool{false, true} {
		// All writes fail (the lease is not taken), or only the commit
		// (the lease taken and the secret written before it).
		ws.txnOnly.Store(txnOnly)
		ws.failing.Store(true)
		_, err = e.SetEnv(ctx, dev, "hello", []EnvSet{{Name: "TOKEN", Value: "s3cret-value"}}, false)
		ws.failing.Store(false)
		unavailable("setting a private variable of a deployed app", err)
		if _, _, err := state.Get[state.Lock](ctx, e.store, state.LockKey("hello")); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("txnOnly=%v: the lease of the failed redeploy is left: %v", txnOnly, err)
		}
	}
	if sec, err := e.secrets.Get(ctx, envSecretPath("hello"), 0); err == nil && sec.Data["TOKEN"] != "" {
		t.Errorf("the private value of a failed redeploy is in Secrets: %v", sec.Data)
	}
	after, _, _ := e.getDeployIndex(ctx, "hello")
	if (before == nil) != (after == nil) || (after != nil && after.Generation != before.Generation) {
		t.Errorf("a deploy record was written for a redeploy that failed: before %+v, after %+v", before, after)
	}
	a, err := state.GetApp(ctx, e.store, "hello")
	if err != nil || len(a.Env) != 0 {
		t.Errorf("the app record after the failed env sets: %+v %v", a, err)
	}
	// The store back, the same request succeeds.
	if _, err := e.SetEnv(ctx, dev, "hello", []EnvSet{{Name: "TOKEN", Value: "s3cret-value"}}, true); err != nil {
		t.Fatal(err)
	}
	if sec, err := e.secrets.Get(ctx, envSecretPath("hello"), 0); err != nil || sec.Data["TOKEN"] != "s3cret-value" {
		t.Errorf("after the store came back: %v %v", sec, err)
	}
}

// downSecrets is Secrets that fail as a Vault that does not answer: while
// down, every call fails before it reaches Vault; while lost, a write
// lands but its answer is lost (Vault applied it, then froze or the
// connection broke), so the caller gets the same failure.
type downSecrets struct {
	backends.Secrets
	down, lost atomic.Bool
}

func (d *downSecrets) err(op string) error {
	return &backends.UnavailableError{Backend: "vault", Role: "secrets", Op: op, Reason: "no answer within 10s", Err: errors.New("no answer")}
}

func (d *downSecrets) Get(ctx context.Context, path string, v int) (*backends.Secret, error) {
	if d.down.Load() {
		return nil, d.err("get")
	}
	return d.Secrets.Get(ctx, path, v)
}

func (d *downSecrets) Put(ctx context.Context, path string, data map[string]string) (int, error) {
	return d.PutCAS(ctx, path, data, -1)
}

func (d *downSecrets) PutCAS(ctx context.Context, path string, data map[string]string, v int) (int, error) {
	if d.down.Load() {
		return 0, d.err("put")
	}
	var n int
	var err error
	if v < 0 {
		n, err = d.Secrets.Put(ctx, path, data)
	} else {
		n, err = d.Secrets.PutCAS(ctx, path, data, v)
	}
	if err == nil && d.lost.Load() {
		return 0, d.err("put")
	}
	return n, err
}

func (d *downSecrets) Delete(ctx context.Context, path string) error {
	if d.down.Load() {
		return d.err("delete")
	}
	return d.Secrets.Delete(ctx, path)
}

func (d *downSecrets) List(ctx context.Context, prefix string) ([]string, error) {
	if d.down.Load() {
		return nil, d.err("list")
	}
	return d.Secrets.List(ctx, prefix)
}

// TestSecretsDownLeavesNoHalfWrite: setting private variables while the
// secrets backend is down (every call fails), or while it loses the
// answers of writes it applied, answers the backend's unavailability and
// leaves nothing half-made: the app record has no variable whose value
// was not written, Secrets hold no value the app record was not changed
// for (an existing variable keeps its old value), and a deployed app gets
// no deploy record and keeps no lease. The request succeeds once the
// backend is back.
func TestSecretsDownLeavesNoHalfWrite(t *testing.T) {
	var ds *downSecrets
	e, _ := newTestEngine(t, func(cfg *config.Config, d *Deps) {
		ds = &downSecrets{Secrets: d.Secrets}
		d.Secrets = ds
	})
	ctx := context.Background()
	dev := addUser(t, e, "dev@b.co")
	addApp(t, e, dev, "hello", "")
	if _, err := e.SetEnv(ctx, dev, "hello", []EnvSet{{Name: "TOKEN", Value: "old"}}, false); err != nil {
		t.Fatal(err)
	}
	unavailable := func(what string, err error) {
		t.Helper()
		var ue *backends.UnavailableError
		if !errors.As(err, &ue) || ue.Backend != "vault" {
			t.Fatalf("%s: %v, want the secrets backend's unavailability", what, err)
		}
	}
	secret := func() map[string]string {
		t.Helper()
		sec, err := ds.Secrets.Get(ctx, envSecretPath("hello"), 0)
		if err != nil {
			t.Fatal(err)
		}
		return sec.Data
	}
	check := func(when string) {
		t.Helper()
		a, err := state.GetApp(ctx, e.store, "hello")
		if err != nil || len(a.Env) != 1 || a.Env[0].Name != "TOKEN" || a.Env[0].Public {
			t.Errorf("%s: the app's variables: %+v %v, want TOKEN (private) only", when, a.Env, err)
		}
		if got := secret(); got["TOKEN"] != "old" || len(got) != 1 {
			t.Errorf("%s: Secrets hold %v, want TOKEN=old only (no value the app record does not name, no changed value)", when, got)
		}
		if _, _, err := state.Get[state.Lock](ctx, e.store, state.LockKey("hello")); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("%s: the app's lease is left: %v", when, err)
		}
	}
	set := []EnvSet{{Name: "TOKEN", Value: "new"}, {Name: "EXTRA", Value: "x"}}
	for _, deployed := range []bool{false, true} {
		if deployed {
			if _, _, err := state.Update(ctx, e.store, state.AppKey("hello"), func(a *state.App) error { a.Deployed = true; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		before, _, _ := e.getDeployIndex(ctx, "hello")
		for _, mode := range []string{"down", "lost"} {
			flag := &ds.down
			if mode == "lost" {
				flag = &ds.lost
			}
			flag.Store(true)
			_, err := e.SetEnv(ctx, dev, "hello", set, false)
			flag.Store(false)
			when := fmt.Sprintf("deployed=%v, secrets %s", deployed, mode)
			unavailable(when, err)
			check(when)
		}
		after, _, _ := e.getDeployIndex(ctx, "hello")
		if (before == nil) != (after == nil) || (after != nil && after.Generation != before.Generation) {
			t.Errorf("deployed=%v: a deploy record was written for env sets that failed: before %+v, after %+v", deployed, before, after)
		}
	}
	// Creating an app writes nothing to Secrets: with them down it is made
	// whole (the record and the owner's quota in one transaction), with no
	// deploy record (it is not deployed).
	ds.down.Store(true)
	_, err := e.RegisterApp(ctx, dev, NewApp{Name: "other"})
	ds.down.Store(false)
	if err != nil {
		t.Fatalf("creating an app with the secrets down: %v", err)
	}
	if u, _, err := state.Get[state.User](ctx, e.store, state.UserKey(dev.Email)); err != nil || u.Owned != 2 {
		t.Errorf("the creator's quota count: %+v %v, want 2", u, err)
	}
	if d, _, err := e.getDeployIndex(ctx, "other"); d != nil || err != nil {
		t.Errorf("a new app's deploy record: %+v %v, want none", d, err)
	}
	// The backend back, the same request succeeds.
	if _, err := e.SetEnv(ctx, dev, "hello", set, false); err != nil {
		t.Fatal(err)
	}
	if got := secret(); got["TOKEN"] != "new" || got["EXTRA"] != "x" {
		t.Errorf("after the backend came back: %v", got)
	}
}

// TestBindWithSecretsLosingAnswersLeavesNoCredentials: a bind whose write
// of the credentials fails (the backend down, or the write applied and
// its answer lost) answers the backend's unavailability and leaves no
// credentials in Secrets (the app's env takes every binding's), no
// binding in the app record and no user at the broker.
func TestBindWithSecretsLosingAnswersLeavesNoCredentials(t *testing.T) {
	rb := newRecBroker()
	var ds *downSecrets
	e, _ := newTestEngine(t, func(cfg *config.Config, d *Deps) {
		cfg.Plugins.CallTimeoutDur = 2 * time.Second
		d.Brokers = recBrokers{rb}
		ds = &downSecrets{Secrets: d.Secrets}
		d.Secrets = ds
	})
	ctx := context.Background()
	must := func(_ uint64, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(state.Create(ctx, e.store, state.ServiceKey("recsvc"), &state.Service{Name: "recsvc", Broker: "rec", Teams: []string{}, OwnerTeams: []string{}}))
	must(state.Create(ctx, e.store, state.InstanceKey("db1"), &state.ServiceInstance{Name: "db1", ServiceName: "recsvc", State: state.InstanceReady, Apps: []string{}}))
	must(state.Create(ctx, e.store, state.AppKey("hello"), &state.App{Name: "hello", Owner: "a@b.co", Generation: 1}))
	for _, mode := range []string{"down", "lost"} {
		flag := &ds.down
		if mode == "lost" {
			flag = &ds.lost
		}
		flag.Store(true)
		_, err := e.BindApp(ctx, admin, "db1", "hello")
		flag.Store(false)
		var ue *backends.UnavailableError
		if !errors.As(err, &ue) || ue.Backend != "vault" {
			t.Fatalf("secrets %s: bind: %v, want the secrets backend's unavailability", mode, err)
		}
		if paths, err := ds.Secrets.List(ctx, bindingPrefix("hello")); err != nil || len(paths) != 0 {
			t.Errorf("secrets %s: credentials left in Secrets: %v %v", mode, paths, err)
		}
		a, _ := state.GetApp(ctx, e.store, "hello")
		if len(a.Bindings) != 0 || rb.userCount() != 0 {
			t.Errorf("secrets %s: left behind: app bindings %v, broker users %d", mode, a.Bindings, rb.userCount())
		}
	}
	if _, err := e.BindApp(ctx, admin, "db1", "hello"); err != nil {
		t.Errorf("binding with the backend back: %v", err)
	}
}
