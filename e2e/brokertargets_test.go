package e2e

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBrokerTargets: a broker's connection settings (host, port, admin
// credentials) are operator configuration. A tenant's service names one of
// the operator's broker_target blocks; settings from a tenant are refused
// (403) before anything else happens, whatever they point at; a built-in
// broker with neither settings nor target is refused and never provisions
// on a local server as root; a site admin may give settings.
func TestBrokerTargets(t *testing.T) {
	needRedis(t)
	// A listener that records whether anyone connected: the tenant's
	// settings point here, and nothing may reach it.
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	touched := make(chan struct{}, 16)
	go func() {
		for {
			c, err := probe.Accept()
			if err != nil {
				return
			}
			touched <- struct{}{}
			c.Close()
		}
	}()
	// A target whose admin password comes from the environment (secret_env):
	// MariaDB's root has no password here, so the one given is refused.
	pw := "tgt-" + randHex(10)
	t.Setenv("BERTH_E2E_MYSQL_PASSWORD", pw)
	b := startBerth(t, Options{ExtraHCL: "plugins {\n  call_timeout = \"5s\"\n}\n" +
		"broker_target \"e2e-mysql-pw\" {\n  broker = \"mysql\"\n" +
		"  settings = { host = \"127.0.0.1\", port = \"3306\", user = \"root\", meta_database = \"berth_broker_e2e\" }\n" +
		"  secret_env = { password = \"BERTH_E2E_MYSQL_PASSWORD\" }\n}\n" +
		"broker_target \"e2e-redis-alt\" {\n  broker = \"redis\"\n  settings = { addr = \"127.0.0.1:6379\", meta_prefix = \"berth:e2e-alt\" }\n}\n"})
	b.remember(pw, "the e2e-mysql-pw target's password")
	u, team := serviceOwner(t, b, "tenant")
	host, port, _ := net.SplitHostPort(probe.Addr().String())

	// Settings from a tenant: 403, whatever the rest says (even an unknown
	// broker or a team they are not in), naming the targets instead.
	for _, def := range []string{
		fmt.Sprintf("id: %s\nbroker: mysql\nteam: %s\nsettings: {host: %s, port: %q, user: root}\n", b.unique("rogue"), team, host, port),
		fmt.Sprintf("id: %s\nbroker: redis\nteam: %s\nsettings: {addr: %q}\n", b.unique("rogue"), team, probe.Addr().String()),
		fmt.Sprintf("id: %s\nbroker: redis\nteam: %s\ntarget: e2e-redis\nsettings: {addr: %q}\n", b.unique("rogue"), team, probe.Addr().String()),
		fmt.Sprintf("id: %s\nbroker: nosuchbroker\nteam: nosuchteam\nsettings: {addr: %q}\n", b.unique("rogue"), probe.Addr().String()),
	} {
		r := b.do(t, "POST", "/services", u, yamlBody(def)).want(t, http.StatusForbidden)
		if msg := r.Str("error"); !strings.Contains(msg, "site admin") || !strings.Contains(msg, "target") {
			t.Errorf("the refusal does not say settings are for site admins and targets are the way: %s", r)
		}
	}
	if got := serviceNames(t, b, "/services", b.Admin); len(got) != 0 {
		t.Errorf("refused definitions created services: %v", got)
	}

	// No settings and no target on a built-in broker: refused, nothing
	// provisions (MariaDB as root would accept it).
	for _, br := range []string{"mysql", "redis", "mongodb"} {
		r := b.do(t, "POST", "/services", u, yamlBody(fmt.Sprintf("id: %s\nbroker: %s\nteam: %s\n", b.unique("bare"), br, team))).want(t, http.StatusBadRequest)
		if !strings.Contains(r.Str("error"), "no target configured") {
			t.Errorf("a %s service with no target: %s", br, r)
		}
	}
	// A target that does not exist, or is for another broker: 400.
	b.do(t, "POST", "/services", u, yamlBody(fmt.Sprintf("id: %s\nbroker: redis\nteam: %s\ntarget: nosuch\n", b.unique("bad"), team))).want(t, http.StatusBadRequest)
	b.do(t, "POST", "/services", u, yamlBody(fmt.Sprintf("id: %s\nbroker: mysql\nteam: %s\ntarget: e2e-redis\n", b.unique("bad"), team))).want(t, http.StatusBadRequest)

	// Naming a target works end to end.
	svc := b.unique("tgt")
	r := b.do(t, "POST", "/services", u, yamlBody(fmt.Sprintf("id: %s\nbroker: redis\nteam: %s\ntarget: e2e-redis\n", svc, team))).want(t, http.StatusOK)
	if r.Str("target") != "e2e-redis" {
		t.Errorf("POST /services answer does not name the target: %s", r)
	}
	inst := newInstance(t, b, u, svc)
	app := b.unique("tgtapp")
	b.createApp(t, u, app)
	creds := b.do(t, "PUT", "/services/instances/"+inst+"/"+app, u, nil).want(t, http.StatusOK)
	b.remember(creds.Str("REDIS_URL"), "the instance's REDIS_URL")
	if !strings.Contains(creds.Str("REDIS_URL"), "127.0.0.1:6379") {
		t.Errorf("credentials of a service on target e2e-redis: REDIS_URL does not point at it")
	}
	b.do(t, "DELETE", "/services/instances/"+inst+"/"+app, u, nil).want(t, http.StatusOK)

	// The owner may not repoint it with settings either (PUT), nor move it
	// to another target while it has instances.
	b.do(t, "PUT", "/services", u, yamlBody(fmt.Sprintf("id: %s\nbroker: redis\nsettings: {addr: %q}\n", svc, probe.Addr().String()))).want(t, http.StatusForbidden)
	b.do(t, "PUT", "/services", u, yamlBody(fmt.Sprintf("id: %s\nbroker: redis\ntarget: e2e-redis-alt\n", svc))).want(t, http.StatusConflict)
	b.do(t, "PUT", "/services", u, yamlBody(fmt.Sprintf("id: %s\nbroker: redis\n", svc))).want(t, http.StatusBadRequest)
	b.do(t, "DELETE", "/services/instances/"+inst, u, nil).want(t, http.StatusOK)
	b.do(t, "PUT", "/services", u, yamlBody(fmt.Sprintf("id: %s\nbroker: redis\ntarget: e2e-redis-alt\n", svc))).want(t, http.StatusOK)

	// The target's secret reaches the broker (MariaDB refuses root with
	// that password), and is not in the answer.
	pwSvc := b.unique("tgtpw")
	b.do(t, "POST", "/services", u, yamlBody(fmt.Sprintf("id: %s\nbroker: mysql\nteam: %s\ntarget: e2e-mysql-pw\n", pwSvc, team))).want(t, http.StatusOK)
	r = b.do(t, "POST", "/services/instances", u, map[string]any{"name": "e2e-" + randHex(4) + "-pw", "service_name": pwSvc})
	if r.Code < 400 || strings.Contains(string(r.Raw), pw) {
		t.Errorf("provisioning on target e2e-mysql-pw (a wrong password): %s", r)
	}

	// A site admin may give settings (for the tenant's team).
	adm := b.unique("admset")
	b.do(t, "POST", "/services", b.Admin, yamlBody(fmt.Sprintf("id: %s\nbroker: redis\nteam: %s\nsettings: {addr: \"127.0.0.1:6379\", meta_prefix: \"berth:e2e-broker\"}\n", adm, team))).want(t, http.StatusOK)
	admInst := newInstance(t, b, u, adm)
	b.do(t, "DELETE", "/services/instances/"+admInst, u, nil).want(t, http.StatusOK)
	// ... which the tenant, an owner, may not change into settings of theirs.
	b.do(t, "PUT", "/services", u, yamlBody(fmt.Sprintf("id: %s\nbroker: redis\nsettings: {addr: %q}\n", adm, probe.Addr().String()))).want(t, http.StatusForbidden)

	select {
	case <-touched:
		t.Errorf("a tenant's broker settings reached %s", probe.Addr())
	case <-time.After(200 * time.Millisecond):
	}
}
