package engine

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends/local"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine/release"
	"github.com/berthpaas/berth/engine/state"
)

// newDeployEngine is newTestEngine with the embedded local scheduler. The
// reconciler is not started: the tests see the desired state and the
// pending operations the engine records, and release an app's lease as
// the reconciler does when an operation has converged (done).
func newDeployEngine(t *testing.T) *Engine {
	t.Helper()
	e, _ := newTestEngine(t, func(cfg *config.Config, d *Deps) {
		sch, err := local.New(local.Config{DataDir: filepath.Join(cfg.DataDir, "local"), StopTimeout: 2 * time.Second, Shim: []string{"/bin/false"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sch.Close() })
		d.Scheduler, d.SchedulerName = sch, "local"
	})
	return e
}

// addUser records a user and answers its identity.
func addUser(t *testing.T, e *Engine, email string) *Identity {
	t.Helper()
	if _, err := state.Create(context.Background(), e.store, state.UserKey(email), &state.User{ID: state.NewID(), Email: email}); err != nil {
		t.Fatal(err)
	}
	return &Identity{Email: email}
}

// addApp registers an app owned by id.
func addApp(t *testing.T, e *Engine, id *Identity, name, appType string) {
	t.Helper()
	if _, err := e.RegisterApp(context.Background(), id, NewApp{Name: name, AppType: appType}); err != nil {
		t.Fatal(err)
	}
}

// push records a release of app with a web and a worker proc.
func push(t *testing.T, e *Engine, app, version string, resources ...string) {
	t.Helper()
	rel := &state.Release{App: app, MetaVersion: version, Pushed: time.Now().UTC(), Spec: release.Spec{
		Procs: []release.Proc{
			{Name: "web", Type: "web", Cmd: "./web", Port: 8080, NumInstances: 2, CPU: 0.5, MemoryMB: 64, HealthCheck: "/ping"},
			{Name: "mailer", Type: "worker", Cmd: "./mailer", NumInstances: 1, CPU: 0.25, MemoryMB: 32},
		},
		Resources: resources,
	}}
	if _, err := state.Create(context.Background(), e.store, state.ReleaseKey(app, version), rel); err != nil {
		t.Fatal(err)
	}
}

// done releases the app's lease, as the reconciler does when the app's
// operation has converged.
func done(e *Engine, app string) { e.UnlockApp(context.Background(), app, -1) }

func wantKind(t *testing.T, what string, err, kind error) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("%s: got error %v, want one of kind %v", what, err, kind.(*Error).Kind)
	}
}

func TestDeployLifecycle(t *testing.T) {
	ctx := context.Background()
	e := newDeployEngine(t)
	dev := addUser(t, e, "dev@example.com")
	addApp(t, e, dev, "hello", "")

	if _, err := e.DeployLatest(ctx, dev, "hello", DeploySettings{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("deploy with no release pushed: %v", err)
	}
	if _, err := e.GetDeployed(ctx, dev, "hello"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a registered app that is not deployed: %v", err)
	}
	push(t, e, "hello", "1-aaa")
	push(t, e, "hello", "2-bbb")

	bad := "100ms"
	_, err := e.DeployLatest(ctx, dev, "hello", DeploySettings{ProgressDeadline: &bad})
	wantKind(t, "a progress deadline below the minimum", err, ErrInvalid)

	deadline, revert := "3m", false
	ch, err := e.DeployLatest(ctx, dev, "hello", DeploySettings{ProgressDeadline: &deadline, AutoRevert: &revert})
	if err != nil {
		t.Fatal(err)
	}
	if !ch.App.Deployed || ch.App.MetaVersion != "2-bbb" || ch.Deploy.Operation != "deploy 2-bbb" || ch.Deploy.State != state.DeployPending || ch.Deploy.By != "dev@example.com" {
		t.Fatalf("deploy latest: app %+v, operation %+v", ch.App, ch.Deploy)
	}

	// The lease is held until the operation converges.
	_, err = e.DeployVersion(ctx, dev, "hello", "1-aaa", DeploySettings{})
	wantKind(t, "a deploy while one is under way", err, ErrConflict)
	if ee, _ := AsError(err); ee.Holder != "dev@example.com" || ee.Operation != "deploy 2-bbb" {
		t.Fatalf("the conflict names %q for %q", ee.Holder, ee.Operation)
	}
	done(e, "hello")

	d, err := e.GetDeployed(ctx, dev, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if d.ProgressDeadline != 3*time.Minute || d.AutoRevert || d.Deploy == nil || d.Deploy.Generation != ch.Deploy.Generation {
		t.Fatalf("deployed: deadline %v, auto revert %v, operation %+v", d.ProgressDeadline, d.AutoRevert, d.Deploy)
	}
	if len(d.Procs) != 2 {
		t.Fatalf("procs %+v", d.Procs)
	}
	for _, p := range d.Procs {
		if !p.Deployed || p.Instances != p.Proc.NumInstances || p.CPU != p.Proc.CPU || p.MemoryMB != p.Proc.MemoryMB {
			t.Fatalf("proc %s as deployed: %+v", p.Proc.Name, p)
		}
	}

	// Rollback to a pushed version; an unknown one is refused.
	_, err = e.DeployVersion(ctx, dev, "hello", "3-ccc", DeploySettings{})
	wantKind(t, "a version that was never pushed", err, ErrInvalid)
	_, err = e.DeployVersion(ctx, dev, "hello", "not a version", DeploySettings{})
	wantKind(t, "a malformed version", err, ErrInvalid)
	ch, err = e.DeployVersion(ctx, dev, "hello", "1-aaa", DeploySettings{})
	if err != nil {
		t.Fatal(err)
	}
	if ch.App.MetaVersion != "1-aaa" || ch.Deploy.MetaVersion != "1-aaa" {
		t.Fatalf("rollback: %+v", ch.Deploy)
	}
	done(e, "hello")
	// The policy set by the first deploy is kept.
	if d, _ := e.GetDeployed(ctx, dev, "hello"); d.ProgressDeadline != 3*time.Minute || d.AutoRevert {
		t.Fatalf("policy after a later deploy: %v %v", d.ProgressDeadline, d.AutoRevert)
	}

	list, err := e.ListDeployed(ctx, dev, "")
	if err != nil || len(list) != 1 || list[0].App.Name != "hello" {
		t.Fatalf("list: %v %v", list, err)
	}
	if list, _ := e.ListDeployed(ctx, dev, state.AppTypeResource); len(list) != 0 {
		t.Fatalf("list of resources: %v", list)
	}
	_, err = e.ListDeployed(ctx, dev, "nonsense")
	wantKind(t, "list of an unknown app type", err, ErrInvalid)

	ch, err = e.Undeploy(ctx, dev, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if ch.App.Deployed || ch.Deploy.Operation != "undeploy" {
		t.Fatalf("undeploy: %+v %+v", ch.App, ch.Deploy)
	}
	done(e, "hello")
	_, err = e.Undeploy(ctx, dev, "hello")
	wantKind(t, "undeploy of an app that is not deployed", err, ErrNotFound)
	if list, _ := e.ListDeployed(ctx, dev, ""); len(list) != 0 {
		t.Fatalf("list after undeploy: %v", list)
	}
}

func TestDeployPermissions(t *testing.T) {
	ctx := context.Background()
	e := newDeployEngine(t)
	dev := addUser(t, e, "dev@example.com")
	other := addUser(t, e, "other@example.com")
	addApp(t, e, dev, "hello", "")
	push(t, e, "hello", "1-aaa")
	if _, err := e.DeployLatest(ctx, dev, "hello", DeploySettings{}); err != nil {
		t.Fatal(err)
	}
	done(e, "hello")

	_, err := e.DeployLatest(ctx, other, "hello", DeploySettings{})
	wantKind(t, "deploy by a user with no role", err, ErrForbidden)
	_, err = e.GetDeployed(ctx, other, "hello")
	wantKind(t, "read by a user with no role", err, ErrForbidden)
	_, err = e.Undeploy(ctx, other, "hello")
	wantKind(t, "undeploy by a user with no role", err, ErrForbidden)
	_, err = e.GetDeployed(ctx, nil, "hello")
	wantKind(t, "read by no one", err, ErrUnauthenticated)
	if list, err := e.ListDeployed(ctx, other, ""); err != nil || len(list) != 0 {
		t.Fatalf("another user's list: %v %v", list, err)
	}
	_, err = e.GetDeployed(ctx, dev, "nope")
	wantKind(t, "an unknown app", err, ErrNotFound)
	_, err = e.GetDeployed(ctx, dev, "Bad_Name")
	wantKind(t, "an invalid app name", err, ErrInvalid)
	// Nothing changed.
	if d, _ := e.GetDeployed(ctx, dev, "hello"); !d.App.Deployed || d.Deploy.Operation != "deploy 1-aaa" {
		t.Fatalf("after refused operations: %+v", d.Deploy)
	}

	admin := &Identity{Email: "root@example.com", Admin: true}
	if _, err := e.GetDeployed(ctx, admin, "hello"); err != nil {
		t.Fatalf("a site admin reads any app: %v", err)
	}
}

func TestDeployNeedsScheduler(t *testing.T) {
	ctx := context.Background()
	e, _ := newTestEngine(t, nil)
	dev := addUser(t, e, "dev@example.com")
	addApp(t, e, dev, "hello", "")
	push(t, e, "hello", "1-aaa")
	_, err := e.DeployLatest(ctx, dev, "hello", DeploySettings{})
	wantKind(t, "deploy with no scheduler", err, ErrUnavailable)
	if a, _ := e.LoadApp(ctx, dev, "hello", ActAppRead); a.Deployed {
		t.Fatal("the app is deployed after the refused deploy")
	}
}

func TestResourceInstances(t *testing.T) {
	ctx := context.Background()
	e := newDeployEngine(t)
	dev := addUser(t, e, "dev@example.com")
	addApp(t, e, dev, "cache", state.AppTypeResource)
	addApp(t, e, dev, "hello", "")
	push(t, e, "cache", "1-aaa")
	push(t, e, "hello", "1-bbb", "cache")

	_, err := e.DeployLatest(ctx, dev, "cache", DeploySettings{})
	wantKind(t, "deploy of a resource", err, ErrInvalid)
	_, err = e.Undeploy(ctx, dev, "cache")
	wantKind(t, "undeploy of a resource", err, ErrForbidden)

	ch, err := e.DeployLatest(ctx, dev, "hello", DeploySettings{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ch.ResourceInstances, []string{"cache-hello"}) {
		t.Fatalf("resource instances of the deploy: %v", ch.ResourceInstances)
	}
	insts, err := e.ResourceInstances(ctx, dev, "cache")
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != 1 || insts[0].App.Name != "cache-hello" || insts[0].App.Client != "hello" || !insts[0].App.Deployed || len(insts[0].Procs) != 2 {
		t.Fatalf("instances: %+v", insts)
	}
	_, err = e.ResourceInstances(ctx, dev, "hello")
	wantKind(t, "instances of an app that is not a resource", err, ErrNotFound)
	other := addUser(t, e, "other@example.com")
	_, err = e.ResourceInstances(ctx, other, "cache")
	wantKind(t, "instances read by a user with no role", err, ErrForbidden)
}

func TestWatchDeploy(t *testing.T) {
	ctx := context.Background()
	e := newDeployEngine(t)
	dev := addUser(t, e, "dev@example.com")
	addApp(t, e, dev, "hello", "")
	push(t, e, "hello", "1-aaa")

	_, _, err := e.WatchDeploy(ctx, addUser(t, e, "other@example.com"), "hello", time.Second)
	wantKind(t, "watch by a user with no role", err, ErrForbidden)

	w, a, err := e.WatchDeploy(ctx, dev, "hello", 200*time.Millisecond)
	if err != nil || a.Name != "hello" {
		t.Fatal(a, err)
	}
	// No operation yet: the wait passes with nothing.
	if d, _, err := w.Next(ctx); d != nil || err != nil {
		t.Fatalf("before any operation: %+v %v", d, err)
	}
	ch, err := e.DeployLatest(ctx, dev, "hello", DeploySettings{})
	if err != nil {
		t.Fatal(err)
	}
	d, idx, err := w.Next(ctx)
	if err != nil || d == nil || d.Generation != ch.Deploy.Generation || d.State != state.DeployPending || idx == 0 {
		t.Fatalf("after a deploy: %+v %d %v", d, idx, err)
	}
	// The same record is not answered twice.
	if d, _, err := w.Next(ctx); d != nil || err != nil {
		t.Fatalf("with no change: %+v %v", d, err)
	}
	done(e, "hello")
	ch, err = e.Undeploy(ctx, dev, "hello")
	if err != nil {
		t.Fatal(err)
	}
	d, idx2, err := w.Next(ctx)
	if err != nil || d == nil || d.Operation != "undeploy" || d.Generation != ch.Deploy.Generation || idx2 <= idx {
		t.Fatalf("after undeploy: %+v %d %v", d, idx2, err)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := w.Next(cctx); err == nil {
		t.Fatal("Next on a cancelled context answers no error")
	}
}
