package nomad

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/backends"
)

// deploymentSource is what the deployment watcher reads: the latest
// deployment of a job, as a blocking query (return when the index passes
// waitIndex, or after the server's wait time with the same index). A nil
// deployment means the job has none yet.
type deploymentSource interface {
	LatestDeployment(ctx context.Context, jobID string, waitIndex uint64) (*api.Deployment, uint64, error)
}

// apiDeployments is the deploymentSource of a real Nomad.
type apiDeployments struct {
	client   *api.Client
	q        func(ctx context.Context) *api.QueryOptions
	waitTime time.Duration
}

func (a apiDeployments) LatestDeployment(ctx context.Context, jobID string, waitIndex uint64) (*api.Deployment, uint64, error) {
	q := a.q(ctx)
	q.WaitIndex = waitIndex
	q.WaitTime = a.waitTime
	d, meta, err := a.client.Jobs().LatestDeployment(jobID, q)
	if err != nil {
		return nil, 0, err
	}
	return d, meta.LastIndex, nil
}

// deployResult is the watcher's view of a deployment.
type deployResult struct {
	State        backends.DeployState // deploying, running or failed (backends.AppStatus.Deployment); "" when unknown
	Message      string
	DeploymentID string
	Terminal     bool // the deployment ended (successful, failed, cancelled) or was superseded
}

// watchDeployment follows the deployment of jobID's version with blocking
// queries until it ends or ctx is done, calling update on every change of
// the result. Errors are retried with backoff (1s doubling to 15s). It
// returns the last result.
//
// A deployment is the one of (create, version) when its JobCreateIndex is
// create (the job's create index: a job stopped with purge and registered
// again starts its versions over) and its JobVersion is version; a
// deployment of a later job or version supersedes it.
func watchDeployment(ctx context.Context, src deploymentSource, jobID string, create, version uint64, update func(deployResult)) deployResult {
	var (
		index   uint64
		last    deployResult
		started bool
		retry   = time.Second
	)
	emit := func(r deployResult) {
		if !started || r != last {
			started = true
			last = r
			if update != nil {
				update(r)
			}
		}
	}
	emit(deployResult{State: backends.DeployDeploying, Message: fmt.Sprintf("waiting for the deployment of job version %d", version)})
	for {
		d, idx, err := src.LatestDeployment(ctx, jobID, index)
		if ctx.Err() != nil {
			return last
		}
		if err != nil {
			select {
			case <-ctx.Done():
				return last
			case <-time.After(retry):
			}
			retry = min(2*retry, 15*time.Second)
			continue
		}
		retry = time.Second
		if idx < index {
			index = 0 // the server's index went back (restore): start over
		} else {
			index = idx
		}
		if d == nil || d.JobCreateIndex < create || d.JobCreateIndex == create && d.JobVersion < version {
			continue // no deployment yet, or one of an earlier job or version
		}
		if d.JobCreateIndex > create || d.JobVersion > version {
			last.Terminal = true
			r := last
			r.Message = fmt.Sprintf("superseded by job version %d (job create index %d)", d.JobVersion, d.JobCreateIndex)
			emit(r)
			return last
		}
		r := mapDeployment(d)
		emit(r)
		if r.Terminal {
			return last
		}
	}
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
