package e2e

// Browser tests of the web console (issue 11): a user in Debian's
// Chromium, headless (the harness is browser_helpers_test.go).

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/ui"
)

// TestBrowserConsole: a user logs in through the login form, sees the
// app list, opens an app, watches a deploy started through the API reach
// running and the app's log lines arrive, both without a reload, sees a
// private variable masked (its value nowhere in the page), and logs out,
// after which the old session cookie opens nothing.
func TestBrowserConsole(t *testing.T) {
	b := startBerth(t, Options{})
	u := b.newUser(t, "console")
	team := "team-console"
	b.do(t, "POST", "/teams", u, map[string]any{"name": team}).want(t, http.StatusOK)
	app := "console-app"
	b.do(t, "POST", "/api/v1/repos/", u, map[string]any{"appname": app, "team": team}).want(t, http.StatusCreated)
	mv := metaVersion()
	b.push(t, u, app, loggingRelease(mv, 1))
	secret := "s3cr3t-" + randHex(12)
	b.do(t, "POST", "/apps/"+app+"/env", u, map[string]any{
		"envs": []map[string]any{{"name": "DB_PASSWORD", "value": secret, "public": false}, {"name": "GREETING", "value": "hello-public", "public": true}},
	}).want(t, http.StatusOK)

	br := newBrowser(t, b)

	// The login page, then the form.
	br.visit("/ui/login")
	br.screenshot("login")
	br.login(u.Email, u.Password)

	// The apps list: the app, registered (a release pushed), no instances.
	row := `tr:has(a[href="/ui/apps/` + app + `"])`
	if got := br.text(row); !strings.Contains(got, app) || !strings.Contains(got, team) || !strings.Contains(got, "registered") || !strings.Contains(got, "0/0") {
		t.Fatalf("the apps list's row of %s reads %q, want the app, its team, registered, 0/0 instances", app, got)
	}

	// The app page, before any deploy.
	br.clickNav(`a[href="/ui/apps/` + app + `"]`)
	if h := br.text("h1"); h != app {
		t.Fatalf("the app page's heading is %q, want %q", h, app)
	}
	if got := br.text("#deploy-progress"); !strings.Contains(got, "none") {
		t.Fatalf("deploy progress before any deploy: %q", got)
	}
	// A mark on this document: gone if the page reloads.
	eval[bool](br, `(window.berthE2EMark = true)`)

	// A deploy started elsewhere (the API, as the CLI does): the page
	// follows it to running.
	r := b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	gen := generationOf(t, r)
	br.waitText("#deploy-progress", "running")
	if got := br.text("#deploy-progress"); !strings.Contains(got, "deploy") || strings.Contains(got, "failed") {
		t.Fatalf("deploy progress reads %q, want the deploy's operation running", got)
	}
	b.waitRunning(t, u, app, gen) // the API agrees

	// The app's output arrives in the log tail.
	br.waitText("#logs", "hello from stdout")
	br.waitText("#logs", "hello from stderr")
	br.waitText("#logs", "tick 3")
	if !eval[bool](br, `window.berthE2EMark === true`) {
		t.Fatal("the app page reloaded while following the deploy and the logs")
	}

	// The private variable is masked, the public one shown; the secret is
	// nowhere in the document.
	envText := eval[string](br, `(function () {
  var h = Array.prototype.find.call(document.querySelectorAll("h2"), function (e) { return e.textContent.trim() === "Environment"; });
  var n = h && h.nextElementSibling;
  return n ? n.innerText : "";
})()`)
	if !strings.Contains(envText, "DB_PASSWORD") || !strings.Contains(envText, "private (hidden)") {
		t.Errorf("the environment section reads %q, want DB_PASSWORD masked", envText)
	}
	if !strings.Contains(envText, "GREETING") || !strings.Contains(envText, "hello-public") {
		t.Errorf("the environment section reads %q, want GREETING's public value", envText)
	}
	if strings.Contains(br.html(), secret) {
		t.Errorf("the private variable's value appears in the app page's HTML")
	}
	br.screenshot("app")

	// Back to the list: the app running its release, 1 of 1 instances.
	br.clickNav(`nav a[href="/ui/apps"]`)
	got := br.text(row)
	for _, want := range []string{app, "running", mv, "1/1"} {
		if !strings.Contains(got, want) {
			t.Errorf("the apps list's row of %s reads %q, want %q in it", app, got, want)
		}
	}
	br.screenshot("apps")

	// Log out: the token is revoked, so the old cookie opens nothing.
	old := br.cookie(ui.CookieName)
	if old == "" {
		t.Fatal("no session cookie while logged in")
	}
	br.logout()
	if c := br.cookie(ui.CookieName); c != "" {
		t.Errorf("the session cookie is still set after logging out")
	}
	br.setCookie(ui.CookieName, old)
	br.visit("/ui/apps")
	if p := br.path(); p != "/ui/login" {
		t.Errorf("the old session cookie opened %s after logout, want the login page", p)
	}
	b.do(t, "GET", "/users/info", &User{Token: old}, nil).want(t, http.StatusUnauthorized)
}

// TestBrowserHarnessSeesErrors: the harness's console check is not blind:
// a script the console's Content Security Policy blocks, an uncaught
// exception and a console.error on a console page are all reported.
func TestBrowserHarnessSeesErrors(t *testing.T) {
	b := startBerth(t, Options{})
	br := newBrowser(t, b)
	br.visit("/ui/login")
	eval[bool](br, `(function () {
  var s = document.createElement("script");
  s.textContent = "window.berthE2EInline = true";
  document.body.appendChild(s);
  setTimeout(function () { throw new Error("berth-e2e-uncaught"); }, 0);
  console.error("berth-e2e-console-error");
  return true;
})()`)
	want := map[string]string{
		"CSP violation: script-src": "the blocked inline script",
		"berth-e2e-uncaught":        "the uncaught exception",
		"berth-e2e-console-error":   "the console.error call",
	}
	var seen []string
	eventually(t, 10*time.Second, "the harness to report the page's errors", func() bool {
		seen = append(seen, br.consoleProblems()...)
		all := strings.Join(seen, "\n")
		for k := range want {
			if !strings.Contains(all, k) {
				return false
			}
		}
		return true
	})
	if eval[bool](br, `window.berthE2EInline === true`) {
		t.Error("the inline script ran: the console's CSP did not block it")
	}
	t.Logf("reported:\n  %s", strings.Join(seen, "\n  "))
}
