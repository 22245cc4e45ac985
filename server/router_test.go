package server

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/berthpaas/berth/audit"
)

// login creates a user through the API and returns a token of theirs.
func login(t *testing.T, s *Server, email string) string {
	t.Helper()
	body := `{"email":"` + email + `","password":"123456-long-enough"}`
	if w := serve(s, "POST", "/users", body, nil); w.Code >= 300 {
		t.Fatalf("create user: %d %s", w.Code, w.Body)
	}
	w := serve(s, "POST", "/users/"+email+"/tokens", `{"password":"123456-long-enough"}`, nil)
	if w.Code != http.StatusOK {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Token == "" {
		t.Fatalf("login answer %s", w.Body)
	}
	return out.Token
}

func auditActions(t *testing.T, s *Server) []string {
	t.Helper()
	ctx := context.Background()
	if err := s.auditLog.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	evs, _, err := audit.List(ctx, s.eng.Store(), "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Action+" "+ev.Target)
	}
	sort.Strings(out)
	return out
}

// TestClashingRoutesKeepTheirActions: the static and parameter routes that
// share a place in the tree (PUT /services/:name/doc beside
// /services/:name/:team) are each served and audited as themselves. The
// old per-handler switch audited a doc update as service.grant.
func TestClashingRoutesKeepTheirActions(t *testing.T) {
	s, _ := newTestServer(t, nil)
	tok := login(t, s, "dev@b.co")
	h := map[string]string{"Authorization": "bearer " + tok}
	for _, rq := range []struct{ method, path, body string }{
		{"PUT", "/services/nosuch/doc", "the doc"},
		{"PUT", "/services/nosuch/someteam", ""},
		{"DELETE", "/services/instances/nosuch/", ""},
		{"DELETE", "/services/nosuch/someteam", ""},
	} {
		w := serve(s, rq.method, rq.path, rq.body, h)
		if w.Code != http.StatusNotFound && w.Code != http.StatusForbidden {
			t.Errorf("%s %s: %d %s, want a 404 or 403 for an unknown service", rq.method, rq.path, w.Code, w.Body)
		}
		if !strings.Contains(w.Body.String(), "nosuch") {
			t.Errorf("%s %s: the answer does not name what is missing: %s", rq.method, rq.path, w.Body)
		}
	}
	got := strings.Join(auditActions(t, s), "\n")
	for _, want := range []string{"service.doc.set nosuch", "service.grant nosuch/someteam", "service.instance.remove nosuch", "service.revoke nosuch/someteam"} {
		if !strings.Contains(got, want) {
			t.Errorf("audit log lacks %q; it has:\n%s", want, got)
		}
	}
}

// TestGenericPatterns: routes sharing a place with a parameter are
// registered under one generic pattern; others under their own.
func TestGenericPatterns(t *testing.T) {
	rts := []*route{
		{Method: "GET", Path: "/services"},
		{Method: "GET", Path: "/services/instances"},
		{Method: "GET", Path: "/services/:name"},
		{Method: "GET", Path: "/services/:name/doc"},
		{Method: "GET", Path: "/services/instances/:instance/status"},
		{Method: "GET", Path: "/teams/:team"},
		{Method: "GET", Path: "/teams/:team/:user"},
	}
	got := map[string][]string{}
	for p, group := range genericPatterns(rts) {
		for _, rt := range group {
			got[p] = append(got[p], rt.Path)
		}
		sort.Strings(got[p])
	}
	want := map[string][]string{
		"/services":                {"/services"},
		"/services/:p1":            {"/services/:name", "/services/instances"},
		"/services/:p1/:p2":        {"/services/:name/doc"},
		"/services/:p1/:p2/status": {"/services/instances/:instance/status"},
		"/teams/:team":             {"/teams/:team"},
		"/teams/:team/:user":       {"/teams/:team/:user"},
	}
	if len(got) != len(want) {
		t.Fatalf("patterns %v, want %v", got, want)
	}
	for p, w := range want {
		if strings.Join(got[p], ",") != strings.Join(w, ",") {
			t.Errorf("pattern %s has %v, want %v", p, got[p], w)
		}
	}
}

// TestEveryRouteAnswersWithTrailingSlash and without, and unknown
// neighbours of a generic pattern are JSON 404s.
func TestEveryRouteAnswersWithTrailingSlash(t *testing.T) {
	s, _ := newTestServer(t, nil)
	for _, rt := range s.routes() {
		if rt.Stream {
			continue
		}
		path := strings.NewReplacer(":app", "nosuchapp", ":resource", "nosuchapp", ":proc", "web", ":name", "svc",
			":instance", "inst", ":team", "team", ":user", "u@b.co", ":email", "u@b.co", ":username", "u@b.co",
			":type", "imagepush", ":healer", "h").Replace(rt.Path)
		for _, p := range []string{path, path + "/"} {
			w := serve(s, rt.Method, p, "", nil)
			if w.Code == http.StatusNotFound && strings.Contains(w.Body.String(), "no such endpoint") ||
				w.Code == http.StatusMethodNotAllowed || w.Code/100 == 3 {
				t.Errorf("%s %s: %d %s", rt.Method, p, w.Code, w.Body)
			}
		}
	}
	w := serve(s, "GET", "/services/instances/x/y/z", "", nil)
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "request_id") {
		t.Errorf("unknown neighbour of a generic pattern: %d %s", w.Code, w.Body)
	}
}
