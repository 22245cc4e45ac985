package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// TestDeployBadInput sends the deploy engine input it must refuse: each
// gets a clear 4xx, and nothing is left half done (no release recorded,
// the app's generation, size and processes unchanged, no lease held).
func TestDeployBadInput(t *testing.T) {
	bin := buildWebapp(t)
	ps := trackProcs(t)
	b := startBerth(t, Options{})
	u := b.newUser(t, "badinput")
	app := "badweb"
	b.createApp(t, u, app)

	// Deploying before any push: 400 saying to push.
	r := b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusBadRequest)
	if !strings.Contains(r.Str("error"), "push") {
		t.Errorf("deploying an app with no release does not say to push one: %s", r)
	}

	// Releases that are refused, and what the refusal must mention.
	mv := metaVersion()
	badPushes := []struct {
		what, mention string
		body          map[string]any
	}{
		{"a release with no procs", "no procs", map[string]any{"meta_version": mv}},
		{"a release with only unknown keys", "unknown", map[string]any{"meta_version": mv, "webby": map[string]any{"cmd": bin}}},
		{"negative num_instances", "num_instances", map[string]any{"meta_version": mv, "web": map[string]any{"cmd": bin, "num_instances": -1}}},
		{"memory 64Q", "64Q", map[string]any{"meta_version": mv, "web": map[string]any{"cmd": bin, "memory": "64Q"}}},
		{"memory -64m", "memory", map[string]any{"meta_version": mv, "web": map[string]any{"cmd": bin, "memory": "-64m"}}},
		{"cpu 0", "cpu", map[string]any{"meta_version": mv, "web": map[string]any{"cmd": bin, "cpu": 0}}},
		{"cpu -1", "cpu", map[string]any{"meta_version": mv, "web": map[string]any{"cmd": bin, "cpu": -1}}},
		{"a proc with neither cmd nor image", "cmd", map[string]any{"meta_version": mv, "web": map[string]any{"port": 8080}}},
		{"a bad meta_version", "meta", map[string]any{"meta_version": "../../etc", "web": map[string]any{"cmd": bin}}},
	}
	for _, bp := range badPushes {
		r := b.do(t, "POST", "/api/v1/repos/"+app+"/push/", u, bp.body)
		if !r.check(t, http.StatusBadRequest) {
			continue
		}
		if !strings.Contains(strings.ToLower(r.Str("error")), strings.ToLower(bp.mention)) {
			t.Errorf("pushing %s: the error does not mention %q: %s", bp.what, bp.mention, r)
		}
	}
	// None of them was recorded: that version is unknown, and still free.
	r = b.do(t, "PUT", "/api/v1/apps/"+app+"/", u, map[string]any{"meta_version": mv}).want(t, http.StatusBadRequest)
	if !strings.Contains(r.Str("error"), mv) {
		t.Errorf("PUT of an unknown version does not name it: %s", r)
	}
	b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusBadRequest)
	if got := b.do(t, "GET", "/api/v1/repos/"+app+"/details/", u, nil).want(t, http.StatusOK); strings.Contains(string(got.Raw), mv) {
		t.Errorf("a refused release shows in the app's details: %s", got)
	}

	// A good release, deployed.
	b.push(t, u, app, webRelease(mv, bin, 1, "WEBAPP_VERSION=one"))
	r = b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	good := b.waitRunning(t, u, app, generationOf(t, r))
	pids := ps.note(t, app, good.Procs[0].Instances)
	b.routed(t, appHost(app), "version one", func(a webAnswer) bool { return a.Version == "one" })

	// Bad operations on the deployed app.
	unknownMV := metaVersion()
	bad := []struct {
		what, method, path string
		body               any
		code               int
		mention            string
	}{
		{"PUT an unknown version", "PUT", "/api/v1/apps/" + app + "/", map[string]any{"meta_version": unknownMV}, 400, unknownMV},
		{"PUT a malformed version", "PUT", "/api/v1/apps/" + app + "/", map[string]any{"meta_version": "latest"}, 400, "latest"},
		{"PUT without a version", "PUT", "/api/v1/apps/" + app + "/", map[string]any{}, 400, "meta"},
		{"PATCH negative num_instances", "PATCH", "/api/v1/apps/" + app + "/procs/web/", map[string]any{"num_instances": -3}, 400, "num_instances"},
		{"PATCH absurd num_instances", "PATCH", "/api/v1/apps/" + app + "/procs/web/", map[string]any{"num_instances": 1000000}, 400, "num_instances"},
		{"PATCH memory 64Q", "PATCH", "/api/v1/apps/" + app + "/procs/web/", map[string]any{"memory": "64Q"}, 400, "64Q"},
		{"PATCH memory 1t", "PATCH", "/api/v1/apps/" + app + "/procs/web/", map[string]any{"memory": "1t"}, 400, "memory"},
		{"PATCH cpu 0", "PATCH", "/api/v1/apps/" + app + "/procs/web/", map[string]any{"cpu": 0}, 400, "cpu"},
		{"PATCH cpu 0 with a good memory", "PATCH", "/api/v1/apps/" + app + "/procs/web/", map[string]any{"cpu": 0, "memory": "64m"}, 400, "cpu"},
		{"PATCH good cpu with memory 64Q", "PATCH", "/api/v1/apps/" + app + "/procs/web/", map[string]any{"cpu": 1, "memory": "64Q"}, 400, "64Q"},
		{"PATCH nothing", "PATCH", "/api/v1/apps/" + app + "/procs/web/", map[string]any{}, 400, "num_instances"},
		{"PATCH a string count", "PATCH", "/api/v1/apps/" + app + "/procs/web/", rawBody(`{"num_instances":"three"}`), 400, ""},
		{"PATCH an unknown proc", "PATCH", "/api/v1/apps/" + app + "/procs/nope/", map[string]any{"num_instances": 2}, 404, "nope"},
		{"GET an unknown proc", "GET", "/api/v1/apps/" + app + "/procs/nope/", nil, 404, "nope"},
		{"DELETE an unknown proc", "DELETE", "/api/v1/apps/" + app + "/procs/nope/", nil, 404, "nope"},
		{"POST an unknown proc", "POST", "/api/v1/apps/" + app + "/procs/", map[string]any{"procname": "nope"}, 404, "nope"},
		{"PATCH an invalid proc name", "PATCH", "/api/v1/apps/" + app + "/procs/bad_name/", map[string]any{"num_instances": 2}, 400, "bad_name"},
		{"deploy an unregistered app", "POST", "/api/v1/apps/", map[string]any{"appname": "ghostapp"}, 404, "ghostapp"},
		{"deploy an invalid app name", "POST", "/api/v1/apps/", map[string]any{"appname": "../etc"}, 400, ""},
		{"PUT an unregistered app", "PUT", "/api/v1/apps/ghostapp/", map[string]any{"meta_version": mv}, 404, "ghostapp"},
		{"GET an unregistered app", "GET", "/api/v1/apps/ghostapp/", nil, 404, "ghostapp"},
		{"undeploy an unregistered app", "DELETE", "/api/v1/apps/ghostapp/", nil, 404, "ghostapp"},
		{"scale an unregistered app", "PATCH", "/api/v1/apps/ghostapp/procs/web/", map[string]any{"num_instances": 1}, 404, "ghostapp"},
		{"env with a bad name", "POST", "/apps/" + app + "/env", map[string]any{"envs": []map[string]any{{"name": "1BAD-NAME", "value": "x"}}}, 400, "1BAD-NAME"},
		{"env setting PORT", "POST", "/apps/" + app + "/env", map[string]any{"envs": []map[string]any{{"name": "PORT", "value": "1"}}}, 400, "PORT"},
		{"env setting BERTH_APP", "POST", "/apps/" + app + "/env", map[string]any{"envs": []map[string]any{{"name": "BERTH_APP", "value": "x"}}}, 400, "BERTH_APP"},
		{"unset an unknown variable", "DELETE", "/apps/" + app + "/env?env=NOPE", nil, 404, "NOPE"},
		{"restart an unregistered app", "GET", "/apps/ghostapp/restart", nil, 404, "ghostapp"},
		{"swap with an unregistered app", "PUT", "/swap?app1=" + app + "&app2=ghostapp", nil, 404, "ghostapp"},
		{"swap without a second app", "PUT", "/swap?app1=" + app, nil, 400, ""},
		{"resource instances of a non-resource", "GET", "/api/v1/resources/" + app + "/instances/", nil, 404, app},
	}
	for _, c := range bad {
		r := b.do(t, c.method, c.path, u, c.body)
		if !r.check(t, c.code) {
			continue
		}
		if c.mention != "" && !strings.Contains(r.Str("error"), c.mention) {
			t.Errorf("%s: the error does not mention %q: %s", c.what, c.mention, r)
		}
	}

	// Nothing changed: same generation, version, size, process; no lease
	// held (the next good operation is accepted at once, not 409).
	after := b.deployed(t, u, app)
	if after.Generation != good.Generation || after.MetaVersion != mv || after.State != "running" {
		t.Errorf("refused operations changed the app: generation %d -> %d, version %s, state %s", good.Generation, after.Generation, after.MetaVersion, after.State)
	}
	p := after.Procs[0]
	if p.NumInstances != 1 || p.CPU != 0.5 || p.Memory != "32m" || len(p.Instances) != 1 || p.Instances[0].PID != pids[0] {
		t.Errorf("refused operations changed the proc: %+v (pid was %d)", p, pids[0])
	}
	if vars := b.do(t, "GET", "/apps/"+app+"/env", u, nil).want(t, http.StatusOK).List(); len(vars) != 0 {
		t.Errorf("refused env changes left variables: %v", vars)
	}
	if got := processesOf(app); len(got) != 1 || got[0] != pids[0] {
		t.Errorf("processes of %s after the refused operations: %v, want [%d]", app, got, pids[0])
	}
	b.do(t, "GET", "/api/v1/repos/ghostapp/", u, nil).want(t, http.StatusNotFound)
	if names := deployedNames(t, b, u, ""); len(names) != 1 || names[0] != app {
		t.Errorf("deployed apps after the refused operations: %v", names)
	}
	r = b.operate(t, "PATCH", "/api/v1/apps/"+app+"/procs/web/", u, map[string]any{"num_instances": 2}).want(t, http.StatusAccepted)
	v := b.waitRunning(t, u, app, generationOf(t, r))
	ps.note(t, app, v.Procs[0].Instances)
	if len(v.Procs[0].Instances) != 2 {
		t.Errorf("a good scale after the refusals: %+v", v.Procs[0])
	}

	// Another user may not touch the app (and learns nothing by trying).
	other := b.newUser(t, "stranger")
	b.do(t, "PATCH", "/api/v1/apps/"+app+"/procs/web/", other, map[string]any{"num_instances": 5}).want(t, http.StatusForbidden)
	b.do(t, "DELETE", "/api/v1/apps/"+app+"/", other, nil).want(t, http.StatusForbidden)
	b.do(t, "PATCH", "/api/v1/apps/"+app+"/procs/web/", nil, map[string]any{"num_instances": 5}).want(t, http.StatusUnauthorized)
	if n := b.proc(t, u, app, "web").NumInstances; n != 2 {
		t.Errorf("refused scales by others changed the size to %d", n)
	}
}
