package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/berthpaas/berth/api"
)

// TestDeployResources deploys an app whose release uses a resource: the
// deploy creates the resource instance <resource>-<client> from the
// resource's latest release, which runs and answers through the router;
// resources themselves cannot be deployed or undeployed directly.
func TestDeployResources(t *testing.T) {
	bin := buildWebapp(t)
	ps := trackProcs(t)
	b := startBerth(t, Options{})
	u := b.newUser(t, "resowner")
	res, client := "cache", "shop"
	inst := res + "-" + client

	b.do(t, "POST", "/api/v1/repos/", u, map[string]any{"appname": res, "apptype": "resource"}).want(t, http.StatusCreated)
	b.push(t, u, res, webRelease(metaVersion(), bin, 1, "WEBAPP_VERSION=res-old"))
	resMV := metaVersion()
	b.push(t, u, res, webRelease(resMV, bin, 1, "WEBAPP_VERSION=res-latest"))
	b.createApp(t, u, client)
	rel := webRelease(metaVersion(), bin, 1, "WEBAPP_VERSION=client")
	rel["use_resources"] = []string{res}
	b.push(t, u, client, rel)

	// A resource is not deployed by itself, nor undeployed.
	b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": res}).want(t, http.StatusBadRequest)
	b.do(t, "DELETE", "/api/v1/apps/"+res+"/", u, nil).want(t, http.StatusForbidden)
	if list := b.do(t, "GET", "/api/v1/resources/"+res+"/instances/", u, nil).want(t, http.StatusOK).List(); len(list) != 0 {
		t.Errorf("instances before any client deployed: %v", list)
	}

	r := b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": client}).want(t, http.StatusAccepted)
	if got, _ := r.Obj()["resource_instances"].([]any); len(got) != 1 || got[0] != inst {
		t.Errorf("the deploy answer does not name the resource instance %s: %s", inst, r)
	}
	cv := b.waitRunning(t, u, client, generationOf(t, r))
	ps.note(t, client, cv.Procs[0].Instances)
	b.routed(t, appHost(client), "the client", func(a webAnswer) bool { return a.App == client && a.Version == "client" })

	// The resource instance: listed under the resource, typed, running the
	// resource's latest release, routed at its own name.
	list := b.do(t, "GET", "/api/v1/resources/"+res+"/instances/", u, nil).want(t, http.StatusOK).List()
	if len(list) != 1 {
		t.Fatalf("GET /api/v1/resources/%s/instances/: %v", res, list)
	}
	iv, _ := list[0].(map[string]any)
	if iv["appname"] != inst || iv["apptype"] != "resource-instance" || iv["resource"] != res || iv["client"] != client || iv["meta_version"] != resMV {
		t.Errorf("the resource instance view: %v", iv)
	}
	eventuallyRunning(t, b, u, inst)
	b.routed(t, appHost(inst), "the resource instance", func(a webAnswer) bool { return a.App == inst && a.Version == "res-latest" })
	ps.note(t, inst, b.proc(t, u, inst, "web").Instances)

	// Listing by type.
	if names := deployedNames(t, b, u, "resource-instance"); len(names) != 1 || names[0] != inst {
		t.Errorf("?apptype=resource-instance: %v", names)
	}
	if names := deployedNames(t, b, u, "app"); !hasString(names, client) || hasString(names, inst) || hasString(names, res) {
		t.Errorf("?apptype=app: %v", names)
	}
	if names := deployedNames(t, b, u, "resource"); len(names) != 0 {
		t.Errorf("?apptype=resource lists deployed resources: %v", names)
	}
	b.do(t, "GET", "/api/v1/resources/nosuchres/instances/", u, nil).want(t, http.StatusNotFound)

	// Redeploying the client does not duplicate the instance.
	r = b.operate(t, "PUT", "/api/v1/apps/"+client+"/", u, map[string]any{"meta_version": cv.MetaVersion}).want(t, http.StatusAccepted)
	b.waitRunning(t, u, client, generationOf(t, r))
	if list := b.do(t, "GET", "/api/v1/resources/"+res+"/instances/", u, nil).want(t, http.StatusOK).List(); len(list) != 1 {
		t.Errorf("instances after a redeploy of the client: %d", len(list))
	}
	if got := processesOf(inst); len(got) != 1 {
		t.Errorf("processes of the resource instance after a redeploy of the client: %v", got)
	}

	// A release using an unregistered resource, or a plain app as one, is
	// refused at deploy time and creates nothing.
	bad := webRelease(metaVersion(), bin, 1)
	bad["use_resources"] = []string{"nosuchres"}
	b.push(t, u, client, bad)
	r = b.operate(t, "PUT", "/api/v1/apps/"+client+"/", u, map[string]any{"meta_version": bad["meta_version"]}).want(t, http.StatusBadRequest)
	b.do(t, "GET", "/api/v1/repos/nosuchres-"+client+"/", u, nil).want(t, http.StatusNotFound)
	if got := b.deployed(t, u, client).MetaVersion; got != cv.MetaVersion {
		t.Errorf("a refused deploy moved the client to %s", got)
	}
}

// eventuallyRunning waits until an app that the test did not operate on
// (no generation in hand) reports running.
func eventuallyRunning(t testing.TB, b *Berth, u *User, app string) {
	t.Helper()
	var last api.DeployedApp
	eventually(t, 30*time.Second, app+" to run", func() bool {
		r := b.do(t, "GET", "/api/v1/apps/"+app+"/", u, nil)
		if r.Code != http.StatusOK {
			return false
		}
		last = decodeAs[api.DeployedApp](t, r)
		if last.State == "failed" {
			t.Fatalf("%s failed: %s", app, last.Message)
		}
		return last.State == "running" && len(last.Procs) > 0 && len(last.Procs[0].Instances) > 0 && last.Procs[0].Instances[0].State == "running"
	})
}
