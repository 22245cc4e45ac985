package e2e

// End-to-end tests of the deploy engine on the real binary with the
// embedded defaults (bbolt Store, sealed Secrets, local Scheduler): real
// child processes serving HTTP through the local router.

import (
	"net/http"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthpaas/berth/api"
)

// TestDeployLifecycle is the whole life of a deployed app: deploy and
// answer through the router; scale 1 -> 3 -> 1; resize; undeploy and
// redeploy a proc; a new version and a rollback; env (public and private)
// and restart; swap with a second app; an instance killed by PID and
// healed; undeploy with no process left behind.
func TestDeployLifecycle(t *testing.T) {
	bin := buildWebapp(t)
	ps := trackProcs(t)
	b := startBerth(t, Options{})
	u := b.newUser(t, "deployer")
	app := "lifeweb"

	// --- 1. register, push, deploy, answer through the router --------------
	b.createApp(t, u, app)
	v1, v2 := metaVersion(), metaVersion()
	b.push(t, u, app, webRelease(v1, bin, 1, "WEBAPP_VERSION=one"))
	// Not deployed yet: the deploy view is 404, the router does not know it.
	b.do(t, "GET", "/api/v1/apps/"+app+"/", u, nil).want(t, http.StatusNotFound)
	if code, _ := b.viaRouter(t, appHost(app)); code != http.StatusNotFound {
		t.Errorf("the router answered %d for an app that is not deployed, want 404", code)
	}
	r := b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	if r.Str("meta_version") != v1 || r.Str("appname") != app || r.Str("state") != "pending" {
		t.Errorf("the deploy answer does not name the app, version and pending state: %s", r)
	}
	// While the deploy has not converged, another operation is refused with
	// 409 naming who holds the app.
	busy := b.do(t, "PATCH", "/api/v1/apps/"+app+"/procs/web/", u, map[string]any{"num_instances": 2}).want(t, http.StatusConflict)
	if holder, _ := busy.Obj()["lock_holder"].(string); holder != u.Email || !strings.Contains(busy.Str("error"), u.Email) {
		t.Errorf("the 409 does not name the lease holder %s: %s", u.Email, busy)
	}
	evs := b.events(t, u, app)
	if len(evs) == 0 || evs[len(evs)-1].Event != "running" {
		t.Fatalf("the events stream did not end at running: %+v", evs)
	}
	if mv, _ := evs[len(evs)-1].Data["meta_version"].(string); mv != v1 {
		t.Errorf("the final event names version %q, want %s", mv, v1)
	}
	v := b.waitRunning(t, u, app, generationOf(t, r))
	if v.MetaVersion != v1 || v.AppType != "app" || len(v.Procs) != 1 {
		t.Fatalf("deployed view: %+v", v)
	}
	web := v.Procs[0]
	if web.ProcName != "web" || web.Type != "web" || web.NumInstances != 1 || len(web.Instances) != 1 || web.Instances[0].State != "running" {
		t.Fatalf("web proc after deploy: %+v", web)
	}
	firstPID := ps.note(t, app, web.Instances)[0]
	pl := decodeAs[[]api.Proc](t, b.do(t, "GET", "/api/v1/apps/"+app+"/procs/", u, nil).want(t, http.StatusOK))
	if len(pl) != 1 || pl[0].ProcName != "web" || len(pl[0].Instances) != 1 || pl[0].Instances[0].PID != firstPID {
		t.Errorf("GET /api/v1/apps/%s/procs/: %+v", app, pl)
	}
	ans := b.routed(t, appHost(app), "version one", func(a webAnswer) bool { return a.Version == "one" })
	if ans.App != app || ans.Proc != "web" || ans.Instance != "0" || ans.PID != firstPID {
		t.Errorf("the answer through the router %+v is not instance 0 (pid %d) of %s", ans, firstPID, app)
	}
	// The tsuru view shows the unit.
	tv := b.do(t, "GET", "/apps/"+app, u, nil).want(t, http.StatusOK)
	units, _ := tv.Obj()["Units"].([]any)
	if len(units) != 1 {
		t.Fatalf("GET /apps/%s units: %s", app, tv)
	}
	unit, _ := units[0].(map[string]any)
	if unit["State"] != "running" || unit["Name"] == "" || !strings.HasPrefix(unit["Ip"].(string), "127.0.0.1:") {
		t.Errorf("unit view: %v", unit)
	}
	if tv.Str("Ip") != appHost(app) {
		t.Errorf("GET /apps/%s Ip is %q, want its route %s", app, tv.Str("Ip"), appHost(app))
	}
	list := b.do(t, "GET", "/apps", u, nil).want(t, http.StatusOK)
	if !strings.Contains(string(list.Raw), `"Units":[{`) {
		t.Errorf("GET /apps does not show the units: %s", list)
	}
	// Listing deployed apps, by type.
	if names := deployedNames(t, b, u, ""); !hasString(names, app) {
		t.Errorf("GET /api/v1/apps/ lacks %s: %v", app, names)
	}
	if names := deployedNames(t, b, u, "app"); !hasString(names, app) {
		t.Errorf("GET /api/v1/apps/?apptype=app lacks %s: %v", app, names)
	}
	if names := deployedNames(t, b, u, "resource-instance"); hasString(names, app) {
		t.Errorf("GET /api/v1/apps/?apptype=resource-instance lists the app %s: %v", app, names)
	}
	b.do(t, "GET", "/api/v1/apps/?apptype=banana", u, nil).want(t, http.StatusBadRequest)
	plat := b.do(t, "GET", "/platforms", u, nil).want(t, http.StatusOK)
	for _, p := range []string{"go", "python", "static"} {
		if !strings.Contains(string(plat.Raw), `"Name":"`+p+`"`) {
			t.Errorf("GET /platforms lacks %s: %s", p, plat)
		}
	}

	// --- 2. scale 1 -> 3 -> 1; resize ---------------------------------------
	r = b.operate(t, "PATCH", "/api/v1/apps/"+app+"/procs/web/", u, map[string]any{"num_instances": 3}).want(t, http.StatusAccepted)
	b.waitRunning(t, u, app, generationOf(t, r))
	p := b.proc(t, u, app, "web")
	if p.NumInstances != 3 || len(p.Instances) != 3 {
		t.Fatalf("after scaling to 3: %+v", p)
	}
	three := ps.note(t, app, p.Instances)
	for i, in := range p.Instances {
		if in.State != "running" || in.Index != i || !ps.alive(in.PID) {
			t.Errorf("instance %d after scaling to 3: %+v (alive %v)", i, in, ps.alive(in.PID))
		}
	}
	if three[0] != firstPID {
		t.Errorf("scaling up replaced instance 0 (pid %d -> %d)", firstPID, three[0])
	}
	// The router spreads requests over the three.
	seen := map[string]bool{}
	for i := 0; i < 30 && len(seen) < 3; i++ {
		if code, a := b.viaRouter(t, appHost(app)); code == http.StatusOK {
			seen[a.Instance] = true
		}
	}
	if len(seen) != 3 {
		t.Errorf("the router reached instances %v of 3", seen)
	}
	r = b.operate(t, "PATCH", "/api/v1/apps/"+app+"/procs/web", u, map[string]any{"num_instances": 1}).want(t, http.StatusAccepted)
	b.waitRunning(t, u, app, generationOf(t, r))
	p = b.proc(t, u, app, "web")
	if p.NumInstances != 1 || len(p.Instances) != 1 || p.Instances[0].PID != firstPID {
		t.Fatalf("after scaling back to 1: %+v (instance 0 was pid %d)", p, firstPID)
	}
	ps.waitGone(t, three[1:], 10*time.Second, "after scaling down to 1")

	r = b.operate(t, "PATCH", "/api/v1/apps/"+app+"/procs/web/", u, map[string]any{"cpu": 0.25, "memory": "48M"}).want(t, http.StatusAccepted)
	if _, ok := r.Obj()["ignored"]; ok {
		t.Errorf("a cpu/memory change alone reports something ignored: %s", r)
	}
	b.waitRunning(t, u, app, generationOf(t, r))
	p = b.proc(t, u, app, "web")
	if p.CPU != 0.25 || p.Memory != "48m" || p.NumInstances != 1 {
		t.Errorf("after PATCH cpu 0.25 memory 48M: cpu %v memory %q instances %d", p.CPU, p.Memory, p.NumInstances)
	}
	// Both kinds at once: num_instances applies, cpu/memory do not, and the
	// answer says so.
	r = b.operate(t, "PATCH", "/api/v1/apps/"+app+"/procs/web/", u, map[string]any{"num_instances": 2, "cpu": 2, "memory": "1g"}).want(t, http.StatusAccepted)
	ign, _ := r.Obj()["ignored"].([]any)
	if len(ign) != 2 || ign[0] != "cpu" || ign[1] != "memory" {
		t.Errorf("PATCH num_instances with cpu and memory: \"ignored\" is %v, want [cpu memory]: %s", r.Obj()["ignored"], r)
	}
	b.waitRunning(t, u, app, generationOf(t, r))
	p = b.proc(t, u, app, "web")
	if p.NumInstances != 2 || len(p.Instances) != 2 || p.CPU != 0.25 || p.Memory != "48m" {
		t.Errorf("after PATCH num_instances 2 + cpu/memory: instances %d/%d cpu %v memory %q (want 2, 0.25, 48m)", p.NumInstances, len(p.Instances), p.CPU, p.Memory)
	}
	two := ps.note(t, app, p.Instances)
	r = b.operate(t, "PATCH", "/api/v1/apps/"+app+"/procs/web/", u, map[string]any{"num_instances": 1}).want(t, http.StatusAccepted)
	b.waitRunning(t, u, app, generationOf(t, r))
	ps.waitGone(t, two[1:], 10*time.Second, "after scaling down to 1 again")

	// Undeploy the proc, then deploy it again.
	r = b.operate(t, "DELETE", "/api/v1/apps/"+app+"/procs/web/", u, nil).want(t, http.StatusAccepted)
	b.waitRunning(t, u, app, generationOf(t, r))
	p = b.proc(t, u, app, "web")
	if p.Deployed || len(p.Instances) != 0 {
		t.Errorf("after DELETE of the proc: %+v", p)
	}
	ps.waitGone(t, []int{firstPID}, 10*time.Second, "after the proc was undeployed")
	if code, _ := b.viaRouter(t, appHost(app)); code != http.StatusBadGateway {
		t.Errorf("with its web proc undeployed the router answered %d, want 502", code)
	}
	b.operate(t, "DELETE", "/api/v1/apps/"+app+"/procs/web/", u, nil).want(t, http.StatusNotFound)
	r = b.operate(t, "POST", "/api/v1/apps/"+app+"/procs/", u, map[string]any{"procname": "web"}).want(t, http.StatusAccepted)
	b.waitRunning(t, u, app, generationOf(t, r))
	p = b.proc(t, u, app, "web")
	if !p.Deployed || len(p.Instances) != 1 || p.CPU != 0.25 {
		t.Errorf("after POST procs web: %+v", p)
	}
	ps.note(t, app, p.Instances)
	b.routed(t, appHost(app), "version one again", func(a webAnswer) bool { return a.Version == "one" })

	// --- 3. new version, rollback, env, restart -----------------------------
	b.push(t, u, app, webRelease(v2, bin, 1, "WEBAPP_VERSION=two"))
	old := ps.note(t, app, b.proc(t, u, app, "web").Instances)
	r = b.operate(t, "PUT", "/api/v1/apps/"+app+"/", u, map[string]any{"meta_version": v2}).want(t, http.StatusAccepted)
	v = b.waitRunning(t, u, app, generationOf(t, r))
	if v.MetaVersion != v2 {
		t.Errorf("after PUT %s the app is at %s", v2, v.MetaVersion)
	}
	ps.note(t, app, v.Procs[0].Instances)
	b.routed(t, appHost(app), "version two", func(a webAnswer) bool { return a.Version == "two" })
	ps.waitGone(t, old, 15*time.Second, "after the new version replaced them")
	if p := b.proc(t, u, app, "web"); p.CPU != 0.25 || p.Memory != "48m" {
		t.Errorf("the resize did not survive the new version: cpu %v memory %q", p.CPU, p.Memory)
	}
	// Rollback to the first version.
	old = ps.note(t, app, b.proc(t, u, app, "web").Instances)
	r = b.operate(t, "PUT", "/api/v1/apps/"+app, u, map[string]any{"meta_version": v1}).want(t, http.StatusAccepted)
	v = b.waitRunning(t, u, app, generationOf(t, r))
	if v.MetaVersion != v1 {
		t.Errorf("after the rollback the app is at %s, want %s", v.MetaVersion, v1)
	}
	ps.note(t, app, v.Procs[0].Instances)
	b.routed(t, appHost(app), "version one after the rollback", func(a webAnswer) bool { return a.Version == "one" })
	ps.waitGone(t, old, 15*time.Second, "after the rollback")

	// Env: a public and a private variable; the app is redeployed and its
	// process sees both; GET masks the private value.
	secret := "e2e-secret-" + randHex(12)
	b.remember(secret, "a private env value")
	old = ps.note(t, app, b.proc(t, u, app, "web").Instances)
	r = b.operate(t, "POST", "/apps/"+app+"/env", u, map[string]any{"envs": []map[string]any{
		{"name": "GREETING", "value": "hello from e2e", "public": true},
		{"name": "SECRET", "value": secret, "public": false},
	}}).want(t, http.StatusAccepted)
	v = b.waitRunning(t, u, app, generationOf(t, r))
	b.routed(t, appHost(app), "the new greeting", func(a webAnswer) bool { return a.Greeting == "hello from e2e" })
	ps.waitGone(t, old, 15*time.Second, "after the env change redeployed the app")
	in := b.proc(t, u, app, "web").Instances
	pids := ps.note(t, app, in)
	if len(pids) != 1 || pids[0] <= 0 {
		t.Fatalf("instances after the env change: %+v", in)
	}
	env := procEnviron(t, pids[0])
	if env["SECRET"] != secret || env["GREETING"] != "hello from e2e" || env["WEBAPP_VERSION"] != "one" || env["BERTH_APP"] != app || env["PORT"] == "" {
		t.Errorf("the process environment lacks the app's env: SECRET set %v, GREETING %q, WEBAPP_VERSION %q, BERTH_APP %q, PORT %q",
			env["SECRET"] == secret, env["GREETING"], env["WEBAPP_VERSION"], env["BERTH_APP"], env["PORT"])
	}
	ge := b.do(t, "GET", "/apps/"+app+"/env", u, nil).want(t, http.StatusOK)
	if strings.Contains(string(ge.Raw), secret) {
		t.Errorf("GET /apps/%s/env shows the private value", app)
	}
	vars := map[string]map[string]any{}
	for _, x := range ge.List() {
		m, _ := x.(map[string]any)
		name, _ := m["name"].(string)
		vars[name] = m
	}
	if vars["GREETING"]["value"] != "hello from e2e" || vars["GREETING"]["public"] != true ||
		vars["SECRET"]["public"] != false || vars["SECRET"]["value"] == "" {
		t.Errorf("GET /apps/%s/env: %s", app, ge)
	}
	// Restart: 200, new processes with the same environment.
	r = b.operate(t, "GET", "/apps/"+app+"/restart", u, nil).want(t, http.StatusOK)
	b.waitRunning(t, u, app, generationOf(t, r))
	ps.waitGone(t, pids, 15*time.Second, "after the restart")
	in = b.proc(t, u, app, "web").Instances
	newPIDs := ps.note(t, app, in)
	if len(newPIDs) != 1 || newPIDs[0] == pids[0] || !ps.alive(newPIDs[0]) {
		t.Fatalf("after the restart: %+v (old pid %d)", in, pids[0])
	}
	if procEnviron(t, newPIDs[0])["SECRET"] != secret {
		t.Errorf("the restarted process lost the private variable")
	}
	b.routed(t, appHost(app), "the restarted instance", func(a webAnswer) bool { return a.PID == newPIDs[0] && a.Greeting == "hello from e2e" })
	// Unset the public variable.
	r = b.operate(t, "DELETE", "/apps/"+app+"/env?env=GREETING", u, nil).want(t, http.StatusAccepted)
	b.waitRunning(t, u, app, generationOf(t, r))
	b.routed(t, appHost(app), "no greeting", func(a webAnswer) bool { return a.Greeting == "" && a.Version == "one" })
	ps.note(t, app, b.proc(t, u, app, "web").Instances)

	// --- 4. swap with a second app ------------------------------------------
	other := "lifeother"
	b.createApp(t, u, other)
	b.push(t, u, other, webRelease(metaVersion(), bin, 1, "WEBAPP_VERSION=other"))
	r = b.operate(t, "POST", "/api/v1/apps", u, map[string]any{"appname": other}).want(t, http.StatusAccepted)
	ov := b.waitRunning(t, u, other, generationOf(t, r))
	ps.note(t, other, ov.Procs[0].Instances)
	b.routed(t, appHost(other), "the other app", func(a webAnswer) bool { return a.App == other })
	b.routed(t, appHost(app), "the first app", func(a webAnswer) bool { return a.App == app })
	sw := b.operate(t, "PUT", "/swap?app1="+app+"&app2="+other, u, nil).want(t, http.StatusOK)
	if rs, _ := sw.Obj()[app].([]any); len(rs) != 1 || rs[0] != appHost(other) {
		t.Errorf("the swap answer does not give %s the route %s: %s", app, appHost(other), sw)
	}
	b.routed(t, appHost(app), "the other app after the swap", func(a webAnswer) bool { return a.App == other })
	b.routed(t, appHost(other), "the first app after the swap", func(a webAnswer) bool { return a.App == app })
	if got := b.do(t, "GET", "/apps/"+app, u, nil).want(t, http.StatusOK).Str("Ip"); got != appHost(other) {
		t.Errorf("after the swap GET /apps/%s Ip is %q, want %s", app, got, appHost(other))
	}
	if got := b.deployed(t, u, other).Routes; len(got) != 1 || got[0] != appHost(app) {
		t.Errorf("after the swap %s's routes are %v, want [%s]", other, got, appHost(app))
	}
	// Swapping again restores them.
	b.operate(t, "PUT", "/swap?app1="+other+"&app2="+app, u, nil).want(t, http.StatusOK)
	b.routed(t, appHost(app), "the first app after swapping back", func(a webAnswer) bool { return a.App == app })
	b.routed(t, appHost(other), "the other app after swapping back", func(a webAnswer) bool { return a.App == other })
	b.operate(t, "PUT", "/swap?app1="+app+"&app2="+app, u, nil).want(t, http.StatusBadRequest)
	b.operate(t, "PUT", "/swap?app1="+app+"&app2=nosuchapp", u, nil).want(t, http.StatusNotFound)

	// --- 5. an instance killed by PID is healed -----------------------------
	b.waitRunning(t, u, app, b.deployed(t, u, app).Generation)
	in = b.proc(t, u, app, "web").Instances
	victim := ps.note(t, app, in)[0]
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatalf("killing instance pid %d: %v", victim, err)
	}
	var healed api.Instance
	eventually(t, 20*time.Second, "the killed instance to be replaced by a running one", func() bool {
		in := b.proc(t, u, app, "web").Instances
		if len(in) == 1 && in[0].PID > 0 && in[0].PID != victim && in[0].State == "running" {
			healed = in[0]
			return true
		}
		return false
	})
	ps.note(t, app, []api.Instance{healed})
	if healed.Restarts < 1 {
		t.Errorf("the healed instance reports %d restarts", healed.Restarts)
	}
	b.routed(t, appHost(app), "the healed instance", func(a webAnswer) bool { return a.PID == healed.PID })
	// The healers: listed for users, run by admins only.
	hl := b.do(t, "GET", "/healers", u, nil).want(t, http.StatusOK)
	if !strings.Contains(string(hl.Raw), `"reconcile"`) {
		t.Errorf("GET /healers lacks reconcile: %s", hl)
	}
	b.do(t, "GET", "/healers/reconcile", u, nil).want(t, http.StatusForbidden)
	hr := b.do(t, "GET", "/healers/reconcile", b.Admin, nil).want(t, http.StatusOK)
	if res, _ := hr.Obj()["result"].(map[string]any); res == nil || res["checked"].(float64) < 2 {
		t.Errorf("GET /healers/reconcile: %s", hr)
	}
	b.do(t, "GET", "/healers/nosuch", b.Admin, nil).want(t, http.StatusNotFound)
	// The healer resubmits the same spec: the app keeps running, and no
	// process is added.
	time.Sleep(time.Second)
	b.routed(t, appHost(app), "the app after the reconcile healer", func(a webAnswer) bool { return a.App == app })
	if got := processesOf(app); len(got) != 1 || got[0] != healed.PID {
		t.Errorf("after the reconcile healer the processes of %s are %v, want [%d]", app, got, healed.PID)
	}

	// --- 6. undeploy: registration kept, no process left --------------------
	for _, name := range []string{app, other} {
		cur := ps.note(t, name, b.proc(t, u, name, "web").Instances)
		r = b.operate(t, "DELETE", "/api/v1/apps/"+name+"/", u, nil).want(t, http.StatusAccepted)
		eventually(t, 20*time.Second, name+" to be undeployed", func() bool {
			return b.do(t, "GET", "/api/v1/apps/"+name+"/", u, nil).Code == http.StatusNotFound
		})
		ps.waitGone(t, cur, 15*time.Second, "after undeploying "+name)
		if left := processesOf(name); len(left) > 0 {
			t.Errorf("processes of %s left after the undeploy: %v", name, left)
		}
		if code, _ := b.viaRouter(t, appHost(name)); code != http.StatusNotFound {
			t.Errorf("after undeploying %s the router answers %d for it, want 404", name, code)
		}
		b.do(t, "GET", "/api/v1/repos/"+name+"/", u, nil).want(t, http.StatusOK)
		tv := b.do(t, "GET", "/apps/"+name, u, nil).want(t, http.StatusOK)
		if units, _ := tv.Obj()["Units"].([]any); len(units) != 0 {
			t.Errorf("an undeployed app still has units: %s", tv)
		}
		b.operate(t, "DELETE", "/api/v1/apps/"+name+"/", u, nil).want(t, http.StatusNotFound)
		b.do(t, "GET", "/apps/"+name+"/restart", u, nil).want(t, http.StatusBadRequest)
	}
	if names := deployedNames(t, b, u, ""); hasString(names, app) || hasString(names, other) {
		t.Errorf("GET /api/v1/apps/ still lists undeployed apps: %v", names)
	}
	// Deploying again brings it back at the latest release.
	r = b.operate(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	v = b.waitRunning(t, u, app, generationOf(t, r))
	ps.note(t, app, v.Procs[0].Instances)
	if v.MetaVersion != v2 {
		t.Errorf("a new deploy is at %s, want the latest release %s", v.MetaVersion, v2)
	}
	b.routed(t, appHost(app), "the redeployed app", func(a webAnswer) bool { return a.Version == "two" })
	// Removing the app stops it too.
	cur := ps.note(t, app, b.proc(t, u, app, "web").Instances)
	b.operate(t, "DELETE", "/apps/"+app, u, nil).want(t, http.StatusOK)
	ps.waitGone(t, cur, 15*time.Second, "after removing the app")
	if left := processesOf(app); len(left) > 0 {
		t.Errorf("processes of %s left after removing it: %v", app, left)
	}
}

// deployedNames lists GET /api/v1/apps/[?apptype=typ].
func deployedNames(t testing.TB, b *Berth, u *User, typ string) []string {
	t.Helper()
	path := "/api/v1/apps/"
	if typ != "" {
		path += "?apptype=" + typ
	}
	var out []string
	for _, x := range b.do(t, "GET", path, u, nil).want(t, http.StatusOK).List() {
		m, _ := x.(map[string]any)
		n, _ := m["appname"].(string)
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func hasString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
