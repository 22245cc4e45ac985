package engine

import (
	"context"
	"reflect"
	"testing"

	"github.com/berthpaas/berth/engine/state"
)

func TestProcs(t *testing.T) {
	ctx := context.Background()
	e := newDeployEngine(t)
	dev := addUser(t, e, "dev@example.com")
	addApp(t, e, dev, "hello", "")
	push(t, e, "hello", "1-aaa")
	if _, err := e.DeployLatest(ctx, dev, "hello", DeploySettings{}); err != nil {
		t.Fatal(err)
	}
	done(e, "hello")
	proc := func(name string) *ProcStatus {
		t.Helper()
		p, err := e.GetProc(ctx, dev, "hello", name)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if p := proc("web"); !p.Deployed || p.Instances != 2 || p.CPU != 0.5 || p.MemoryMB != 64 || p.Proc.Port != 8080 {
		t.Fatalf("web as pushed: %+v", p)
	}
	_, err := e.GetProc(ctx, dev, "hello", "nope")
	wantKind(t, "a proc not in the release", err, ErrNotFound)
	_, err = e.GetProc(ctx, dev, "hello", "Bad Proc")
	wantKind(t, "an invalid proc name", err, ErrInvalid)

	// Scale and resize in one request: only the scale takes effect.
	n, cpu := 3, 1.0
	ch, err := e.ResizeProc(ctx, dev, "hello", "web", ProcSize{NumInstances: &n, CPU: &cpu, Memory: "128m"})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Proc != "web" || ch.Deploy.Operation != "scale web to 3" || !reflect.DeepEqual(ch.Ignored, []string{"cpu", "memory"}) {
		t.Fatalf("scale: %+v %+v", ch, ch.Deploy)
	}
	if p := proc("web"); p.Instances != 3 || p.CPU != 0.5 || p.MemoryMB != 64 {
		t.Fatalf("web after scale: %+v", p)
	}
	// The lease is held until the scale converges.
	_, err = e.ResizeProc(ctx, dev, "hello", "web", ProcSize{CPU: &cpu})
	wantKind(t, "a resize while a scale is under way", err, ErrConflict)
	done(e, "hello")

	ch, err = e.ResizeProc(ctx, dev, "hello", "web", ProcSize{CPU: &cpu, Memory: "128m"})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Deploy.Operation != "resize web" || len(ch.Ignored) != 0 {
		t.Fatalf("resize: %+v", ch)
	}
	done(e, "hello")
	if p := proc("web"); p.Instances != 3 || p.CPU != 1 || p.MemoryMB != 128 {
		t.Fatalf("web after resize: %+v", p)
	}
	for what, in := range map[string]ProcSize{
		"nothing to change":   {},
		"too many instances":  {NumInstances: new(100000)},
		"a negative cpu":      {CPU: new(-1.0)},
		"a malformed memory":  {Memory: "lots"},
		"a memory of no size": {Memory: true},
	} {
		_, err := e.ResizeProc(ctx, dev, "hello", "web", in)
		wantKind(t, what, err, ErrInvalid)
	}
	if p := proc("web"); p.Instances != 3 || p.CPU != 1 || p.MemoryMB != 128 {
		t.Fatalf("web after refused changes: %+v", p)
	}

	// Undeploy one proc, then deploy it again; its size is kept.
	ch, err = e.UndeployProc(ctx, dev, "hello", "web")
	if err != nil || ch.Deploy.Operation != "undeploy proc web" {
		t.Fatal(ch, err)
	}
	done(e, "hello")
	if p := proc("web"); p.Deployed || p.Instances != 0 {
		t.Fatalf("web undeployed: %+v", p)
	}
	if p := proc("mailer"); !p.Deployed || p.Instances != 1 {
		t.Fatalf("mailer after web's undeploy: %+v", p)
	}
	_, err = e.UndeployProc(ctx, dev, "hello", "web")
	wantKind(t, "undeploy of an undeployed proc", err, ErrNotFound)
	done(e, "hello")
	before, _ := e.LoadApp(ctx, dev, "hello", ActAppRead)
	ch, err = e.DeployProc(ctx, dev, "hello", "web")
	if err != nil || ch.Deploy.Operation != "deploy proc web" || ch.App.RestartGen != before.RestartGen+1 {
		t.Fatal(ch, err)
	}
	done(e, "hello")
	if p := proc("web"); !p.Deployed || p.Instances != 3 || p.MemoryMB != 128 {
		t.Fatalf("web deployed again: %+v", p)
	}
	_, err = e.DeployProc(ctx, dev, "hello", "nope")
	wantKind(t, "deploy of a proc not in the release", err, ErrNotFound)

	// Permissions: a developer (team member) may read but not scale.
	other := addUser(t, e, "other@example.com")
	_, err = e.ResizeProc(ctx, other, "hello", "web", ProcSize{NumInstances: &n})
	wantKind(t, "scale by a user with no role", err, ErrForbidden)
	if _, _, err := state.Update(ctx, e.store, state.AppKey("hello"), func(a *state.App) error {
		a.Maintainers["other@example.com"] = state.RoleDeveloper
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.GetProc(ctx, other, "hello", "web"); err != nil {
		t.Fatalf("read by a developer: %v", err)
	}
	_, err = e.UndeployProc(ctx, other, "hello", "web")
	wantKind(t, "undeploy of a proc by a developer", err, ErrForbidden)

	// A release that went missing is a conflict, not a crash.
	if _, err := e.store.Delete(ctx, state.ReleaseKey("hello", "1-aaa")); err != nil {
		t.Fatal(err)
	}
	_, err = e.GetProc(ctx, dev, "hello", "web")
	wantKind(t, "a proc of a missing release", err, ErrConflict)
}
