package nomad

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/backends"
)

// deployResult is Berth's view of a deployment.
type deployResult struct {
	State        backends.DeployState // deploying, running or failed (backends.AppStatus.Deployment); "" when unknown
	Message      string
	DeploymentID string
	Terminal     bool // the deployment ended (successful, failed, cancelled) or was superseded
}

// mapDeployment maps a Nomad deployment to Berth's deployment states:
// successful is running, failed and cancelled are failed, and every other
// status (running, paused, pending, blocked, ...) is deploying.
func mapDeployment(d *api.Deployment) deployResult {
	r := deployResult{DeploymentID: d.ID, Message: d.StatusDescription}
	switch d.Status {
	case api.DeploymentStatusSuccessful:
		r.State, r.Terminal = backends.DeployRunning, true
	case api.DeploymentStatusFailed, api.DeploymentStatusCancelled:
		r.State, r.Terminal = backends.DeployFailed, true
	default:
		r.State = backends.DeployDeploying
		if p := progress(d); p != "" {
			r.Message = strings.TrimSpace(d.StatusDescription + "; " + p)
			r.Message = strings.TrimPrefix(r.Message, "; ")
		}
	}
	return r
}

// progress says how many allocations of each group are healthy.
func progress(d *api.Deployment) string {
	names := make([]string, 0, len(d.TaskGroups))
	for n := range d.TaskGroups {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		s := d.TaskGroups[n]
		parts = append(parts, fmt.Sprintf("%s %d/%d healthy", n, s.HealthyAllocs, s.DesiredTotal))
	}
	return strings.Join(parts, ", ")
}
