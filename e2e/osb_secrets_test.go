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

	"github.com/berthpaas/berth/backends/devagent"
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
	b.putSecret(t, "brokers/berth-a", pw)
	// Berth's own paths are refused.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, berthBin, "admin", "put-secret", "-config", b.ConfigPath, "tokens/forged")
	cmd.Stdin = strings.NewReader("x-" + randHex(8))
	out, err := cmd.CombinedOutput()
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

// putSecret runs `berth admin put-secret -config <b's config> path` with
// value on stdin; its output must not show the value.
func (b *Berth) putSecret(t testing.TB, path, value string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, berthBin, "admin", "put-secret", "-config", b.ConfigPath, path)
	cmd.Stdin = strings.NewReader(value + "\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("berth admin put-secret %s: %v\n%s", path, err, out)
	}
	if strings.Contains(string(out), value) {
		t.Errorf("berth admin put-secret printed the secret: %s", out)
	}
}

// TestOSBPasswordFromVault: as TestOSBPasswordFromSecrets with B's Secrets
// in Vault, where `berth admin put-secret` writes while B runs: a wrong
// password is refused by A; the right one, put while B keeps running,
// is used at the broker's next configure (no restart of B).
func TestOSBPasswordFromVault(t *testing.T) {
	if c, err := net.DialTimeout("tcp", "127.0.0.1:3306", 3*time.Second); err != nil {
		t.Fatalf("MariaDB is not reachable on 127.0.0.1:3306 (%v): start it (make services)", err)
	} else {
		c.Close()
	}
	vaddr, vtok := devagent.Vault(t)
	pw := "osbvault-" + randHex(12)
	wrong := "osbwrong-" + randHex(12)
	t.Setenv("BERTH_E2E_OSBVAULT_PASSWORD", pw)
	a := startBerth(t, Options{ExtraHCL: "osb {\n  enabled = true\n  username = \"platform\"\n" +
		"  password_env = \"BERTH_E2E_OSBVAULT_PASSWORD\"\n  team = \"osb-tenants\"\n}\n"})
	a.remember(pw, "the OSB password")
	a.remember(wrong, "a wrong OSB password")
	a.do(t, "POST", "/teams", a.Admin, map[string]any{"name": "osb-tenants"}).want(t, http.StatusOK)
	a.do(t, "POST", "/services", a.Admin, yamlBody("id: osbsql\nbroker: mysql\ntarget: e2e-mysql\nteam: osb-tenants\n")).want(t, http.StatusOK)

	b := startBerth(t, Options{Vault: vaddr, VaultToken: vtok, ExtraHCL: fmt.Sprintf("broker_target \"e2e-osb-vault\" {\n  broker = \"osb\"\n"+
		"  settings = { url = %s, username = \"platform\" }\n  secret_refs = { password = \"brokers/berth-a#pw\" }\n}\n",
		hclString(a.URL+"/osb"))})
	b.remember(pw, "the OSB password")
	b.remember(wrong, "a wrong OSB password")
	u, team := serviceOwner(t, b, "osbvault")
	svc := b.unique("vaultosb")
	b.do(t, "POST", "/services", u, yamlBody(fmt.Sprintf("id: %s\nbroker: osb\nteam: %s\ntarget: e2e-osb-vault\n", svc, team))).want(t, http.StatusOK)

	// A wrong password, put while B runs: A refuses it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, berthBin, "admin", "put-secret", "-config", b.ConfigPath, "-key", "pw", "brokers/berth-a")
	cmd.Stdin = strings.NewReader(wrong)
	out, err := cmd.CombinedOutput()
	cancel()
	if err != nil || strings.Contains(string(out), wrong) || !strings.Contains(string(out), "vault") {
		t.Fatalf("berth admin put-secret (vault, server running): %v\n%s", err, out)
	}
	r := b.do(t, "POST", "/services/instances", u, map[string]any{"name": "e2e-" + randHex(4) + "-wrong", "service_name": svc})
	if r.Code < 400 || !strings.Contains(r.String(), "refused Berth's credentials") {
		t.Errorf("provisioning with a wrong password: %s; want an error saying A refused the credentials", r)
	}
	if onA := serviceNames(t, a, "/services/instances", a.Admin)["osbsql"]; len(onA) != 0 {
		t.Fatalf("A has instances %v made with a wrong password", onA)
	}

	// The right one, still without a restart of B.
	ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
	cmd = exec.CommandContext(ctx, berthBin, "admin", "put-secret", "-config", b.ConfigPath, "-key", "pw", "brokers/berth-a")
	cmd.Stdin = strings.NewReader(pw)
	out, err = cmd.CombinedOutput()
	cancel()
	if err != nil || strings.Contains(string(out), pw) {
		t.Fatalf("berth admin put-secret (vault, server running): %v\n%s", err, out)
	}
	inst := newInstance(t, b, u, svc)
	if st := b.do(t, "GET", "/services/instances/"+inst, u, nil).want(t, http.StatusOK).Str("state"); st != "ready" {
		t.Errorf("B's instance is %q, want ready", st)
	}
	if onA := serviceNames(t, a, "/services/instances", a.Admin)["osbsql"]; len(onA) != 1 {
		t.Fatalf("A's instances of osbsql: %v; want the one B made through OSB", onA)
	}
	b.do(t, "DELETE", "/services/instances/"+inst, u, nil).want(t, http.StatusOK)
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
