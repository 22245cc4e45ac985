package server

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends/bolt"
	"github.com/berthpaas/berth/backends/nomad"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
)

// wantDown checks a 503 with Retry-After whose body names backend.
func wantDown(t *testing.T, s *Server, method, path, body string, hdr map[string]string, backend string) {
	t.Helper()
	w := serve(s, method, path, body, hdr)
	m := jsonBody(t, w)
	ra, _ := strconv.Atoi(w.Header().Get("Retry-After"))
	msg, _ := m["error"].(string)
	if w.Code != 503 || ra <= 0 || m["backend"] != backend || m["retry_after"] != float64(ra) || !strings.Contains(msg, "("+backend+") is unavailable") {
		t.Errorf("%s %s: %d Retry-After %q %s; want 503 naming %s", method, path, w.Code, w.Header().Get("Retry-After"), w.Body, backend)
	}
}

// TestEveryBackendNamedWhenDown: with Nomad unreachable, the requests that
// need Nomad itself (logs, removing an app) answer 503 with Retry-After
// naming nomad, not 500 or an anonymous 503; with the bolt store closed,
// and then the sealed secrets closed, requests answer 503 naming bolt,
// then sealed.
func TestEveryBackendNamedWhenDown(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	st, err := bolt.Open(filepath.Join(dir, "berth.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := sealed.Open(filepath.Join(dir, "secrets"), sealed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nomadAddr := ln.Addr().String()
	ln.Close() // Nomad is down: connections are refused
	sch, err := nomad.New(nomad.Config{Address: "http://" + nomadAddr, CallTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s, err := New(Deps{Config: cfg, Logger: hclog.New(&hclog.LoggerOptions{Output: &logs}),
		Store: st, StoreName: "bolt", Secrets: sec, SecretsName: "sealed", Scheduler: sch, SchedulerName: "nomad"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); sch.Close(); sec.Close(); st.Close() })
	ctx := context.Background()
	if _, err := state.Create(ctx, st, state.UserKey("dev@b.co"), &state.User{ID: state.NewID(), Email: "dev@b.co"}); err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.eng.IssueToken(ctx, "dev@b.co", engine.TokenUser, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	auth := map[string]string{"Authorization": "bearer " + tok}
	if w := serve(s, "POST", "/api/v1/repos/", `{"appname":"hello"}`, auth); w.Code != 201 {
		t.Fatalf("creating an app: %d %s", w.Code, w.Body)
	}

	wantDown(t, s, "GET", "/api/v1/apps/hello/logs/", "", auth, "nomad")
	wantDown(t, s, "DELETE", "/apps/hello", "", auth, "nomad")
	if w := serve(s, "GET", "/api/v1/repos/hello/", "", auth); w.Code != 200 {
		t.Errorf("the app whose removal Nomad did not answer: %d %s", w.Code, w.Body)
	}

	st.Close()
	wantDown(t, s, "GET", "/api/v1/repos/hello/", "", auth, "bolt")
	wantDown(t, s, "POST", "/api/v1/repos/", `{"appname":"other"}`, auth, "bolt")
	sec.Close()
	wantDown(t, s, "GET", "/api/v1/repos/hello/", "", auth, "sealed")
}
