package engine

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends/bolt"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/osb"
)

// authOSB is an external OSB broker that answers only requests with its
// basic-auth credentials (401 otherwise) and provisions synchronously.
type authOSB struct {
	mu       sync.Mutex
	user, pw string
	denied   int
	provs    []string
}

func (f *authOSB) setPassword(pw string) { f.mu.Lock(); f.pw = pw; f.mu.Unlock() }

func (f *authOSB) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	f.mu.Lock()
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(f.user+":"+f.pw))
	ok := r.Header.Get("Authorization") == want
	if !ok {
		f.denied++
	}
	f.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"description":"bad credentials"}`)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/v2/catalog":
		fmt.Fprint(w, `{"services":[{"id":"s1","name":"ext","description":"d","bindable":true,"plans":[{"id":"p1","name":"p","description":"d"}]}]}`)
	case r.Method == http.MethodPut && strings.HasPrefix(p, "/v2/service_instances/") && !strings.Contains(p, "/service_bindings/"):
		f.mu.Lock()
		f.provs = append(f.provs, strings.TrimPrefix(p, "/v2/service_instances/"))
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{}`)
	case r.Method == http.MethodDelete:
		fmt.Fprint(w, `{}`)
	default:
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{}`)
	}
}

// loggedOSB is osbBrokers with the osb broker logging to log.
type loggedOSB struct{ log hclog.Logger }

func (loggedOSB) Check(name string) error { return osbBrokers{}.Check(name) }
func (l loggedOSB) Broker(ctx context.Context, _, _ string, settings map[string]string) (broker.Broker, error) {
	b := osb.New(l.log)
	return b, b.Configure(ctx, settings)
}
func (loggedOSB) Stop(string) {}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// An osb broker_target whose password is a secret_refs entry reads it from
// Berth's Secrets (sealed, in a temp dir) when the broker is configured:
// without the secret the provision fails with a 503 naming the target and
// the setting; with a wrong one the external broker refuses; with the
// right one it provisions; a rotated secret is used at the next configure,
// without a new config. No password is in an error or the log.
func TestBrokerTargetPasswordFromSecrets(t *testing.T) {
	const good, wrong, rotated = "osb-pw-correct-7f3a91", "osb-pw-wrong-0c8e22", "osb-pw-rotated-55d0b4"
	fake := &authOSB{user: "platform", pw: good}
	srv := httptest.NewServer(fake)
	defer srv.Close()

	dir := t.TempDir()
	logs := &lockedBuf{}
	log := hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace})
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Plugins.CallTimeoutDur = 5 * time.Second
	c, err := config.Parse([]byte(fmt.Sprintf(`broker_target "partner" {
  broker      = "osb"
  settings    = { url = %q, username = "platform" }
  secret_refs = { password = "brokers/partner" }
}
`, srv.URL)), "t.hcl")
	if err != nil {
		t.Fatal(err)
	}
	cfg.BrokerTargets = c.BrokerTargets
	st, err := bolt.Open(filepath.Join(dir, "berth.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sec, err := sealed.Open(filepath.Join(dir, "secrets"), sealed.Options{NoSync: true, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer sec.Close()
	e, err := New(Deps{Config: cfg, Store: st, StoreName: "bolt", Secrets: sec, SecretsName: "sealed", Brokers: loggedOSB{log: log}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	ctx := context.Background()
	admin := &Identity{Email: "admin@berth.local", Admin: true}
	if _, err := CreateUser(ctx, st, admin.Email, "admin-password-1", true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.CreateTeam(ctx, admin, "ops"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.CreateService(ctx, admin, strings.NewReader("id: ext\nbroker: osb\ntarget: partner\nteam: ops\n")); err != nil {
		t.Fatal(err)
	}
	var errs []string
	provision := func(name string) error {
		_, err := e.CreateInstance(ctx, admin, name, "ext")
		if err != nil {
			errs = append(errs, err.Error())
		}
		return err
	}

	// No secret yet: a clear 503, naming the target and the setting; the
	// external broker is not called.
	err = provision("no-secret")
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), `broker target "partner"`) || !strings.Contains(err.Error(), "secret_refs.password") {
		t.Fatalf("provision without the secret: %v; want KindUnavailable naming the target and secret_refs.password", err)
	}
	// A secret without the key: the same.
	if _, err := sec.Put(ctx, "brokers/partner", map[string]string{"username": "platform"}); err != nil {
		t.Fatal(err)
	}
	if err := provision("no-key"); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), `no key "password"`) {
		t.Fatalf("provision with the secret lacking the key: %v; want KindUnavailable saying the key is missing", err)
	}
	fake.mu.Lock()
	called := fake.denied + len(fake.provs)
	fake.mu.Unlock()
	if called != 0 {
		t.Errorf("the external broker was called %d times before Berth had the password", called)
	}

	// A wrong password: the external broker refuses.
	if _, err := PutOperatorSecret(ctx, sec, "brokers/partner", "password", wrong); err != nil {
		t.Fatal(err)
	}
	if err := provision("wrong-pw"); err == nil || !strings.Contains(err.Error(), "refused Berth's credentials") {
		t.Fatalf("provision with a wrong password: %v; want the broker's refusal", err)
	}

	// The right one: provisioned with basic auth.
	if _, err := PutOperatorSecret(ctx, sec, "brokers/partner", "password", good); err != nil {
		t.Fatal(err)
	}
	if err := provision("good-1"); err != nil {
		t.Fatalf("provision with the right password: %v", err)
	}

	// Rotation: the broker changes its password, the operator the secret;
	// the next configure uses it (same config).
	fake.setPassword(rotated)
	if err := provision("stale"); err == nil {
		t.Fatal("provision with the old password succeeded after the broker rotated it")
	}
	if _, err := PutOperatorSecret(ctx, sec, "brokers/partner", "password", rotated); err != nil {
		t.Fatal(err)
	}
	if err := provision("good-2"); err != nil {
		t.Fatalf("provision after the secret was rotated: %v", err)
	}
	fake.mu.Lock()
	provs := append([]string(nil), fake.provs...)
	fake.mu.Unlock()
	if strings.Join(provs, ",") != "good-1,good-2" {
		t.Errorf("the external broker provisioned %v; want good-1 and good-2", provs)
	}
	// The other key of the secret was kept by PutOperatorSecret.
	if s, err := sec.Get(ctx, "brokers/partner", 0); err != nil || s.Data["username"] != "platform" {
		t.Errorf("the secret's other key: %v, %v", s, err)
	}

	all := logs.String() + "\n" + strings.Join(errs, "\n")
	if len(errs) < 4 {
		t.Errorf("only %d errors were seen: %v", len(errs), errs)
	}
	for _, pw := range []string{good, wrong, rotated} {
		if strings.Contains(all, pw) {
			t.Errorf("a password (%s...) appears in the log or an error", pw[:9])
		}
	}
}

// Operators may not put secrets where Berth keeps its own.
func TestPutOperatorSecretPaths(t *testing.T) {
	dir := t.TempDir()
	sec, err := sealed.Open(dir, sealed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sec.Close()
	ctx := context.Background()
	for _, p := range []string{"tokens/abc", "apps/x/env", "services/s/settings", "user-tokens/a/b", "app-tokens/a/b", "resets/x", "berth/notify-hmac", "", "/a", "a/", "a//b", "a/../b", "a#b"} {
		if _, err := PutOperatorSecret(ctx, sec, p, "password", "v-1234567890"); !errors.Is(err, ErrInvalid) {
			t.Errorf("PutOperatorSecret(%q) = %v; want it refused as invalid", p, err)
		}
	}
	if _, err := PutOperatorSecret(ctx, sec, "brokers/x", "password", ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("an empty value: %v; want it refused", err)
	}
	v, err := PutOperatorSecret(ctx, sec, "brokers/x", "password", "v-1234567890")
	if err != nil || v != 1 {
		t.Fatalf("PutOperatorSecret(brokers/x) = %d, %v", v, err)
	}
}
