package devagent

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The agents are stopped before the check for leaked goroutines.
	goleak.VerifyTestMain(RunThenShutdown(m))
}

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body, code := httpGet(ctx, url, token)
	return code, string(body)
}

func TestConsulAgentServesKV(t *testing.T) {
	addr := Consul(t)
	if !strings.HasPrefix(addr, "http://") {
		t.Fatalf("Consul address %q is not an http URL", addr)
	}
	code, body := get(t, addr+"/v1/status/leader", "")
	if code != http.StatusOK || len(strings.Trim(body, "\"\n")) == 0 {
		t.Fatalf("status/leader = %d %q, want 200 and a leader", code, body)
	}
	// A second call in the same binary shares the agent.
	if again := Consul(t); again != addr {
		t.Fatalf("second Consul() = %q, want the same agent %q", again, addr)
	}
}

func TestVaultServerServesKV(t *testing.T) {
	addr, token := Vault(t)
	if token == "" {
		t.Fatal("Vault() returned an empty root token")
	}
	if code, body := get(t, addr+"/v1/secret/config", token); code != http.StatusOK {
		t.Fatalf("GET secret/config with the root token = %d %s, want 200 (KV v2 at secret/)", code, body)
	}
	if code, _ := get(t, addr+"/v1/secret/config", "not-the-token"); code != http.StatusForbidden {
		t.Fatalf("GET secret/config with a wrong token = %d, want 403", code)
	}
	if a2, t2 := Vault(t); a2 != addr || t2 != token {
		t.Fatal("second Vault() started another server")
	}
}

func TestMissingBinarySkipsWithInstructions(t *testing.T) {
	a := &agent{name: "consul"}
	t.Setenv("BERTH_CONSUL_BIN", t.TempDir()+"/no-such-consul")
	a.start(startConsul)
	if a.err != nil {
		t.Fatalf("missing binary gave an error, want a skip: %v", a.err)
	}
	for _, want := range []string{"no-such-consul", "bash tools/agents/build.sh consul", "BERTH_CONSUL_BIN"} {
		if !strings.Contains(a.skip, want) {
			t.Errorf("skip reason %q does not mention %q", a.skip, want)
		}
	}
}

func TestBinaryPath(t *testing.T) {
	t.Setenv("BERTH_VAULT_BIN", "")
	t.Setenv("BERTH_CACHE", "/x/cache")
	if got := BinaryPath("vault"); got != "/x/cache/bin/vault" {
		t.Errorf("BinaryPath(vault) = %q, want /x/cache/bin/vault", got)
	}
	t.Setenv("BERTH_VAULT_BIN", "/opt/vault")
	if got := BinaryPath("vault"); got != "/opt/vault" {
		t.Errorf("BinaryPath(vault) with BERTH_VAULT_BIN = %q, want /opt/vault", got)
	}
}

func TestFreePortsPairs(t *testing.T) {
	ports, err := freePorts(3, true)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || p >= 65535 || seen[p] {
			t.Fatalf("freePorts gave %v: bad or duplicate port", ports)
		}
		seen[p] = true
	}
}
