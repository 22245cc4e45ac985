package sdk_test

import (
	"errors"
	"testing"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/sdk"
)

func TestCheckProvision(t *testing.T) {
	cat := &broker.Catalog{Services: []broker.Service{
		{ID: "s1", Name: "one", Plans: []broker.Plan{{ID: "p1", Name: "small"}, {ID: "p2", Name: "big"}}},
		{ID: "s2", Name: "two", Plans: []broker.Plan{{ID: "p3", Name: "only"}}},
	}}
	for _, c := range []struct {
		svc, plan, wantSvc, wantPlan string
		bad                          bool
	}{
		{"", "", "s1", "p1", false},
		{"s1", "p2", "s1", "p2", false},
		{"two", "", "s2", "p3", false},
		{"one", "big", "s1", "p2", false},
		{"s3", "", "", "", true},
		{"s2", "p1", "", "", true},
	} {
		got, err := sdk.CheckProvision(broker.ProvisionRequest{InstanceID: "i", ServiceID: c.svc, PlanID: c.plan}, cat)
		if c.bad {
			if !errors.Is(err, broker.ErrBadRequest) {
				t.Errorf("(%q,%q): err = %v, want ErrBadRequest", c.svc, c.plan, err)
			}
			continue
		}
		if err != nil || got.ServiceID != c.wantSvc || got.PlanID != c.wantPlan {
			t.Errorf("(%q,%q) = (%q,%q), %v; want (%q,%q)", c.svc, c.plan, got.ServiceID, got.PlanID, err, c.wantSvc, c.wantPlan)
		}
	}
	if _, err := sdk.CheckProvision(broker.ProvisionRequest{InstanceID: "Bad"}, cat); !errors.Is(err, broker.ErrBadRequest) {
		t.Errorf("bad instance ID: err = %v", err)
	}
	if err := sdk.CheckBind("i", "b_x"); !errors.Is(err, broker.ErrBadRequest) {
		t.Errorf("bad binding ID: err = %v", err)
	}
}

func TestErrorHelpers(t *testing.T) {
	if !errors.Is(sdk.Gone("binding", "b"), broker.ErrGone) || !errors.Is(sdk.NotFound("i"), broker.ErrNotFound) ||
		!errors.Is(sdk.Conflict("instance", "i"), broker.ErrConflict) {
		t.Error("helpers do not wrap their sentinels")
	}
}
