package ui_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends/bolt"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/server"
	"github.com/berthpaas/berth/ui"
)

const password = "123456-long-enough"

// newServer is a real Berth server (bolt and sealed in a temp dir).
func newServer(t *testing.T) *server.Server {
	t.Helper()
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
	s, err := server.New(server.Deps{Config: cfg, Logger: hclog.NewNullLogger(), Store: st, StoreName: "bolt", Secrets: sec, SecretsName: "sealed"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); sec.Close(); st.Close() })
	return s
}

const host = "berth.example"

func do(t *testing.T, s *server.Server, method, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, "http://"+host+path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	return w
}

// apiCall is a call of the JSON API with a bearer token.
func apiCall(t *testing.T, s *server.Server, method, path, token, body string) map[string]any {
	t.Helper()
	hdr := map[string]string{"Content-Type": "application/json"}
	if token != "" {
		hdr["Authorization"] = "bearer " + token
	}
	w := do(t, s, method, path, body, hdr)
	if w.Code >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body)
	}
	var m map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &m)
	return m
}

// userWithApp creates a user, their team and an app of that team, and
// returns the user's API token.
func userWithApp(t *testing.T, s *server.Server, email, team, app string) string {
	t.Helper()
	apiCall(t, s, "POST", "/users", "", `{"email":"`+email+`","password":"`+password+`"}`)
	tok := apiCall(t, s, "POST", "/users/"+email+"/tokens", "", `{"password":"`+password+`"}`)["token"].(string)
	apiCall(t, s, "POST", "/teams", tok, `{"name":"`+team+`"}`)
	apiCall(t, s, "POST", "/apps", tok, `{"name":"`+app+`","teamOwner":"`+team+`"}`)
	return tok
}

// uiLogin logs in through the login form and returns the session cookie.
func uiLogin(t *testing.T, s *server.Server, email string) *http.Cookie {
	t.Helper()
	form := url.Values{"email": {email}, "password": {password}}
	w := do(t, s, "POST", "/ui/login", form.Encode(), map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://" + host,
	})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/ui/apps" {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	for _, c := range w.Result().Cookies() {
		if c.Name == ui.CookieName {
			return c
		}
	}
	t.Fatalf("login set no %s cookie: %v", ui.CookieName, w.Header()["Set-Cookie"])
	return nil
}

func page(t *testing.T, s *server.Server, path string, ck *http.Cookie) (int, string) {
	t.Helper()
	hdr := map[string]string{}
	if ck != nil {
		hdr["Cookie"] = ck.Name + "=" + ck.Value
	}
	w := do(t, s, "GET", path, "", hdr)
	b, _ := io.ReadAll(w.Body)
	return w.Code, string(b)
}

// csrfOf is the CSRF token in a page's logout form.
func csrfOf(t *testing.T, html string) string {
	t.Helper()
	const mark = `name="csrf" value="`
	i := strings.Index(html, mark)
	if i < 0 {
		t.Fatalf("no CSRF field in page:\n%s", html)
	}
	rest := html[i+len(mark):]
	return rest[:strings.IndexByte(rest, '"')]
}

func TestLoginSetsStrictHttpOnlyCookie(t *testing.T) {
	s := newServer(t)
	userWithApp(t, s, "ann@example.com", "alpha", "alpha-web")
	ck := uiLogin(t, s, "ann@example.com")
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/ui" || ck.Value == "" {
		t.Fatalf("cookie = %+v, want HttpOnly, SameSite=Strict, Path=/ui", ck)
	}
	// The cookie is the session: the apps page opens with it, not without.
	if code, body := page(t, s, "/ui/apps", ck); code != 200 || !strings.Contains(body, "alpha-web") {
		t.Fatalf("apps page with the cookie: %d\n%s", code, body)
	}
	w := do(t, s, "GET", "/ui/apps", "", nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/ui/login" {
		t.Fatalf("apps page without a cookie: %d %s", w.Code, w.Header().Get("Location"))
	}
	// The cookie is not accepted by the API itself.
	w = do(t, s, "GET", "/apps", "", map[string]string{"Cookie": ck.Name + "=" + ck.Value})
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("API with the UI cookie = %d, want 401", w.Code)
	}
}

func TestWrongPasswordIsRefused(t *testing.T) {
	s := newServer(t)
	userWithApp(t, s, "ann@example.com", "alpha", "alpha-web")
	form := url.Values{"email": {"ann@example.com"}, "password": {"wrong-password-123"}}
	w := do(t, s, "POST", "/ui/login", form.Encode(), map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://" + host,
	})
	if w.Code != http.StatusUnauthorized || len(w.Result().Cookies()) != 0 || !strings.Contains(w.Body.String(), "Wrong email or password") {
		t.Fatalf("wrong password: %d cookies %v\n%s", w.Code, w.Result().Cookies(), w.Body)
	}
}

func TestPostWithoutCSRFTokenOrFromElsewhereIsRefused(t *testing.T) {
	s := newServer(t)
	userWithApp(t, s, "ann@example.com", "alpha", "alpha-web")
	ck := uiLogin(t, s, "ann@example.com")
	cookie := ck.Name + "=" + ck.Value
	form := "Content-Type"
	for name, hdr := range map[string]map[string]string{
		"no token":       {form: "application/x-www-form-urlencoded", "Cookie": cookie, "Origin": "http://" + host},
		"other origin":   {form: "application/x-www-form-urlencoded", "Cookie": cookie, "Origin": "http://evil.example"},
		"no origin":      {form: "application/x-www-form-urlencoded", "Cookie": cookie},
		"other referrer": {form: "application/x-www-form-urlencoded", "Cookie": cookie, "Referer": "http://evil.example/x"},
	} {
		body := ""
		if name != "no token" {
			_, html := page(t, s, "/ui/apps", ck)
			body = url.Values{"csrf": {csrfOf(t, html)}}.Encode()
		} else {
			body = url.Values{"csrf": {"forged"}}.Encode()
		}
		w := do(t, s, "POST", "/ui/logout", body, hdr)
		if w.Code != http.StatusForbidden {
			t.Errorf("%s: logout = %d, want 403", name, w.Code)
		}
	}
	// The session survived every refused logout.
	if code, _ := page(t, s, "/ui/apps", ck); code != 200 {
		t.Fatalf("after refused logouts the apps page = %d", code)
	}
}

func TestAppsListShowsOnlyTheUsersApps(t *testing.T) {
	s := newServer(t)
	userWithApp(t, s, "ann@example.com", "alpha", "alpha-web")
	bob := userWithApp(t, s, "bob@example.com", "beta", "beta-secret-app")
	apiCall(t, s, "POST", "/apps", bob, `{"name":"beta-other","teamOwner":"beta"}`)
	ck := uiLogin(t, s, "ann@example.com")
	code, body := page(t, s, "/ui/apps", ck)
	if code != 200 || !strings.Contains(body, "alpha-web") {
		t.Fatalf("apps page: %d\n%s", code, body)
	}
	if strings.Contains(body, "beta-secret-app") || strings.Contains(body, "beta-other") {
		t.Fatalf("another team's app appears in ann's list:\n%s", body)
	}
	// Nor can she open it by name, nor filter her way to it.
	if code, body := page(t, s, "/ui/apps/beta-secret-app", ck); code != 404 || strings.Contains(body, "<h1>beta-secret-app") {
		t.Fatalf("another team's app page: %d\n%s", code, body)
	}
	if _, body := page(t, s, "/ui/apps?team=beta", ck); strings.Contains(body, "beta-secret-app") {
		t.Fatalf("filtering by another team shows its app:\n%s", body)
	}
	// Bob sees his two apps; filtering by a team he is not in shows none.
	bck := uiLogin(t, s, "bob@example.com")
	_, body = page(t, s, "/ui/apps?team=beta", bck)
	if !strings.Contains(body, "beta-secret-app") || !strings.Contains(body, "beta-other") || strings.Contains(body, "alpha-web") {
		t.Fatalf("bob's list filtered by beta:\n%s", body)
	}
	if _, body = page(t, s, "/ui/apps?state=running", bck); strings.Contains(body, "beta-other") {
		t.Fatalf("state=running shows an undeployed app:\n%s", body)
	}
}

func TestAppPageMasksPrivateEnv(t *testing.T) {
	s := newServer(t)
	tok := userWithApp(t, s, "ann@example.com", "alpha", "alpha-web")
	apiCall(t, s, "POST", "/apps/alpha-web/env", tok, `{"envs":[{"name":"DB_PASSWORD","value":"hunter2-very-secret"}],"private":true,"norestart":true}`)
	apiCall(t, s, "POST", "/apps/alpha-web/env", tok, `{"envs":[{"name":"LOG_LEVEL","value":"debug-visible"}],"norestart":true}`)
	ck := uiLogin(t, s, "ann@example.com")
	code, body := page(t, s, "/ui/apps/alpha-web", ck)
	if code != 200 {
		t.Fatalf("app page: %d\n%s", code, body)
	}
	if strings.Contains(body, "hunter2") {
		t.Fatalf("the private value is on the page:\n%s", body)
	}
	for _, want := range []string{"<h1>alpha-web</h1>", "DB_PASSWORD", "private (hidden)", "LOG_LEVEL", "debug-visible"} {
		if !strings.Contains(body, want) {
			t.Errorf("app page lacks %q", want)
		}
	}
}

func TestLogoutRevokesTheToken(t *testing.T) {
	s := newServer(t)
	userWithApp(t, s, "ann@example.com", "alpha", "alpha-web")
	ck := uiLogin(t, s, "ann@example.com")
	_, html := page(t, s, "/ui/apps", ck)
	w := do(t, s, "POST", "/ui/logout", url.Values{"csrf": {csrfOf(t, html)}}.Encode(), map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "Cookie": ck.Name + "=" + ck.Value, "Origin": "http://" + host,
	})
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/ui/login" {
		t.Fatalf("logout: %d %s", w.Code, w.Body)
	}
	cleared := false
	for _, c := range w.Result().Cookies() {
		cleared = cleared || (c.Name == ui.CookieName && c.MaxAge < 0)
	}
	if !cleared {
		t.Fatalf("logout did not clear the cookie: %v", w.Header()["Set-Cookie"])
	}
	// The token itself is dead: for the API and for the console.
	w = do(t, s, "GET", "/users/info", "", map[string]string{"Authorization": "bearer " + ck.Value})
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("API with the logged-out token = %d, want 401", w.Code)
	}
	if w := do(t, s, "GET", "/ui/apps", "", map[string]string{"Cookie": ck.Name + "=" + ck.Value}); w.Code != http.StatusSeeOther {
		t.Fatalf("console with the logged-out cookie = %d, want a redirect to log in", w.Code)
	}
}

func TestRootRedirectsAndOtherPathsStayJSON404(t *testing.T) {
	s := newServer(t)
	w := do(t, s, "GET", "/", "", nil)
	if w.Code != http.StatusFound || w.Header().Get("Location") != "/ui/" {
		t.Fatalf("GET / = %d %s", w.Code, w.Header().Get("Location"))
	}
	for _, p := range []string{"/nope", "/uix", "/api/v1/nope"} {
		w := do(t, s, "GET", p, "", nil)
		var m map[string]any
		if w.Code != 404 || json.Unmarshal(w.Body.Bytes(), &m) != nil {
			t.Errorf("GET %s = %d %q, want a JSON 404", p, w.Code, w.Body)
		}
	}
	code, body := page(t, s, "/ui/login", nil)
	if code != 200 || !strings.Contains(body, `<label for="email">`) || !strings.Contains(body, `<label for="password">`) {
		t.Fatalf("login page: %d\n%s", code, body)
	}
	if code, body := page(t, s, "/ui/static/style.css", nil); code != 200 || !strings.Contains(body, "@media") {
		t.Fatalf("style.css: %d", code)
	}
}

func TestStreamsAreProxiedWithTheSession(t *testing.T) {
	s := newServer(t)
	userWithApp(t, s, "ann@example.com", "alpha", "alpha-web")
	userWithApp(t, s, "bob@example.com", "beta", "beta-web")
	ck := uiLogin(t, s, "ann@example.com")
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	get := func(path string, withCookie bool) *http.Response {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		t.Cleanup(cancel)
		req, _ := http.NewRequestWithContext(ctx, "GET", hs.URL+path, nil)
		if withCookie {
			req.AddCookie(ck)
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	// Ann's own app: the deploy events stream opens.
	resp := get("/ui/apps/alpha-web/events", true)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("events of her app: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	if !strings.Contains(line, "events of app alpha-web") {
		t.Fatalf("first line of the events stream = %q", line)
	}
	// Another team's app: refused as by the API; no cookie: sent to log in.
	if resp := get("/ui/apps/beta-web/logs?follow=true", true); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("logs of another team's app: %d", resp.StatusCode)
	}
	if resp := get("/ui/apps/alpha-web/logs?follow=true", false); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logs without a session: %d", resp.StatusCode)
	}
}
