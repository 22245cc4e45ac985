package server

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends/bolt"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/config"
)

// newTestServer builds a Server on a bolt store and sealed secrets in a
// temporary directory (no scheduler, no brokers).
func newTestServer(t testing.TB, mutate func(*config.Config)) (*Server, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	if mutate != nil {
		mutate(cfg)
	}
	st, err := bolt.Open(filepath.Join(dir, "berth.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := sealed.Open(filepath.Join(dir, "secrets"), sealed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s, err := New(Deps{Config: cfg, Logger: hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Debug}),
		Store: st, StoreName: "bolt", Secrets: sec, SecretsName: "sealed"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); sec.Close(); st.Close() })
	return s, &logs
}

func serve(s *Server, method, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	return w
}

func jsonBody(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("body is not a JSON object: %q", w.Body.String())
	}
	return m
}

func TestTrailingSlashAnsweredDirectly(t *testing.T) {
	s, _ := newTestServer(t, nil)
	for _, p := range []string{"/healthz", "/healthz/", "/metrics", "/metrics/"} {
		w := serve(s, "GET", p, "", nil)
		if w.Code != 200 {
			t.Errorf("GET %s = %d, want 200 (no redirect)", p, w.Code)
		}
	}
	for _, p := range []string{"/api/v1/repos", "/api/v1/repos/", "/apps", "/apps/"} {
		w := serve(s, "GET", p, "", nil)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("GET %s = %d, want 401", p, w.Code)
		}
	}
}

func TestNotFoundAndMethodNotAllowedAreJSON(t *testing.T) {
	s, _ := newTestServer(t, nil)
	w := serve(s, "GET", "/no/such/thing", "", nil)
	if w.Code != 404 || jsonBody(t, w)["error"] == nil {
		t.Fatalf("404: %d %s", w.Code, w.Body)
	}
	w = serve(s, "PATCH", "/healthz", "", nil)
	if w.Code != 405 || jsonBody(t, w)["error"] == nil {
		t.Fatalf("405: %d %s", w.Code, w.Body)
	}
}

func TestBodyLimit(t *testing.T) {
	s, _ := newTestServer(t, func(c *config.Config) { c.MaxBodyBytes = 1024 })
	big := `{"email":"a@b.co","password":"` + strings.Repeat("x", 2048) + `"}`
	w := serve(s, "POST", "/users", big, nil)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("got %d %s, want 413", w.Code, w.Body)
	}
	if !strings.Contains(jsonBody(t, w)["error"].(string), "1024") {
		t.Errorf("error does not name the limit: %s", w.Body)
	}
}

func TestRequestIDs(t *testing.T) {
	s, logs := newTestServer(t, nil)
	w := serve(s, "GET", "/healthz", "", nil)
	id := w.Header().Get("X-Request-Id")
	if len(id) != 16 {
		t.Fatalf("no generated request id: %q", id)
	}
	w = serve(s, "GET", "/healthz", "", map[string]string{"X-Request-Id": "abc-123"})
	if got := w.Header().Get("X-Request-Id"); got != "abc-123" {
		t.Fatalf("request id not kept: %q", got)
	}
	if !strings.Contains(logs.String(), "request_id=abc-123") {
		t.Errorf("the request's log line lacks its id:\n%s", logs)
	}
	w = serve(s, "GET", "/healthz", "", map[string]string{"X-Request-Id": "bad id\nx"})
	if got := w.Header().Get("X-Request-Id"); got == "bad id\nx" || len(got) != 16 {
		t.Fatalf("unsafe request id echoed: %q", got)
	}
}

func TestUnencodableAnswerIs500WithBody(t *testing.T) {
	s, _ := newTestServer(t, nil)
	s.register([]route{{Method: "GET", Path: "/nan", Public: true, h: func(c *call) (any, error) { return map[string]any{"x": math.NaN()}, nil }}})
	w := serve(s, "GET", "/nan", "", nil)
	if w.Code != 500 {
		t.Fatalf("got %d %s, want 500", w.Code, w.Body)
	}
	if b := jsonBody(t, w); b["request_id"] == "" || b["error"] == "" {
		t.Errorf("the 500 should carry an error and the request id: %s", w.Body)
	}
}

func TestPanicIsOpaque500(t *testing.T) {
	s, logs := newTestServer(t, nil)
	s.register([]route{{Method: "GET", Path: "/boom", Public: true, h: func(c *call) (any, error) { panic("secret-internal-detail") }}})
	w := serve(s, "GET", "/boom", "", nil)
	if w.Code != 500 {
		t.Fatalf("got %d", w.Code)
	}
	if strings.Contains(w.Body.String(), "secret-internal-detail") {
		t.Fatalf("panic detail leaked: %s", w.Body)
	}
	if jsonBody(t, w)["request_id"] == "" || !strings.Contains(logs.String(), "secret-internal-detail") {
		t.Errorf("the panic should be logged with the request id")
	}
}

func TestMetricsCountRoutes(t *testing.T) {
	s, _ := newTestServer(t, nil)
	serve(s, "GET", "/healthz", "", nil)
	serve(s, "GET", "/apps", "", nil)
	w := serve(s, "GET", "/metrics", "", nil)
	b, _ := io.ReadAll(w.Body)
	for _, want := range []string{
		`berth_http_requests_total{code="200",method="GET",route="/healthz"} 1`,
		`berth_http_requests_total{code="401",method="GET",route="/apps"} 1`,
		`berth_http_request_duration_seconds_bucket`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestHealthzReportsBackends(t *testing.T) {
	s, _ := newTestServer(t, nil)
	w := serve(s, "GET", "/healthz", "", nil)
	m := jsonBody(t, w)
	be := m["backends"].(map[string]any)
	if m["status"] != "ok" || be["store"].(map[string]any)["backend"] != "bolt" || be["secrets"].(map[string]any)["backend"] != "sealed" {
		t.Fatalf("%s", w.Body)
	}
	s.eng.Store().Close()                                                // the store goes away
	s.health.now = func() time.Time { return time.Now().Add(healthTTL) } // past the cached answer
	w = serve(s, "GET", "/healthz", "", nil)
	m = jsonBody(t, w)
	st := m["backends"].(map[string]any)["store"].(map[string]any)
	if w.Code != 503 || m["status"] != "degraded" || st["ok"] != false || st["error"] == "" {
		t.Fatalf("a closed store should show in /healthz: %d %s", w.Code, w.Body)
	}
}

func TestStrictJSON(t *testing.T) {
	s, _ := newTestServer(t, nil)
	cases := map[string]string{
		"malformed":     `{"email":`,
		"wrong type":    `{"email":5,"password":"123456"}`,
		"unknown field": `{"email":"a@b.co","password":"123456","admin":true}`,
		"two values":    `{"email":"a@b.co","password":"123456"} {}`,
		"stray bracket": `{"email":"a@b.co","password":"123456"}]`,
		"stray brace":   `{"email":"a@b.co","password":"123456"} }`,
		"empty":         ``,
	}
	for name, body := range cases {
		w := serve(s, "POST", "/users", body, nil)
		if w.Code != 400 {
			t.Errorf("%s: got %d %s", name, w.Code, w.Body)
			continue
		}
		if msg, _ := jsonBody(t, w)["error"].(string); msg == "" {
			t.Errorf("%s: no error message", name)
		}
	}
	// (An unknown account is a 401, like a wrong password.)
	if w := serve(s, "POST", "/users/a@b.co/tokens", `{"password":"123456"}`, nil); w.Code != 401 {
		t.Fatalf("nothing should have been created: login got %d", w.Code)
	}
}
