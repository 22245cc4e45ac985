package backends_test

import (
	"testing"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/backends"
)

// TestDeployStatesOnTheWire: the api package (which imports nothing of
// Berth's, as a client must not) spells the deploy states that clients
// compare with; they are exactly the states the schedulers and the
// reconciler record.
func TestDeployStatesOnTheWire(t *testing.T) {
	for wire, ours := range map[string]backends.DeployState{
		api.DeployPending:    backends.DeployPending,
		api.DeployDeploying:  backends.DeployDeploying,
		api.DeployRunning:    backends.DeployRunning,
		api.DeployFailed:     backends.DeployFailed,
		api.DeployUndeployed: backends.DeployUndeployed,
	} {
		if wire != string(ours) {
			t.Errorf("api says %q where backends says %q", wire, ours)
		}
	}
}
