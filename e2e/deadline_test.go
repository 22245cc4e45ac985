package e2e

// Deploys have a deadline (issue 8): a release whose health check never
// passes is failed once its progress deadline passes, the app's lease is
// released, and with auto_revert the app goes back to its last running
// release.

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/api"
)

// unhealthyRelease is a web release whose health check path never answers 200.
func unhealthyRelease(mv, bin string) map[string]any {
	rel := webRelease(mv, bin, 1, "WEBAPP_VERSION=two")
	rel["web"].(map[string]any)["healthcheck"] = "/unhealthy"
	return rel
}

// waitDeploy polls the app until cond holds (within 40s) and returns the view.
func waitDeploy(t *testing.T, b *Berth, u *User, app, what string, cond func(v api.DeployedApp) bool) api.DeployedApp {
	t.Helper()
	var v api.DeployedApp
	deadline := time.Now().Add(40 * time.Second)
	for {
		v = decodeAs[api.DeployedApp](t, b.do(t, "GET", "/api/v1/apps/"+app+"/", u, nil).want(t, http.StatusOK))
		if v.Deploy != nil && cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("app %s: %s did not happen within 40s; last view: state %q operation %q message %q meta_version %s",
				app, what, v.State, v.Operation, v.Message, v.MetaVersion)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestDeployProgressDeadline(t *testing.T) {
	bin := buildWebapp(t)
	ps := trackProcs(t)
	b := startBerth(t, Options{})
	u := b.newUser(t, "deadliner")

	deployGood := func(t *testing.T, app string, body map[string]any) string {
		b.createApp(t, u, app)
		v1 := metaVersion()
		b.push(t, u, app, webRelease(v1, bin, 1, "WEBAPP_VERSION=one"))
		body["appname"] = app
		r := b.do(t, "POST", "/api/v1/apps/", u, body).want(t, http.StatusAccepted)
		v := b.waitRunning(t, u, app, generationOf(t, r))
		ps.note(t, app, v.Procs[0].Instances)
		b.routed(t, appHost(app), "version one", func(a webAnswer) bool { return a.Version == "one" })
		return v1
	}

	t.Run("failed", func(t *testing.T) {
		app := "deadline-fail"
		v1 := deployGood(t, app, map[string]any{"progress_deadline": "5s", "auto_revert": false})
		v2 := metaVersion()
		b.push(t, u, app, unhealthyRelease(v2, bin))
		start := time.Now()
		r := b.operate(t, "PUT", "/api/v1/apps/"+app, u, map[string]any{"meta_version": v2}).want(t, http.StatusAccepted)
		gen := generationOf(t, r)
		v := waitDeploy(t, b, u, app, "the failure of the never-healthy deploy", func(v api.DeployedApp) bool {
			return v.Deploy.Generation >= gen && v.State != "pending" && v.State != "deploying"
		})
		t.Logf("failed after %v: %s", time.Since(start).Round(100*time.Millisecond), v.Message)
		if v.State != "failed" || v.Deploy.Generation != gen {
			t.Fatalf("the never-healthy deploy ended %q at generation %d (want failed at %d): %s", v.State, v.Deploy.Generation, gen, v.Message)
		}
		if !strings.Contains(v.Message, "progress deadline") || !strings.Contains(v.Message, "web.0") || !strings.Contains(v.Message, "503") {
			t.Errorf("the failure message does not say the deadline passed and which instance was unhealthy: %q", v.Message)
		}
		if v.ProgressDeadline != "5s" || v.AutoRevert {
			t.Errorf("the app shows progress_deadline %q auto_revert %v, want the 5s and false it was deployed with", v.ProgressDeadline, v.AutoRevert)
		}
		if v.MetaVersion != v2 {
			t.Errorf("without auto_revert the app's desired version is %s, want %s (no revert)", v.MetaVersion, v2)
		}
		// The lease is free: the next operation is accepted at once.
		r = b.do(t, "PUT", "/api/v1/apps/"+app, u, map[string]any{"meta_version": v1})
		if r.Code != http.StatusAccepted {
			t.Fatalf("after the failed deploy, a rollback was not accepted: %s", r)
		}
		ps.note(t, app, b.waitRunning(t, u, app, generationOf(t, r)).Procs[0].Instances)
		b.routed(t, appHost(app), "version one after the rollback", func(a webAnswer) bool { return a.Version == "one" })
	})

	t.Run("auto_revert", func(t *testing.T) {
		app := "deadline-revert"
		v1 := deployGood(t, app, map[string]any{"progress_deadline": "5s"}) // auto_revert: the default (on)
		v2 := metaVersion()
		b.push(t, u, app, unhealthyRelease(v2, bin))
		r := b.operate(t, "PUT", "/api/v1/apps/"+app, u, map[string]any{"meta_version": v2}).want(t, http.StatusAccepted)
		gen := generationOf(t, r)
		v := waitDeploy(t, b, u, app, "the revert of the never-healthy deploy", func(v api.DeployedApp) bool {
			// A failed deploy that reverts is first recorded failed with
			// "; reverting to <version>", then the revert takes over: that
			// first record is not the end.
			return v.Deploy.Generation > gen && v.State == "running" ||
				v.Deploy.Generation >= gen && v.State == "failed" && !strings.Contains(v.Message, "; reverting to ")
		})
		if v.State != "running" || v.MetaVersion != v1 {
			t.Fatalf("after the never-healthy deploy of %s the app is %q at %s (operation %q: %s), want running at %s (reverted)",
				v2, v.State, v.MetaVersion, v.Operation, v.Message, v1)
		}
		if !strings.Contains(v.Operation, "revert") || v.Deploy.Reverted == nil || v.Deploy.Reverted.MetaVersion != v2 ||
			v.Deploy.Reverted.Generation != gen || !strings.Contains(v.Deploy.Reverted.Message, "progress deadline") {
			t.Errorf("the revert is not recorded as such: operation %q, reverted %+v", v.Operation, v.Deploy.Reverted)
		}
		if v.ProgressDeadline != "5s" || !v.AutoRevert {
			t.Errorf("the app shows progress_deadline %q auto_revert %v, want 5s and the default true", v.ProgressDeadline, v.AutoRevert)
		}
		ps.note(t, app, b.proc(t, u, app, "web").Instances)
		b.routed(t, appHost(app), "version one after the revert", func(a webAnswer) bool { return a.Version == "one" })
		// The lease is free afterwards.
		r = b.operate(t, "GET", "/apps/"+app+"/restart", u, nil)
		if r.Code != http.StatusOK {
			t.Fatalf("after the revert, a restart was not accepted: %s", r)
		}
		ps.note(t, app, b.waitRunning(t, u, app, generationOf(t, r)).Procs[0].Instances)
	})

	t.Run("bad input", func(t *testing.T) {
		app := "deadline-bad"
		b.createApp(t, u, app)
		b.push(t, u, app, webRelease(metaVersion(), bin, 1))
		for _, d := range []string{"soon", "0s", "-5s", "100ms", "48h"} {
			r := b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app, "progress_deadline": d})
			if r.Code != http.StatusBadRequest {
				t.Errorf("progress_deadline %q: %s, want 400", d, r)
			}
		}
	})
}
