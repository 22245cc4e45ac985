package ui_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/backends/bolt"
	"github.com/berthpaas/berth/backends/local"
	"github.com/berthpaas/berth/backends/sealed"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/plugins"
	"github.com/berthpaas/berth/server"
)

// init lets this test binary be the process shim of the local schedulers
// the action tests start (local.Config.Shim defaults to the running
// executable with the proc-shim argument); TestMain (leak_test.go) serves
// the broker plugins the same way.
func init() {
	if len(os.Args) > 1 && os.Args[1] == local.ShimCommand {
		os.Exit(local.ShimMain(os.Args[2:]))
	}
}

// newActionServer is a real Berth server with what the actions reach: the
// local scheduler (with withScheduler), the built-in service brokers with a
// broker target on the local Redis (its broker's records under a prefix of
// these tests' own), and its background work started.
func newActionServer(t *testing.T, withScheduler bool) *server.Server {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Reconcile.IntervalDur = time.Second
	redis := map[string]string{"addr": "127.0.0.1:6379", "meta_prefix": "berth:ui-actions-test"}
	cfg.BrokerTargets = append(cfg.BrokerTargets, &config.BrokerTarget{Name: "local-redis", Broker: "redis", Settings: redis, Resolved: redis})
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
		deps.Scheduler, deps.SchedulerName = sch, "local"
	}
	brokers := plugins.NewManager(plugins.ManagerConfig{Logger: hclog.NewNullLogger(), StateDir: filepath.Join(dir, "plugins")})
	t.Cleanup(brokers.Close)
	deps.Brokers = brokers
	s, err := server.New(deps)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

// uiPost posts a form to the console as the session ck, from this site
// (origin "": the console's own host).
func uiPost(t *testing.T, s *server.Server, ck *http.Cookie, path string, form url.Values, origin string) (int, string, string) {
	t.Helper()
	if origin == "" {
		origin = "http://" + host
	}
	hdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": origin}
	if ck != nil {
		hdr["Cookie"] = ck.Name + "=" + ck.Value
	}
	w := do(t, s, "POST", path, form.Encode(), hdr)
	return w.Code, w.Body.String(), w.Header().Get("Location")
}

// formOf is the fields of a page's form whose action is action, as a
// browser would send them (hidden fields, the values already in inputs, a
// checkbox only when checked, a select's selected or first option).
func formOf(t *testing.T, page, action string) url.Values {
	t.Helper()
	i := strings.Index(page, `action="`+action+`"`)
	if i < 0 {
		t.Fatalf("no form posting to %s in:\n%s", action, page)
	}
	end := strings.Index(page[i:], "</form>")
	f := page[i : i+end]
	out := url.Values{}
	for _, m := range regexp.MustCompile(`<input ([^>]*)>`).FindAllStringSubmatch(f, -1) {
		attr := map[string]string{}
		for _, a := range regexp.MustCompile(`(\w+)="([^"]*)"`).FindAllStringSubmatch(m[1], -1) {
			attr[a[1]] = html.UnescapeString(a[2])
		}
		if attr["name"] == "" || (attr["type"] == "checkbox" && !strings.Contains(m[1], " checked")) {
			continue
		}
		out.Add(attr["name"], attr["value"])
	}
	for _, m := range regexp.MustCompile(`(?s)<select [^>]*name="([^"]+)"[^>]*>(.*?)</select>`).FindAllStringSubmatch(f, -1) {
		opts := regexp.MustCompile(`<option value="([^"]*)"( selected)?>`).FindAllStringSubmatch(m[2], -1)
		if len(opts) == 0 {
			continue
		}
		v := opts[0][1]
		for _, o := range opts {
			if o[2] != "" {
				v = o[1]
			}
		}
		out.Set(m[1], html.UnescapeString(v))
	}
	return out
}

// ask posts an action's form (without confirm) and returns the
// confirmation page, checking it asks and offers a way back.
func ask(t *testing.T, s *server.Server, ck *http.Cookie, path string, form url.Values, question string) string {
	t.Helper()
	code, body, _ := uiPost(t, s, ck, path, form, "")
	if code != http.StatusOK || !strings.Contains(body, html.EscapeString(question)) {
		t.Fatalf("POST %s without confirm: %d, want 200 asking %q:\n%s", path, code, question, body)
	}
	app := strings.Split(path, "/")[3]
	if !strings.Contains(body, `<a class="button secondary" href="/ui/apps/`+app+`">Cancel</a>`) ||
		!strings.Contains(body, `name="confirm" value="yes"`) {
		t.Fatalf("the confirmation page lacks its Confirm form or Cancel link:\n%s", body)
	}
	return body
}

// confirm posts the confirmation page's form (its Confirm button) and
// checks the console sends the browser back to the app page with done.
func confirm(t *testing.T, s *server.Server, ck *http.Cookie, path, confirmPage, done string) {
	t.Helper()
	code, body, loc := uiPost(t, s, ck, path, formOf(t, confirmPage, path), "")
	app := strings.Split(path, "/")[3]
	if code != http.StatusSeeOther || loc != "/ui/apps/"+app+"?done="+done {
		t.Fatalf("confirming %s: %d %q, want 303 to /ui/apps/%s?done=%s:\n%s", path, code, loc, app, done, body)
	}
}

// apiGet decodes the answer of a GET of the API as token.
func apiGet(t *testing.T, s *server.Server, token, path string, out any) int {
	t.Helper()
	w := do(t, s, "GET", path, "", map[string]string{"Authorization": "bearer " + token})
	if w.Code == http.StatusOK && out != nil {
		if err := json.Unmarshal(w.Body.Bytes(), out); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	return w.Code
}

func envOf(t *testing.T, s *server.Server, token, app string) map[string]api.EnvVar {
	t.Helper()
	var vars []api.EnvVar
	if code := apiGet(t, s, token, "/apps/"+app+"/env", &vars); code != 200 {
		t.Fatalf("env of %s: %d", app, code)
	}
	out := map[string]api.EnvVar{}
	for _, v := range vars {
		out[v.Name] = v
	}
	return out
}

// appPageOf is the app page as ck sees it, with the CSRF token of its forms.
func appPageOf(t *testing.T, s *server.Server, ck *http.Cookie, path string) (string, string) {
	t.Helper()
	code, body := page(t, s, path, ck)
	if code != 200 {
		t.Fatalf("GET %s: %d\n%s", path, code, body)
	}
	return body, csrfOf(t, body)
}

func TestEnvSetAndUnsetAskFirst(t *testing.T) {
	s := newServer(t)
	tok := userWithApp(t, s, "ann@example.com", "alpha", "alpha-web")
	ck := uiLogin(t, s, "ann@example.com")
	body, csrf := appPageOf(t, s, ck, "/ui/apps/alpha-web")
	for _, want := range []string{`<label for="env-name">Name</label>`, `<label for="env-value">Value</label>`, `<label for="env-private">`} {
		if !strings.Contains(body, want) {
			t.Fatalf("the app page lacks %s", want)
		}
	}

	// A private variable: the confirmation page neither sets it nor holds
	// its value (not even in a hidden field).
	form := formOf(t, body, "/ui/apps/alpha-web/env")
	form.Set("name", "DB_PASSWORD")
	form.Set("value", "hunter2-very-secret")
	form.Set("private", "yes")
	cp := ask(t, s, ck, "/ui/apps/alpha-web/env", form, "Set the private variable DB_PASSWORD of alpha-web?")
	if strings.Contains(cp, "hunter2") {
		t.Fatalf("the confirmation page holds the private value:\n%s", cp)
	}
	if _, ok := envOf(t, s, tok, "alpha-web")["DB_PASSWORD"]; ok {
		t.Fatal("asking for confirmation set the variable")
	}
	// The sealed value is good for that variable only.
	other := formOf(t, cp, "/ui/apps/alpha-web/env")
	other.Set("name", "OTHER")
	if code, b, _ := uiPost(t, s, ck, "/ui/apps/alpha-web/env", other, ""); code != http.StatusBadRequest || !strings.Contains(b, "set the variable again") {
		t.Fatalf("a sealed value moved to another variable: %d\n%s", code, b)
	}
	confirm(t, s, ck, "/ui/apps/alpha-web/env", cp, "env-now")
	if v, ok := envOf(t, s, tok, "alpha-web")["DB_PASSWORD"]; !ok || v.Public {
		t.Fatalf("after confirming, DB_PASSWORD = %+v (set %v), want a private variable", v, ok)
	}
	if _, ok := envOf(t, s, tok, "alpha-web")["OTHER"]; ok {
		t.Fatal("the refused form set OTHER")
	}
	_, body = page(t, s, "/ui/apps/alpha-web?done=env-now", ck)
	if strings.Contains(body, "hunter2") || !strings.Contains(body, "private (hidden)") || !strings.Contains(body, `<p class="notice" role="status">Variable set.</p>`) {
		t.Fatalf("the app page after setting a private variable:\n%s", body)
	}
	// A ?done= the console does not know shows nothing.
	if _, b := page(t, s, "/ui/apps/alpha-web?done=%3Cb%3Epwned", ck); strings.Contains(b, "pwned") || strings.Contains(b, `class="notice"`) {
		t.Fatalf("an unknown ?done= is shown:\n%s", b)
	}

	// A public variable is asked with its value, then shown.
	form = url.Values{"csrf": {csrf}, "name": {"LOG_LEVEL"}, "value": {"debug-visible"}}
	cp = ask(t, s, ck, "/ui/apps/alpha-web/env", form, "Set LOG_LEVEL=debug-visible on alpha-web?")
	confirm(t, s, ck, "/ui/apps/alpha-web/env", cp, "env-now")
	if v := envOf(t, s, tok, "alpha-web")["LOG_LEVEL"]; v.Value != "debug-visible" || !v.Public {
		t.Fatalf("LOG_LEVEL = %+v", v)
	}

	// Unset, through the row's Unset button.
	body, _ = appPageOf(t, s, ck, "/ui/apps/alpha-web")
	if !strings.Contains(body, `aria-label="Unset LOG_LEVEL"`) {
		t.Fatalf("no Unset LOG_LEVEL button:\n%s", body)
	}
	cp = ask(t, s, ck, "/ui/apps/alpha-web/env/unset", url.Values{"csrf": {csrf}, "name": {"LOG_LEVEL"}}, "Unset LOG_LEVEL on alpha-web?")
	if _, ok := envOf(t, s, tok, "alpha-web")["LOG_LEVEL"]; !ok {
		t.Fatal("asking to unset LOG_LEVEL unset it")
	}
	confirm(t, s, ck, "/ui/apps/alpha-web/env/unset", cp, "unset-now")
	if env := envOf(t, s, tok, "alpha-web"); len(env) != 1 || env["DB_PASSWORD"].Name == "" {
		t.Fatalf("after unsetting LOG_LEVEL the env is %+v", env)
	}
	// Unsetting it again: the API's 404 and its message, not a 500.
	code, b, _ := uiPost(t, s, ck, "/ui/apps/alpha-web/env/unset", url.Values{"csrf": {csrf}, "name": {"LOG_LEVEL"}, "confirm": {"yes"}}, "")
	if code != http.StatusNotFound || !strings.Contains(b, "LOG_LEVEL") || !strings.Contains(b, `role="alert"`) {
		t.Fatalf("unsetting a missing variable: %d\n%s", code, b)
	}
}

// actionForms are a plausible form of every action (with confirm=yes).
func actionForms(app string) map[string]url.Values {
	base := "/ui/apps/" + app + "/"
	return map[string]url.Values{
		base + "deploy":    {"version": {"1700000000-abc"}},
		base + "rollback":  {"version": {""}},
		base + "scale":     {"proc": {"web"}, "instances": {"3"}},
		base + "restart":   {},
		base + "env":       {"name": {"INJECTED"}, "value": {"x"}},
		base + "env/unset": {"name": {"KEEP"}},
		base + "bind":      {"instance": {"cache"}},
		base + "unbind":    {"instance": {"cache"}},
	}
}

func TestActionsRefusedWithoutCSRFOrFromElsewhere(t *testing.T) {
	s := newServer(t)
	tok := userWithApp(t, s, "ann@example.com", "alpha", "alpha-web")
	apiCall(t, s, "POST", "/apps/alpha-web/env", tok, `{"envs":[{"name":"KEEP","value":"kept"}],"norestart":true}`)
	ck := uiLogin(t, s, "ann@example.com")
	_, csrf := appPageOf(t, s, ck, "/ui/apps/alpha-web")
	for path, form := range actionForms("alpha-web") {
		for name, c := range map[string]struct{ csrf, origin string }{
			"no token":     {"", ""},
			"wrong token":  {"forged-" + csrf[:8], ""},
			"other origin": {csrf, "http://evil.example"},
		} {
			f := url.Values{"confirm": {"yes"}}
			for k, v := range form {
				f[k] = v
			}
			if c.csrf != "" {
				f.Set("csrf", c.csrf)
			}
			if code, body, _ := uiPost(t, s, ck, path, f, c.origin); code != http.StatusForbidden || !strings.Contains(body, `role="alert"`) {
				t.Errorf("%s, %s: %d, want 403\n%s", path, name, code, body)
			}
		}
	}
	// Nothing changed.
	if env := envOf(t, s, tok, "alpha-web"); len(env) != 1 || env["KEEP"].Value != "kept" {
		t.Fatalf("refused posts changed the env: %+v", env)
	}
	var hist []api.HistoryEntry
	if code := apiGet(t, s, tok, "/api/v1/apps/alpha-web/history", &hist); code != 200 || len(hist) != 0 {
		t.Fatalf("refused posts made operations: %d %+v", code, hist)
	}
	// Without a session, a form is refused too (401, not a change).
	if code, _, _ := uiPost(t, s, nil, "/ui/apps/alpha-web/env", url.Values{"csrf": {csrf}, "confirm": {"yes"}, "name": {"INJECTED"}}, ""); code != http.StatusUnauthorized {
		t.Fatalf("a post without a session: %d", code)
	}
}

func TestAnotherTeamCannotAct(t *testing.T) {
	s := newServer(t)
	tok := userWithApp(t, s, "ann@example.com", "alpha", "alpha-web")
	bob := userWithApp(t, s, "bob@example.com", "beta", "beta-web")
	apiCall(t, s, "POST", "/apps/alpha-web/env", tok, `{"envs":[{"name":"KEEP","value":"kept"}],"norestart":true}`)
	bck := uiLogin(t, s, "bob@example.com")
	_, csrf := appPageOf(t, s, bck, "/ui/apps/beta-web")

	// What the API itself answers bob.
	w := do(t, s, "POST", "/apps/alpha-web/env", `{"envs":[{"name":"INJECTED","value":"x"}]}`, map[string]string{
		"Content-Type": "application/json", "Authorization": "bearer " + bob})
	var apiErr struct{ Error string }
	if w.Code < 400 || json.Unmarshal(w.Body.Bytes(), &apiErr) != nil || apiErr.Error == "" {
		t.Fatalf("the API let bob set alpha-web's env: %d %s", w.Code, w.Body)
	}
	for path, form := range actionForms("alpha-web") {
		for _, confirmed := range []bool{false, true} {
			f := url.Values{"csrf": {csrf}}
			for k, v := range form {
				f[k] = v
			}
			if confirmed {
				f.Set("confirm", "yes")
			}
			code, body, _ := uiPost(t, s, bck, path, f, "")
			if (code != http.StatusForbidden && code != http.StatusNotFound) || !strings.Contains(body, `role="alert"`) || strings.Contains(body, `name="confirm"`) {
				t.Errorf("bob, %s (confirmed %v): %d, want the API's 403 or 404\n%s", path, confirmed, code, body)
			}
			if strings.HasSuffix(path, "/env") && confirmed && (code != w.Code || !strings.Contains(body, html.EscapeString(apiErr.Error))) {
				t.Errorf("bob setting alpha-web's env: %d, want the API's %d %q\n%s", code, w.Code, apiErr.Error, body)
			}
		}
	}
	if env := envOf(t, s, tok, "alpha-web"); len(env) != 1 || env["KEEP"].Value != "kept" {
		t.Fatalf("bob's posts changed alpha-web's env: %+v", env)
	}
}

// helloYAML is a release of app hello: a web proc that prints the private
// variable it is given (so that a test can see the value it was set to
// reach the app) and serves HTTP.
const helloYAML = "appname: hello\nweb:\n  cmd: echo \"token is [$DB_PASSWORD]\"; exec python3 -m http.server $PORT --bind 127.0.0.1\n  memory: 64m\n"

// waitSettled polls the app until its operation settles and returns it;
// a failed operation fails the test.
func waitSettled(t *testing.T, s *server.Server, token, app string) *api.DeployedApp {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		var v api.DeployedApp
		if code := apiGet(t, s, token, "/api/v1/apps/"+app, &v); code != 200 {
			t.Fatalf("GET /api/v1/apps/%s: %d", app, code)
		}
		switch v.State {
		case api.DeployRunning:
			return &v
		case api.DeployFailed, api.DeployUndeployed:
			t.Fatalf("%s: %s (%s)", app, v.State, v.Message)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s did not settle: %+v", app, v)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestDeployScaleEnvRollbackRestartAskFirst(t *testing.T) {
	s := newActionServer(t, true)
	tok := userWithApp(t, s, "ann@example.com", "alpha", "hello")
	const v1, v2 = "1700000000-aaa", "1700000001-bbb"
	for _, v := range []string{v1, v2} {
		b, _ := json.Marshal(api.PushRequest{MetaVersion: v, LainYAML: helloYAML})
		apiCall(t, s, "POST", "/api/v1/repos/hello/push", tok, string(b))
	}
	ck := uiLogin(t, s, "ann@example.com")
	body, csrf := appPageOf(t, s, ck, "/ui/apps/hello")
	if !strings.Contains(body, `<label for="deploy-version">Release to deploy</label>`) || strings.Contains(body, `action="/ui/apps/hello/rollback"`) {
		t.Fatalf("the page of an app not deployed: a deploy form, no rollback form:\n%s", body)
	}

	// Deploy the older release (the form offers every pushed release).
	form := formOf(t, body, "/ui/apps/hello/deploy")
	if form.Get("version") != v2 || !strings.Contains(body, `<option value="`+v1+`">`) {
		t.Fatalf("deploy form %v", form)
	}
	form.Set("version", v1)
	cp := ask(t, s, ck, "/ui/apps/hello/deploy", form, "Deploy release "+v1+" of hello?")
	if code := apiGet(t, s, tok, "/api/v1/apps/hello", nil); code != http.StatusNotFound {
		t.Fatalf("asking to deploy deployed the app (%d)", code)
	}
	confirm(t, s, ck, "/ui/apps/hello/deploy", cp, "deploy")
	if v := waitSettled(t, s, tok, "hello"); v.MetaVersion != v1 || len(v.Procs) != 1 || v.Procs[0].NumInstances != 1 {
		t.Fatalf("after the deploy: %+v", v)
	}

	// Scale web from 1 to 2, with the form of the web proc.
	body, _ = appPageOf(t, s, ck, "/ui/apps/hello?done=deploy")
	if !strings.Contains(body, "Deploy started") || !strings.Contains(body, `<label for="scale-web">Instances of web</label>`) {
		t.Fatalf("the app page after a deploy:\n%s", body)
	}
	form = formOf(t, body, "/ui/apps/hello/scale")
	if form.Get("proc") != "web" || form.Get("instances") != "1" {
		t.Fatalf("scale form %v", form)
	}
	// A confirmed scale with a forged token, or from another site, is
	// refused and scales nothing.
	for _, c := range []struct{ csrf, origin string }{{"forged", ""}, {csrf, "http://evil.example"}} {
		f := url.Values{"csrf": {c.csrf}, "proc": {"web"}, "instances": {"5"}, "confirm": {"yes"}}
		if code, _, _ := uiPost(t, s, ck, "/ui/apps/hello/scale", f, c.origin); code != http.StatusForbidden {
			t.Fatalf("a scale with token %q from %q: %d, want 403", c.csrf, c.origin, code)
		}
	}
	var p api.Proc
	if apiGet(t, s, tok, "/api/v1/apps/hello/procs/web", &p); p.NumInstances != 1 {
		t.Fatalf("a refused scale scaled: %+v", p)
	}
	form.Set("instances", "2")
	cp = ask(t, s, ck, "/ui/apps/hello/scale", form, "Scale web of hello from 1 to 2 instances?")
	if apiGet(t, s, tok, "/api/v1/apps/hello/procs/web", &p); p.NumInstances != 1 {
		t.Fatalf("asking to scale scaled: %+v", p)
	}
	confirm(t, s, ck, "/ui/apps/hello/scale", cp, "scale")
	// The app is busy until the scale settles: a restart meanwhile is the
	// API's 409, its message shown.
	code, b, _ := uiPost(t, s, ck, "/ui/apps/hello/restart", url.Values{"csrf": {csrf}, "confirm": {"yes"}}, "")
	if code != http.StatusConflict || !strings.Contains(b, "busy") || !strings.Contains(b, "ann@example.com") {
		t.Fatalf("restart during a scale: %d, want the API's 409\n%s", code, b)
	}
	waitSettled(t, s, tok, "hello")
	if apiGet(t, s, tok, "/api/v1/apps/hello/procs/web", &p); p.NumInstances != 2 || len(p.Instances) != 2 {
		t.Fatalf("after the scale: %+v", p)
	}
	// A number that is not one is refused by the console (400), unasked.
	if code, b, _ := uiPost(t, s, ck, "/ui/apps/hello/scale", url.Values{"csrf": {csrf}, "proc": {"web"}, "instances": {"-1"}}, ""); code != http.StatusBadRequest || !strings.Contains(b, "whole number") {
		t.Fatalf("scale to -1: %d\n%s", code, b)
	}

	// A private variable reaches the app with the value typed, although
	// the confirmation page never held it.
	cp = ask(t, s, ck, "/ui/apps/hello/env", url.Values{"csrf": {csrf}, "name": {"DB_PASSWORD"}, "value": {"s3cr3t-typed"}, "private": {"yes"}},
		"Set the private variable DB_PASSWORD of hello?")
	if !strings.Contains(cp, "hello is redeployed with it.") || strings.Contains(cp, "s3cr3t-typed") {
		t.Fatalf("the confirmation of a deployed app's private variable:\n%s", cp)
	}
	confirm(t, s, ck, "/ui/apps/hello/env", cp, "env")
	waitSettled(t, s, tok, "hello")
	w := do(t, s, "GET", "/api/v1/apps/hello/logs?proc=web", "", map[string]string{"Authorization": "bearer " + tok})
	if !strings.Contains(w.Body.String(), "token is [s3cr3t-typed]") {
		t.Fatalf("the app's output does not show the value set: %d\n%s", w.Code, w.Body)
	}
	if _, body = page(t, s, "/ui/apps/hello", ck); strings.Contains(body, "s3cr3t-typed") {
		t.Fatal("the app page shows the private value")
	}

	// Deploy the newer release, then roll back to the one that ran before.
	cp = ask(t, s, ck, "/ui/apps/hello/deploy", url.Values{"csrf": {csrf}, "version": {v2}}, "Deploy release "+v2+" of hello?")
	if !strings.Contains(cp, "hello is now at release "+v1) {
		t.Fatalf("the deploy question does not say the current release:\n%s", cp)
	}
	confirm(t, s, ck, "/ui/apps/hello/deploy", cp, "deploy")
	if v := waitSettled(t, s, tok, "hello"); v.MetaVersion != v2 {
		t.Fatalf("after deploying %s: %+v", v2, v)
	}
	body, _ = appPageOf(t, s, ck, "/ui/apps/hello")
	form = formOf(t, body, "/ui/apps/hello/rollback")
	if form.Get("version") != "" {
		t.Fatalf("the rollback form does not default to the release before: %v", form)
	}
	cp = ask(t, s, ck, "/ui/apps/hello/rollback", url.Values{"csrf": {csrf}, "version": {""}}, "Roll hello back to the release that ran before?")
	if v := waitSettled(t, s, tok, "hello"); v.MetaVersion != v2 {
		t.Fatalf("asking to roll back rolled back: %+v", v)
	}
	confirm(t, s, ck, "/ui/apps/hello/rollback", cp, "rollback")
	if v := waitSettled(t, s, tok, "hello"); v.MetaVersion != v1 {
		t.Fatalf("after the rollback: %+v", v)
	}

	// Restart.
	cp = ask(t, s, ck, "/ui/apps/hello/restart", url.Values{"csrf": {csrf}}, "Restart every instance of hello?")
	var hist []api.HistoryEntry
	apiGet(t, s, tok, "/api/v1/apps/hello/history", &hist)
	before := len(hist)
	confirm(t, s, ck, "/ui/apps/hello/restart", cp, "restart")
	waitSettled(t, s, tok, "hello")
	apiGet(t, s, tok, "/api/v1/apps/hello/history", &hist)
	if len(hist) != before+1 || hist[0].Operation != "restart" || hist[0].By != "ann@example.com" {
		t.Fatalf("history after the restart: %+v", hist)
	}
	var ops []string
	for _, h := range hist {
		ops = append(ops, h.Operation)
	}
	want := []string{"restart", "rollback to " + v1, "deploy " + v2, "set env", "scale web to 2", "deploy " + v1}
	if strings.Join(ops, "|") != strings.Join(want, "|") {
		t.Fatalf("history = %q, want %q", ops, want)
	}
}

func TestBindAndUnbindARedisInstanceAskFirst(t *testing.T) {
	s := newActionServer(t, false)
	tok := userWithApp(t, s, "ann@example.com", "alpha", "alpha-web")
	rnd := make([]byte, 4)
	_, _ = rand.Read(rnd)
	svc, inst := "uicache"+hex.EncodeToString(rnd), "uic"+hex.EncodeToString(rnd)
	w := do(t, s, "POST", "/services", "id: "+svc+"\nbroker: redis\ntarget: local-redis\nteam: alpha\n", map[string]string{
		"Content-Type": "application/x-yaml", "Authorization": "bearer " + tok})
	if w.Code != 200 {
		t.Fatalf("creating a redis service: %d %s", w.Code, w.Body)
	}
	apiCall(t, s, "POST", "/services/instances", tok, `{"name":"`+inst+`","service_name":"`+svc+`"}`)
	t.Cleanup(func() { // also when the test fails midway: no users or keys left on Redis
		auth := map[string]string{"Authorization": "bearer " + tok}
		do(t, s, "DELETE", "/services/instances/"+inst+"/alpha-web", "", auth)
		do(t, s, "DELETE", "/services/instances/"+inst, "", auth)
	})
	boundApps := func() []string {
		var in api.ServiceInstance
		if code := apiGet(t, s, tok, "/services/instances/"+inst, &in); code != 200 {
			t.Fatalf("GET instance: %d", code)
		}
		return in.Apps
	}
	ck := uiLogin(t, s, "ann@example.com")
	body, csrf := appPageOf(t, s, ck, "/ui/apps/alpha-web")
	if !strings.Contains(body, `<label for="bind-instance">Service instance</label>`) || !strings.Contains(body, `<option value="`+inst+`">`+svc+"/"+inst+"</option>") {
		t.Fatalf("the app page offers no bind of %s:\n%s", inst, body)
	}
	cp := ask(t, s, ck, "/ui/apps/alpha-web/bind", formOf(t, body, "/ui/apps/alpha-web/bind"), "Bind the "+svc+" instance "+inst+" to alpha-web?")
	if apps := boundApps(); len(apps) != 0 {
		t.Fatalf("asking to bind bound: %v", apps)
	}
	confirm(t, s, ck, "/ui/apps/alpha-web/bind", cp, "bind")
	if apps := boundApps(); len(apps) != 1 || apps[0] != "alpha-web" {
		t.Fatalf("after the bind the instance is bound to %v", apps)
	}
	body, _ = appPageOf(t, s, ck, "/ui/apps/alpha-web?done=bind")
	if !strings.Contains(body, "<li>"+svc+"/"+inst) || !strings.Contains(body, "Unbind "+inst+"</button>") || !strings.Contains(body, "Service instance bound.") {
		t.Fatalf("the app page after the bind:\n%s", body)
	}
	// Binding it again: the API's conflict, shown with its message.
	if code, b, _ := uiPost(t, s, ck, "/ui/apps/alpha-web/bind", url.Values{"csrf": {csrf}, "instance": {inst}, "confirm": {"yes"}}, ""); code < 400 || code >= 500 || !strings.Contains(b, `role="alert"`) {
		t.Fatalf("binding twice: %d\n%s", code, b)
	}

	cp = ask(t, s, ck, "/ui/apps/alpha-web/unbind", formOf(t, body, "/ui/apps/alpha-web/unbind"), "Unbind the "+svc+" instance "+inst+" from alpha-web?")
	if apps := boundApps(); len(apps) != 1 {
		t.Fatalf("asking to unbind unbound: %v", apps)
	}
	confirm(t, s, ck, "/ui/apps/alpha-web/unbind", cp, "unbind")
	if apps := boundApps(); len(apps) != 0 {
		t.Fatalf("after the unbind the instance is bound to %v", apps)
	}
	body, _ = appPageOf(t, s, ck, "/ui/apps/alpha-web?done=unbind")
	if strings.Contains(body, "Unbind "+inst) || !strings.Contains(body, `<option value="`+inst+`">`) || !strings.Contains(body, "Service instance unbound.") {
		t.Fatalf("the app page after the unbind:\n%s", body)
	}
}
