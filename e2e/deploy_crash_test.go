package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/api"
)

// TestDeployCrashRecovery kills berth with SIGKILL in the middle of a
// rolling deploy, starts it again on the same data dir and ports, and
// checks that the app converges to the version that was being deployed,
// answers through the router, and that no process of the killed run
// survives.
func TestDeployCrashRecovery(t *testing.T) {
	bin := buildWebapp(t)
	ps := trackProcs(t)
	b := startBerth(t, Options{})
	u := b.newUser(t, "crasher")
	app := "crashweb"
	b.createApp(t, u, app)
	v1, v2 := metaVersion(), metaVersion()
	b.push(t, u, app, webRelease(v1, bin, 2, "WEBAPP_VERSION=one"))
	r := b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	v := b.waitRunning(t, u, app, generationOf(t, r))
	before := ps.note(t, app, v.Procs[0].Instances)
	if len(before) != 2 {
		t.Fatalf("instances before the crash: %+v", v.Procs[0].Instances)
	}
	b.routed(t, appHost(app), "version one", func(a webAnswer) bool { return a.Version == "one" })

	// Version two takes 3s to listen, so the deploy is surely under way
	// when berth is killed. Its command is a shell that forks the web app
	// and waits: the web app does not die with berth (only the shell, the
	// process berth started, does), so the restarted server must find and
	// kill it.
	b.push(t, u, app, webRelease(v2, bin+" & wait", 2, "WEBAPP_VERSION=two", "WEBAPP_START_DELAY=3s"))
	r = b.operate(t, "PUT", "/api/v1/apps/"+app+"/", u, map[string]any{"meta_version": v2}).want(t, http.StatusAccepted)
	gen := generationOf(t, r)
	var mid []api.Instance
	eventually(t, 10*time.Second, "the new version's instances to start", func() bool {
		mid = b.proc(t, u, app, "web").Instances
		started := 0
		for _, in := range mid {
			if in.PID > 0 && !hasInt(before, in.PID) {
				started++
			}
		}
		return started == 2
	})
	midPIDs := ps.note(t, app, mid)
	if st := b.deployed(t, u, app).State; st != "pending" && st != "deploying" {
		t.Fatalf("the deploy was not under way when berth was to be killed: state %q", st)
	}
	// The old version still serves while its replacements are not ready.
	if code, a := b.viaRouter(t, appHost(app)); code != http.StatusOK || a.Version != "one" {
		t.Errorf("mid-deploy the router answered %d %+v, want version one", code, a)
	}
	all := append(append([]int(nil), before...), midPIDs...)
	if live := processesOf(app); len(live) < 2 {
		t.Errorf("mid-deploy only %v run", live)
	}

	b.killHard(t)
	// The processes berth started die with it.
	ps.waitGone(t, all, 10*time.Second, "after berth was killed")
	// What they forked is left over from the killed run.
	orphans := processesOf(app)
	if len(orphans) == 0 {
		t.Logf("no process of %s outlived the killed berth: the reaping of leftovers is not exercised", app)
	}
	var orphanInfo []api.Instance
	for _, pid := range orphans {
		orphanInfo = append(orphanInfo, api.Instance{PID: pid})
	}
	ps.note(t, app, orphanInfo)

	restarted := time.Now()
	logMark := len(b.Log())
	b.restartSame(t)
	// The restarted scheduler kills the leftovers of the previous run before
	// it serves.
	ps.waitGone(t, orphans, 5*time.Second, "by the killed run, after the restart")
	// The restarted server resubmits the app and converges to version two.
	// Its instances need ~3s to listen; 20s is ample.
	var conv api.DeployedApp
	deadline := time.Now().Add(20 * time.Second)
	for {
		conv = b.deployed(t, u, app)
		if conv.MetaVersion == v2 && conv.State == "running" && conv.Deploy != nil && conv.Deploy.Generation >= gen &&
			len(conv.Procs) == 1 && len(conv.Procs[0].Instances) == 2 {
			break
		}
		if conv.State == "failed" {
			t.Fatalf("after the restart the deploy failed: %s", conv.Message)
		}
		if time.Now().After(deadline) {
			diag := "the restarted server did submit the app"
			if !strings.Contains(b.Log()[logMark:], "submitted: app="+app) {
				diag = "the restarted server never submitted the app: its reconciler did not run a single pass " +
					"(the reconciler lease locks/reconciler of the killed server is still held; it expires 3 x reconciler.interval, 90s by default, after its last renewal)"
			}
			t.Fatalf("%v after the restart the app has not converged (%s): state %q version %s deploy %+v, %d instance(s) running %v",
				time.Since(restarted).Round(time.Second), diag, conv.State, conv.MetaVersion, conv.Deploy, len(processesOf(app)), conv.Procs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("converged %v after the restart", time.Since(restarted).Round(100*time.Millisecond))
	now := ps.note(t, app, conv.Procs[0].Instances)
	for _, in := range conv.Procs[0].Instances {
		if in.State != "running" || hasInt(all, in.PID) {
			t.Errorf("instance after the restart: %+v", in)
		}
	}
	b.routed(t, appHost(app), "version two after the restart", func(a webAnswer) bool { return a.Version == "two" })
	// Only the instances the server reports (and what they forked, in their
	// process groups) run: nothing of the old run.
	eventually(t, 10*time.Second, "only the restarted server's instances to run", func() bool {
		live := processesOf(app)
		for _, pid := range live {
			if !hasInt(now, procPgid(pid)) {
				return false
			}
		}
		return len(live) >= 2
	})
	ps.waitGone(t, append(all, orphans...), time.Second, "of the killed run")

	// The app's lease of the interrupted deploy was released: it can be
	// operated again.
	r = b.operate(t, "PATCH", "/api/v1/apps/"+app+"/procs/web/", u, map[string]any{"num_instances": 1}).want(t, http.StatusAccepted)
	b.waitRunning(t, u, app, generationOf(t, r))
	ps.waitGone(t, now[1:], 15*time.Second, "after scaling down")

	// Undeploy leaves nothing.
	b.operate(t, "DELETE", "/api/v1/apps/"+app+"/", u, nil).want(t, http.StatusAccepted)
	ps.waitGone(t, now, 15*time.Second, "after the undeploy")
	eventually(t, 10*time.Second, "no process of "+app, func() bool { return len(processesOf(app)) == 0 })
}

func hasInt(list []int, x int) bool {
	for _, y := range list {
		if y == x {
			return true
		}
	}
	return false
}

// TestDeployGracefulRestart stops berth the ordinary way (SIGTERM: the
// local scheduler stops every instance) and starts it again on the same
// data dir: the deployed app must come back on its own, promptly.
func TestDeployGracefulRestart(t *testing.T) {
	bin := buildWebapp(t)
	ps := trackProcs(t)
	b := startBerth(t, Options{})
	u := b.newUser(t, "restarter")
	app := "graceweb"
	b.createApp(t, u, app)
	b.push(t, u, app, webRelease(metaVersion(), bin, 1, "WEBAPP_VERSION=one"))
	r := b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	v := b.waitRunning(t, u, app, generationOf(t, r))
	before := ps.note(t, app, v.Procs[0].Instances)
	b.routed(t, appHost(app), "version one", func(a webAnswer) bool { return a.Version == "one" })

	b.stop(t) // SIGTERM, clean exit, leak check
	ps.waitGone(t, before, 5*time.Second, "after berth stopped")
	restarted := time.Now()
	logMark := len(b.Log())
	b.restartSame(t)
	var a webAnswer
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, ans := b.viaRouter(t, appHost(app))
		if code == http.StatusOK && ans.Version == "one" {
			a = ans
			break
		}
		if time.Now().After(deadline) {
			diag := "the restarted server did submit the app"
			if !strings.Contains(b.Log()[logMark:], "submitted: app="+app) {
				diag = "the restarted server never submitted the app: its reconciler did not run a pass " +
					"(the reconciler lease locks/reconciler of the stopped server is still held: it is not released at shutdown and expires 3 x reconciler.interval, 90s by default, after its last renewal)"
			}
			t.Fatalf("%v after a graceful restart the app is still down (%s): the router answers %d; state %q",
				time.Since(restarted).Round(time.Second), diag, code, b.deployed(t, u, app).State)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("the app answered again %v after the restart", time.Since(restarted).Round(100*time.Millisecond))
	if hasInt(before, a.PID) {
		t.Errorf("the answer came from a process of the stopped server (pid %d)", a.PID)
	}
	v = b.deployed(t, u, app)
	ps.note(t, app, v.Procs[0].Instances)
	if left := processesOf(app); len(left) != 1 || left[0] != a.PID {
		t.Errorf("processes of %s after the restart: %v, want [%d]", app, left, a.PID)
	}
}
