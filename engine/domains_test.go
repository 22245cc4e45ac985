package engine

import (
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/berthpaas/berth/engine/state"
)

func TestDomains(t *testing.T) {
	ctx := context.Background()
	e := newDeployEngine(t)
	dev := addUser(t, e, "dev@example.com")
	addApp(t, e, dev, "hello", "")
	addApp(t, e, dev, "other", "")
	def := "hello." + e.cfg.Apps.Domain

	// Not deployed: the change is direct, with no operation.
	ch, err := e.AddDomains(ctx, dev, "hello", []string{"WWW.Example.com.", "www.example.com", "shop.example.org"})
	if err != nil || ch.Deploy != nil {
		t.Fatalf("add to an app not deployed: %+v %v", ch, err)
	}
	routes, custom, err := e.Domains(ctx, dev, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(routes, []string{def, "www.example.com", "shop.example.org"}) || !reflect.DeepEqual(custom, []string{"www.example.com", "shop.example.org"}) {
		t.Fatalf("routes %v, custom %v", routes, custom)
	}
	// Adding again changes nothing.
	if ch, err := e.AddDomains(ctx, dev, "hello", []string{"www.example.com"}); err != nil || ch.Deploy != nil || len(ch.App.Routes) != 3 {
		t.Fatalf("add again: %+v %v", ch, err)
	}

	// A host of another app: 409 naming it, and nothing written.
	_, err = e.AddDomains(ctx, dev, "other", []string{"new.example.net", "www.example.com"})
	wantKind(t, "a host of another app", err, ErrConflict)
	if !strings.Contains(err.Error(), `"hello"`) {
		t.Fatalf("the conflict does not name the app that has the host: %v", err)
	}
	if _, c, _ := e.Domains(ctx, dev, "other"); len(c) != 0 {
		t.Fatalf("the refused add wrote domains: %v", c)
	}

	for what, hosts := range map[string][]string{
		"nothing":                      nil,
		"an invalid name":              {"bad_host.example.com"},
		"a single label":               {"localhost"},
		"a name under the apps domain": {"other." + e.cfg.Apps.Domain},
		"a leading dot":                {".example.com"},
	} {
		_, err := e.AddDomains(ctx, dev, "other", hosts)
		wantKind(t, what, err, ErrInvalid)
	}
	stranger := addUser(t, e, "stranger@example.com")
	_, err = e.AddDomains(ctx, stranger, "hello", []string{"x.example.com"})
	wantKind(t, "add by a user with no role", err, ErrForbidden)
	_, err = e.RemoveDomains(ctx, stranger, "hello", []string{"www.example.com"})
	wantKind(t, "remove by a user with no role", err, ErrForbidden)
	_, err = e.RemoveDomains(ctx, dev, "hello", []string{"nope.example.com"})
	wantKind(t, "remove of a host the app does not have", err, ErrNotFound)
	_, err = e.RemoveDomains(ctx, dev, "hello", []string{def})
	wantKind(t, "remove of the app's own route", err, ErrNotFound)

	// Deployed: a change is an operation under the lease, and the spec the
	// scheduler gets has the routes.
	push(t, e, "hello", "1-aaa")
	if _, err := e.DeployLatest(ctx, dev, "hello", DeploySettings{}); err != nil {
		t.Fatal(err)
	}
	_, err = e.AddDomains(ctx, dev, "hello", []string{"api.example.com"})
	wantKind(t, "add while a deploy holds the lease", err, ErrConflict)
	done(e, "hello")
	ch, err = e.RemoveDomains(ctx, dev, "hello", []string{"www.example.com"})
	if err != nil || ch.Deploy == nil || ch.Deploy.Operation != "remove domain www.example.com" || ch.Deploy.State != state.DeployPending {
		t.Fatalf("remove from a deployed app: %+v %v", ch, err)
	}
	a, err := state.GetApp(ctx, e.store, "hello")
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := e.latestRelease(ctx, "hello")
	spec, err := e.RenderSpec(ctx, a, rel)
	if err != nil || !reflect.DeepEqual(spec.Routes, []string{def, "shop.example.org"}) {
		t.Fatalf("spec routes after remove: %v %v", spec.Routes, err)
	}
	done(e, "hello")

	// The removed host is free for another app.
	if _, err := e.AddDomains(ctx, dev, "other", []string{"www.example.com"}); err != nil {
		t.Fatalf("add of a removed host to another app: %v", err)
	}
	_, err = e.AddDomains(ctx, dev, "hello", []string{"www.example.com"})
	wantKind(t, "add back of a host another app took", err, ErrConflict)
}

// Two apps asking for one host at once: exactly one gets it.
func TestDomainsRace(t *testing.T) {
	ctx := context.Background()
	e := newDeployEngine(t)
	dev := addUser(t, e, "dev@example.com")
	apps := []string{"a1", "a2", "a3", "a4"}
	for _, n := range apps {
		addApp(t, e, dev, n, "")
	}
	for round := 0; round < 5; round++ {
		host := "race" + string(rune('0'+round)) + ".example.com"
		var wg sync.WaitGroup
		errs := make([]error, len(apps))
		for i, n := range apps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = e.AddDomains(ctx, dev, n, []string{host})
			}()
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			if err == nil {
				won++
			} else {
				wantKind(t, "a losing add", err, ErrConflict)
			}
			_ = i
		}
		have := 0
		for _, n := range apps {
			a, _ := state.GetApp(ctx, e.store, n)
			if Contains(a.Routes, host) {
				have++
			}
		}
		if won != 1 || have != 1 {
			t.Fatalf("round %d: %d adds succeeded, %d apps have the host", round, won, have)
		}
	}
}

// A host whose app was removed is free again.
func TestDomainsOfRemovedApp(t *testing.T) {
	ctx := context.Background()
	e := newDeployEngine(t)
	dev := addUser(t, e, "dev@example.com")
	addApp(t, e, dev, "old", "")
	addApp(t, e, dev, "new", "")
	if _, err := e.AddDomains(ctx, dev, "old", []string{"www.example.com"}); err != nil {
		t.Fatal(err)
	}
	a, _ := state.GetApp(ctx, e.store, "old")
	if err := e.unregisterApp(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := e.AddDomains(ctx, dev, "new", []string{"www.example.com"}); err != nil {
		t.Fatalf("add of the host of a removed app: %v", err)
	}
}
