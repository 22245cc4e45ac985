package ui_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends/bolt"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/plugins"
	"github.com/berthpaas/berth/server"
	"github.com/berthpaas/berth/ui"
)

const adminEmail = "root@example.com"

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newFullServer is a real Berth server with a site admin (adminEmail),
// the built-in broker plugins (this test binary re-exec'd, see TestMain)
// and a broker target "local-redis" on the Redis at 127.0.0.1:6379, whose
// broker keeps its state under a prefix of these tests' own (a test
// removes the instances it makes, and so their records).
func newFullServer(t *testing.T) *server.Server {
	t.Helper()
	s, _ := newFullServerLogs(t)
	return s
}

// lockedBuffer is a log sink the server's goroutines may write while a
// test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newFullServerLogs is newFullServer with its logs (debug level) kept.
func newFullServerLogs(t *testing.T) (*server.Server, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug})
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Admins = []string{adminEmail}
	redis := map[string]string{"addr": "127.0.0.1:6379", "meta_prefix": "berth:ui-test"}
	cfg.BrokerTargets = append(cfg.BrokerTargets, &config.BrokerTarget{Name: "local-redis", Broker: "redis", Settings: redis, Resolved: redis})
	st, err := bolt.Open(filepath.Join(dir, "berth.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := sealed.Open(filepath.Join(dir, "secrets"), sealed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	brokers := plugins.NewManager(plugins.ManagerConfig{Logger: hclog.NewNullLogger(), StateDir: filepath.Join(dir, "plugins")})
	s, err := server.New(server.Deps{Config: cfg, Logger: logger, Store: st, StoreName: "bolt", Secrets: sec, SecretsName: "sealed", Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); brokers.Close(); sec.Close(); st.Close() })
	if _, err := engine.CreateUser(context.Background(), st, adminEmail, password, true); err != nil {
		t.Fatal(err)
	}
	return s, logs
}

// login is the API token of a user.
func login(t *testing.T, s *server.Server, email string) string {
	t.Helper()
	return apiCall(t, s, "POST", "/users/"+email+"/tokens", "", `{"password":"`+password+`"}`)["token"].(string)
}

// post sends a form of the console from this site, with the session.
func post(t *testing.T, s *server.Server, path string, ck *http.Cookie, form url.Values) *httptest.ResponseRecorder {
	t.Helper()
	return do(t, s, "POST", path, form.Encode(), map[string]string{
		"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://" + host, "Cookie": ck.Name + "=" + ck.Value,
	})
}

// withCSRF is form plus the session's CSRF token, read from one of its pages.
func withCSRF(t *testing.T, s *server.Server, ck *http.Cookie, form url.Values) url.Values {
	t.Helper()
	_, body := page(t, s, "/ui/apps", ck)
	form.Set("csrf", csrfOf(t, body))
	return form
}

// doJSON decodes the 200 answer of a GET of the API with a token.
func doJSON(t *testing.T, s *server.Server, path, token string, out any) {
	t.Helper()
	w := do(t, s, "GET", path, "", map[string]string{"Authorization": "bearer " + token})
	if w.Code != 200 {
		t.Fatalf("GET %s: %d %s", path, w.Code, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// status is the code of an API call with a token (no failure on errors).
func status(t *testing.T, s *server.Server, method, path, token string) int {
	t.Helper()
	return do(t, s, method, path, "", map[string]string{"Authorization": "bearer " + token}).Code
}

func TestNavLinksAndAdminOnlyForAdmins(t *testing.T) {
	s := newServer(t)
	userWithApp(t, s, "ann@example.com", "alpha", "alpha-web")
	ck := uiLogin(t, s, "ann@example.com")
	_, body := page(t, s, "/ui/apps", ck)
	for _, want := range []string{`href="/ui/apps"`, `href="/ui/services"`, `href="/ui/teams"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the nav lacks %s", want)
		}
	}
	if strings.Contains(body, `href="/ui/admin"`) {
		t.Errorf("a user who is not an admin sees the Admin link:\n%s", body)
	}
}

func TestAdminPagesAreTheAdminsOnly(t *testing.T) {
	s := newFullServer(t)
	annTok := userWithApp(t, s, "ann@example.com", "alpha", "alpha-web")
	userWithApp(t, s, "bob@example.com", "beta", "beta-web")
	ann := uiLogin(t, s, "ann@example.com")

	// Ann is refused every admin page, with the API's refusal; she never
	// sees another user.
	for _, p := range []string{"/ui/admin", "/ui/admin/events"} {
		code, body := page(t, s, p, ann)
		if code != http.StatusForbidden || !strings.Contains(body, "only site admins") {
			t.Errorf("%s for a user: %d\n%s", p, code, body)
		}
		if strings.Contains(body, "bob@example.com") || strings.Contains(body, adminEmail) {
			t.Errorf("%s shows other users to a user:\n%s", p, body)
		}
	}
	w := post(t, s, "/ui/admin/users/bob@example.com/quota", ann, withCSRF(t, s, ann, url.Values{"limit": {"99"}}))
	if w.Code != http.StatusForbidden {
		t.Errorf("a user setting a quota: %d", w.Code)
	}
	if q := apiCall(t, s, "GET", "/quota/ann@example.com", annTok, ""); q["items"].(float64) == 99 {
		t.Fatalf("a refused quota change changed it: %v", q)
	}

	// The admin sees the Admin link, every user with teams and quota, and
	// each backend's health.
	root := uiLogin(t, s, adminEmail)
	code, body := page(t, s, "/ui/admin", root)
	if code != 200 {
		t.Fatalf("admin page for the admin: %d\n%s", code, body)
	}
	for _, want := range []string{`href="/ui/admin"`, "<th scope=\"row\">ann@example.com</th>", "<th scope=\"row\">bob@example.com</th>",
		"<td>alpha</td><td>no</td>", "<td>beta</td><td>no</td>", "<th scope=\"row\">store</th><td>bolt</td>", "<th scope=\"row\">secrets</th><td>sealed</td>", ">ok<"} {
		if !strings.Contains(body, want) {
			t.Errorf("the admin page lacks %q", want)
		}
	}
	// Setting Bob's quota: the API says the new one, and the page shows it.
	form := url.Values{"limit": {"7"}, "csrf": {csrfOf(t, body)}}
	w = post(t, s, "/ui/admin/users/bob@example.com/quota", root, form)
	if w.Code != http.StatusSeeOther {
		t.Fatalf("setting a quota: %d %s", w.Code, w.Body)
	}
	rootTok := login(t, s, adminEmail)
	if q := apiCall(t, s, "GET", "/quota/bob@example.com", rootTok, ""); q["items"].(float64) != 7 {
		t.Fatalf("bob's quota after the form = %v, want 7", q)
	}
	_, body = page(t, s, w.Header().Get("Location"), root)
	if !strings.Contains(body, "Set the app quota of bob@example.com to 7.") || !strings.Contains(body, `id="q-bob@example.com" name="limit" type="number" min="0" inputmode="numeric" value="7"`) {
		t.Errorf("the admin page after setting the quota:\n%s", body)
	}
	// A quota that is not a number changes nothing.
	if w := post(t, s, "/ui/admin/users/bob@example.com/quota", root, url.Values{"limit": {"-1"}, "csrf": {csrfOf(t, body)}}); w.Code != http.StatusBadRequest {
		t.Errorf("a negative quota: %d", w.Code)
	}
	// Nor does a form without the CSRF token.
	if w := post(t, s, "/ui/admin/users/bob@example.com/quota", root, url.Values{"limit": {"3"}}); w.Code != http.StatusForbidden {
		t.Errorf("a quota form without a CSRF token: %d", w.Code)
	}
	if q := apiCall(t, s, "GET", "/quota/bob@example.com", rootTok, ""); q["items"].(float64) != 7 {
		t.Fatalf("bob's quota after refused forms = %v, want 7", q)
	}
}

func TestAuditEventsArePaged(t *testing.T) {
	*ui.EventsPerPage = 3
	t.Cleanup(func() { *ui.EventsPerPage = 50 })
	s := newFullServer(t)
	tok := userWithApp(t, s, "ann@example.com", "alpha", "alpha-web")
	for i := range 5 {
		apiCall(t, s, "POST", "/apps", tok, `{"name":"alpha-app`+string(rune('a'+i))+`","teamOwner":"alpha"}`)
	}
	root := uiLogin(t, s, adminEmail)
	rootTok := login(t, s, adminEmail)
	// What the API has, newest first, three at a time.
	var want [][]string
	before := ""
	for {
		path := "/api/v1/events?limit=3"
		if before != "" {
			path += "&before=" + url.QueryEscape(before)
		}
		m := apiCall(t, s, "GET", path, rootTok, "")
		var pg []string
		for _, e := range m["events"].([]any) {
			ev := e.(map[string]any)
			pg = append(pg, ev["action"].(string)+" "+ev["target"].(string))
		}
		want = append(want, pg)
		if before = m["next"].(string); before == "" {
			break
		}
	}
	if len(want) < 3 {
		t.Fatalf("the audit log has %d pages of 3, want at least 3", len(want))
	}
	rowRE := regexp.MustCompile(`<tr><td>[^<]*</td><td>[^<]*</td><td>([^<]*)</td><td>([^<]*)</td>`)
	rows := func(body string) []string {
		var out []string
		for _, m := range rowRE.FindAllStringSubmatch(body, -1) {
			out = append(out, html.UnescapeString(m[1]+" "+m[2]))
		}
		return out
	}
	link := func(body, rel string) string {
		m := regexp.MustCompile(`<a href="([^"]*)" rel="` + rel + `"`).FindStringSubmatch(body)
		if m == nil {
			return ""
		}
		return html.UnescapeString(m[1])
	}
	// Forward through every page, then back to the first.
	path := "/ui/admin/events"
	var seen []string
	for i, pg := range want {
		code, body := page(t, s, path, root)
		if code != 200 || strings.Join(rows(body), "|") != strings.Join(pg, "|") {
			t.Fatalf("page %d (%s): %d, rows %q, want %q", i+1, path, code, rows(body), pg)
		}
		seen = append(seen, path)
		if (i == 0) != (link(body, "prev") == "") {
			t.Errorf("page %d: newer link %q", i+1, link(body, "prev"))
		}
		path = link(body, "next")
		if (i == len(want)-1) != (path == "") {
			t.Fatalf("page %d: older link %q", i+1, path)
		}
	}
	path = seen[len(seen)-1]
	for i := len(want) - 1; i > 0; i-- {
		_, body := page(t, s, path, root)
		path = link(body, "prev")
		if path != seen[i-1] {
			t.Fatalf("newer link of page %d = %q, want %q", i+1, path, seen[i-1])
		}
	}
}

// tokenValue is the value a team page shows once, or "".
func tokenValue(body string) string {
	m := regexp.MustCompile(`id="newtok-value" class="token-value" readonly value="([^"]*)"`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

func TestTeamsAndTokens(t *testing.T) {
	s, logs := newFullServerLogs(t)
	annTok := userWithApp(t, s, "ann@example.com", "alpha", "alpha-web")
	bobTok := userWithApp(t, s, "bob@example.com", "beta", "beta-web")
	apiCall(t, s, "POST", "/users", "", `{"email":"cat@example.com","password":"`+password+`"}`)
	apiCall(t, s, "PUT", "/teams/alpha/cat@example.com", annTok, "")
	bobsToken := apiCall(t, s, "POST", "/teams/beta/tokens", bobTok, `{"description":"bob-ci-secret-desc","actions":["app.read"]}`)
	ann := uiLogin(t, s, "ann@example.com")

	// Her teams only; a team she is not in is absent, with its tokens.
	code, body := page(t, s, "/ui/teams", ann)
	if code != 200 || !strings.Contains(body, `<a href="/ui/teams/alpha">alpha</a>`) || !strings.Contains(body, "ann@example.com, cat@example.com") {
		t.Fatalf("teams page: %d\n%s", code, body)
	}
	if strings.Contains(body, "beta") || strings.Contains(body, "bob@example.com") {
		t.Fatalf("another team on ann's teams page:\n%s", body)
	}
	code, body = page(t, s, "/ui/teams/beta", ann)
	if code != http.StatusNotFound || strings.Contains(body, "bob-ci-secret-desc") || strings.Contains(body, bobsToken["token_id"].(string)) {
		t.Fatalf("another team's page: %d\n%s", code, body)
	}

	// Her team: members and their roles, the team's apps, no tokens yet.
	code, body = page(t, s, "/ui/teams/alpha", ann)
	if code != 200 {
		t.Fatalf("team page: %d\n%s", code, body)
	}
	for _, want := range []string{"<h1>Team alpha</h1>", `<th scope="row">ann@example.com</th><td>member (developer on the team's apps); owner of alpha-web</td>`,
		`<th scope="row">cat@example.com</th><td>member (developer on the team's apps)</td>`, `<a href="/ui/apps/alpha-web">alpha-web</a>`, "No tokens.",
		`name="action" value="app.deploy"`} {
		if !strings.Contains(body, want) {
			t.Errorf("team page lacks %q", want)
		}
	}
	if strings.Contains(body, "bob-ci-secret-desc") || strings.Contains(body, "beta-web") {
		t.Errorf("the team page shows another team's token or app:\n%s", body)
	}

	// A token: its value is shown once, with the warning, and works.
	form := url.Values{"description": {"ci deploys"}, "action": {"app.read", "app.deploy"}, "expires_days": {"7"}, "csrf": {csrfOf(t, body)}}
	w := post(t, s, "/ui/teams/alpha/tokens", ann, form)
	if w.Code != 200 {
		t.Fatalf("creating a token: %d %s", w.Code, w.Body)
	}
	created := w.Body.String()
	val := tokenValue(created)
	if val == "" || !strings.Contains(created, "it will not be shown again") {
		t.Fatalf("the new token's value is not shown with the warning:\n%s", created)
	}
	if code := status(t, s, "GET", "/apps/alpha-web", val); code != 200 {
		t.Fatalf("the new token reading its team's app: %d", code)
	}
	if code := status(t, s, "GET", "/apps/beta-web", val); code != http.StatusForbidden {
		t.Fatalf("the new token reading another team's app: %d", code)
	}
	var list []map[string]any
	doJSON(t, s, "/teams/alpha/tokens", annTok, &list)
	if len(list) != 1 || list[0]["description"] != "ci deploys" {
		t.Fatalf("the team's tokens after the form: %v", list)
	}
	id := list[0]["token_id"].(string)

	// Reloading the page lists it, never with its value.
	code, body = page(t, s, "/ui/teams/alpha", ann)
	if code != 200 || !strings.Contains(body, `<th scope="row">`+id+`</th><td>ci deploys</td>`) || !strings.Contains(body, `<td>app.deploy, app.read</td><td>ann@example.com</td>`) && !strings.Contains(body, `<td>app.read, app.deploy</td><td>ann@example.com</td>`) {
		t.Fatalf("the team page after creating a token: %d\n%s", code, body)
	}
	if strings.Contains(body, val) || tokenValue(body) != "" {
		t.Fatalf("reloading the team page shows the token's value")
	}

	// Revoking: no change without the confirmation, nor without the CSRF
	// token, nor for another team's user.
	revoke := "/ui/teams/alpha/tokens/" + id + "/revoke"
	w = post(t, s, revoke, ann, url.Values{"csrf": {csrfOf(t, body)}})
	if w.Code != 200 || !strings.Contains(w.Body.String(), "Revoke token "+id+" of team alpha?") || !strings.Contains(w.Body.String(), `name="confirm" value="yes"`) {
		t.Fatalf("revoke without confirmation: %d\n%s", w.Code, w.Body)
	}
	if w := post(t, s, revoke, ann, url.Values{"confirm": {"yes"}}); w.Code != http.StatusForbidden {
		t.Fatalf("revoke without a CSRF token: %d", w.Code)
	}
	bob := uiLogin(t, s, "bob@example.com")
	if w := post(t, s, revoke, bob, withCSRF(t, s, bob, url.Values{"confirm": {"yes"}})); w.Code < 400 {
		t.Fatalf("another team's user revoking the token: %d", w.Code)
	}
	if code := status(t, s, "GET", "/apps/alpha-web", val); code != 200 {
		t.Fatalf("after refused revokes the token answers %d", code)
	}
	// Confirmed: it stops authenticating.
	w = post(t, s, revoke, ann, url.Values{"confirm": {"yes"}, "csrf": {csrfOf(t, body)}})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("confirmed revoke: %d %s", w.Code, w.Body)
	}
	if code := status(t, s, "GET", "/apps/alpha-web", val); code != http.StatusUnauthorized {
		t.Fatalf("a revoked token answers %d, want 401", code)
	}
	_, body = page(t, s, w.Header().Get("Location"), ann)
	if !strings.Contains(body, "Revoked token "+id) || !strings.Contains(body, "No tokens.") {
		t.Fatalf("the team page after revoking:\n%s", body)
	}
	// The value is in no log and no audit record.
	if !strings.Contains(logs.String(), "path=/teams/alpha/tokens status=201") {
		t.Errorf("the server logged no token creation: the check below would see nothing")
	}
	if strings.Contains(logs.String(), val) {
		t.Errorf("the token's value is in the server's logs")
	}
	w = do(t, s, "GET", "/api/v1/events?limit=1000", "", map[string]string{"Authorization": "bearer " + login(t, s, adminEmail)})
	if w.Code != 200 || !strings.Contains(w.Body.String(), "team.token.create") || strings.Contains(w.Body.String(), val) {
		t.Errorf("the audit log: %d, has the creation: %v, has the value: %v", w.Code, strings.Contains(w.Body.String(), "team.token.create"), strings.Contains(w.Body.String(), val))
	}
	// Bob's own token was untouched all along.
	if code := status(t, s, "GET", "/apps/beta-web", bobsToken["token"].(string)); code != 200 {
		t.Fatalf("bob's token after ann's revoke: %d", code)
	}
}

func TestServicesPage(t *testing.T) {
	s := newFullServer(t)
	annTok := userWithApp(t, s, "ann@example.com", "alpha", "alpha-web")
	apiCall(t, s, "POST", "/apps", annTok, `{"name":"alpha-api","teamOwner":"alpha"}`)
	bobTok := userWithApp(t, s, "bob@example.com", "beta", "beta-web")
	// Each team defines a redis service on the operator's target (the
	// real Redis at 127.0.0.1:6379; TestMain serves the broker plugin).
	svc, bobSvc := "cache-"+randHex(3), "bobcache-"+randHex(3)
	yaml := func(tok, id, team string) {
		t.Helper()
		w := do(t, s, "POST", "/services", "id: "+id+"\nbroker: redis\nteam: "+team+"\ntarget: local-redis\n", map[string]string{
			"Content-Type": "application/x-yaml", "Authorization": "bearer " + tok})
		if w.Code != 200 {
			t.Fatalf("creating service %s: %d %s (is Redis running on 127.0.0.1:6379? the project's set-up starts it)", id, w.Code, w.Body)
		}
	}
	yaml(annTok, svc, "alpha")
	yaml(bobTok, bobSvc, "beta")
	bobInst := "bobi-" + randHex(3)
	apiCall(t, s, "POST", "/services/instances", bobTok, `{"name":"`+bobInst+`","service_name":"`+bobSvc+`"}`)
	t.Cleanup(func() {
		do(t, s, "DELETE", "/services/instances/"+bobInst, "", map[string]string{"Authorization": "bearer " + bobTok})
	})

	apiCall(t, s, "POST", "/teams", annTok, `{"name":"alpha-ops"}`)
	var plans []map[string]any
	doJSON(t, s, "/services/"+svc+"/plans", annTok, &plans)
	if len(plans) == 0 || plans[0]["name"] != "default" {
		t.Fatalf("the redis service's plans: %v", plans)
	}
	planID := plans[0]["id"].(string)

	ann := uiLogin(t, s, "ann@example.com")
	code, body := page(t, s, "/ui/services", ann)
	if code != 200 || !strings.Contains(body, `<h2 id="svc-`+svc+`">`+svc+`</h2>`) || !strings.Contains(body, "No instances you may use.") ||
		!strings.Contains(body, "<summary>New instance of "+svc+"</summary>") || !strings.Contains(body, "Plans: <strong>default</strong>") ||
		!strings.Contains(body, `<option value="`+planID+`">default</option>`) || !strings.Contains(body, `<option>alpha</option><option>alpha-ops</option>`) {
		t.Fatalf("services page: %d\n%s", code, body)
	}
	if strings.Contains(body, bobSvc) || strings.Contains(body, bobInst) {
		t.Fatalf("another team's service or instance on ann's page:\n%s", body)
	}

	// A new instance from the form, on a plan, for one of her teams:
	// provisioned on Redis, listed ready.
	inst := "c-" + randHex(3)
	w := post(t, s, "/ui/services/instances", ann, url.Values{"service": {svc}, "name": {inst}, "plan": {planID}, "team": {"alpha"}, "csrf": {csrfOf(t, body)}})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("creating an instance: %d %s", w.Code, w.Body)
	}
	t.Cleanup(func() {
		do(t, s, "DELETE", "/services/instances/"+inst, "", map[string]string{"Authorization": "bearer " + annTok})
	})
	var got map[string]any
	doJSON(t, s, "/services/instances/"+inst, annTok, &got)
	if got["state"] != "ready" || got["plan"] != planID || fmt.Sprint(got["teams"]) != "[alpha]" {
		t.Fatalf("the instance made by the form: %v", got)
	}
	code, body = page(t, s, w.Header().Get("Location"), ann)
	row := `<th scope="row">` + inst + `</th>
<td class="state-ready">ready</td>
<td>default</td>
<td>alpha</td>
<td>none</td>`
	if code != 200 || !strings.Contains(body, "Created service instance "+inst+".") || !strings.Contains(body, row) {
		t.Fatalf("services page after creating: %d\n%s", code, body)
	}
	// A plan the service does not have is refused with the API's reason.
	if w := post(t, s, "/ui/services/instances", ann, url.Values{"service": {svc}, "name": {"x-" + randHex(3)}, "plan": {"huge"}, "csrf": {csrfOf(t, body)}}); w.Code != http.StatusBadRequest ||
		!strings.Contains(w.Body.String(), "has no plan") {
		t.Fatalf("an unknown plan: %d\n%s", w.Code, w.Body)
	}
	if !strings.Contains(body, `<select id="bind-`+inst+`" name="app"><option>alpha-api</option><option>alpha-web</option></select>`) {
		t.Fatalf("the bind form does not offer ann's apps:\n%s", body)
	}
	if strings.Contains(body, "beta-web") {
		t.Fatalf("the bind form offers another team's app:\n%s", body)
	}
	csrf := csrfOf(t, body)
	bound := func() []any {
		var m map[string]any
		doJSON(t, s, "/services/instances/"+inst, annTok, &m)
		return m["apps"].([]any)
	}

	// Bind: a confirmation first, and nothing changes before it; nor
	// without the CSRF token; nor to another team's app.
	bind := "/ui/services/instances/" + inst + "/bind"
	w = post(t, s, bind, ann, url.Values{"app": {"alpha-web"}, "csrf": {csrf}})
	if w.Code != 200 || !strings.Contains(w.Body.String(), "Bind service instance "+inst+" to app alpha-web?") {
		t.Fatalf("bind without confirmation: %d\n%s", w.Code, w.Body)
	}
	if w := post(t, s, bind, ann, url.Values{"app": {"alpha-web"}, "confirm": {"yes"}}); w.Code != http.StatusForbidden {
		t.Fatalf("bind without a CSRF token: %d", w.Code)
	}
	if w := post(t, s, bind, ann, url.Values{"app": {"beta-web"}, "confirm": {"yes"}, "csrf": {csrf}}); w.Code < 400 {
		t.Fatalf("binding to another team's app: %d", w.Code)
	}
	if a := bound(); len(a) != 0 {
		t.Fatalf("refused binds bound the instance to %v", a)
	}
	w = post(t, s, bind, ann, url.Values{"app": {"alpha-web"}, "confirm": {"yes"}, "csrf": {csrf}})
	if w.Code != http.StatusSeeOther {
		t.Fatalf("confirmed bind: %d %s", w.Code, w.Body)
	}
	if a := bound(); len(a) != 1 || a[0] != "alpha-web" {
		t.Fatalf("after the bind the instance is bound to %v", a)
	}
	_, body = page(t, s, w.Header().Get("Location"), ann)
	if !strings.Contains(body, "Bound "+inst+" to app alpha-web") || !strings.Contains(body, `aria-label="Unbind `+inst+` from alpha-web"`) ||
		!strings.Contains(body, `<option>alpha-api</option></select>`) {
		t.Fatalf("services page after the bind:\n%s", body)
	}
	// The credentials the app got are not on the page.
	var env []map[string]any
	doJSON(t, s, "/apps/alpha-web/env", annTok, &env)
	for _, e := range env {
		if v, _ := e["value"].(string); len(v) > 6 && strings.Contains(body, v) {
			t.Fatalf("the page shows the bound app's variable %v", e["name"])
		}
	}
	// Bob does not see it.
	bob := uiLogin(t, s, "bob@example.com")
	if _, body := page(t, s, "/ui/services", bob); strings.Contains(body, inst) || strings.Contains(body, svc) {
		t.Fatalf("ann's instance on bob's page:\n%s", body)
	}

	// Unbind, after its confirmation.
	unbind := "/ui/services/instances/" + inst + "/unbind"
	w = post(t, s, unbind, ann, url.Values{"app": {"alpha-web"}, "csrf": {csrf}})
	if w.Code != 200 || !strings.Contains(w.Body.String(), "Unbind service instance "+inst+" from app alpha-web?") {
		t.Fatalf("unbind without confirmation: %d\n%s", w.Code, w.Body)
	}
	if a := bound(); len(a) != 1 {
		t.Fatalf("an unconfirmed unbind changed the bindings: %v", a)
	}
	if w := post(t, s, unbind, ann, url.Values{"app": {"alpha-web"}, "confirm": {"yes"}, "csrf": {csrf}}); w.Code != http.StatusSeeOther {
		t.Fatalf("confirmed unbind: %d %s", w.Code, w.Body)
	}
	if a := bound(); len(a) != 0 {
		t.Fatalf("after the unbind the instance is bound to %v", a)
	}
}
