package engine

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berthpaas/berth/audit"
	"github.com/berthpaas/berth/engine/state"
)

func TestAppsListGetRemove(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	ctx := context.Background()
	owner := addUser(t, e, "owner@b.co")
	other := addUser(t, e, "other@b.co")
	addApp(t, e, owner, "hello", "")
	if _, err := e.AddMaintainer(ctx, owner, "hello", other.Email, state.RoleAdmin); err != nil {
		t.Fatal(err)
	}

	a, err := e.GetApp(ctx, owner, "hello")
	if err != nil || a.App.Name != "hello" || a.State != "registered" || len(a.Units) != 0 || a.Teams == nil {
		t.Fatalf("an undeployed app: %+v %v", a, err)
	}
	if as, err := e.ListApps(ctx, other); err != nil || len(as) != 1 || as[0].App.Name != "hello" {
		t.Fatalf("a maintainer lists %+v (%v)", as, err)
	}
	if err := e.RemoveApp(ctx, other, "hello"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("an admin (not owner) removes the app: %v, want forbidden", err)
	}
	push(t, e, "hello", "1-abc")
	if err := e.RemoveApp(ctx, owner, "hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.GetApp(ctx, owner, "hello"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the removed app: %v, want not found", err)
	}
	if rel, err := e.latestRelease(ctx, "hello"); err != nil || rel != nil {
		t.Fatalf("the removed app's releases remain: %+v %v", rel, err)
	}
	u, _, err := state.Get[state.User](ctx, e.store, state.UserKey(owner.Email))
	if err != nil || u.Owned != 0 {
		t.Fatalf("the owner's quota after the removal: %+v %v", u, err)
	}
	if err := e.RemoveApp(ctx, owner, "hello"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removing it twice: %v, want not found", err)
	}
}

func TestHealth(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	h := e.Health(context.Background())
	if len(h) != 2 || h["store"] != (BackendHealth{Backend: "bolt", OK: true}) || h["secrets"] != (BackendHealth{Backend: "sealed", OK: true}) {
		t.Fatalf("health: %+v", h)
	}
}

func TestAuditEvents(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	ctx := context.Background()
	user := addUser(t, e, "user@b.co")
	root := &Identity{Email: "root@b.co", Admin: true}
	if _, _, err := e.AuditEvents(ctx, user, "", 0); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a user reads the audit log: %v, want forbidden", err)
	}
	if _, _, err := e.AuditEvents(ctx, root, "", 1001); !errors.Is(err, ErrInvalid) {
		t.Fatalf("limit 1001: %v, want invalid", err)
	}
	if _, _, err := e.AuditEvents(ctx, root, "not-an-id", 10); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a bad cursor: %v, want invalid", err)
	}
	evs, next, err := e.AuditEvents(ctx, root, "", 0)
	if err != nil || len(evs) != 0 || next != "" {
		t.Fatalf("an empty log: %v %q %v", evs, next, err)
	}

	w, err := audit.New(e.store, nil, audit.Config{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"a", "b", "c"} {
		w.Record(&state.Event{Time: time.Now().UTC(), Actor: root.Email, Action: "app.create", Target: target, Outcome: "201"})
	}
	if err := w.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	evs, next, err = e.AuditEvents(ctx, root, "", 2)
	if err != nil || len(evs) != 2 || evs[0].Target != "c" || evs[1].Target != "b" || next == "" {
		t.Fatalf("the first page: %+v %q %v", evs, next, err)
	}
	evs, next, err = e.AuditEvents(ctx, root, next, 2)
	if err != nil || len(evs) != 1 || evs[0].Target != "a" || next != "" {
		t.Fatalf("the last page: %+v %q %v", evs, next, err)
	}
}
