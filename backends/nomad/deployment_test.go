package nomad

import (
	"testing"

	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/backends"
)

// TestMapDeployment: Nomad's deployment statuses as Berth's deploy states.
func TestMapDeployment(t *testing.T) {
	for _, c := range []struct {
		status   string
		want     backends.DeployState
		terminal bool
	}{
		{api.DeploymentStatusSuccessful, backends.DeployRunning, true},
		{api.DeploymentStatusFailed, backends.DeployFailed, true},
		{api.DeploymentStatusCancelled, backends.DeployFailed, true},
		{api.DeploymentStatusRunning, backends.DeployDeploying, false},
		{api.DeploymentStatusPaused, backends.DeployDeploying, false},
	} {
		d := &api.Deployment{ID: "d", Status: c.status, StatusDescription: "desc",
			TaskGroups: map[string]*api.DeploymentState{"web": {DesiredTotal: 2, HealthyAllocs: 1}}}
		r := mapDeployment(d)
		if r.State != c.want || r.Terminal != c.terminal {
			t.Errorf("%s: %+v, want %s (terminal %v)", c.status, r, c.want, c.terminal)
		}
		if !c.terminal && r.Message != "desc; web 1/2 healthy" {
			t.Errorf("%s: message %q, want the progress of each group", c.status, r.Message)
		}
	}
}
