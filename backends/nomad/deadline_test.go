package nomad

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
)

func TestProgressBy(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d := &api.Deployment{TaskGroups: map[string]*api.DeploymentState{
		"web":     {RequireProgressBy: t0.Add(30 * time.Second)},
		"sleeper": {RequireProgressBy: t0},
		"none":    {},
	}}
	if got := progressBy(d); !got.Equal(t0.Add(30 * time.Second)) {
		t.Errorf("progressBy = %v, want the latest group deadline %v", got, t0.Add(30*time.Second))
	}
	if got := progressBy(&api.Deployment{}); !got.IsZero() {
		t.Errorf("progressBy of a deployment without groups = %v, want zero", got)
	}
}

// TestRevertReason: a job version is Nomad's auto_revert of the failed
// deployment of the version before it; the reason is that deployment's.
func TestRevertReason(t *testing.T) {
	failed := &api.Deployment{JobVersion: 1, Status: api.DeploymentStatusFailed,
		StatusDescription: "Failed due to progress deadline - rolling back to job version 0"}
	reverting := &api.Deployment{JobVersion: 2, Status: api.DeploymentStatusRunning, StatusDescription: "Deployment is running"}
	deps := []*api.Deployment{reverting, failed}
	if got := revertReason(deps, 0, 2); !strings.Contains(got, "job version 1") || !strings.Contains(got, "Failed due to progress deadline") {
		t.Errorf("revertReason(version 2) = %q, want the failure of version 1", got)
	}
	for _, c := range []struct {
		name    string
		deps    []*api.Deployment
		version uint64
	}{
		{"a later version", deps, 3},
		{"the failed version itself", deps, 1},
		{"a failure without rollback", []*api.Deployment{{JobVersion: 1, Status: api.DeploymentStatusFailed, StatusDescription: "Failed due to progress deadline"}}, 2},
		{"a successful deployment", []*api.Deployment{{JobVersion: 1, Status: api.DeploymentStatusSuccessful, StatusDescription: "Deployment completed successfully"}}, 2},
		{"no deployments", nil, 2},
	} {
		if got := revertReason(c.deps, 0, c.version); got != "" {
			t.Errorf("%s: revertReason = %q, want none", c.name, got)
		}
	}
}
