package engine

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// svcFixture is an engine with a recBroker, users alice (team "red"),
// bob (team "blue") and loner (no team).
func svcFixture(t *testing.T) (*Engine, *recBroker) {
	t.Helper()
	rb := newRecBroker()
	e, _ := newTestEngine(t, func(cfg *config.Config, d *Deps) {
		cfg.Plugins.CallTimeoutDur = 2 * time.Second
		d.Brokers = recBrokers{rb}
	})
	ctx := context.Background()
	for _, u := range []string{"alice@b.co", "bob@b.co", "loner@b.co"} {
		if _, err := state.Create(ctx, e.store, state.UserKey(u), &state.User{ID: state.NewID(), Email: u}); err != nil {
			t.Fatal(err)
		}
	}
	for team, u := range map[string]string{"red": "alice@b.co", "blue": "bob@b.co"} {
		if _, err := state.Create(ctx, e.store, state.TeamKey(team), &state.Team{ID: state.NewID(), Name: team, Users: []string{u}}); err != nil {
			t.Fatal(err)
		}
	}
	return e, rb
}

var (
	alice = &Identity{Email: "alice@b.co"}
	bob   = &Identity{Email: "bob@b.co"}
	loner = &Identity{Email: "loner@b.co"}
)

// untouched fails the test if it is read.
type untouched struct{ t *testing.T }

func (u untouched) Read([]byte) (int, error) {
	u.t.Error("the definition was read before the caller was allowed")
	return 0, io.EOF
}

func TestCreateServiceRefusesBeforeReading(t *testing.T) {
	e, _ := svcFixture(t)
	ctx := context.Background()
	if _, _, err := e.CreateService(ctx, loner, untouched{t}); !errors.Is(err, ErrForbidden) {
		t.Errorf("a user in no team: %v, want forbidden", err)
	}
	if _, err := e.UpdateService(ctx, loner, untouched{t}); !errors.Is(err, ErrForbidden) {
		t.Errorf("a user in no team updating: %v, want forbidden", err)
	}
	if _, _, err := e.CreateService(ctx, &Identity{Email: "alice@b.co", AppToken: true}, untouched{t}); !errors.Is(err, ErrForbidden) {
		t.Errorf("an app token: %v, want forbidden", err)
	}
}

func TestCreateServiceDefinitionChecks(t *testing.T) {
	e, _ := svcFixture(t)
	ctx := context.Background()
	big := "id: big\nbroker: rec\ndoc: " + strings.Repeat("x", maxServiceYAMLBytes) + "\n"
	if name, _, err := e.CreateService(ctx, alice, strings.NewReader(big)); !errors.Is(err, ErrTooLarge) || name != "" {
		t.Errorf("an oversized definition: %q %v, want too large", name, err)
	}
	for what, def := range map[string]string{
		"empty":         "",
		"unknown field": "id: s\nbroker: rec\ncolour: red\n",
		"no broker":     "id: s\n",
		"bad key":       "id: s\nbroker: rec\nsettings: {'a b': c}\n",
	} {
		if _, _, err := e.CreateService(ctx, alice, strings.NewReader(def)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want invalid", what, err)
		}
	}
	var ne *names.Error
	if _, _, err := e.CreateService(ctx, alice, strings.NewReader("id: 'no spaces'\nbroker: rec\n")); !errors.As(err, &ne) {
		t.Errorf("an invalid id: %v, want a names error", err)
	}
	// Broker settings are the operator's: only site admins give them.
	name, _, err := e.CreateService(ctx, alice, strings.NewReader("id: mine\nbroker: rec\nsettings: {host: 10.0.0.1}\n"))
	if !errors.Is(err, ErrForbidden) || name != "mine" {
		t.Errorf("settings from a non-admin: %q %v, want forbidden naming the service", name, err)
	}
	// A built-in broker needs a target.
	if _, _, err := e.CreateService(ctx, alice, strings.NewReader("id: my\nbroker: mysql\n")); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "target") {
		t.Errorf("a built-in broker with no target: %v", err)
	}
	// Owner team must be the caller's.
	if _, _, err := e.CreateService(ctx, alice, strings.NewReader("id: s\nbroker: rec\nteam: blue\n")); !errors.Is(err, ErrForbidden) {
		t.Errorf("another team as owner: %v, want forbidden", err)
	}
}

func TestServiceLifecycle(t *testing.T) {
	e, _ := svcFixture(t)
	ctx := context.Background()
	name, svc, err := e.CreateService(ctx, alice, strings.NewReader("id: cache\nbroker: rec\ndoc: use it\n"))
	if err != nil || name != "cache" {
		t.Fatalf("create: %q %v", name, err)
	}
	if strings.Join(svc.OwnerTeams, ",") != "red" || strings.Join(svc.Teams, ",") != "red" {
		t.Errorf("owner teams %v, teams %v; want the creator's team red", svc.OwnerTeams, svc.Teams)
	}
	if _, _, err := e.CreateService(ctx, alice, strings.NewReader("id: cache\nbroker: rec\n")); !errors.Is(err, ErrConflict) {
		t.Errorf("a second create: %v, want conflict", err)
	}
	visible := func(id *Identity) bool {
		l, err := e.ListServices(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, si := range l {
			if si.Service.Name == "cache" {
				return true
			}
		}
		return false
	}
	if !visible(alice) || visible(bob) || !visible(admin) {
		t.Errorf("visibility: alice %v bob %v admin %v; want true false true", visible(alice), visible(bob), visible(admin))
	}
	if doc, err := e.ServiceDoc(ctx, alice, "cache"); err != nil || doc != "use it" {
		t.Errorf("doc: %q %v", doc, err)
	}
	if _, err := e.ServiceDoc(ctx, bob, "cache"); !errors.Is(err, ErrForbidden) {
		t.Errorf("doc for a team without access: %v", err)
	}
	if err := e.SetServiceDoc(ctx, bob, "cache", untouched{t}); !errors.Is(err, ErrForbidden) {
		t.Errorf("doc set by a non-owner: %v", err)
	}
	if err := e.SetServiceDoc(ctx, alice, "cache", strings.NewReader("new doc")); err != nil {
		t.Fatal(err)
	}
	if doc, _ := e.ServiceDoc(ctx, alice, "cache"); doc != "new doc" {
		t.Errorf("doc after set: %q", doc)
	}

	// Grants: bob's team gets access; twice is a conflict; the last team
	// cannot be revoked.
	if err := e.GrantService(ctx, bob, "cache", "blue"); !errors.Is(err, ErrForbidden) {
		t.Errorf("grant by a non-owner: %v", err)
	}
	if err := e.GrantService(ctx, alice, "cache", "green"); !errors.Is(err, ErrNotFound) {
		t.Errorf("grant to no such team: %v", err)
	}
	if err := e.GrantService(ctx, alice, "cache", "blue"); err != nil {
		t.Fatal(err)
	}
	if !visible(bob) {
		t.Error("after the grant, bob does not see the service")
	}
	if err := e.GrantService(ctx, alice, "cache", "blue"); !errors.Is(err, ErrConflict) {
		t.Errorf("a second grant: %v", err)
	}
	if err := e.RevokeService(ctx, alice, "cache", "red"); err != nil {
		t.Fatal(err)
	}
	if visible(alice) {
		t.Error("after revoking red, alice still sees the service")
	}
	// Blue, the last team left, became the owner.
	if err := e.RevokeService(ctx, bob, "cache", "blue"); !errors.Is(err, ErrForbidden) {
		t.Errorf("revoking the last team: %v", err)
	}

	// An instance keeps the service from going away and its broker from
	// changing.
	if _, err := e.CreateInstance(ctx, bob, "cache1", "cache"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.UpdateService(ctx, bob, strings.NewReader("id: cache\nbroker: other\n")); !errors.Is(err, ErrConflict) {
		t.Errorf("changing the broker of a service with instances: %v", err)
	}
	if _, err := e.UpdateService(ctx, bob, strings.NewReader("id: cache\nbroker: rec\nplan: big\n")); err != nil {
		t.Errorf("updating the plan: %v", err)
	}
	if si, err := e.Service(ctx, bob, "cache"); err != nil || si.Service.Plan != "big" || len(si.Instances) != 1 {
		t.Errorf("the service after the update: %+v %v", si, err)
	}
	if err := e.RemoveService(ctx, bob, "cache"); !errors.Is(err, ErrForbidden) {
		t.Errorf("removing a service with instances: %v", err)
	}
	if err := e.RemoveInstance(ctx, bob, "cache1"); err != nil {
		t.Fatal(err)
	}
	if err := e.RemoveService(ctx, bob, "cache"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Service(ctx, bob, "cache"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the removed service: %v", err)
	}
}

func TestInstanceAccess(t *testing.T) {
	e, _ := svcFixture(t)
	ctx := context.Background()
	if _, _, err := e.CreateService(ctx, alice, strings.NewReader("id: cache\nbroker: rec\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateInstance(ctx, bob, "c1", "cache"); !errors.Is(err, ErrForbidden) {
		t.Errorf("an instance of a service not granted to bob: %v", err)
	}
	inst, err := e.CreateInstance(ctx, alice, "c1", "cache")
	if err != nil {
		t.Fatal(err)
	}
	if inst.State != state.InstanceReady || strings.Join(inst.Teams, ",") != "red" || inst.Owner != "alice@b.co" {
		t.Errorf("the new instance: %+v", inst)
	}
	if _, err := e.CreateInstance(ctx, alice, "c1", "cache"); !errors.Is(err, ErrConflict) {
		t.Errorf("a second instance of that name: %v", err)
	}
	if _, err := e.Instance(ctx, bob, "c1"); !errors.Is(err, ErrForbidden) {
		t.Errorf("bob reads alice's instance: %v", err)
	}
	if _, err := e.Instance(ctx, &Identity{Email: "alice@b.co", AppToken: true}, "c1"); !errors.Is(err, ErrForbidden) {
		t.Errorf("an app token reads an instance: %v", err)
	}
	if _, err := e.Instance(ctx, alice, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("no such instance: %v", err)
	}
	st, err := e.InstanceStatus(ctx, alice, "c1")
	if err != nil || st.State != state.InstanceReady || st.Broker != "succeeded" {
		t.Errorf("status: %+v %v", st, err)
	}
	if err := e.RemoveInstance(ctx, bob, "c1"); !errors.Is(err, ErrForbidden) {
		t.Errorf("bob removes alice's instance: %v", err)
	}
	if err := e.RemoveInstance(ctx, alice, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Instance(ctx, alice, "c1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the removed instance: %v", err)
	}
}
