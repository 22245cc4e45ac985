package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends/bolt"
	"github.com/berthpaas/berth/backends/local"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/server"
)

// TestClientCommands drives the client CLI against a real server (bolt,
// sealed, local scheduler) running in this process.
func TestClientCommands(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Reconcile.IntervalDur = time.Second
	st, err := bolt.Open(filepath.Join(dir, "berth.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sec, err := sealed.Open(filepath.Join(dir, "secrets"), sealed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer sec.Close()
	sch, err := local.New(local.Config{DataDir: filepath.Join(dir, "local"), StopTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sch.Close()
	srv, err := server.New(server.Deps{Config: cfg, Logger: hclog.NewNullLogger(), Store: st, Secrets: sec, Scheduler: sch})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	if _, err := server.CreateUser(context.Background(), st, "dev@example.com", "s3cret-pw", false); err != nil {
		t.Fatal(err)
	}

	t.Setenv("BERTH_CREDENTIALS", filepath.Join(dir, "creds"))
	t.Setenv("BERTH_ADDR", hs.URL)
	run := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := runClient(args[0], args[1:], strings.NewReader(""), &out); err != nil {
			t.Fatalf("berth %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String()
	}

	t.Setenv("BERTH_PASSWORD", "wrong-password")
	var out bytes.Buffer
	if err := runClient("login", []string{"dev@example.com"}, strings.NewReader(""), &out); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("login with a wrong password: %v", err)
	}
	t.Setenv("BERTH_PASSWORD", "s3cret-pw")
	if got := run("login", "dev@example.com"); !strings.Contains(got, "logged in") {
		t.Fatalf("login: %q", got)
	}
	if fi, err := os.Stat(filepath.Join(dir, "creds")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", fi, err)
	}
	if got := run("whoami"); !strings.Contains(got, "dev@example.com") {
		t.Fatalf("whoami: %q", got)
	}
	run("app-create", "hello")
	spec := filepath.Join(dir, "lain.yaml")
	if err := os.WriteFile(spec, []byte("appname: hello\nweb:\n  cmd: python3 -m http.server $PORT --bind 127.0.0.1\n  memory: 64m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := run("push", "hello", "1700000000-abc", spec); !strings.Contains(got, "pushed hello 1700000000-abc") {
		t.Fatalf("push: %q", got)
	}
	if got := run("deploy", "hello"); !strings.Contains(got, "running") {
		t.Fatalf("deploy: %q", got)
	}
	if got := run("scale", "hello", "web", "2"); !strings.Contains(got, "running") {
		t.Fatalf("scale: %q", got)
	}
	if got := run("status", "hello"); strings.Count(got, "hello.web.") != 2 || !strings.Contains(got, "running") {
		t.Fatalf("status after scale 2: %q", got)
	}
	// env-set redeploys the app and waits until it settles.
	if got := run("env-set", "hello", "-private", "TOKEN=abc123"); !strings.Contains(got, "running") {
		t.Fatalf("env-set did not wait for the redeploy: %q", got)
	}
	if got := run("status", "hello"); !strings.Contains(got, ": running\n") || strings.Contains(got, "<nil>") {
		t.Fatalf("status after env-set: %q", got)
	}
	if got := run("env", "hello"); !strings.Contains(got, "TOKEN=*** (private)") || strings.Contains(got, "abc123") {
		t.Fatalf("env should mask private values: %q", got)
	}
	if got := run("apps"); !strings.Contains(got, "hello") || !strings.Contains(got, "2 units") {
		t.Fatalf("apps: %q", got)
	}
	// undeploy waits until nothing runs.
	if got := run("undeploy", "hello"); !strings.Contains(got, "undeployed") {
		t.Fatalf("undeploy: %q", got)
	}
	if err := runClient("status", []string{"hello"}, strings.NewReader(""), &out); err == nil || !strings.Contains(err.Error(), "not deployed") {
		t.Fatalf("status right after undeploy: %v", err)
	}
	run("logout")
	if err := runClient("whoami", nil, strings.NewReader(""), &out); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("after logout: %v", err)
	}
}
