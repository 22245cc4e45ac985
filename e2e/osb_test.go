package e2e

import (
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
)

// TestOSBBothWays: Berth A exposes its mysql service (granted to the team
// named in its osb block) as an Open Service Broker API at /osb/v2/; Berth
// B names A's endpoint as a broker_target of the built-in osb broker. A
// tenant of B provisions and binds through B's API: osb (B) -> /osb/v2 (A)
// -> mysql (A) -> MariaDB. The instance is A's, in the osb team; the
// credentials work; deprovisioning on B removes it on A.
func TestOSBBothWays(t *testing.T) {
	if c, err := net.DialTimeout("tcp", "127.0.0.1:3306", 3*time.Second); err != nil {
		t.Fatalf("MariaDB is not reachable on 127.0.0.1:3306 (%v): start it (make services)", err)
	} else {
		c.Close()
	}
	pw := "osb-" + randHex(12)
	t.Setenv("BERTH_E2E_OSB_PASSWORD", pw)
	a := startBerth(t, Options{ExtraHCL: "osb {\n  enabled = true\n  username = \"platform\"\n" +
		"  password_env = \"BERTH_E2E_OSB_PASSWORD\"\n  team = \"osb-tenants\"\n}\n"})
	a.remember(pw, "the OSB password")
	a.do(t, "POST", "/teams", a.Admin, map[string]any{"name": "osb-tenants"}).want(t, http.StatusOK)
	a.do(t, "POST", "/services", a.Admin, yamlBody("id: osbsql\nbroker: mysql\ntarget: e2e-mysql\nteam: osb-tenants\n")).want(t, http.StatusOK)

	// A's endpoint, as a platform sees it.
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("platform:"+pw))
	osbHdr := map[string]string{"Authorization": basic, "X-Broker-API-Version": "2.17"}
	// (OSB error bodies are {"error", "description"}, not Berth's: the
	// codes are checked here, not with want.)
	if r := a.doHeaders(t, "GET", "/osb/v2/catalog", nil, nil, map[string]string{"X-Broker-API-Version": "2.17"}); r.Code != http.StatusUnauthorized || r.Str("description") == "" {
		t.Errorf("without credentials: %s; want 401 with a description", r)
	}
	if r := a.doHeaders(t, "GET", "/osb/v2/catalog", nil, nil, map[string]string{"Authorization": basic}); r.Code != http.StatusPreconditionFailed || r.Str("description") == "" {
		t.Errorf("without X-Broker-API-Version: %s; want 412 with a description", r)
	}
	cat := a.doHeaders(t, "GET", "/osb/v2/catalog", nil, nil, osbHdr).want(t, http.StatusOK)
	svcs, _ := cat.Obj()["services"].([]any)
	if len(svcs) != 1 || !strings.Contains(cat.String(), `"osbsql"`) {
		t.Fatalf("A's catalog: %s; want the osb team's one service", cat)
	}

	// B uses A through the osb broker.
	b := startBerth(t, Options{ExtraHCL: fmt.Sprintf("broker_target \"e2e-osb\" {\n  broker = \"osb\"\n"+
		"  settings = { url = %s, username = \"platform\" }\n  secret_env = { password = \"BERTH_E2E_OSB_PASSWORD\" }\n}\n",
		hclString(a.URL+"/osb"))})
	b.remember(pw, "the OSB password")
	u, team := serviceOwner(t, b, "osbuser")
	svc := b.unique("viaosb")
	b.do(t, "POST", "/services", u, yamlBody(fmt.Sprintf("id: %s\nbroker: osb\nteam: %s\ntarget: e2e-osb\n", svc, team))).want(t, http.StatusOK)
	inst := newInstance(t, b, u, svc)
	if st := b.do(t, "GET", "/services/instances/"+inst, u, nil).want(t, http.StatusOK).Str("state"); st != "ready" {
		t.Errorf("B's instance is %q, want ready", st)
	}
	onA := serviceNames(t, a, "/services/instances", a.Admin)["osbsql"]
	if len(onA) != 1 || !strings.HasPrefix(onA[0], "osb-") {
		t.Fatalf("A's instances of osbsql: %v; want the one made through OSB", onA)
	}
	app := b.unique("osbapp")
	b.createApp(t, u, app)
	creds := b.do(t, "PUT", "/services/instances/"+inst+"/"+app, u, nil).want(t, http.StatusOK)
	b.remember(creds.Str("MYSQL_PASSWORD"), "the binding's MySQL password")
	cfg := gomysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = creds.Str("MYSQL_USER"), creds.Str("MYSQL_PASSWORD"), creds.Str("MYSQL_DATABASE")
	cfg.Net, cfg.Addr, cfg.Timeout = "tcp", net.JoinHostPort(creds.Str("MYSQL_HOST"), creds.Str("MYSQL_PORT")), 3*time.Second
	conn, err := gomysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS e2e_osb (v TEXT)"); err != nil {
		t.Fatalf("the credentials B got through OSB do not work on MariaDB: %v", err)
	}
	b.do(t, "DELETE", "/services/instances/"+inst+"/"+app, u, nil).want(t, http.StatusOK)
	b.do(t, "DELETE", "/services/instances/"+inst, u, nil).want(t, http.StatusOK)
	if onA := serviceNames(t, a, "/services/instances", a.Admin)["osbsql"]; len(onA) != 0 {
		t.Errorf("A still has %v after B deprovisioned", onA)
	}
}
