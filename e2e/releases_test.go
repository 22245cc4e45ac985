package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/api"
)

// TestReleasesHistoryRollback drives releases, the deploy history and the
// one-call rollback on the real binary: two pushes and deploys, the
// releases newest first with who pushed them, the history of both deploys
// with their results and durations, a rollback without a version back to
// the first release (answered by the first release's process through the
// router), the rollback in the history, and the permissions.
func TestReleasesHistoryRollback(t *testing.T) {
	bin := buildWebapp(t)
	b := startBerth(t, Options{})
	u := b.newUser(t, "releaser")
	app := "relweb"
	b.createApp(t, u, app)
	// Before any push: no releases, no history.
	if rs := decodeAs[[]api.Release](t, b.do(t, "GET", "/api/v1/repos/"+app+"/releases/", u, nil).want(t, http.StatusOK)); len(rs) != 0 {
		t.Fatalf("releases before a push: %+v", rs)
	}
	if h := decodeAs[[]api.HistoryEntry](t, b.do(t, "GET", "/api/v1/apps/"+app+"/history/", u, nil).want(t, http.StatusOK)); len(h) != 0 {
		t.Fatalf("history before a deploy: %+v", h)
	}
	// Nothing ran before: a rollback has nowhere to go.
	b.do(t, "POST", "/api/v1/apps/"+app+"/rollback/", u, nil).want(t, http.StatusBadRequest)

	v1, v2 := metaVersion(), metaVersion()
	b.push(t, u, app, webRelease(v1, bin, 1, "WEBAPP_VERSION=one"))
	r := b.operate(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	b.waitRunning(t, u, app, generationOf(t, r))
	b.routed(t, appHost(app), "version one", func(a webAnswer) bool { return a.Version == "one" })

	time.Sleep(10 * time.Millisecond) // the second push is the newer one
	b.push(t, u, app, webRelease(v2, bin, 2, "WEBAPP_VERSION=two"))
	r = b.operate(t, "PUT", "/api/v1/apps/"+app+"/", u, map[string]any{"meta_version": v2}).want(t, http.StatusAccepted)
	b.waitRunning(t, u, app, generationOf(t, r))
	b.routed(t, appHost(app), "version two", func(a webAnswer) bool { return a.Version == "two" })

	// Releases: both, newest first, with who pushed them and their procs.
	rs := decodeAs[[]api.Release](t, b.do(t, "GET", "/api/v1/repos/"+app+"/releases/", u, nil).want(t, http.StatusOK))
	if len(rs) != 2 || rs[0].MetaVersion != v2 || rs[1].MetaVersion != v1 {
		t.Fatalf("releases, want %s then %s: %+v", v2, v1, rs)
	}
	for _, rel := range rs {
		if rel.PushedBy != u.Email || rel.Pushed.IsZero() || rel.AppName != app {
			t.Errorf("release %s: pushed by %q at %v, want %s", rel.MetaVersion, rel.PushedBy, rel.Pushed, u.Email)
		}
		if len(rel.Procs) != 1 || rel.Procs[0].Name != "web" || rel.Procs[0].Type != "web" || rel.Procs[0].Cmd != bin || rel.Procs[0].MemoryMB != 32 || rel.Procs[0].CPU != 0.5 {
			t.Errorf("release %s procs: %+v", rel.MetaVersion, rel.Procs)
		}
	}
	if !rs[0].Current || rs[1].Current || rs[0].Procs[0].NumInstances != 2 || rs[1].Procs[0].NumInstances != 1 {
		t.Errorf("the current release is %s with 2 instances, %s had 1: %+v", v2, v1, rs)
	}

	// History: both deploys, newest first, running, with who and how long.
	h := history(t, b, u, app)
	if len(h) != 2 {
		t.Fatalf("history after two deploys: %+v", h)
	}
	for i, want := range []string{v2, v1} {
		e := h[i]
		if e.Operation != "deploy "+want || e.MetaVersion != want || e.Result != api.ResultRunning || e.By != u.Email {
			t.Errorf("history entry %d: %+v, want deploy %s running by %s", i, e, want, u.Email)
		}
		if e.DurationMS <= 0 || e.Duration() > time.Minute || e.Started == nil || e.Finished == nil || !e.Finished.After(*e.Started) {
			t.Errorf("history entry %d has no plausible duration: %+v", i, e)
		}
	}

	// An outsider may neither read these nor roll back; a reader may read.
	out := b.newUser(t, "outsider")
	b.do(t, "POST", "/api/v1/apps/"+app+"/rollback/", out, nil).want(t, http.StatusForbidden)
	b.do(t, "GET", "/api/v1/apps/"+app+"/history/", out, nil).want(t, http.StatusForbidden)
	b.do(t, "GET", "/api/v1/repos/"+app+"/releases/", out, nil).want(t, http.StatusForbidden)
	// Bad input: an unknown field, a release never pushed.
	b.do(t, "POST", "/api/v1/apps/"+app+"/rollback/", u, map[string]any{"version": v1}).want(t, http.StatusBadRequest)
	b.do(t, "POST", "/api/v1/apps/"+app+"/rollback/", u, map[string]any{"meta_version": metaVersion()}).want(t, http.StatusBadRequest)

	// Rollback without a version: back to v1, through the router too.
	r = b.operate(t, "POST", "/api/v1/apps/"+app+"/rollback/", u, nil).want(t, http.StatusAccepted)
	if r.Str("meta_version") != v1 || r.Str("operation") != "rollback to "+v1 || r.Str("state") != "pending" {
		t.Errorf("the rollback answer: %s", r)
	}
	v := b.waitRunning(t, u, app, generationOf(t, r))
	if v.MetaVersion != v1 || len(v.Procs) != 1 || v.Procs[0].NumInstances != 1 {
		t.Errorf("after the rollback: %+v", v)
	}
	b.routed(t, appHost(app), "version one after the rollback", func(a webAnswer) bool { return a.Version == "one" })
	h = history(t, b, u, app)
	if len(h) != 3 || h[0].Operation != "rollback to "+v1 || h[0].MetaVersion != v1 || h[0].Result != api.ResultRunning || h[0].By != u.Email || h[0].DurationMS <= 0 {
		t.Fatalf("history after the rollback: %+v", h)
	}
	if rs := decodeAs[[]api.Release](t, b.do(t, "GET", "/api/v1/repos/"+app+"/releases/", u, nil).want(t, http.StatusOK)); !rs[1].Current || rs[0].Current {
		t.Errorf("after the rollback the current release is not %s: %+v", v1, rs)
	}

	// The rollback is audited under its own action.
	admin := b.Admin
	evs := b.do(t, "GET", "/api/v1/events/?limit=1000", admin, nil).want(t, http.StatusOK)
	if !strings.Contains(string(evs.Raw), `"app.rollback"`) || !strings.Contains(string(evs.Raw), app) {
		t.Errorf("no audit record of the rollback: %s", evs)
	}

	// Rollback by name to the newer release; then the history has a
	// scale too, and undeploy finishes with "undeployed".
	r = b.operate(t, "POST", "/api/v1/apps/"+app+"/rollback/", u, map[string]any{"meta_version": v2}).want(t, http.StatusAccepted)
	b.waitRunning(t, u, app, generationOf(t, r))
	r = b.operate(t, "DELETE", "/api/v1/apps/"+app+"/", u, nil).want(t, http.StatusAccepted)
	deadline := time.Now().Add(30 * time.Second)
	for {
		h = history(t, b, u, app)
		if len(h) > 0 && h[0].Result == api.ResultUndeployed || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(h) != 5 || h[0].Operation != "undeploy" || h[0].Result != api.ResultUndeployed || h[1].Operation != "rollback to "+v2 || h[1].Result != api.ResultRunning {
		t.Fatalf("history after a rollback by name and an undeploy: %+v", h)
	}
	// An undeployed app is not rolled back (deploy it instead).
	b.operate(t, "POST", "/api/v1/apps/"+app+"/rollback/", u, nil).want(t, http.StatusBadRequest)
}

func history(t *testing.T, b *Berth, u *User, app string) []api.HistoryEntry {
	t.Helper()
	return decodeAs[[]api.HistoryEntry](t, b.do(t, "GET", "/api/v1/apps/"+app+"/history/", u, nil).want(t, http.StatusOK))
}
