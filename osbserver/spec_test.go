package osbserver_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/osbserver"
)

// client sends OSB requests to a berth's endpoint.
type client struct {
	t    *testing.T
	base string
	user string
	pass string
	ver  string
	hdr  map[string]string
}

func newClient(t *testing.T, b *berth) *client {
	return &client{t: t, base: b.URL, user: osbUser, pass: osbPass, ver: "2.17"}
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (c *client) do(method, path string, body any) answer {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			rd = strings.NewReader(s)
		} else {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.ver != "" {
		req.Header.Set("X-Broker-API-Version", c.ver)
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		c.t.Errorf("%s %s answered %d with a body that is not a JSON object: %q", method, path, resp.StatusCode, raw)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		c.t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return a
}

func (c *client) want(a answer, status int, what string) {
	c.t.Helper()
	if a.status != status {
		c.t.Fatalf("%s: %d %s; want %d", what, a.status, a.raw, status)
	}
	if status >= 400 && status != http.StatusGone {
		if d, _ := a.body["description"].(string); d == "" {
			c.t.Errorf("%s: error body %s has no description", what, a.raw)
		}
	}
}

type catalogT struct {
	Services []struct {
		ID, Name, Description string
		Bindable              bool
		Plans                 []struct {
			ID, Name, Description string
		}
	}
}

func (c *client) catalog() catalogT {
	c.t.Helper()
	a := c.do("GET", "/v2/catalog", nil)
	c.want(a, 200, "GET /v2/catalog")
	var cat catalogT
	if err := json.Unmarshal([]byte(a.raw), &cat); err != nil {
		c.t.Fatal(err)
	}
	return cat
}

func provisionBody(svc, plan string, params map[string]any) map[string]any {
	return map[string]any{"service_id": svc, "plan_id": plan, "organization_guid": "org-1", "space_guid": "space-1",
		"context": map[string]any{"platform": "cloudfoundry"}, "parameters": params}
}

// poll polls a last_operation until it is not in progress.
func (c *client) poll(path, op string) answer {
	c.t.Helper()
	for i := 0; i < 300; i++ {
		a := c.do("GET", path+"/last_operation?operation="+url.QueryEscape(op), nil)
		if a.status != 200 || a.body["state"] != "in progress" {
			return a
		}
		if a.header.Get("Retry-After") == "" {
			c.t.Errorf("in progress without Retry-After")
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatalf("%s still in progress after 30s", path)
	return answer{}
}

func TestHeadersAndAuth(t *testing.T) {
	b := newBerth(t, t.TempDir(), true)
	for _, path := range []string{"/v2/catalog", "/v2/service_instances/x/last_operation"} {
		c := newClient(t, b)
		c.ver = ""
		c.want(c.do("GET", path, nil), 412, "no X-Broker-API-Version")
		for _, v := range []string{"2.12", "1.0", "3.17", "two", "2"} {
			c.ver = v
			c.want(c.do("GET", path, nil), 412, "X-Broker-API-Version "+v)
		}
		c.ver = "2.13"
		if a := c.do("GET", "/v2/catalog", nil); a.status != 200 {
			t.Errorf("X-Broker-API-Version 2.13: %d", a.status)
		}
		for _, cred := range [][2]string{{"", ""}, {osbUser, "wrong"}, {"spock", osbPass}} {
			c := newClient(t, b)
			c.user, c.pass = cred[0], cred[1]
			a := c.do("GET", path, nil)
			c.want(a, 401, "credentials "+cred[0]+":"+cred[1])
			if !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("401 without a Basic WWW-Authenticate challenge")
			}
		}
		c = newClient(t, b)
		c.user, c.ver = "", ""
		c.want(c.do("PUT", "/v2/service_instances/x", "{}"), 401, "neither auth nor version")
	}
	c := newClient(t, b)
	c.hdr = map[string]string{"X-Broker-API-Request-Identity": "req-42"}
	if a := c.do("GET", "/v2/catalog", nil); a.header.Get("X-Broker-API-Request-Identity") != "req-42" {
		t.Errorf("X-Broker-API-Request-Identity not echoed")
	}
	c.hdr = map[string]string{"X-Broker-API-Originating-Identity": "cloudfoundry not-base64!"}
	c.want(c.do("GET", "/v2/catalog", nil), 400, "malformed originating identity")
	c.hdr = nil
	c.want(c.do("GET", "/v2/nothing", nil), 404, "unknown path")
}

// CLI-friendly names, as the 2.13 checkers' catalog schema wants them.
var cliFriendly = regexp.MustCompile(`^[a-z0-9-]+$`)

func TestCatalog(t *testing.T) {
	b := newBerth(t, t.TempDir(), true)
	// A service of another team is not offered.
	ctx := context.Background()
	admin := &engine.Identity{Email: "admin@berth.local", Admin: true}
	if _, err := b.eng.CreateTeam(ctx, admin, "other"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.eng.CreateService(ctx, admin, strings.NewReader("id: othersql\nbroker: mysql\ntarget: local-mysql\nteam: other\n")); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, b)
	cat := c.catalog()
	if len(cat.Services) != 1 || cat.Services[0].Name != "mysql" {
		t.Fatalf("catalog services %+v; want only the team's mysql", cat.Services)
	}
	ids := map[string]bool{}
	for _, s := range cat.Services {
		if s.ID == "" || ids[s.ID] || !cliFriendly.MatchString(s.Name) || s.Description == "" || !s.Bindable || len(s.Plans) == 0 {
			t.Errorf("service %+v: want a unique id, a CLI-friendly name, a description, bindable and plans", s)
		}
		ids[s.ID] = true
		for _, p := range s.Plans {
			if p.ID == "" || ids[p.ID] || !cliFriendly.MatchString(p.Name) || p.Description == "" {
				t.Errorf("plan %+v: want a unique id, a CLI-friendly name and a description", p)
			}
			ids[p.ID] = true
		}
	}
	again := c.catalog()
	if again.Services[0].ID != cat.Services[0].ID || again.Services[0].Plans[0].ID != cat.Services[0].Plans[0].ID {
		t.Errorf("the catalog's IDs changed between two requests")
	}
}

func TestInstanceLifecycleAsync(t *testing.T) {
	b := newBerth(t, t.TempDir(), true)
	c := newClient(t, b)
	cat := c.catalog()
	svc, plan := cat.Services[0].ID, cat.Services[0].Plans[0].ID
	id := "4f6e6cf6-ffdd-425f-a2c7-3c9258ad2468" // a platform's GUID
	path := "/v2/service_instances/" + id
	good := provisionBody(svc, plan, map[string]any{"note": "x", "size": 2})

	// Bad requests.
	for _, drop := range []string{"service_id", "plan_id", "organization_guid", "space_guid"} {
		body := provisionBody(svc, plan, nil)
		delete(body, drop)
		c.want(c.do("PUT", path+"?accepts_incomplete=true", body), 400, "provision without "+drop)
	}
	c.want(c.do("PUT", path+"?accepts_incomplete=true", provisionBody("xxxxx-xxxxx", plan, nil)), 400, "unknown service_id")
	c.want(c.do("PUT", path+"?accepts_incomplete=true", provisionBody(svc, "xxxxx-xxxxx", nil)), 400, "unknown plan_id")
	bad := provisionBody(svc, plan, nil)
	bad["parameters"] = "a string"
	c.want(c.do("PUT", path+"?accepts_incomplete=true", bad), 400, "parameters not an object")
	c.want(c.do("PUT", path+"?accepts_incomplete=true", "{not json"), 400, "malformed body")
	c.want(c.do("PUT", path+"?accepts_incomplete=maybe", good), 400, "accepts_incomplete=maybe")
	for _, q := range []string{"", "?accepts_incomplete=false"} {
		a := c.do("PUT", path+q, good)
		c.want(a, 422, "provision without accepts_incomplete")
		if a.body["error"] != "AsyncRequired" {
			t.Errorf("error %v, want AsyncRequired", a.body["error"])
		}
	}
	c.want(c.do("GET", path+"/last_operation", nil), 410, "last_operation of an unknown instance")
	c.want(c.do("DELETE", path+"?accepts_incomplete=true&service_id="+svc+"&plan_id="+plan, nil), 410, "deprovision of an unknown instance")

	// Provision.
	c.hdr = map[string]string{"X-Broker-API-Originating-Identity": "cloudfoundry " + base64.StdEncoding.EncodeToString([]byte(`{"user_id":"u1"}`))}
	a := c.do("PUT", path+"?accepts_incomplete=true", good)
	c.want(a, 202, "provision")
	op, _ := a.body["operation"].(string)
	if op == "" {
		t.Fatalf("202 without an operation: %s", a.raw)
	}
	c.hdr = nil
	if lo := c.poll(path, op); lo.status != 200 || lo.body["state"] != "succeeded" {
		t.Fatalf("last_operation: %d %s", lo.status, lo.raw)
	}
	c.want(c.do("GET", path+"/last_operation?operation=other", nil), 400, "last_operation of another operation")
	inst, _, err := b.eng.TeamInstance(context.Background(), osbTeam, osbserver.BerthInstance(id))
	if err != nil || inst.State != state.InstanceReady || inst.Owner != "osb:cloudfoundry" {
		t.Fatalf("the Berth instance: %+v, %v; want a ready instance of the team, owned by osb:cloudfoundry", inst, err)
	}
	// Re-provision: identical -> 200, different -> 409.
	c.want(c.do("PUT", path+"?accepts_incomplete=true", good), 200, "identical re-provision")
	c.want(c.do("PUT", path+"?accepts_incomplete=true", provisionBody(svc, plan, map[string]any{"note": "y"})), 409, "re-provision with other parameters")
	g := c.do("GET", path, nil)
	c.want(g, 200, "GET instance")
	if g.body["service_id"] != svc || g.body["plan_id"] != plan {
		t.Errorf("GET instance %s", g.raw)
	}
	// Update: nothing changes -> 200; a plan or parameter change -> 422.
	c.want(c.do("PATCH", path+"?accepts_incomplete=true", map[string]any{"plan_id": plan}), 400, "update without service_id")
	c.want(c.do("PATCH", path+"?accepts_incomplete=true", map[string]any{"service_id": svc, "context": map[string]any{"platform": "cloudfoundry"}}), 200, "context-only update")
	c.want(c.do("PATCH", path+"?accepts_incomplete=true", map[string]any{"service_id": svc, "plan_id": "other-plan"}), 422, "plan change")

	// Bindings: synchronous without accepts_incomplete.
	bpath := path + "/service_bindings/5b2a7e0b-1ef1-4c4a-9d6c-6bd2b4a4e3d1"
	bind := map[string]any{"service_id": svc, "plan_id": plan, "bind_resource": map[string]any{"app_guid": "app-guid-1"}}
	c.want(c.do("PUT", bpath, map[string]any{"plan_id": plan}), 400, "bind without service_id")
	c.want(c.do("PUT", path+"x/service_bindings/b", bind), 404, "bind on an unknown instance")
	a = c.do("PUT", bpath, bind)
	c.want(a, 201, "bind")
	creds, _ := a.body["credentials"].(map[string]any)
	if creds["MYSQL_USER"] == nil {
		t.Fatalf("bind answered no credentials: %s", a.raw)
	}
	a2 := c.do("PUT", bpath, bind)
	c.want(a2, 200, "identical re-bind")
	if c2, _ := a2.body["credentials"].(map[string]any); c2["MYSQL_PASSWORD"] != creds["MYSQL_PASSWORD"] {
		t.Errorf("re-bind returned other credentials")
	}
	c.want(c.do("PUT", bpath, map[string]any{"service_id": svc, "plan_id": plan, "bind_resource": map[string]any{"app_guid": "another"}}), 409, "bind of the same id for another app")
	got := c.do("GET", bpath, nil)
	c.want(got, 200, "GET binding")
	strCreds := map[string]string{}
	for k, v := range creds {
		strCreds[k], _ = v.(string)
	}
	if err := useDB(context.Background(), strCreds); err != nil {
		t.Errorf("the binding's credentials do not work: %v", err)
	}
	if lo := c.do("GET", bpath+"/last_operation", nil); lo.status != 200 || lo.body["state"] != "succeeded" {
		t.Errorf("binding last_operation %d %s", lo.status, lo.raw)
	}
	// An asynchronous binding.
	apath := path + "/service_bindings/async-1"
	a = c.do("PUT", apath+"?accepts_incomplete=true", bind)
	c.want(a, 202, "async bind")
	if lo := c.poll(apath, a.body["operation"].(string)); lo.body["state"] != "succeeded" {
		t.Fatalf("async bind last_operation %s", lo.raw)
	}
	if g := c.do("GET", apath, nil); g.status != 200 || g.body["credentials"] == nil {
		t.Errorf("GET of the async binding: %d %s", g.status, g.raw)
	}
	// Unbind.
	c.want(c.do("DELETE", bpath+"?plan_id="+plan, nil), 400, "unbind without service_id")
	c.want(c.do("DELETE", bpath+"?service_id="+svc+"&plan_id="+plan, nil), 200, "unbind")
	if err := useDB(context.Background(), strCreds); err == nil {
		t.Errorf("credentials still work after the unbind")
	}
	c.want(c.do("DELETE", bpath+"?service_id="+svc+"&plan_id="+plan, nil), 410, "second unbind")
	c.want(c.do("GET", bpath, nil), 404, "GET of an unbound binding")

	// Deprovision.
	c.want(c.do("DELETE", path+"?accepts_incomplete=true&service_id="+svc, nil), 400, "deprovision without plan_id")
	a = c.do("DELETE", path+"?service_id="+svc+"&plan_id="+plan, nil)
	c.want(a, 422, "deprovision without accepts_incomplete")
	a = c.do("DELETE", path+"?accepts_incomplete=true&service_id="+svc+"&plan_id="+plan, nil)
	c.want(a, 202, "deprovision")
	if lo := c.poll(path, a.body["operation"].(string)); lo.status != 200 || lo.body["state"] != "succeeded" {
		t.Fatalf("deprovision's last_operation: %d %s; want 200 succeeded for its poller", lo.status, lo.raw)
	}
	c.want(c.do("GET", path+"/last_operation", nil), 410, "last_operation (no operation) of a deprovisioned instance")
	c.want(c.do("GET", path, nil), 404, "GET of a deprovisioned instance")
	c.want(c.do("DELETE", path+"?accepts_incomplete=true&service_id="+svc+"&plan_id="+plan, nil), 410, "second deprovision")
	c.want(c.do("PUT", path+"/service_bindings/late", bind), 404, "bind on a deprovisioned instance")
	c.want(c.do("PATCH", path, map[string]any{"service_id": svc}), 404, "update of a deprovisioned instance")
	if _, _, err := b.eng.TeamInstance(context.Background(), osbTeam, osbserver.BerthInstance(id)); err == nil {
		t.Errorf("the Berth instance is still there after the deprovision")
	}
}

func TestInstanceLifecycleSync(t *testing.T) {
	b := newBerth(t, t.TempDir(), false)
	c := newClient(t, b)
	cat := c.catalog()
	svc, plan := cat.Services[0].ID, cat.Services[0].Plans[0].ID
	path := "/v2/service_instances/sync-1"
	c.want(c.do("PUT", path, provisionBody(svc, plan, nil)), 201, "provision")
	c.want(c.do("PUT", path+"?accepts_incomplete=true", provisionBody(svc, plan, nil)), 200, "identical re-provision")
	if lo := c.do("GET", path+"/last_operation", nil); lo.body["state"] != "succeeded" {
		t.Errorf("last_operation %s", lo.raw)
	}
	c.want(c.do("DELETE", path+"?service_id="+svc+"&plan_id="+plan, nil), 200, "deprovision")
	c.want(c.do("DELETE", path+"?service_id="+svc+"&plan_id="+plan, nil), 410, "second deprovision")
	want := []string{
		"osb:platform osb.instance.provision sync-1 201",
		"osb:platform osb.instance.provision sync-1 200",
		"osb:platform osb.instance.deprovision sync-1 200",
		"osb:platform osb.instance.deprovision sync-1 410",
	}
	if got := b.audit.list(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audited:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A provision Berth accepted (202) and did not do before it stopped is
// done when it starts again; the platform's polling sees it succeed.
func TestResumeAfterRestart(t *testing.T) {
	dir := t.TempDir()
	b := newBerth(t, dir, true)
	c := newClient(t, b)
	cat := c.catalog()
	svc, plan := cat.Services[0].ID, cat.Services[0].Plans[0].ID
	op, err := b.osb.InjectAcceptedProvision(context.Background(), "resumed-1", svc, plan)
	if err != nil {
		t.Fatal(err)
	}
	// While it is in progress: a re-sent identical PUT is 202 with the
	// same operation; a DELETE is 422 ConcurrencyError.
	path := "/v2/service_instances/resumed-1"
	if a := c.do("PUT", path+"?accepts_incomplete=true", provisionBody(svc, plan, nil)); a.status != 202 || a.body["operation"] != op {
		t.Errorf("re-sent PUT while in progress: %d %s; want 202 with operation %s", a.status, a.raw, op)
	}
	a := c.do("DELETE", path+"?accepts_incomplete=true&service_id="+svc+"&plan_id="+plan, nil)
	c.want(a, 422, "DELETE while the provision is in progress")
	if a.body["error"] != "ConcurrencyError" {
		t.Errorf("error %v, want ConcurrencyError", a.body["error"])
	}
	// The same Berth (Store) restarted.
	b2 := restart(t, b, dir)
	c2 := newClient(t, b2)
	lo := c2.poll(path, op)
	if lo.status != 200 || lo.body["state"] != "succeeded" {
		t.Fatalf("last_operation after the restart: %d %s", lo.status, lo.raw)
	}
	if inst, _, err := b2.eng.TeamInstance(context.Background(), osbTeam, osbserver.BerthInstance("resumed-1")); err != nil || inst.State != state.InstanceReady {
		t.Fatalf("the resumed instance: %+v, %v", inst, err)
	}
	c2.want(c2.do("DELETE", path+"?accepts_incomplete=true&service_id="+svc+"&plan_id="+plan, nil), 202, "deprovision")
}
