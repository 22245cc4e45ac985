package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/crypto/ssh"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/backends/bolt"
	"github.com/berthpaas/berth/backends/local"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/server"
)

const (
	adminEmail = "admin@example.com"
	devEmail   = "dev@example.com"
	password   = "s3cret-pw"
)

// testServer is a real Berth server (bolt, sealed, and with withScheduler
// the local scheduler) on an httptest server.
type testServer struct {
	url string
}

func startServer(t *testing.T, withScheduler bool) *testServer {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Admins = []string{adminEmail}
	cfg.Reconcile.IntervalDur = time.Second
	st, err := bolt.Open(filepath.Join(dir, "berth.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sec, err := sealed.Open(filepath.Join(dir, "secrets"), sealed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sec.Close() })
	deps := server.Deps{Config: cfg, Logger: hclog.NewNullLogger(), Store: st, StoreName: "bolt", Secrets: sec, SecretsName: "sealed"}
	if withScheduler {
		sch, err := local.New(local.Config{DataDir: filepath.Join(dir, "local"), StopTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sch.Close() })
		deps.Scheduler = sch
	}
	srv, err := server.New(deps)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Close)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	if _, err := engine.CreateUser(context.Background(), st, adminEmail, password, true); err != nil {
		t.Fatal(err)
	}
	return &testServer{url: hs.URL}
}

// client returns an anonymous client of the server.
func (s *testServer) client(t *testing.T) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: s.url})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// login returns a client logged in as email.
func (s *testServer) login(t *testing.T, email string) *api.Client {
	t.Helper()
	c := s.client(t)
	l, _, err := c.Users().Login(email, password, nil)
	if err != nil {
		t.Fatalf("login %s: %v", email, err)
	}
	c.SetToken(l.Token)
	return c
}

// apiError asserts err is an *api.Error of the status and returns it.
func apiError(t *testing.T, err error, status int) *api.Error {
	t.Helper()
	e, ok := err.(*api.Error)
	if !ok {
		t.Fatalf("want an *api.Error of status %d, got %T %v", status, err, err)
	}
	if e.Status != status {
		t.Fatalf("want status %d, got %d: %v", status, e.Status, e)
	}
	if e.RequestID == "" || e.Message == "" {
		t.Fatalf("error without a request id or message: %+v", e)
	}
	return e
}

// strict GETs path as c and decodes the answer into v refusing unknown
// fields, then encodes v again and compares: the api type holds every field
// the server sends and encodes to the same JSON (omitted fields, nulls and
// time formats included), so the server can encode these types.
func strict(t *testing.T, c *api.Client, path string, v any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.Address()+path, nil)
	req.Header.Set("Authorization", "bearer "+c.Token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	raw := append([]byte(nil), buf.Bytes()...)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, buf.String())
	}
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("GET %s: the answer does not fit %T: %v\n%s", path, v, err, buf.String())
	}
	again, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var want, got any
	_ = json.Unmarshal(raw, &want)
	_ = json.Unmarshal(again, &got)
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("GET %s: %T does not encode to the server's JSON:\nserver: %s\ntype:   %s", path, v, raw, again)
	}
}

func sshKey(t *testing.T, comment string) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSpace(ssh.MarshalAuthorizedKey(pk))) + " " + comment
}
