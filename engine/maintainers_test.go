package engine

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/berthpaas/berth/engine/state"
)

func TestMaintainers(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	ctx := context.Background()
	owner := addUser(t, e, "owner@b.co")
	adm := addUser(t, e, "adm@b.co")
	dev := addUser(t, e, "dev@b.co")
	addUser(t, e, "new@b.co")
	addApp(t, e, owner, "hello", "")

	if m, err := e.AddMaintainer(ctx, owner, "hello", "adm@b.co", state.RoleAdmin); err != nil || *m != (Maintainer{Email: "adm@b.co", Role: state.RoleAdmin}) {
		t.Fatalf("adding an admin: %+v %v", m, err)
	}
	if m, err := e.AddMaintainer(ctx, adm, "hello", "dev@b.co", ""); err != nil || m.Role != state.RoleDeveloper {
		t.Fatalf("adding a developer (default role): %+v %v", m, err)
	}
	if _, err := e.AddMaintainer(ctx, adm, "hello", "dev@b.co", ""); !errors.Is(err, ErrConflict) {
		t.Fatalf("adding a maintainer twice: %v, want conflict", err)
	}
	if _, err := e.AddMaintainer(ctx, adm, "hello", "new@b.co", state.RoleOwner); !errors.Is(err, ErrForbidden) {
		t.Fatalf("an admin grants owner: %v, want forbidden", err)
	}
	if _, err := e.AddMaintainer(ctx, adm, "hello", "new@b.co", "king"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an unknown role: %v, want invalid", err)
	}
	if _, err := e.AddMaintainer(ctx, adm, "hello", "ghost@b.co", ""); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a user who does not exist: %v, want not found", err)
	}
	if _, err := e.AddMaintainer(ctx, dev, "hello", "new@b.co", ""); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a developer adds a maintainer: %v, want forbidden", err)
	}

	ms, err := e.Maintainers(ctx, dev, "hello")
	want := []Maintainer{{"adm@b.co", state.RoleAdmin}, {"dev@b.co", state.RoleDeveloper}, {"owner@b.co", state.RoleOwner}}
	if err != nil || !reflect.DeepEqual(ms, want) {
		t.Fatalf("maintainers: %+v %v, want %+v", ms, err, want)
	}
	if m, err := e.GetMaintainer(ctx, dev, "hello", "adm@b.co"); err != nil || m.Role != state.RoleAdmin {
		t.Fatalf("one maintainer: %+v %v", m, err)
	}
	if _, err := e.GetMaintainer(ctx, dev, "hello", "new@b.co"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a user who is not a maintainer: %v, want not found", err)
	}

	if err := e.RemoveMaintainer(ctx, adm, "hello", "owner@b.co"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("an admin removes the owner: %v, want forbidden", err)
	}
	if err := e.RemoveMaintainer(ctx, owner, "hello", "owner@b.co"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("the last owner removes themselves: %v, want forbidden", err)
	}
	if err := e.RemoveMaintainer(ctx, adm, "hello", "new@b.co"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removing a user who is not a maintainer: %v, want not found", err)
	}
	if err := e.RemoveMaintainer(ctx, adm, "hello", "dev@b.co"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Maintainers(ctx, dev, "hello"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a removed developer reads the maintainers: %v, want forbidden", err)
	}
	root := &Identity{Email: "root@b.co", Admin: true}
	if _, err := e.AddMaintainer(ctx, root, "hello", "new@b.co", state.RoleOwner); err != nil {
		t.Fatalf("a site admin grants owner: %v", err)
	}
	if err := e.RemoveMaintainer(ctx, owner, "hello", "owner@b.co"); err != nil {
		t.Fatalf("an owner who is not the last leaves: %v", err)
	}
}
