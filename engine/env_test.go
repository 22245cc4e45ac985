package engine

import (
	"context"
	"reflect"
	"testing"

	"github.com/berthpaas/berth/engine/state"
)

// runtimeEnv is the app's env as the scheduler would get it.
func runtimeEnv(t *testing.T, e *Engine, app string) (public, private map[string]string) {
	t.Helper()
	ctx := context.Background()
	a, err := state.GetApp(ctx, e.store, app)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := e.RenderSpec(ctx, a, &state.Release{})
	if err != nil {
		t.Fatal(err)
	}
	return spec.Env, spec.PrivateEnv
}

func TestEnv(t *testing.T) {
	ctx := context.Background()
	e := newDeployEngine(t)
	dev := addUser(t, e, "dev@example.com")
	addApp(t, e, dev, "hello", "")

	// Not deployed: the change is direct, with no operation.
	ch, err := e.SetEnv(ctx, dev, "hello", []EnvSet{{Name: "GREETING", Value: "hi", Public: true}, {Name: "DB_PASSWORD", Value: "s3cret"}}, false)
	if err != nil || ch != nil {
		t.Fatalf("set env of an app not deployed: %+v %v", ch, err)
	}
	vars, err := e.Env(ctx, dev, "hello")
	if err != nil {
		t.Fatal(err)
	}
	want := []state.EnvVar{{Name: "DB_PASSWORD", Public: false}, {Name: "GREETING", Value: "hi", Public: true}}
	if !reflect.DeepEqual(vars, want) {
		t.Fatalf("env: %+v", vars)
	}
	pub, priv := runtimeEnv(t, e, "hello")
	if pub["GREETING"] != "hi" || priv["DB_PASSWORD"] != "s3cret" || pub["DB_PASSWORD"] != "" {
		t.Fatalf("runtime env: public %v, private %v", pub, priv)
	}

	for what, vars := range map[string][]EnvSet{
		"no variables":     nil,
		"an invalid name":  {{Name: "1BAD", Value: "x", Public: true}},
		"a value with NUL": {{Name: "OK", Value: "a\x00b", Public: true}},
	} {
		_, err := e.SetEnv(ctx, dev, "hello", vars, false)
		wantKind(t, what, err, ErrInvalid)
	}
	_, err = e.UnsetEnv(ctx, dev, "hello", []string{"NOPE"}, false)
	wantKind(t, "unset of an unknown variable", err, ErrNotFound)
	_, err = e.UnsetEnv(ctx, dev, "hello", nil, false)
	wantKind(t, "unset of nothing", err, ErrInvalid)

	// Deployed: a change is an operation under the lease.
	push(t, e, "hello", "1-aaa")
	if _, err := e.DeployLatest(ctx, dev, "hello", DeploySettings{}); err != nil {
		t.Fatal(err)
	}
	// Refused while the deploy holds the lease: nothing is written,
	// private values included.
	_, err = e.SetEnv(ctx, dev, "hello", []EnvSet{{Name: "DB_PASSWORD", Value: "other"}, {Name: "NEW", Value: "x", Public: true}}, false)
	wantKind(t, "set env while a deploy is under way", err, ErrConflict)
	if _, priv := runtimeEnv(t, e, "hello"); priv["DB_PASSWORD"] != "s3cret" {
		t.Fatalf("the refused change wrote the private value: %v", priv)
	}
	if vars, _ := e.Env(ctx, dev, "hello"); len(vars) != 2 {
		t.Fatalf("the refused change wrote the app: %+v", vars)
	}
	done(e, "hello")

	// Making a private variable public drops its private value.
	ch, err = e.SetEnv(ctx, dev, "hello", []EnvSet{{Name: "DB_PASSWORD", Value: "shown", Public: true}}, false)
	if err != nil || ch == nil || ch.Deploy.Operation != "set env" {
		t.Fatalf("set env of a deployed app: %+v %v", ch, err)
	}
	done(e, "hello")
	if pub, priv := runtimeEnv(t, e, "hello"); pub["DB_PASSWORD"] != "shown" || priv["DB_PASSWORD"] != "" {
		t.Fatalf("after making it public: public %v, private %v", pub, priv)
	}

	ch, err = e.UnsetEnv(ctx, dev, "hello", []string{"GREETING"}, true)
	if err != nil || ch != nil {
		t.Fatalf("unset with norestart: %+v %v", ch, err)
	}
	if vars, _ := e.Env(ctx, dev, "hello"); !reflect.DeepEqual(vars, []state.EnvVar{{Name: "DB_PASSWORD", Value: "shown", Public: true}}) {
		t.Fatalf("env after unset: %+v", vars)
	}

	other := addUser(t, e, "other@example.com")
	_, err = e.Env(ctx, other, "hello")
	wantKind(t, "env read by a user with no role", err, ErrForbidden)
	_, err = e.SetEnv(ctx, other, "hello", []EnvSet{{Name: "X", Value: "y", Public: true}}, false)
	wantKind(t, "env set by a user with no role", err, ErrForbidden)
}

func TestRestartAndSwap(t *testing.T) {
	ctx := context.Background()
	e := newDeployEngine(t)
	dev := addUser(t, e, "dev@example.com")
	addApp(t, e, dev, "blue", "")
	addApp(t, e, dev, "green", "")

	_, err := e.RestartApp(ctx, dev, "blue")
	wantKind(t, "restart of an app not deployed", err, ErrInvalid)
	push(t, e, "blue", "1-aaa")
	if _, err := e.DeployLatest(ctx, dev, "blue", DeploySettings{}); err != nil {
		t.Fatal(err)
	}
	done(e, "blue")
	ch, err := e.RestartApp(ctx, dev, "blue")
	if err != nil || ch.Deploy.Operation != "restart" || ch.App.RestartGen != 1 {
		t.Fatalf("restart: %+v %v", ch, err)
	}

	// The restart holds blue's lease: a swap waits for it, and changes
	// nothing.
	_, err = e.Swap(ctx, dev, "blue", "green")
	wantKind(t, "swap while a restart is under way", err, ErrConflict)
	done(e, "blue")

	routes, err := e.Swap(ctx, dev, "blue", "green")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"blue": {"green." + e.cfg.Apps.Domain}, "green": {"blue." + e.cfg.Apps.Domain}}
	if !reflect.DeepEqual(routes, want) {
		t.Fatalf("swap: %v", routes)
	}
	if a, _ := e.LoadApp(ctx, dev, "blue", ActAppRead); !reflect.DeepEqual(a.Routes, want["blue"]) {
		t.Fatalf("blue's routes after swap: %v", a.Routes)
	}
	// The swap released both leases; swapping again restores the routes.
	routes, err = e.Swap(ctx, dev, "green", "blue")
	if err != nil || routes["blue"][0] != "blue."+e.cfg.Apps.Domain {
		t.Fatalf("swap back: %v %v", routes, err)
	}

	_, err = e.Swap(ctx, dev, "blue", "blue")
	wantKind(t, "swap of an app with itself", err, ErrInvalid)
	_, err = e.Swap(ctx, dev, "blue", "nope")
	wantKind(t, "swap with an unknown app", err, ErrNotFound)
	other := addUser(t, e, "other@example.com")
	addApp(t, e, other, "mine", "")
	_, err = e.Swap(ctx, other, "mine", "blue")
	wantKind(t, "swap with another user's app", err, ErrForbidden)
	if a, _ := e.LoadApp(ctx, other, "mine", ActAppRead); a.Routes[0] != "mine."+e.cfg.Apps.Domain {
		t.Fatalf("the refused swap changed the routes: %v", a.Routes)
	}
}

func TestHealers(t *testing.T) {
	ctx := context.Background()
	e, _ := newTestEngine(t, nil)
	admin := &Identity{Email: "root@example.com", Admin: true}
	var got []string
	for _, h := range e.Healers() {
		got = append(got, h.Name)
	}
	if !reflect.DeepEqual(got, []string{"reconcile", "services"}) {
		t.Fatalf("healers: %v", got)
	}
	_, err := e.RunHealer(ctx, &Identity{Email: "dev@example.com"}, "services")
	wantKind(t, "a healer run by a user", err, ErrForbidden)
	_, err = e.RunHealer(ctx, admin, "nope")
	wantKind(t, "an unknown healer", err, ErrNotFound)
	res, err := e.RunHealer(ctx, admin, "services")
	if err != nil || res.Repaired == nil || len(res.Repaired) != 0 {
		t.Fatalf("services healer with no brokers: %+v %v", res, err)
	}
	_, err = e.RunHealer(ctx, admin, "reconcile")
	wantKind(t, "the reconcile healer with no scheduler", err, ErrUnavailable)
}
