package vault

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/devagent"
	"github.com/berthpaas/berth/backends/secretstest"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The agents are stopped before the check for leaked goroutines.
	goleak.VerifyTestMain(devagent.RunThenShutdown(m))
}

func uniquePrefix(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "berth-test/" + hex.EncodeToString(b)
}

// cleanup deletes everything under the backend's prefix.
func cleanup(t testing.TB, s *Secrets) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		paths, _ := s.List(ctx, "")
		for _, p := range paths {
			_ = s.Delete(ctx, p)
		}
		_ = s.Close()
	})
}

func newSecrets(t testing.TB) *Secrets {
	t.Helper()
	addr, token := devagent.Vault(t)
	s, err := New(Config{Address: addr, Token: token, Prefix: uniquePrefix(t)}, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	cleanup(t, s)
	return s
}

func TestConformance(t *testing.T) {
	secretstest.Run(t, func(t testing.TB) backends.Secrets { return newSecrets(t) })
}

func BenchmarkSecrets(b *testing.B) {
	secretstest.Bench(b, func(t testing.TB) backends.Secrets { return newSecrets(t) })
}

// rootClient talks to the dev server with the root token.
func rootClient(t *testing.T) *api.Client {
	t.Helper()
	addr, token := devagent.Vault(t)
	cfg := api.DefaultConfig()
	cfg.Address = addr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

func TestStoredInKVv2UnderPrefix(t *testing.T) {
	s := newSecrets(t)
	ctx := context.Background()
	if _, err := s.Put(ctx, "bindings/hello/mysql", map[string]string{"MYSQL_PASSWORD": "pw1"}); err != nil {
		t.Fatal(err)
	}
	sec, err := rootClient(t).KVv2("secret").Get(ctx, s.prefix+"bindings/hello/mysql")
	if err != nil {
		t.Fatal(err)
	}
	if sec.Data["MYSQL_PASSWORD"] != "pw1" || sec.VersionMetadata.Version != 1 {
		t.Fatalf("secret/%sbindings/hello/mysql = %v v%d, want the value put, v1", s.prefix, sec.Data, sec.VersionMetadata.Version)
	}
}

// AppRole: a role limited to the prefix logs in on first use and again when
// its token is revoked.
func TestAppRoleLoginAndRelogin(t *testing.T) {
	root := rootClient(t)
	ctx := context.Background()
	prefix := uniquePrefix(t)
	mount := "approle-" + prefix[len("berth-test/"):]
	if err := root.Sys().EnableAuthWithOptionsWithContext(ctx, mount, &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatalf("enable approle: %v", err)
	}
	t.Cleanup(func() { _ = root.Sys().DisableAuthWithContext(context.Background(), mount) })
	policy := `path "secret/data/` + prefix + `/*" { capabilities = ["create","read","update"] }
path "secret/metadata/` + prefix + `/*" { capabilities = ["list","read","delete"] }
path "secret/metadata/` + prefix + `/" { capabilities = ["list"] }`
	if err := root.Sys().PutPolicyWithContext(ctx, mount, policy); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().WriteWithContext(ctx, "auth/"+mount+"/role/berth", map[string]interface{}{
		"token_policies": mount, "token_ttl": "10m",
	}); err != nil {
		t.Fatal(err)
	}
	rid, err := root.Logical().ReadWithContext(ctx, "auth/"+mount+"/role/berth/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := root.Logical().WriteWithContext(ctx, "auth/"+mount+"/role/berth/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := devagent.Vault(t)
	s, err := New(Config{
		Address: addr, RoleID: rid.Data["role_id"].(string), SecretID: sid.Data["secret_id"].(string),
		AppRoleMount: mount, Prefix: prefix,
	}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	cleanup(t, s)
	if err := s.Health(ctx); err != nil {
		t.Fatalf("Health with AppRole: %v", err)
	}
	if _, err := s.Put(ctx, "a/b", map[string]string{"k": "v1"}); err != nil {
		t.Fatalf("Put with AppRole: %v", err)
	}
	// Revoke the token the backend holds: the next call logs in again.
	if err := root.Auth().Token().RevokeTreeWithContext(ctx, s.client.Token()); err != nil {
		t.Fatal(err)
	}
	sec, err := s.Get(ctx, "a/b", 0)
	if err != nil || sec.Data["k"] != "v1" {
		t.Fatalf("Get after the token was revoked = %+v, %v; want a re-login and v1", sec, err)
	}
	got, err := s.List(ctx, "")
	if err != nil || len(got) != 1 || got[0] != "a/b" {
		t.Fatalf("List = %v, %v", got, err)
	}
	// Outside the policy: refused, not retried forever.
	other, err := New(Config{Address: addr, RoleID: s.cfg.RoleID, SecretID: s.cfg.SecretID, AppRoleMount: mount, Prefix: "elsewhere"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var re *api.ResponseError
	if _, err := other.Put(ctx, "x", map[string]string{"k": "v"}); !errors.As(err, &re) || re.StatusCode != 403 {
		t.Fatalf("Put outside the policy: err = %v, want a 403", err)
	}
}

func TestBadSecretIDFails(t *testing.T) {
	addr, _ := devagent.Vault(t)
	s, err := New(Config{Address: addr, RoleID: "nope", SecretID: "nope"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Health(ctx); err == nil {
		t.Fatal("Health with an unknown AppRole succeeded")
	}
}

func TestHealthBadAddress(t *testing.T) {
	s, err := New(Config{Address: "http://127.0.0.1:1", Token: "x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Health(ctx); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("Health on a closed port: err = %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Health on a closed port took %v", d)
	}
}

func TestHealthBadToken(t *testing.T) {
	addr, _ := devagent.Vault(t)
	s, err := New(Config{Address: addr, Token: "not-a-token"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = s.Health(ctx)
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != 403 {
		t.Fatalf("Health with a wrong token: err = %v, want a 403", err)
	}
}

func TestNoCredentialsRefused(t *testing.T) {
	t.Setenv("VAULT_TOKEN", "")
	if _, err := New(Config{Address: "http://127.0.0.1:1"}, nil); err == nil {
		t.Fatal("New without a token or AppRole succeeded")
	}
}

func TestTLSConfigErrors(t *testing.T) {
	_, err := New(Config{Address: "https://127.0.0.1:8200", Token: "x", TLS: TLSConfig{CAFile: t.TempDir() + "/missing-ca.pem"}}, nil)
	if err == nil {
		t.Fatal("New with a missing CA file succeeded")
	}
}

// A plain-HTTP server spoken to over TLS fails Health, as unavailable.
func TestHealthTLSToPlainServer(t *testing.T) {
	addr, token := devagent.Vault(t)
	s, err := New(Config{Address: "https://" + addr[len("http://"):], Token: token, TLS: TLSConfig{InsecureSkipVerify: true}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.Health(ctx); !errors.Is(err, backends.ErrUnavailable) {
		t.Fatalf("Health over https to a plain-http server: err = %v, want ErrUnavailable", err)
	}
}
