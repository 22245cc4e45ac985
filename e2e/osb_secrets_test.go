package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOSBPasswordFromSecrets: Berth B's osb broker_target takes the
// password of Berth A's OSB endpoint from B's Secrets (secret_refs), put
// there by the operator with `berth admin put-secret` (sealed secrets, so
// with B stopped). Before the secret is there, provisioning through the
// target answers 503 naming the target and the setting; after it, B
// provisions on A through OSB. The password is in no log, store, answer
// or command output.
func TestOSBPasswordFromSecrets(t *testing.T) {
	if c, err := net.DialTimeout("tcp", "127.0.0.1:3306", 3*time.Second); err != nil {
		t.Fatalf("MariaDB is not reachable on 127.0.0.1:3306 (%v): start it (make services)", err)
	} else {
		c.Close()
	}
	pw := "osbsec-" + randHex(12)
	t.Setenv("BERTH_E2E_OSBSEC_PASSWORD", pw)
	a := startBerth(t, Options{ExtraHCL: "osb {\n  enabled = true\n  username = \"platform\"\n" +
		"  password_env = \"BERTH_E2E_OSBSEC_PASSWORD\"\n  team = \"osb-tenants\"\n}\n"})
	a.remember(pw, "the OSB password")
	a.do(t, "POST", "/teams", a.Admin, map[string]any{"name": "osb-tenants"}).want(t, http.StatusOK)
	a.do(t, "POST", "/services", a.Admin, yamlBody("id: osbsql\nbroker: mysql\ntarget: e2e-mysql\nteam: osb-tenants\n")).want(t, http.StatusOK)

	// B: no secret_env, the password is a secret_refs entry.
	b := startBerth(t, Options{ExtraHCL: fmt.Sprintf("broker_target \"e2e-osb-sec\" {\n  broker = \"osb\"\n"+
		"  settings = { url = %s, username = \"platform\" }\n  secret_refs = { password = \"brokers/berth-a\" }\n}\n",
		hclString(a.URL+"/osb"))})
	b.remember(pw, "the OSB password")
	u, team := serviceOwner(t, b, "osbsec")
	svc := b.unique("secosb")
	b.do(t, "POST", "/services", u, yamlBody(fmt.Sprintf("id: %s\nbroker: osb\nteam: %s\ntarget: e2e-osb-sec\n", svc, team))).want(t, http.StatusOK)

	// Not in B's Secrets yet: 503, naming the target and the setting.
	r := b.do(t, "POST", "/services/instances", u, map[string]any{"name": "e2e-" + randHex(4) + "-nosec", "service_name": svc}).want(t, http.StatusServiceUnavailable)
	if msg := r.String(); !strings.Contains(msg, "e2e-osb-sec") || !strings.Contains(msg, "secret_refs.password") {
		t.Errorf("provisioning before the secret is put: %s; want the target and secret_refs.password named", msg)
	}
	if onA := serviceNames(t, a, "/services/instances", a.Admin)["osbsql"]; len(onA) != 0 {
		t.Fatalf("A has instances %v before B had the password", onA)
	}

	// The operator puts the password into B's (sealed) Secrets: B stopped.
	b.stopForAdmin(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, berthBin, "admin", "put-secret", "-config", b.ConfigPath, "brokers/berth-a")
	cmd.Stdin = strings.NewReader(pw + "\n")
	out, err := cmd.CombinedOutput()
	cancel()
	if err != nil {
		t.Fatalf("berth admin put-secret: %v\n%s", err, out)
	}
	if strings.Contains(string(out), pw) {
		t.Errorf("berth admin put-secret printed the secret: %s", out)
	}
	// Berth's own paths are refused.
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	cmd = exec.CommandContext(ctx, berthBin, "admin", "put-secret", "-config", b.ConfigPath, "tokens/forged")
	cmd.Stdin = strings.NewReader("x-" + randHex(8))
	out, err = cmd.CombinedOutput()
	cancel()
	if err == nil || !strings.Contains(string(out), "tokens/") {
		t.Errorf("put-secret into tokens/: %v, %s; want it refused", err, out)
	}
	b.restartSame(t)

	inst := newInstance(t, b, u, svc)
	if st := b.do(t, "GET", "/services/instances/"+inst, u, nil).want(t, http.StatusOK).Str("state"); st != "ready" {
		t.Errorf("B's instance is %q, want ready", st)
	}
	onA := serviceNames(t, a, "/services/instances", a.Admin)["osbsql"]
	if len(onA) != 1 || !strings.HasPrefix(onA[0], "osb-") {
		t.Fatalf("A's instances of osbsql: %v; want the one B made through OSB", onA)
	}
	b.do(t, "DELETE", "/services/instances/"+inst, u, nil).want(t, http.StatusOK)
	if onA := serviceNames(t, a, "/services/instances", a.Admin)["osbsql"]; len(onA) != 0 {
		t.Errorf("A still has %v after B deprovisioned", onA)
	}
}

// stopForAdmin stops the server gracefully (SIGTERM) so that an offline
// admin command can open its data dir; restartSame starts it again.
func (b *Berth) stopForAdmin(t testing.TB) {
	t.Helper()
	if b.cmd == nil {
		t.Fatal("the server is not running")
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("berth did not stop within 20s of SIGTERM")
	}
	if b.exitErr != nil {
		t.Errorf("berth exited with %v after SIGTERM", b.exitErr)
	}
	killGroup(b.cmd)
}
