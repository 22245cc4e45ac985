package engine

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

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
