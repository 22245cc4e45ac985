package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// TestUseResourcesNeedsPermission: a release may only use resources its
// pusher may use (a maintainer of the resource, a member of its teams, or
// a site admin). Otherwise the push is 403 and records nothing; a release
// pushed before the resource existed is refused at deploy time and runs
// nothing (no <resource>-<app> instance owned by the resource's owner).
func TestUseResourcesNeedsPermission(t *testing.T) {
	b := startBerth(t, Options{})
	owner := b.newUser(t, "resowner")
	mallory := b.newUser(t, "resuser")
	res := b.unique("rescache")
	b.do(t, "POST", "/api/v1/repos/", owner, map[string]any{"appname": res, "apptype": "resource"}).want(t, http.StatusCreated)
	b.push(t, owner, res, pushBody(metaVersion(), 1))

	app := b.unique("resclient")
	b.createApp(t, mallory, app)
	rel := pushBody(metaVersion(), 1)
	rel["use_resources"] = []string{res}
	r := b.do(t, "POST", "/api/v1/repos/"+app+"/push/", mallory, rel).want(t, http.StatusForbidden)
	if !strings.Contains(r.Str("error"), res) {
		t.Errorf("the refusal does not name the resource: %s", r)
	}
	// Nothing was recorded: the app has no release to deploy.
	b.do(t, "POST", "/api/v1/apps/", mallory, map[string]any{"appname": app}).want(t, http.StatusBadRequest)
	// An app token of the app acts for its creator: refused too.
	tok := b.appToken(t, mallory, app)
	b.do(t, "POST", "/api/v1/repos/"+app+"/push/", tok, rel).want(t, http.StatusForbidden)

	// A release naming a resource that does not exist yet is recorded; the
	// resource registered later by someone else is refused at deploy time.
	later := b.unique("reslater")
	rel2 := pushBody(metaVersion(), 1)
	rel2["use_resources"] = []string{later}
	b.push(t, mallory, app, rel2)
	b.do(t, "POST", "/api/v1/repos/", owner, map[string]any{"appname": later, "apptype": "resource"}).want(t, http.StatusCreated)
	b.push(t, owner, later, pushBody(metaVersion(), 1))
	b.do(t, "POST", "/api/v1/apps/", mallory, map[string]any{"appname": app}).want(t, http.StatusForbidden)
	for _, name := range []string{res + "-" + app, later + "-" + app} {
		b.do(t, "GET", "/api/v1/repos/"+name+"/", b.Admin, nil).want(t, http.StatusNotFound)
	}
	if list := b.do(t, "GET", "/api/v1/resources/"+later+"/instances/", owner, nil).want(t, http.StatusOK).List(); len(list) != 0 {
		t.Errorf("instances of %s after a refused deploy: %v", later, list)
	}
	b.do(t, "GET", "/api/v1/apps/"+app+"/", mallory, nil).want(t, http.StatusNotFound) // registered, not deployed

	// Allowed: a maintainer of the resource (developer is enough), and a
	// site admin.
	b.addMaintainer(t, owner, res, mallory.Email, "developer")
	rel3 := pushBody(metaVersion(), 1)
	rel3["use_resources"] = []string{res}
	b.push(t, mallory, app, rel3)
	rel4 := pushBody(metaVersion(), 1)
	rel4["use_resources"] = []string{later}
	b.push(t, b.Admin, app, rel4)
}

// TestResourceRecreationInheritsNothing: the instances of a removed
// resource are not the instances of a resource registered again under its
// name by someone else: they are not listed to its new owner, and a
// redeploy of their client does not move them to the new resource's code.
func TestResourceRecreationInheritsNothing(t *testing.T) {
	bin := buildWebapp(t)
	ps := trackProcs(t)
	b := startBerth(t, Options{})
	a := b.newUser(t, "resfirst")
	res, client := b.unique("rsc"), b.unique("cli")
	inst := res + "-" + client
	b.do(t, "POST", "/api/v1/repos/", a, map[string]any{"appname": res, "apptype": "resource"}).want(t, http.StatusCreated)
	b.push(t, a, res, webRelease(metaVersion(), bin, 1, "WEBAPP_VERSION=first-owner"))
	b.createApp(t, a, client)
	rel := webRelease(metaVersion(), bin, 1, "WEBAPP_VERSION=client")
	rel["use_resources"] = []string{res}
	b.push(t, a, client, rel)
	r := b.do(t, "POST", "/api/v1/apps/", a, map[string]any{"appname": client}).want(t, http.StatusAccepted)
	cv := b.waitRunning(t, a, client, generationOf(t, r))
	ps.note(t, client, cv.Procs[0].Instances)
	eventuallyRunning(t, b, a, inst)
	ps.note(t, inst, b.proc(t, a, inst, "web").Instances)

	// The resource goes; someone else registers the name as a resource.
	b.do(t, "DELETE", "/apps/"+res, a, nil).want(t, http.StatusOK)
	bob := b.newUser(t, "ressecond")
	b.do(t, "POST", "/api/v1/repos/", bob, map[string]any{"appname": res, "apptype": "resource"}).want(t, http.StatusCreated)
	b.push(t, bob, res, webRelease(metaVersion(), bin, 1, "WEBAPP_VERSION=second-owner"))
	if list := b.do(t, "GET", "/api/v1/resources/"+res+"/instances/", bob, nil).want(t, http.StatusOK).List(); len(list) != 0 {
		t.Errorf("the new resource lists the old resource's instances: %v", list)
	}
	// Bob lets the client's owner use it; the client's redeploy does not
	// turn the old instance into one of Bob's resource.
	b.addMaintainer(t, bob, res, a.Email, "developer")
	b.do(t, "PUT", "/api/v1/apps/"+client+"/", a, map[string]any{"meta_version": cv.MetaVersion}).want(t, http.StatusConflict)
	b.routed(t, appHost(inst), "the old instance, unchanged", func(w webAnswer) bool { return w.App == inst && w.Version == "first-owner" })
}
