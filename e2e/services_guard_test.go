package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
)

// TestServicesSettingsSecrets: passwords in a service's settings never come
// back in an answer, and are neither logged nor kept in the Store, even when
// the broker fails with them (wrong password, unreachable server). The
// harness searches the log and the store for every remembered value.
func TestServicesSettingsSecrets(t *testing.T) {
	b := startBerth(t, Options{ExtraHCL: "plugins {\n  call_timeout = \"3s\"\n}\n"})
	u, team := serviceOwner(t, b, "secretowner")
	for _, tc := range []struct{ broker, settings string }{
		// MariaDB's root has no password: a wrong one is refused.
		{"mysql", "settings: {host: 127.0.0.1, port: \"3306\", user: root, password: %q, meta_database: berth_broker_e2e}\n"},
		{"redis", "settings: {addr: \"127.0.0.1:1\", password: %q}\n"},
		{"mongodb", "settings: {uri: \"mongodb://admin:%s@127.0.0.1:1/?authSource=admin\"}\n"},
	} {
		pw := "sett-" + randHex(12)
		b.remember(pw, "the "+tc.broker+" service's admin password")
		svc := b.unique("sec" + tc.broker)
		def := fmt.Sprintf("id: %s\nbroker: %s\nteam: %s\n", svc, tc.broker, team) + fmt.Sprintf(tc.settings, pw)
		// Broker settings are the site admin's (tenants name targets).
		r := b.do(t, "POST", "/services", b.Admin, yamlBody(def)).want(t, http.StatusOK)
		if !strings.Contains(string(r.Raw), "setting_keys") || strings.Contains(string(r.Raw), pw) {
			t.Errorf("POST /services (%s) answer: %s", tc.broker, r)
		}
		inst := b.unique("sec")
		r, took := svcTimed(func() *Resp {
			return b.do(t, "POST", "/services/instances", u, map[string]any{"name": inst, "service_name": svc})
		})
		wantBrokerFailure(t, r, took, tc.broker+" with a wrong admin password")
		for _, path := range []string{"/services", "/services/" + svc, "/services/" + svc + "/doc", "/services/instances"} {
			if r := b.do(t, "GET", path, b.Admin, nil); strings.Contains(string(r.Raw), pw) {
				t.Errorf("GET %s shows the settings password: %s", path, r)
			}
		}
		if strings.Contains(string(r.Raw), pw) {
			t.Errorf("the failure answer shows the settings password: %s", r)
		}
		b.do(t, "GET", "/services/instances/"+inst, u, nil).want(t, http.StatusNotFound)
		b.do(t, "DELETE", "/services/"+svc, u, nil)
	}
}

// TestServicesBrokerSwapOrphans: PUT /services may not move a service with
// instances to another broker. If it could, the old broker's databases would
// be orphaned: removing an instance asks the new broker, which answers
// "gone", and Berth forgets an instance whose database still exists.
func TestServicesBrokerSwapOrphans(t *testing.T) {
	const addr = "127.0.0.1:3306"
	cfg := gomysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr, cfg.Timeout = "root", "tcp", addr, 3*time.Second
	conn, _ := gomysql.NewConnector(cfg)
	admin := sql.OpenDB(conn)
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		t.Skipf("MariaDB is unreachable at %s as root without password (%v): run /work/shared/services-up.sh", addr, err)
	}
	dir := flakyPluginDir(t)
	b := startBerth(t, Options{ExtraHCL: pluginsHCL(dir)})
	u, team := serviceOwner(t, b, "swapowner")
	svc := b.unique("swap")
	mysqlDef := fmt.Sprintf("id: %s\nbroker: mysql\nteam: %s\ntarget: e2e-mysql\n", svc, team)
	b.do(t, "POST", "/services", u, yamlBody(mysqlDef)).want(t, http.StatusOK)
	inst := "e2e-" + randHex(3) + "-swap"
	dbName := "berth_" + strings.ReplaceAll(inst, "-", "_")
	b.do(t, "POST", "/services/instances", u, map[string]any{"name": inst, "service_name": svc}).want(t, http.StatusOK)
	exists := func() bool {
		var n int
		if err := admin.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", dbName).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	if !exists() {
		t.Fatalf("database %s was not created", dbName)
	}
	t.Cleanup(func() {
		// Whatever happened, leave MariaDB clean: the mysql broker removes it.
		b.do(t, "PUT", "/services", u, yamlBody(mysqlDef))
		if b.do(t, "GET", "/services/instances/"+inst, u, nil).Code == http.StatusNotFound {
			b.do(t, "POST", "/services/instances", u, map[string]any{"name": inst, "service_name": svc})
		}
		b.do(t, "DELETE", "/services/instances/"+inst, u, nil)
	})

	flakyDef := fmt.Sprintf("id: %s\nbroker: flaky\n", svc)
	r := b.do(t, "PUT", "/services", u, yamlBody(flakyDef))
	if r.Code >= 400 && r.Code < 500 {
		checkErrorBody(t, r)
		return // refused: nothing can be orphaned
	}
	t.Errorf("PUT /services moved service %s, which has instance %s, from broker mysql to flaky: %s", svc, inst, r)
	b.do(t, "DELETE", "/services/instances/"+inst, u, nil)
	if b.do(t, "GET", "/services/instances/"+inst, u, nil).Code == http.StatusNotFound && exists() {
		t.Errorf("ORPHAN: instance %s is gone from Berth but its database %s still exists on MariaDB", inst, dbName)
	}
}
