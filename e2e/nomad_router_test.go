package e2e

// Issue 12, defect 5: on Nomad the built-in router serves the apps too.
// The real berth binary with a nomad {} block and local.router_addr set
// (the harness sets it) deploys an app on a real Nomad; the test GETs it
// through Berth's router by Host: at <app>.<apps domain>, at a custom
// domain, round robin over both instances; an unknown host is 404, and the
// host answers 404 again once the app is undeployed. The router finds the
// instances in the Consul catalog Nomad registers them in: the berth
// process reads CONSUL_HTTP_ADDR (else 127.0.0.1:8500), so run it with the
// Consul of the Nomad under test. It runs only when NOMAD_ADDR is set (see
// tools/nomad/README.md).

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"

	"github.com/berthpaas/berth/api"
)

func TestNomadRouter(t *testing.T) {
	addr, nc := nomadEnv(t)
	b := startBerth(t, Options{ExtraHCL: nomadHCL(addr)})
	app := fmt.Sprintf("nrouter%d", time.Now().UnixNano()%1000000)
	t.Cleanup(func() {
		_, _, _ = nc.Jobs().DeregisterOpts(app, &nomadapi.DeregisterOptions{Purge: true}, nil)
	})
	u := b.newUser(t, "nomadrouter")
	team := b.unique("nomad-router")
	b.do(t, "POST", "/teams", u, map[string]any{"name": team}).want(t, http.StatusOK)
	b.do(t, "POST", "/apps", u, map[string]any{"name": app, "teamOwner": team}).want(t, http.StatusOK)

	// Two instances, each serving its allocation index at /idx.txt.
	mv := metaVersion()
	b.push(t, u, app, map[string]any{
		"meta_version": mv,
		"web": map[string]any{
			"cmd":    `printf %s "$NOMAD_ALLOC_INDEX" > idx.txt; printf %s "$WEBAPP_VERSION" > version.txt; exec python3 -m http.server --bind 0.0.0.0 $PORT`,
			"memory": "64m", "cpu": 0.1, "num_instances": 2, "healthcheck": "/version.txt", "env": []string{"WEBAPP_VERSION=one"},
		},
	})
	r := b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	b.waitNomadRunning(t, u, app, generationOf(t, r))
	b.runningInstances(t, u, app, "web", 2, true)

	// By Host, at <app>.<apps domain> (any port, any case).
	host := appHost(app)
	var code int
	var body string
	eventually(t, time.Minute, host+" to answer through the router", func() bool {
		code, body = routerGetS(t, b, strings.ToUpper(host)+":80", "/version.txt")
		return code == http.StatusOK && body == "one"
	})
	// Round robin over both instances.
	seen := map[string]int{}
	for i := 0; i < 8; i++ {
		code, body = routerGetS(t, b, host, "/idx.txt")
		if code != http.StatusOK {
			t.Fatalf("GET /idx.txt via the router: %d %q", code, body)
		}
		seen[body]++
	}
	if seen["0"] != 4 || seen["1"] != 4 {
		t.Errorf("answers by allocation index %v: want both instances, 4 each", seen)
	}

	// An unknown host: 404 naming it.
	if code, body = routerGetS(t, b, "nosuch-"+host, "/"); code != http.StatusNotFound || !strings.Contains(body, "nosuch-"+host) {
		t.Errorf("unknown host: %d %q, want 404 naming the host", code, body)
	}

	// A custom domain: served once the app is redeployed with it.
	custom := "www." + app + ".example.test"
	r = b.operate(t, "POST", "/apps/"+app+"/cname", u, api.DomainsRequest{CName: []string{custom}}).want(t, http.StatusAccepted)
	ch := decodeAs[api.DomainsChange](t, r)
	if ch.Operation == nil {
		t.Fatalf("the add's answer: %s", r)
	}
	b.waitNomadRunning(t, u, app, ch.Operation.Generation)
	eventually(t, time.Minute, custom+" to answer through the router", func() bool {
		code, body = routerGetS(t, b, custom, "/version.txt")
		return code == http.StatusOK && body == "one"
	})
	if code, body = routerGetS(t, b, host, "/version.txt"); code != http.StatusOK || body != "one" {
		t.Errorf("%s after the custom domain was added: %d %q", host, code, body)
	}

	// Undeployed: no service, the host is unknown again.
	b.operate(t, "DELETE", "/api/v1/apps/"+app+"/", u, nil).want(t, http.StatusAccepted)
	eventually(t, nomadTimeout, host+" to stop being routed", func() bool {
		code, body = routerGetS(t, b, host, "/version.txt")
		return code == http.StatusNotFound
	})
	t.Logf("after undeploy %s answers %d %s", host, code, strings.TrimSpace(body))
}

// routerGetS is routerGet with the body as a string.
func routerGetS(t *testing.T, b *Berth, host, path string) (int, string) {
	t.Helper()
	code, body := b.routerGet(t, host, path)
	return code, string(body)
}
