package e2e

// End-to-end tests of the services API (tsuru 1.2 Services and 1.3 Service
// instances) and of broker plugins, on the real berth binary.
//
// TestServicesAPI drives the whole API surface against an external broker
// built from e2e/testdata/flakybroker (well-behaved unless told otherwise);
// TestServicesBrokerFailures makes that broker crash or hang in each verb;
// TestServicesMySQL, TestServicesRedis and TestServicesMongoDB (in
// services_db_test.go) bind real databases to a deployed app.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// svcBuildProgram builds the Go package at ./testdata/<pkg> into dir/name.
func svcBuildProgram(t *testing.T, pkg, dir, name string) string {
	t.Helper()
	out := filepath.Join(appReachable(t, dir), name)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./e2e/testdata/"+pkg)
	cmd.Dir = ".." // the module root
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building testdata/%s: %v\n%s", pkg, err, msg)
	}
	return out
}

// flakyPluginDir builds the flaky broker as <dir>/berth-broker-flaky.
func flakyPluginDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	svcBuildProgram(t, "flakybroker", dir, "berth-broker-flaky")
	return dir
}

func pluginsHCL(dir string) string {
	return fmt.Sprintf("plugins {\n  dir = %s\n  call_timeout = \"2s\"\n}\n", hclString(dir))
}

// serviceOwner registers a user and makes it the only member of a new team.
func serviceOwner(t *testing.T, b *Berth, name string) (*User, string) {
	t.Helper()
	u := b.newUser(t, name)
	team := b.unique(name + "-team")
	b.do(t, "POST", "/teams", u, map[string]any{"name": team}).want(t, http.StatusOK)
	return u, team
}

// serviceNames is GET /services (or /services/instances) as a map from
// service to its sorted instances.
func serviceNames(t *testing.T, b *Berth, path string, u *User) map[string][]string {
	t.Helper()
	r := b.do(t, "GET", path, u, nil).want(t, http.StatusOK)
	out := map[string][]string{}
	if r.JSON == nil || r.List() == nil {
		t.Fatalf("GET %s is not a JSON list: %s", path, r)
	}
	for _, it := range r.List() {
		m, _ := it.(map[string]any)
		name, _ := m["service"].(string)
		insts := []string{}
		l, ok := m["instances"].([]any)
		if !ok {
			t.Errorf("GET %s: %q has no instances list: %s", path, name, r)
		}
		for _, x := range l {
			s, _ := x.(string)
			insts = append(insts, s)
		}
		sort.Strings(insts)
		out[name] = insts
	}
	return out
}

// strList reads a JSON list of strings.
func svcStrList(v any) []string {
	l, _ := v.([]any)
	out := []string{}
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

func svcSameStrings(got, want []string) bool {
	w := append([]string{}, want...)
	sort.Strings(w)
	return strings.Join(got, "\x00") == strings.Join(w, "\x00")
}

// instanceApps is the apps an instance is bound to, per GET /services/instances/:name.
func instanceApps(t *testing.T, b *Berth, u *User, inst string) []string {
	t.Helper()
	r := b.do(t, "GET", "/services/instances/"+inst, u, nil).want(t, http.StatusOK)
	return svcStrList(r.Obj()["apps"])
}

// wantBrokerFailure checks a clean JSON 5xx answer that arrived before the
// broker's deadline could have been ignored (call_timeout 2s, saga bound +5s).
func wantBrokerFailure(t *testing.T, r *Resp, took time.Duration, what string) {
	t.Helper()
	if r.Code < 500 || r.Code > 504 {
		t.Errorf("%s: want a 5xx naming the broker failure, got %s", what, r)
		return
	}
	checkErrorBody(t, r)
	if !strings.Contains(strings.ToLower(r.Str("error")), "broker") {
		t.Errorf("%s: the error does not say the broker failed: %s", what, r)
	}
	if took > 15*time.Second {
		t.Errorf("%s took %v: the call timeout (2-3s) did not bound it", what, took)
	}
}

func svcTimed(f func() *Resp) (*Resp, time.Duration) {
	start := time.Now()
	r := f()
	return r, time.Since(start)
}

func TestServicesAPI(t *testing.T) {
	dir := flakyPluginDir(t)
	b := startBerth(t, Options{ExtraHCL: pluginsHCL(dir)})
	loner := b.newUser(t, "loner") // in no team
	u, team := serviceOwner(t, b, "svcowner")
	other, otherTeam := serviceOwner(t, b, "other")
	svc := b.unique("flaky")
	def := fmt.Sprintf("id: %s\nbroker: flaky\nendpoint:\n  production: flaky.example:1\nteam: %s\n", svc, team)

	// POST /services: 403 for a user in no team.
	b.do(t, "POST", "/services", loner, yamlBody(def)).want(t, http.StatusForbidden)
	b.do(t, "POST", "/services", nil, yamlBody(def)).want(t, http.StatusUnauthorized)

	// Bad definitions: 400 (Berth's deviation from the seed's 500), nothing created.
	bad := map[string]string{
		"invalid YAML":    "id: [unclosed\nbroker: flaky\n",
		"not a mapping":   "- id\n- broker\n",
		"unknown field":   fmt.Sprintf("id: %s-x\nbroker: flaky\nbrokr: typo\n", svc),
		"unknown broker":  fmt.Sprintf("id: %s-x\nbroker: nosuchbroker\nendpoint: {production: x}\n", svc),
		"missing broker":  fmt.Sprintf("id: %s-x\nendpoint: {production: x}\n", svc),
		"bad name":        "id: ../etc\nbroker: flaky\n",
		"upper-case name": "id: MySQL\nbroker: flaky\n",
		"path broker":     fmt.Sprintf("id: %s-x\nbroker: ../../bin/sh\n", svc),
		"empty body":      "",
	}
	for what, body := range bad {
		r := b.do(t, "POST", "/services", u, yamlBody(body))
		if !r.check(t, http.StatusBadRequest) {
			t.Errorf("(%s)", what)
		}
	}
	if r := b.do(t, "POST", "/services", u, yamlBody(bad["unknown broker"])); !strings.Contains(r.Str("error"), "nosuchbroker") {
		t.Errorf("an unknown broker's error does not name it: %s", r)
	}
	if got := serviceNames(t, b, "/services", b.Admin); len(got) != 0 {
		t.Fatalf("rejected definitions left services behind: %v", got)
	}
	b.do(t, "GET", "/services/"+svc+"-x", b.Admin, nil).want(t, http.StatusNotFound)

	// A team the creator is not in: 403; an unknown team: 404.
	b.do(t, "POST", "/services", u, yamlBody(strings.Replace(def, "team: "+team, "team: "+otherTeam, 1))).want(t, http.StatusForbidden)
	b.do(t, "POST", "/services", b.Admin, yamlBody(strings.Replace(def, "team: "+team, "team: nosuchteam", 1))).want(t, http.StatusNotFound)

	// Create; a duplicate name is 409 (Berth's deviation from the seed's 500).
	r := b.do(t, "POST", "/services", u, yamlBody(def)).want(t, http.StatusOK)
	if r.Str("id") != svc || r.Str("broker") != "flaky" {
		t.Errorf("POST /services answered %s", r)
	}
	b.do(t, "POST", "/services", u, yamlBody(def)).want(t, http.StatusConflict)
	b.do(t, "POST", "/services", other, yamlBody(strings.Replace(def, "team: "+team, "team: "+otherTeam, 1))).want(t, http.StatusConflict)

	// GET /services: granted teams see it; others do not.
	if got := serviceNames(t, b, "/services", u); !svcSameStrings(svcKeys(got), []string{svc}) || len(got[svc]) != 0 {
		t.Errorf("GET /services as the owner: %v", got)
	}
	if got := serviceNames(t, b, "/services", other); len(got) != 0 {
		t.Errorf("GET /services shows a service not granted to the caller's teams: %v", got)
	}
	b.do(t, "GET", "/services/"+svc, other, nil).want(t, http.StatusForbidden)
	b.do(t, "GET", "/services/nosuchservice", u, nil).want(t, http.StatusNotFound)
	if r := b.do(t, "GET", "/services/"+svc, u, nil).want(t, http.StatusOK); r.List() == nil || len(r.List()) != 0 {
		t.Errorf("GET /services/%s with no instances: %s", svc, r)
	}

	// Documentation (text).
	doc := "Flaky exports FLAKY_TOKEN.\nLine two: <b>ünïcode</b>\n"
	b.do(t, "PUT", "/services/"+svc+"/doc", u, typedBody{"text/plain", []byte(doc)}).want(t, http.StatusOK)
	r = b.do(t, "GET", "/services/"+svc+"/doc", u, nil).want(t, http.StatusOK)
	if string(r.Raw) != doc || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("GET doc answered %q (%s), want %q as text", r.Raw, r.Header.Get("Content-Type"), doc)
	}
	b.do(t, "GET", "/services/nosuchservice/doc", u, nil).want(t, http.StatusNotFound)
	b.do(t, "PUT", "/services/nosuchservice/doc", u, typedBody{"text/plain", []byte("x")}).want(t, http.StatusNotFound)
	b.do(t, "PUT", "/services/"+svc+"/doc", other, typedBody{"text/plain", []byte("defaced")}).want(t, http.StatusForbidden)
	if r := b.do(t, "GET", "/services/"+svc+"/doc", u, nil); string(r.Raw) != doc {
		t.Errorf("a refused doc update changed the doc: %q", r.Raw)
	}

	// PUT /services updates; unknown id 404; invalid YAML 400; a non-owner 403.
	upd := strings.Replace(def, "flaky.example:1", "flaky.example:2", 1)
	b.do(t, "PUT", "/services", u, yamlBody(upd)).want(t, http.StatusOK)
	b.do(t, "PUT", "/services", u, yamlBody(strings.Replace(upd, "id: "+svc, "id: nosuchservice", 1))).want(t, http.StatusNotFound)
	b.do(t, "PUT", "/services", u, yamlBody("id: [\n")).want(t, http.StatusBadRequest)
	b.do(t, "PUT", "/services", u, yamlBody(strings.Replace(upd, "broker: flaky", "broker: nosuchbroker", 1))).want(t, http.StatusBadRequest)
	b.do(t, "PUT", "/services", other, yamlBody(upd)).want(t, http.StatusForbidden)

	// Grant and revoke.
	b.do(t, "PUT", "/services/"+svc+"/"+otherTeam, other, nil).want(t, http.StatusForbidden)
	b.do(t, "PUT", "/services/"+svc+"/"+otherTeam, u, nil).want(t, http.StatusOK)
	if got := serviceNames(t, b, "/services", other); !svcSameStrings(svcKeys(got), []string{svc}) {
		t.Errorf("after the grant, GET /services as the granted team: %v", got)
	}
	b.do(t, "GET", "/services/"+svc, other, nil).want(t, http.StatusOK)
	b.do(t, "PUT", "/services/nosuchservice/"+otherTeam, u, nil).want(t, http.StatusNotFound)
	b.do(t, "PUT", "/services/"+svc+"/nosuchteam", u, nil).want(t, http.StatusNotFound)
	b.do(t, "DELETE", "/services/"+svc+"/"+otherTeam, u, nil).want(t, http.StatusOK)
	if got := serviceNames(t, b, "/services", other); len(got) != 0 {
		t.Errorf("after the revoke, GET /services still shows: %v", got)
	}
	b.do(t, "DELETE", "/services/nosuchservice/"+otherTeam, u, nil).want(t, http.StatusNotFound)

	// Instances.
	inst := b.unique("fl")
	b.do(t, "POST", "/services/instances", u, map[string]any{"name": inst, "service_name": "nosuchservice"}).want(t, http.StatusNotFound)
	b.do(t, "POST", "/services/instances", other, map[string]any{"name": inst, "service_name": svc}).want(t, http.StatusForbidden)
	b.do(t, "POST", "/services/instances", u, map[string]any{"name": "Bad/Name", "service_name": svc}).want(t, http.StatusBadRequest)
	b.do(t, "POST", "/services/instances", u, rawBody(`{"name": `)).want(t, http.StatusBadRequest)
	r = b.do(t, "POST", "/services/instances", u, map[string]any{"name": inst, "service_name": svc}).want(t, http.StatusOK)
	if r.Str("name") != inst || r.Str("servicename") != svc {
		t.Errorf("POST /services/instances answered %s", r)
	}
	// Duplicate instance names: 409, and the first is untouched.
	b.do(t, "POST", "/services/instances", u, map[string]any{"name": inst, "service_name": svc}).want(t, http.StatusConflict)
	r = b.do(t, "GET", "/services/instances/"+inst, u, nil).want(t, http.StatusOK)
	if r.Str("name") != inst || r.Str("servicename") != svc || !svcSameStrings(svcStrList(r.Obj()["teams"]), []string{team}) || len(svcStrList(r.Obj()["apps"])) != 0 {
		t.Errorf("GET /services/instances/%s: %s", inst, r)
	}
	b.do(t, "GET", "/services/instances/"+inst, other, nil).want(t, http.StatusForbidden)
	b.do(t, "GET", "/services/instances/nosuchinstance", u, nil).want(t, http.StatusNotFound)
	r = b.do(t, "GET", "/services/instances/"+inst+"/status", u, nil).want(t, http.StatusOK)
	if r.Str("state") != "ready" || r.Str("broker") != "succeeded" {
		t.Errorf("status of a provisioned instance: %s", r)
	}
	b.do(t, "GET", "/services/instances/nosuchinstance/status", u, nil).want(t, http.StatusNotFound)
	for _, path := range []string{"/services", "/services/instances"} {
		if got := serviceNames(t, b, path, u); !svcSameStrings(got[svc], []string{inst}) {
			t.Errorf("GET %s after creating %s: %v", path, inst, got)
		}
	}
	r = b.do(t, "GET", "/services/"+svc, u, nil).want(t, http.StatusOK)
	if l := r.List(); len(l) != 1 || l[0].(map[string]any)["Name"] != inst || l[0].(map[string]any)["ServiceName"] != svc {
		t.Errorf("GET /services/%s: %s", svc, r)
	}

	// Bind to a registered app (not deployed: nothing to redeploy).
	app := b.unique("bindme")
	b.createApp(t, u, app)
	b.createApp(t, other, app+"-x")
	b.do(t, "PUT", "/services/instances/"+inst+"/"+app, other, nil).want(t, http.StatusForbidden)
	b.do(t, "PUT", "/services/instances/"+inst+"/nosuchapp", u, nil).want(t, http.StatusNotFound)
	b.do(t, "PUT", "/services/instances/nosuchinstance/"+app, u, nil).want(t, http.StatusNotFound)
	r = b.do(t, "PUT", "/services/instances/"+inst+"/"+app, u, nil).want(t, http.StatusOK)
	token := r.Str("FLAKY_TOKEN")
	if r.Str("FLAKY_INSTANCE") != inst || len(token) != 32 {
		t.Fatalf("bind did not answer the env the app gets: %s", r)
	}
	b.remember(token, "a FLAKY_TOKEN credential")
	if got := instanceApps(t, b, u, inst); !svcSameStrings(got, []string{app}) {
		t.Errorf("after bind, the instance's apps are %v", got)
	}
	if strings.Contains(string(b.do(t, "GET", "/services/instances/"+inst, u, nil).Raw), token) {
		t.Errorf("GET /services/instances/%s shows the binding's credentials", inst)
	}
	// Binding twice: 409, same credentials kept.
	b.do(t, "PUT", "/services/instances/"+inst+"/"+app, u, nil).want(t, http.StatusConflict)
	// Remove while bound: refused, nothing changed.
	if r := b.do(t, "DELETE", "/services/instances/"+inst, u, nil); r.Code < 400 || r.Code >= 500 {
		t.Errorf("removing a bound instance: want a 4xx, got %s", r)
	}
	// A service with instances cannot be removed (403).
	b.do(t, "DELETE", "/services/"+svc, u, nil).want(t, http.StatusForbidden)
	b.do(t, "DELETE", "/services/"+svc, other, nil).want(t, http.StatusForbidden)

	// Unbind; unbinding what is not bound is 404.
	b.do(t, "DELETE", "/services/instances/"+inst+"/"+app, other, nil).want(t, http.StatusForbidden)
	b.do(t, "DELETE", "/services/instances/"+inst+"/nosuchapp", u, nil).want(t, http.StatusNotFound)
	b.do(t, "DELETE", "/services/instances/nosuchinstance/"+app, u, nil).want(t, http.StatusNotFound)
	b.do(t, "DELETE", "/services/instances/"+inst+"/"+app, u, nil).want(t, http.StatusOK)
	b.do(t, "DELETE", "/services/instances/"+inst+"/"+app, u, nil).want(t, http.StatusNotFound)
	if got := instanceApps(t, b, u, inst); len(got) != 0 {
		t.Errorf("after unbind, the instance's apps are %v", got)
	}
	// Bind again after an unbind works (fresh credentials).
	r = b.do(t, "PUT", "/services/instances/"+inst+"/"+app, u, nil).want(t, http.StatusOK)
	b.remember(r.Str("FLAKY_TOKEN"), "a FLAKY_TOKEN credential")
	b.do(t, "DELETE", "/services/instances/"+inst+"/"+app, u, nil).want(t, http.StatusOK)

	// Removing a bound app unbinds it first.
	r = b.do(t, "PUT", "/services/instances/"+inst+"/"+app, u, nil).want(t, http.StatusOK)
	b.remember(r.Str("FLAKY_TOKEN"), "a FLAKY_TOKEN credential")
	b.do(t, "DELETE", "/apps/"+app, u, nil).want(t, http.StatusOK)
	if got := instanceApps(t, b, u, inst); len(got) != 0 {
		t.Errorf("after the bound app was removed, the instance's apps are %v", got)
	}

	// Every path answers with a trailing slash too; an app token may not
	// touch services; anonymous callers are 401.
	b.do(t, "GET", "/services/", u, nil).want(t, http.StatusOK)
	b.do(t, "GET", "/services/instances/", u, nil).want(t, http.StatusOK)
	b.do(t, "GET", "/services/instances/"+inst+"/", u, nil).want(t, http.StatusOK)
	b.do(t, "GET", "/services/instances/"+inst+"/status/", u, nil).want(t, http.StatusOK)
	b.do(t, "GET", "/services/"+svc+"/doc/", u, nil).want(t, http.StatusOK)
	b.do(t, "GET", "/services", nil, nil).want(t, http.StatusUnauthorized)
	b.do(t, "GET", "/services/instances/"+inst, nil, nil).want(t, http.StatusUnauthorized)
	b.do(t, "POST", "/services/instances", nil, map[string]any{"name": "anon", "service_name": svc}).want(t, http.StatusUnauthorized)
	app3 := b.unique("tokapp")
	b.createApp(t, u, app3)
	tok := b.appToken(t, u, app3)
	b.do(t, "POST", "/services", tok, yamlBody("id: "+svc+"-tok\nbroker: flaky\n")).want(t, http.StatusForbidden)
	b.do(t, "POST", "/services/instances", tok, map[string]any{"name": "tok", "service_name": svc}).want(t, http.StatusForbidden)
	b.do(t, "PUT", "/services/instances/"+inst+"/"+app3, tok, nil).want(t, http.StatusForbidden)

	// Concurrent creates of one instance name: exactly one wins, the others
	// are 409, and one instance exists.
	race := b.unique("race")
	codes := make(chan int, 6)
	for i := 0; i < cap(codes); i++ {
		go func() {
			body := []byte(fmt.Sprintf(`{"name": %q, "service_name": %q}`, race, svc))
			req, _ := http.NewRequest("POST", b.URL+"/services/instances", strings.NewReader(string(body)))
			req.Header.Set("Authorization", "bearer "+u.Token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	won := 0
	for i := 0; i < cap(codes); i++ {
		switch c := <-codes; c {
		case http.StatusOK:
			won++
		case http.StatusConflict:
		default:
			t.Errorf("a concurrent create of %s answered %d", race, c)
		}
	}
	if won != 1 {
		t.Errorf("%d concurrent creates of %s succeeded, want 1", won, race)
	}
	if got := serviceNames(t, b, "/services", u); !svcSameStrings(got[svc], []string{inst, race}) {
		t.Errorf("after the concurrent creates: %v", got[svc])
	}
	b.do(t, "DELETE", "/services/instances/"+race, u, nil).want(t, http.StatusOK)

	// Remove the instance, then the service.
	b.do(t, "DELETE", "/services/instances/"+inst, other, nil).want(t, http.StatusForbidden)
	b.do(t, "DELETE", "/services/instances/"+inst, u, nil).want(t, http.StatusOK)
	b.do(t, "DELETE", "/services/instances/"+inst, u, nil).want(t, http.StatusNotFound)
	b.do(t, "GET", "/services/instances/"+inst, u, nil).want(t, http.StatusNotFound)
	b.do(t, "DELETE", "/services/"+svc, other, nil).want(t, http.StatusForbidden)
	r = b.do(t, "DELETE", "/services/"+svc, u, nil).want(t, http.StatusNoContent)
	if len(r.Raw) != 0 {
		t.Errorf("204 with a body: %q", r.Raw)
	}
	b.do(t, "GET", "/services/"+svc, u, nil).want(t, http.StatusNotFound)
	b.do(t, "DELETE", "/services/"+svc, u, nil).want(t, http.StatusNotFound)
	if got := serviceNames(t, b, "/services", b.Admin); len(got) != 0 {
		t.Errorf("services left after removal: %v", got)
	}

	// A site admin in no team may create a service (owned by no team).
	adminSvc := b.unique("adm")
	b.do(t, "POST", "/services", b.Admin, yamlBody("id: "+adminSvc+"\nbroker: flaky\n")).want(t, http.StatusOK)
	b.do(t, "DELETE", "/services/"+adminSvc, b.Admin, nil).want(t, http.StatusNoContent)
}

func svcKeys(m map[string][]string) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestServicesBrokerFailures(t *testing.T) {
	dir := flakyPluginDir(t)
	b := startBerth(t, Options{ExtraHCL: pluginsHCL(dir)})
	u, team := serviceOwner(t, b, "flakyowner")
	mk := func(extra string) string {
		svc := b.unique("flaky")
		body := fmt.Sprintf("id: %s\nbroker: flaky\nteam: %s\n%s", svc, team, extra)
		// Broker settings are the site admin's; the team owns the service.
		as := u
		if extra != "" {
			as = b.Admin
		}
		b.do(t, "POST", "/services", as, yamlBody(body)).want(t, http.StatusOK)
		return svc
	}
	good := mk("")

	// A broker that crashes, or hangs, in Provision: a clean 5xx, no
	// instance record left, the service still listed without instances.
	for _, tc := range []struct{ what, settings string }{
		{"crash in provision", "settings: {crash_in: provision}\n"},
		{"hang in provision", "settings: {hang_in: provision}\n"},
	} {
		svc := mk(tc.settings)
		inst := b.unique("fail")
		r, took := svcTimed(func() *Resp {
			return b.do(t, "POST", "/services/instances", u, map[string]any{"name": inst, "service_name": svc})
		})
		wantBrokerFailure(t, r, took, tc.what)
		b.do(t, "GET", "/services/instances/"+inst, u, nil).want(t, http.StatusNotFound)
		if got := serviceNames(t, b, "/services", u); len(got[svc]) != 0 {
			t.Errorf("%s: instances left behind: %v", tc.what, got[svc])
		}
		// The name is free again: the same name provisions on a good service.
		b.do(t, "POST", "/services/instances", u, map[string]any{"name": inst, "service_name": good}).want(t, http.StatusOK)
		b.do(t, "DELETE", "/services/instances/"+inst, u, nil).want(t, http.StatusOK)
		b.do(t, "DELETE", "/services/"+svc, u, nil).want(t, http.StatusNoContent)
	}

	// A broker that crashes, or hangs, in Bind: a clean 5xx, the app is not
	// bound, and its lease is released (the next operation is not 409).
	app := b.unique("victim")
	b.createApp(t, u, app)
	goodInst := b.unique("ok")
	b.do(t, "POST", "/services/instances", u, map[string]any{"name": goodInst, "service_name": good}).want(t, http.StatusOK)
	for _, tc := range []struct{ what, settings string }{
		{"crash in bind", "settings: {crash_in: bind}\n"},
		{"hang in bind", "settings: {hang_in: bind}\n"},
	} {
		svc := mk(tc.settings)
		inst := b.unique("bindfail")
		b.do(t, "POST", "/services/instances", u, map[string]any{"name": inst, "service_name": svc}).want(t, http.StatusOK)
		r, took := svcTimed(func() *Resp { return b.do(t, "PUT", "/services/instances/"+inst+"/"+app, u, nil) })
		wantBrokerFailure(t, r, took, tc.what)
		if got := instanceApps(t, b, u, inst); len(got) != 0 {
			t.Errorf("%s: the instance records apps %v after a failed bind", tc.what, got)
		}
		b.do(t, "DELETE", "/services/instances/"+inst+"/"+app, u, nil).want(t, http.StatusNotFound)
		// The lease was released: another bind on the same app goes through.
		r = b.do(t, "PUT", "/services/instances/"+goodInst+"/"+app, u, nil).want(t, http.StatusOK)
		b.remember(r.Str("FLAKY_TOKEN"), "a FLAKY_TOKEN credential")
		b.do(t, "DELETE", "/services/instances/"+goodInst+"/"+app, u, nil).want(t, http.StatusOK)
		b.do(t, "DELETE", "/services/instances/"+inst, u, nil).want(t, http.StatusOK)
		b.do(t, "DELETE", "/services/"+svc, u, nil).want(t, http.StatusNoContent)
	}

	// A broker that hangs in Unbind or Deprovision: a clean 5xx and the
	// records still say what is true (still bound; still there). After the
	// operator fixes the service (PUT /services), both go through.
	for _, verb := range []string{"unbind", "deprovision"} {
		svc := mk("settings: {hang_in: " + verb + "}\n")
		inst := b.unique(verb)
		b.do(t, "POST", "/services/instances", u, map[string]any{"name": inst, "service_name": svc}).want(t, http.StatusOK)
		r := b.do(t, "PUT", "/services/instances/"+inst+"/"+app, u, nil).want(t, http.StatusOK)
		b.remember(r.Str("FLAKY_TOKEN"), "a FLAKY_TOKEN credential")
		if verb == "unbind" {
			r, took := svcTimed(func() *Resp { return b.do(t, "DELETE", "/services/instances/"+inst+"/"+app, u, nil) })
			wantBrokerFailure(t, r, took, "hang in unbind")
			if got := instanceApps(t, b, u, inst); !svcSameStrings(got, []string{app}) {
				t.Errorf("after a failed unbind the instance's apps are %v, want still [%s]", got, app)
			}
		} else {
			b.do(t, "DELETE", "/services/instances/"+inst+"/"+app, u, nil).want(t, http.StatusOK)
			r, took := svcTimed(func() *Resp { return b.do(t, "DELETE", "/services/instances/"+inst, u, nil) })
			wantBrokerFailure(t, r, took, "hang in deprovision")
			b.do(t, "GET", "/services/instances/"+inst, u, nil).want(t, http.StatusOK)
		}
		// The operator fixes the broker's settings; the plugin restarts.
		b.do(t, "PUT", "/services", u, yamlBody(fmt.Sprintf("id: %s\nbroker: flaky\n", svc))).want(t, http.StatusOK)
		if verb == "unbind" {
			b.do(t, "DELETE", "/services/instances/"+inst+"/"+app, u, nil).want(t, http.StatusOK)
		}
		b.do(t, "DELETE", "/services/instances/"+inst, u, nil).want(t, http.StatusOK)
		b.do(t, "GET", "/services/instances/"+inst, u, nil).want(t, http.StatusNotFound)
		b.do(t, "DELETE", "/services/"+svc, u, nil).want(t, http.StatusNoContent)
	}

	// A broker that hangs, or crashes, in LastOperation: the status answer
	// still comes, in time, saying the broker failed.
	for _, setting := range []string{"hang_in", "crash_in"} {
		svc := mk("settings: {" + setting + ": lastoperation}\n")
		inst := b.unique("status")
		b.do(t, "POST", "/services/instances", u, map[string]any{"name": inst, "service_name": svc}).want(t, http.StatusOK)
		r, took := svcTimed(func() *Resp { return b.do(t, "GET", "/services/instances/"+inst+"/status", u, nil) })
		r.want(t, http.StatusOK)
		if r.Str("state") != "ready" || !strings.HasPrefix(r.Str("broker"), "error") || took > 15*time.Second {
			t.Errorf("status with a broker that %s in LastOperation (took %v): %s", setting, took, r)
		}
		b.do(t, "DELETE", "/services/instances/"+inst, u, nil).want(t, http.StatusOK)
		b.do(t, "DELETE", "/services/"+svc, u, nil).want(t, http.StatusNoContent)
	}

	// A broker binary that is not a plugin at all (exits at once).
	notPlugin := filepath.Join(dir, "berth-broker-broken")
	if err := os.WriteFile(notPlugin, []byte("#!/bin/sh\necho not a plugin >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	svc := b.unique("broken")
	b.do(t, "POST", "/services", u, yamlBody(fmt.Sprintf("id: %s\nbroker: broken\nteam: %s\n", svc, team))).want(t, http.StatusOK)
	inst := b.unique("nope")
	r, took := svcTimed(func() *Resp {
		return b.do(t, "POST", "/services/instances", u, map[string]any{"name": inst, "service_name": svc})
	})
	wantBrokerFailure(t, r, took, "a broker that does not start")
	b.do(t, "GET", "/services/instances/"+inst, u, nil).want(t, http.StatusNotFound)

	// Nothing is left: only the good service and its one instance.
	got := serviceNames(t, b, "/services", b.Admin)
	if !svcSameStrings(got[good], []string{goodInst}) || len(got[svc]) != 0 || len(got) != 2 {
		t.Errorf("after the failures, GET /services: %v", got)
	}
	b.do(t, "DELETE", "/services/instances/"+goodInst, u, nil).want(t, http.StatusOK)
}

// svcRouterDo sends a request to app through the local router.
func svcRouterDo(t *testing.T, b *Berth, method, app, path string) (int, map[string]any, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+b.RouterAddr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = app + ".apps.localhost" // the harness sets no apps.domain: the default
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s through the router: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, string(raw)
}
