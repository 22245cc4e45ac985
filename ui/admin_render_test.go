package ui

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/berthpaas/berth/api"
)

// TestAdminPageShowsAFailingBackend: GET /healthz answers 503 with the
// health when a backend fails (which a test server on bolt and sealed
// cannot make happen); the page shows which backend and why.
func TestAdminPageShowsAFailingBackend(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/users":
			_ = json.NewEncoder(w).Encode([]api.UserListItem{{Email: "root@example.com", IsAdmin: true, Teams: []string{}}})
		case "/healthz":
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(api.Health{Status: "degraded", UptimeSeconds: 42, Backends: map[string]api.BackendHealth{
				"store": {Backend: "consul", OK: false, Error: "connection refused"}, "secrets": {Backend: "vault", OK: true}}})
		default:
			http.NotFound(w, r)
		}
	})
	c, err := New(h)
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	c.adminPage(w, httptest.NewRequest("GET", "/ui/admin", nil), &session{token: "t", email: "root@example.com", admin: true})
	body := w.Body.String()
	if w.Code != 200 {
		t.Fatalf("admin page: %d\n%s", w.Code, body)
	}
	for _, want := range []string{`<span class="state-failed">degraded</span>, up 42 s`,
		`<th scope="row">store</th><td>consul</td><td class="state-failed">failing: connection refused</td>`,
		`<th scope="row">secrets</th><td>vault</td><td class="state-running">ok</td>`} {
		if !strings.Contains(body, want) {
			t.Errorf("admin page lacks %q\n%s", want, body)
		}
	}
}
