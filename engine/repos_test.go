package engine

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/berthpaas/berth/engine/release"
	"github.com/berthpaas/berth/engine/state"
)

func TestRegisterRepoAndRead(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	ctx := context.Background()
	owner := addUser(t, e, "owner@b.co")
	other := addUser(t, e, "other@b.co")

	if _, err := e.RegisterRepo(ctx, owner, NewApp{Name: "inst", AppType: state.AppTypeResourceInstance}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("registering a resource instance: %v, want invalid", err)
	}
	r, err := e.RegisterRepo(ctx, owner, NewApp{Name: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	if r.App.Name != "hello" || r.App.AppType != state.AppTypeApp || r.App.Owner != owner.Email || r.Teams == nil || len(r.Teams) != 0 {
		t.Fatalf("registered %+v teams %v", r.App, r.Teams)
	}
	if _, err := e.RegisterRepo(ctx, owner, NewApp{Name: "hello"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("registering it again: %v, want conflict", err)
	}

	if got, err := e.GetRepo(ctx, owner, "hello"); err != nil || got.App.Name != "hello" {
		t.Fatalf("owner reads it: %v %v", got, err)
	}
	if _, err := e.GetRepo(ctx, other, "hello"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a stranger reads it: %v, want forbidden", err)
	}
	if _, err := e.GetRepo(ctx, owner, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an unknown app: %v, want not found", err)
	}
	if _, err := e.GetRepo(ctx, owner, "Bad_Name"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an invalid name: %v, want invalid", err)
	}
	if rs, err := e.ListRepos(ctx, other); err != nil || len(rs) != 0 {
		t.Fatalf("a stranger lists %d repos (%v), want none", len(rs), err)
	}
	if rs, err := e.ListRepos(ctx, owner); err != nil || len(rs) != 1 || rs[0].App.Name != "hello" {
		t.Fatalf("the owner lists %v (%v)", rs, err)
	}

	d, err := e.GetRepoDetails(ctx, owner, "hello")
	if err != nil || d.Latest != nil || d.App.Deployed {
		t.Fatalf("details before a push: %+v %v", d, err)
	}
	push(t, e, "hello", "1-aaa")
	push(t, e, "hello", "2-bbb")
	if d, err := e.GetRepoDetails(ctx, owner, "hello"); err != nil || d.Latest == nil || d.Latest.MetaVersion != "2-bbb" {
		t.Fatalf("details after two pushes: %+v %v", d, err)
	}
}

func TestRoles(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	ctx := context.Background()
	owner := addUser(t, e, "owner@b.co")
	dev := addUser(t, e, "dev@b.co")
	addApp(t, e, owner, "hello", "")
	if _, err := e.AddMaintainer(ctx, owner, "hello", dev.Email, ""); err != nil {
		t.Fatal(err)
	}

	if r, err := e.MyRole(ctx, owner, "hello"); err != nil || *r != (AppRole{App: "hello", User: owner.Email, Role: state.RoleOwner}) {
		t.Fatalf("owner's role: %+v %v", r, err)
	}
	if r, err := e.MyRole(ctx, dev, "hello"); err != nil || r.Role != state.RoleDeveloper {
		t.Fatalf("developer's role: %+v %v", r, err)
	}
	admin := &Identity{Email: "root@b.co", Admin: true}
	if r, err := e.MyRole(ctx, admin, "hello"); err != nil || r.Role != RoleSiteAdmin {
		t.Fatalf("site admin's role: %+v %v", r, err)
	}
	tok := &Identity{AppToken: true, App: "hello", Email: owner.Email}
	if r, err := e.MyRole(ctx, tok, "hello"); err != nil || r.Role != state.RoleDeveloper || r.User != tok.Name() {
		t.Fatalf("app token's role: %+v %v", r, err)
	}

	if r, err := e.UserRole(ctx, dev, "hello", "OWNER@b.co"); err != nil || r.Role != state.RoleOwner || r.User != owner.Email {
		t.Fatalf("the owner's role as a developer sees it: %+v %v", r, err)
	}
	if _, err := e.UserRole(ctx, dev, "hello", "nobody@b.co"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the role of a user without one: %v, want not found", err)
	}
	if _, err := e.UserRole(ctx, dev, "hello", "not an email"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an invalid email: %v, want invalid", err)
	}
	if _, err := e.UserRole(ctx, tok, "hello", owner.Email); !errors.Is(err, ErrForbidden) {
		t.Fatalf("an app token reads the maintainers: %v, want forbidden", err)
	}
}

func TestPushRelease(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	ctx := context.Background()
	owner := addUser(t, e, "owner@b.co")
	other := addUser(t, e, "other@b.co")
	addApp(t, e, owner, "hello", "")
	spec := func(cmd string) *release.Spec {
		return &release.Spec{Procs: []release.Proc{{Name: "web", Type: "web", Cmd: cmd, Port: 8080, NumInstances: 1, CPU: 0.5, MemoryMB: 64}}}
	}

	p, err := e.PushRelease(ctx, owner, "hello", "1-abc", spec("./a"))
	if err != nil || p.Unchanged || p.Release.App != "hello" || p.Release.MetaVersion != "1-abc" || p.Release.PushedBy != owner.Email {
		t.Fatalf("first push: %+v %v", p, err)
	}
	again, err := e.PushRelease(ctx, owner, "hello", "1-abc", spec("./a"))
	if err != nil || !again.Unchanged || !reflect.DeepEqual(again.Release.Spec, *spec("./a")) {
		t.Fatalf("the same push again: %+v %v", again, err)
	}
	if _, err := e.PushRelease(ctx, owner, "hello", "1-abc", spec("./b")); !errors.Is(err, ErrConflict) {
		t.Fatalf("the same version with another spec: %v, want conflict", err)
	}
	if rel, _, err := state.Get[state.Release](ctx, e.store, state.ReleaseKey("hello", "1-abc")); err != nil || rel.Spec.Procs[0].Cmd != "./a" {
		t.Fatalf("the recorded release: %+v %v", rel, err)
	}
	wrong := spec("./a")
	wrong.AppName = "other"
	if _, err := e.PushRelease(ctx, owner, "hello", "2-abc", wrong); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a spec for another app: %v, want invalid", err)
	}
	if _, err := e.PushRelease(ctx, owner, "hello", "", spec("./a")); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a push without meta_version: %v, want invalid", err)
	}
	if _, err := e.PushRelease(ctx, other, "hello", "3-abc", spec("./a")); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a stranger pushes: %v, want forbidden", err)
	}
	tok := &Identity{AppToken: true, App: "hello", Email: owner.Email}
	if p, err := e.PushRelease(ctx, tok, "hello", "4-abc", spec("./a")); err != nil || p.Release.PushedBy != tok.Name() {
		t.Fatalf("the app's token pushes: %+v %v", p, err)
	}
	if _, err := e.PushRelease(ctx, owner, "nope", "1-abc", spec("./a")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a push to an unknown app: %v, want not found", err)
	}
}
