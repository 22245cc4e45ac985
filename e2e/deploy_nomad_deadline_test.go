package e2e

// Deploy deadlines on a real Nomad (issue 8): a release whose health check
// never passes, deployed with a short progress_deadline, ends failed; with
// auto_revert Nomad reverts the job to the last stable version (Berth renders
// the update block so that Nomad does it) and Berth follows: the app ends
// running the previous release, in Berth's API and in Nomad; without it the
// job stays at the failed version. Either way the app's lease is free
// afterwards. It runs only when NOMAD_ADDR is set (see tools/nomad/README.md
// and deploy_nomad_test.go for what that Nomad needs).

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/api"
)

// nomadDeadline is the progress_deadline of the failing deploys: Nomad's
// update block then has healthy_deadline 24s and min_healthy_time 10s
// (backends/nomad updateTimes).
const nomadDeadline = "30s"

// unhealthyNomadRelease is nomadRelease whose web health check path does
// not exist (python's http.server answers 404), so it never passes.
func unhealthyNomadRelease(mv, version string) map[string]any {
	rel := nomadRelease(mv, version)
	rel["web"].(map[string]any)["healthcheck"] = "/unhealthy"
	return rel
}

// nomadStep is one state of the app seen through Berth's API while a
// deploy was followed.
type nomadStep struct {
	at                     time.Duration
	gen                    int64
	state, mv, op, message string
}

func (s nomadStep) String() string {
	return fmt.Sprintf("+%v gen %d %s %s (%s): %s", s.at.Round(100*time.Millisecond), s.gen, s.state, s.mv, s.op, s.message)
}

// followDeploy polls GET /api/v1/apps/:app/ from start until done holds
// (within nomadTimeout), logging every change, and returns the last view
// and the steps seen.
func followDeploy(t *testing.T, b *Berth, u *User, app string, start time.Time, done func(v api.DeployedApp) bool) (api.DeployedApp, []nomadStep) {
	t.Helper()
	var steps []nomadStep
	deadline := time.Now().Add(nomadTimeout)
	for {
		v := decodeAs[api.DeployedApp](t, b.do(t, "GET", "/api/v1/apps/"+app+"/", u, nil).want(t, http.StatusOK))
		if v.Deploy != nil {
			s := nomadStep{time.Since(start), v.Deploy.Generation, v.State, v.MetaVersion, v.Operation, v.Message}
			if n := len(steps); n == 0 || steps[n-1].gen != s.gen || steps[n-1].state != s.state || steps[n-1].mv != s.mv || steps[n-1].message != s.message {
				steps = append(steps, s)
				t.Logf("app %s: %s", app, s)
			}
			if done(v) {
				return v, steps
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("app %s: the deploy did not settle within %v; steps: %v", app, nomadTimeout, steps)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// healthyAt waits until the Nomad job app's latest version carries
// meta_version mv and every group runs its count of healthy allocations of
// that version, and returns the job.
func healthyAt(t *testing.T, nc *nomadapi.Client, app, mv string) *nomadapi.Job {
	t.Helper()
	var job *nomadapi.Job
	var why string
	deadline := time.Now().Add(nomadTimeout)
	for {
		job = nomadJob(t, nc, app)
		why = ""
		switch {
		case job == nil:
			why = "no job"
		case job.Meta["berth_meta_version"] != mv:
			why = fmt.Sprintf("job version %d is at %s", *job.Version, job.Meta["berth_meta_version"])
		default:
			allocs, _, err := nc.Jobs().Allocations(app, false, nil)
			if err != nil {
				t.Fatalf("allocations of %s: %v", app, err)
			}
			healthy := map[string]int{}
			for _, a := range allocs {
				if a.JobVersion == *job.Version && a.DesiredStatus == "run" && a.ClientStatus == "running" &&
					a.DeploymentStatus != nil && a.DeploymentStatus.Healthy != nil && *a.DeploymentStatus.Healthy {
					healthy[a.TaskGroup]++
				}
			}
			for _, g := range job.TaskGroups {
				if healthy[*g.Name] < *g.Count {
					why = fmt.Sprintf("group %s: %d of %d allocations of job version %d healthy", *g.Name, healthy[*g.Name], *g.Count, *job.Version)
				}
			}
		}
		if why == "" {
			return job
		}
		if time.Now().After(deadline) {
			t.Fatalf("the Nomad job %s did not run %s healthy within %v: %s", app, mv, nomadTimeout, why)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// jobVersions lists the Nomad job's versions, oldest first, as
// "N:meta_version".
func jobVersions(t *testing.T, nc *nomadapi.Client, app string) []string {
	t.Helper()
	vs, _, _, err := nc.Jobs().Versions(app, false, nil)
	if err != nil {
		t.Fatalf("versions of the Nomad job %s: %v", app, err)
	}
	out := make([]string, len(vs))
	for i, j := range vs {
		out[len(vs)-1-i] = fmt.Sprintf("%d:%s", *j.Version, j.Meta["berth_meta_version"])
	}
	return out
}

// stays checks for d that the Nomad job keeps its version and meta_version
// (nobody registers it again: Berth and Nomad do not fight).
func stays(t *testing.T, nc *nomadapi.Client, app string, d time.Duration) {
	t.Helper()
	first := nomadJob(t, nc, app)
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		time.Sleep(time.Second)
		j := nomadJob(t, nc, app)
		if j == nil || *j.Version != *first.Version || j.Meta["berth_meta_version"] != first.Meta["berth_meta_version"] {
			t.Errorf("the Nomad job %s kept changing after the deploy settled: version %d (%s), then %v; versions %v",
				app, *first.Version, first.Meta["berth_meta_version"], j, jobVersions(t, nc, app))
			return
		}
	}
}

// undeployNomad undeploys app through Berth and waits for its job to go.
func undeployNomad(t *testing.T, b *Berth, u *User, nc *nomadapi.Client, app string) {
	t.Helper()
	b.operate(t, "DELETE", "/api/v1/apps/"+app+"/", u, nil).want(t, http.StatusAccepted)
	eventually(t, nomadTimeout, "the Nomad job "+app+" to be gone or stopped", func() bool {
		job := nomadJob(t, nc, app)
		return job == nil || (job.Stop != nil && *job.Stop)
	})
}

func TestNomadDeployDeadline(t *testing.T) {
	addr, nc := nomadEnv(t)
	stamp := time.Now().UnixNano() % 1000000
	apps := map[string]string{"auto_revert": fmt.Sprintf("ndlr%d", stamp), "no_revert": fmt.Sprintf("ndlf%d", stamp), "slow_rollout": fmt.Sprintf("ndls%d", stamp)}
	// Registered before Berth starts, so it runs after Berth has stopped
	// (a running Berth would heal a purged job).
	t.Cleanup(func() {
		for _, app := range apps {
			_, _, _ = nc.Jobs().DeregisterOpts(app, &nomadapi.DeregisterOptions{Purge: true}, nil)
		}
	})
	b := startBerth(t, Options{ExtraHCL: nomadHCL(addr)})
	if tok := os.Getenv("NOMAD_TOKEN"); tok != "" {
		b.remember(tok, "the Nomad token")
	}
	u := b.newUser(t, "nomaddl")

	// deployV1 deploys a healthy v1 with n web instances and returns its
	// meta_version.
	deployN := func(t *testing.T, app string, n int) string {
		t.Helper()
		b.createApp(t, u, app)
		v1 := metaVersion()
		rel := nomadRelease(v1, "one")
		rel["web"].(map[string]any)["num_instances"] = n
		b.push(t, u, app, rel)
		start := time.Now()
		r := b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
		b.waitNomadRunning(t, u, app, generationOf(t, r))
		answers(t, b.runningInstances(t, u, app, "web", n, true), "/version.txt", "one")
		healthyAt(t, nc, app, v1)
		t.Logf("v1 %s running after %v", v1, time.Since(start).Round(100*time.Millisecond))
		return v1
	}
	deployV1 := func(t *testing.T, app string) string { t.Helper(); return deployN(t, app, 1) }

	t.Run("auto_revert", func(t *testing.T) {
		app := apps["auto_revert"]
		v1 := deployV1(t, app)
		v2 := metaVersion()
		b.push(t, u, app, unhealthyNomadRelease(v2, "two"))
		start := time.Now()
		r := b.operate(t, "PUT", "/api/v1/apps/"+app+"/", u, map[string]any{
			"meta_version": v2, "progress_deadline": nomadDeadline, "auto_revert": true,
		}).want(t, http.StatusAccepted)
		gen := generationOf(t, r)
		var failedSeen time.Duration
		v, steps := followDeploy(t, b, u, app, start, func(v api.DeployedApp) bool {
			if failedSeen == 0 && v.Deploy.Generation == gen && v.State == "failed" {
				failedSeen = time.Since(start)
			}
			final := v.State == "running" || v.State == "failed" && !strings.Contains(v.Message, "reverting to")
			return v.Deploy.Generation > gen && final || v.Deploy.Generation == gen && final
		})
		t.Logf("auto_revert: settled after %v: %s %s (%s)", time.Since(start).Round(100*time.Millisecond), v.State, v.MetaVersion, v.Operation)
		if v.State != "running" || v.MetaVersion != v1 {
			t.Fatalf("after the never-healthy deploy of %s the app is %q at %s (operation %q: %s), want running at %s (reverted); steps %v",
				v2, v.State, v.MetaVersion, v.Operation, v.Message, v1, steps)
		}
		if v.Deploy.Generation <= gen || !strings.Contains(v.Operation, "revert") || v.Deploy.Reverted == nil ||
			v.Deploy.Reverted.MetaVersion != v2 || v.Deploy.Reverted.Generation != gen {
			t.Errorf("the revert is not recorded as such: generation %d (failed one %d), operation %q, reverted %+v",
				v.Deploy.Generation, gen, v.Operation, v.Deploy.Reverted)
		} else if m := v.Deploy.Reverted.Message; !strings.Contains(m, "deadline") && !strings.Contains(m, "unhealthy") {
			t.Errorf("the failed deploy's message does not say it missed its deadline or was unhealthy: %q", m)
		}
		if v.Deploy.Reverted != nil {
			t.Logf("auto_revert: the failed deploy (generation %d, seen failed in the API: %v) is recorded as %q", gen, failedSeen > 0, v.Deploy.Reverted.Message)
		}
		if v.ProgressDeadline != nomadDeadline || !v.AutoRevert {
			t.Errorf("the app shows progress_deadline %q auto_revert %v, want %s and true", v.ProgressDeadline, v.AutoRevert, nomadDeadline)
		}
		// Nomad runs v1, healthy; and nobody keeps re-registering it.
		job := healthyAt(t, nc, app, v1)
		answers(t, b.runningInstances(t, u, app, "web", 1, true), "/version.txt", "one")
		t.Logf("auto_revert: Nomad job at version %d (%s) healthy after %v; versions %v", *job.Version, job.Meta["berth_meta_version"],
			time.Since(start).Round(100*time.Millisecond), jobVersions(t, nc, app))
		stays(t, nc, app, 15*time.Second)
		if v := b.deployed(t, u, app); v.State != "running" || v.MetaVersion != v1 {
			t.Errorf("15s later the app is %q at %s: %s", v.State, v.MetaVersion, v.Message)
		}
		// The lease is free: a new operation is accepted at once.
		r = b.do(t, "GET", "/apps/"+app+"/restart", u, nil)
		if r.Code != http.StatusOK {
			t.Fatalf("after the revert, a restart was not accepted: %s", r)
		}
		b.waitNomadRunning(t, u, app, generationOf(t, r))
		healthyAt(t, nc, app, v1)
		undeployNomad(t, b, u, nc, app)
	})

	t.Run("no_revert", func(t *testing.T) {
		app := apps["no_revert"]
		v1 := deployV1(t, app)
		v2 := metaVersion()
		b.push(t, u, app, unhealthyNomadRelease(v2, "two"))
		start := time.Now()
		r := b.operate(t, "PUT", "/api/v1/apps/"+app+"/", u, map[string]any{
			"meta_version": v2, "progress_deadline": nomadDeadline, "auto_revert": false,
		}).want(t, http.StatusAccepted)
		gen := generationOf(t, r)
		v, steps := followDeploy(t, b, u, app, start, func(v api.DeployedApp) bool {
			return v.Deploy.Generation >= gen && (v.State == "running" || v.State == "failed")
		})
		t.Logf("no_revert: settled after %v: %s %s: %s", time.Since(start).Round(100*time.Millisecond), v.State, v.MetaVersion, v.Message)
		if v.State != "failed" || v.Deploy.Generation != gen || v.MetaVersion != v2 {
			t.Fatalf("the never-healthy deploy of %s ended %q at generation %d (want failed at %d) at %s; steps %v", v2, v.State, v.Deploy.Generation, gen, v.MetaVersion, steps)
		}
		if !strings.Contains(v.Message, "deadline") && !strings.Contains(v.Message, "unhealthy") {
			t.Errorf("the failure message does not say the deploy missed its deadline or was unhealthy: %q", v.Message)
		}
		if v.ProgressDeadline != nomadDeadline || v.AutoRevert {
			t.Errorf("the app shows progress_deadline %q auto_revert %v, want %s and false", v.ProgressDeadline, v.AutoRevert, nomadDeadline)
		}
		// Nomad did not revert: the job stays at v2.
		job := nomadJob(t, nc, app)
		if job == nil || job.Meta["berth_meta_version"] != v2 {
			t.Fatalf("without auto_revert the Nomad job is at %v, want %s; versions %v", job, v2, jobVersions(t, nc, app))
		}
		for _, g := range job.TaskGroups {
			if g.Update == nil || g.Update.AutoRevert == nil || *g.Update.AutoRevert {
				t.Errorf("group %s of the failed version renders auto_revert %v, want false", *g.Name, g.Update)
			}
		}
		stays(t, nc, app, 15*time.Second)
		if v := b.deployed(t, u, app); v.State != "failed" || v.MetaVersion != v2 {
			t.Errorf("15s later the app is %q at %s: %s", v.State, v.MetaVersion, v.Message)
		}
		t.Logf("no_revert: Nomad job versions %v", jobVersions(t, nc, app))
		// The lease is free: a rollback is accepted at once, and runs.
		r = b.do(t, "PUT", "/api/v1/apps/"+app+"/", u, map[string]any{"meta_version": v1})
		if r.Code != http.StatusAccepted {
			t.Fatalf("after the failed deploy, a rollback was not accepted: %s", r)
		}
		b.waitNomadRunning(t, u, app, generationOf(t, r))
		healthyAt(t, nc, app, v1)
		answers(t, b.runningInstances(t, u, app, "web", 1, true), "/version.txt", "one")
		undeployNomad(t, b, u, nc, app)
	})

	// A healthy release rolled out one instance at a time takes longer than
	// its progress deadline in all, but each instance becomes healthy well
	// within it: Nomad's progress deadline is reset by every healthy
	// allocation (the update block's semantics), so the deploy succeeds, and
	// Berth must not fail (and revert) it at the deadline.
	t.Run("slow_rollout", func(t *testing.T) {
		app := apps["slow_rollout"]
		const n = 3
		deployN(t, app, n)
		v2 := metaVersion()
		rel := nomadRelease(v2, "two")
		rel["web"].(map[string]any)["num_instances"] = n
		b.push(t, u, app, rel)
		start := time.Now()
		r := b.operate(t, "PUT", "/api/v1/apps/"+app+"/", u, map[string]any{
			"meta_version": v2, "progress_deadline": nomadDeadline, "auto_revert": true,
		}).want(t, http.StatusAccepted)
		gen := generationOf(t, r)
		v, steps := followDeploy(t, b, u, app, start, func(v api.DeployedApp) bool {
			return v.Deploy.Generation > gen || v.Deploy.Generation == gen && (v.State == "running" || v.State == "failed")
		})
		took := time.Since(start)
		t.Logf("slow_rollout: settled after %v: %s %s (%s): %s", took.Round(100*time.Millisecond), v.State, v.MetaVersion, v.Operation, v.Message)
		if v.State != "running" || v.Deploy.Generation != gen || v.MetaVersion != v2 {
			t.Fatalf("a healthy rollout of %d instances of %s (each healthy within the %s progress deadline) ended %q at generation %d (want running at %d) at %s: %s; steps %v",
				n, v2, nomadDeadline, v.State, v.Deploy.Generation, gen, v.MetaVersion, v.Message, steps)
		}
		job := healthyAt(t, nc, app, v2)
		if d, _ := time.ParseDuration(nomadDeadline); took < d {
			t.Logf("slow_rollout: the rollout took %v, less than the %v deadline: the test proved nothing about the deadline reset", took, d)
		}
		t.Logf("slow_rollout: Nomad job versions %v (at %d)", jobVersions(t, nc, app), *job.Version)
		answers(t, b.runningInstances(t, u, app, "web", n, true), "/version.txt", "two")
		undeployNomad(t, b, u, nc, app)
	})
}
