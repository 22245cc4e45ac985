package engine

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/plugins/broker"
)

// planBroker is a recBroker with two plans that records the plan each
// instance was provisioned on.
type planBroker struct {
	*recBroker
	mu    sync.Mutex
	plans map[string]string // instance -> plan ID
}

func (b *planBroker) Catalog(context.Context) (*broker.Catalog, error) {
	return &broker.Catalog{Services: []broker.Service{{ID: "rec", Plans: []broker.Plan{
		{ID: "p-small", Name: "small", Description: "a little"}, {ID: "p-big", Name: "big", Description: "a lot"}}}}}, nil
}

func (b *planBroker) Provision(ctx context.Context, req broker.ProvisionRequest) (*broker.ProvisionResponse, error) {
	b.mu.Lock()
	b.plans[req.InstanceID] = req.PlanID
	b.mu.Unlock()
	return b.recBroker.Provision(ctx, req)
}

type planBrokers struct{ b *planBroker }

func (m planBrokers) Check(string) error { return nil }
func (m planBrokers) Broker(context.Context, string, string, map[string]string) (broker.Broker, error) {
	return m.b, nil
}
func (m planBrokers) Stop(string) {}

// TestInstancePlanAndTeam: a new instance may name a plan of the broker's
// catalog and the one team it is given to.
func TestInstancePlanAndTeam(t *testing.T) {
	pb := &planBroker{recBroker: newRecBroker(), plans: map[string]string{}}
	e, _ := newTestEngine(t, func(cfg *config.Config, d *Deps) {
		cfg.Plugins.CallTimeoutDur = 2 * time.Second
		d.Brokers = planBrokers{pb}
	})
	ctx := context.Background()
	for _, u := range []string{"alice@b.co", "bob@b.co"} {
		if _, err := state.Create(ctx, e.store, state.UserKey(u), &state.User{ID: state.NewID(), Email: u}); err != nil {
			t.Fatal(err)
		}
	}
	for team, us := range map[string][]string{"red": {"alice@b.co"}, "green": {"alice@b.co"}, "blue": {"bob@b.co"}} {
		if _, err := state.Create(ctx, e.store, state.TeamKey(team), &state.Team{ID: state.NewID(), Name: team, Users: us}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := e.CreateService(ctx, alice, strings.NewReader("id: cache\nbroker: rec\nteam: red\n")); err != nil {
		t.Fatal(err)
	}
	if err := e.GrantService(ctx, alice, "cache", "blue"); err != nil {
		t.Fatal(err)
	}
	plans, err := e.ServicePlans(ctx, alice, "cache")
	if err != nil || len(plans) != 2 || plans[1].Name != "big" {
		t.Fatalf("plans: %+v %v", plans, err)
	}
	if _, err := e.ServicePlans(ctx, &Identity{Email: "nobody@b.co"}, "cache"); !errors.Is(err, ErrForbidden) {
		t.Errorf("plans of a service not granted to the caller: %v", err)
	}

	// Default: the broker's first plan, all the caller's teams.
	inst, err := e.CreateInstanceWith(ctx, alice, InstanceRequest{Name: "c1", Service: "cache"})
	if err != nil || strings.Join(inst.Teams, ",") != "green,red" || pb.plans["c1"] != "p-small" || inst.Plan != "" {
		t.Fatalf("default instance: %+v %v, provisioned on %q", inst, err, pb.plans["c1"])
	}
	// A plan by name, one team.
	inst, err = e.CreateInstanceWith(ctx, alice, InstanceRequest{Name: "c2", Service: "cache", Plan: "big", Team: "red"})
	if err != nil || strings.Join(inst.Teams, ",") != "red" || pb.plans["c2"] != "p-big" || inst.Plan != "p-big" {
		t.Fatalf("instance on plan big for red: %+v %v, provisioned on %q", inst, err, pb.plans["c2"])
	}
	got, _, err := state.Get[state.ServiceInstance](ctx, e.store, state.InstanceKey("c2"))
	if err != nil || got.Plan != "p-big" || len(got.TeamIDs) != 1 {
		t.Fatalf("c2's record: %+v %v", got, err)
	}
	// Refused, and nothing provisioned: an unknown plan, a team the
	// caller is not in, a team of hers the service is not granted to.
	for _, req := range []struct {
		r    InstanceRequest
		want error
	}{
		{InstanceRequest{Name: "c3", Service: "cache", Plan: "huge"}, ErrInvalid},
		{InstanceRequest{Name: "c3", Service: "cache", Team: "blue"}, ErrForbidden},
		{InstanceRequest{Name: "c3", Service: "cache", Team: "green"}, ErrForbidden},
	} {
		if _, err := e.CreateInstanceWith(ctx, alice, req.r); !errors.Is(err, req.want) {
			t.Errorf("%+v: %v, want %v", req.r, err, req.want)
		}
	}
	if _, ok := pb.plans["c3"]; ok {
		t.Errorf("a refused instance was provisioned")
	}
	if _, _, err := state.Get[state.ServiceInstance](ctx, e.store, state.InstanceKey("c3")); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("a refused instance was recorded: %v", err)
	}
	// Bob (blue) does not see red's instance; he may make one for blue.
	if _, err := e.Instance(ctx, bob, "c2"); !errors.Is(err, ErrForbidden) {
		t.Errorf("bob reads red's instance: %v", err)
	}
	if _, err := e.CreateInstanceWith(ctx, bob, InstanceRequest{Name: "c4", Service: "cache", Team: "blue"}); err != nil {
		t.Errorf("bob's instance for blue: %v", err)
	}
}
