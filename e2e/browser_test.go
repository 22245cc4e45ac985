package e2e

// Browser tests of the web console (issue 11): a user in Debian's
// Chromium, headless (the harness is browser_helpers_test.go).

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

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
	b.remember(secret, "a private env value") // never in the server's log or store
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

	// Opened again, the page shows the deployed app: its proc and
	// instance, the deploy in its history, the log tail from the start.
	br.visit("/ui/apps/" + app)
	br.waitText("#logs", "hello from stdout")
	for _, want := range []string{"worker", "running", "deploy"} {
		if got := br.text("main"); !strings.Contains(got, want) {
			t.Errorf("the app page of the deployed app lacks %q: %q", want, got)
		}
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

	// The accessibility check finds what it looks for.
	if v := eval[[]string](br, a11yJS); len(v) != 0 {
		t.Fatalf("the login page has accessibility problems: %v", v)
	}
	eval[bool](br, `(function () {
  var f = document.querySelector("form");
  f.insertAdjacentHTML("beforeend", '<input name="nolabel"><button type="button"></button><img src="/ui/static/favicon.svg"><h1>Two</h1><p id="faint">faint</p>');
  var p = document.getElementById("faint"); p.style.color = "#aaa"; p.style.background = "#fff";
  document.documentElement.removeAttribute("lang");
  return true;
})()`)
	v := strings.Join(eval[[]string](br, a11yJS), "\n")
	for _, want := range []string{"input[name=nolabel] has no label", "button has no accessible name", "has no alt", "2 h1 headings", "no lang", "p#faint text \"faint\" has contrast 2.32:1, below 4.5:1"} {
		if !strings.Contains(v, want) {
			t.Errorf("the accessibility check did not report %q; it reported:\n%s", want, v)
		}
	}
}

// teamUser registers a user, logs it in and makes it a team of its own.
func (b *Berth) teamUser(t *testing.T, name, team string) *User {
	t.Helper()
	u := b.newUser(t, name)
	b.do(t, "POST", "/teams", u, map[string]any{"name": team}).want(t, http.StatusOK)
	return u
}

// createTeamApp registers app owned by team, as u.
func (b *Berth) createTeamApp(t *testing.T, u *User, app, team string) {
	t.Helper()
	b.do(t, "POST", "/api/v1/repos/", u, map[string]any{"appname": app, "team": team}).want(t, http.StatusCreated)
}

// deployLogging pushes a logging release of app and deploys it, as u,
// and waits for it to run.
func (b *Berth) deployLogging(t *testing.T, u *User, app string) string {
	t.Helper()
	mv := metaVersion()
	b.push(t, u, app, loggingRelease(mv, 1))
	r := b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	b.waitRunning(t, u, app, generationOf(t, r))
	return mv
}

// TestBrowserIsolation: a user of one team never sees another team's app
// in the console: not in the list (nor under that team's filter), and its
// page, log tail and events are not found.
func TestBrowserIsolation(t *testing.T) {
	b := startBerth(t, Options{})
	ua := b.teamUser(t, "alice", "team-a")
	ub := b.teamUser(t, "bob", "team-b")
	b.createTeamApp(t, ua, "a-app", "team-a")
	b.createTeamApp(t, ub, "b-app", "team-b")
	b.deployLogging(t, ua, "a-app")
	b.deployLogging(t, ub, "b-app")

	// Bob logs in with the keyboard only: the email field has the focus,
	// Tab goes to the password, Enter sends the form.
	br := newBrowser(t, b)
	br.visit("/ui/login")
	if f := br.focused(); !strings.HasPrefix(f, "input#email") {
		t.Fatalf("the login page's focus is on %s, want the email field", f)
	}
	br.keys(ub.Email + "\t")
	if f := br.focused(); !strings.HasPrefix(f, "input#password") {
		t.Fatalf("Tab from the email field went to %s, want the password field", f)
	}
	br.keysNav(ub.Password + "\r")
	if p := br.path(); p != "/ui/apps" {
		t.Fatalf("logging in with the keyboard led to %s: %q", p, br.text("main"))
	}
	// The first Tab reaches the skip link, which leads to the content.
	br.keys("\t")
	if f := br.focused(); !strings.HasPrefix(f, `a[href=#main] Skip to content`) {
		t.Errorf("the first Tab on the apps page focuses %s, want the skip link", f)
	} else if !eval[bool](br, `(function (r) { return r.left >= 0 && r.top >= 0 && r.width > 0; })(document.activeElement.getBoundingClientRect())`) {
		t.Errorf("the focused skip link is off the screen")
	}
	if !br.exists(`a[href="/ui/apps/b-app"]`) {
		t.Fatalf("bob's app list does not show his own app: %q", br.text("main"))
	}
	if br.exists(`a[href="/ui/apps/a-app"]`) || strings.Contains(br.text("main"), "a-app") || strings.Contains(br.text("main"), "team-a") {
		t.Errorf("bob's app list shows team-a's app: %q", br.text("main"))
	}
	br.visit("/ui/apps?team=team-a")
	if main := br.text("main"); strings.Contains(main, "a-app") || !strings.Contains(main, "No apps match") {
		t.Errorf("bob's app list filtered on team-a reads %q, want no apps", main)
	}

	// The other team's app page: not found, as for an app that does not
	// exist (the browser notes the 404s; they are what is asked for).
	br.allowConsole(`status of 404 .*/ui/apps/(a-app|no-such-app)`)
	for _, app := range []string{"a-app", "no-such-app"} {
		if st := br.visit("/ui/apps/" + app); st != http.StatusNotFound {
			t.Errorf("bob opening /ui/apps/%s: status %d, want 404", app, st)
		}
		if h := br.text("h1"); h != "Not found" {
			t.Errorf("bob opening /ui/apps/%s sees %q, want Not found", app, h)
		}
		if main := br.text("main"); strings.Contains(main, "team-a") || strings.Contains(main, "worker") {
			t.Errorf("bob's page for /ui/apps/%s tells about the app: %q", app, main)
		}
	}
	br.screenshot("not-found")
	// Its streams, asked from a console page with bob's cookie: refused
	// (403 or 404, as the API answers), with nothing of the app's.
	br.allowConsole(`status of 40[34] .*/ui/apps/a-app/(logs|events)`)
	type answer struct {
		Status int    `json:"status"`
		Body   string `json:"body"`
	}
	for _, stream := range []string{"logs", "events"} {
		a := eval[answer](br, `fetch("/ui/apps/a-app/`+stream+`", {credentials: "same-origin"}).then(function (r) {
  return r.text().then(function (body) { return {status: r.status, body: body}; });
})`, chromedp.EvalAwaitPromise)
		if (a.Status != http.StatusNotFound && a.Status != http.StatusForbidden) || strings.Contains(a.Body, "hello from") || strings.Contains(a.Body, "tick") {
			t.Errorf("bob fetching a-app's %s from the console: status %d %q, want it refused", stream, a.Status, a.Body)
		}
	}
}

// TestBrowserPhone: the login, apps and app pages on a phone-sized screen
// (375x740, mobile emulation) fit its width: nothing scrolls sideways.
func TestBrowserPhone(t *testing.T) {
	b := startBerth(t, Options{})
	u := b.teamUser(t, "phone", "team-phone")
	app := "phone-app-with-a-longer-name"
	b.createTeamApp(t, u, app, "team-phone")
	b.deployLogging(t, u, app)
	b.do(t, "POST", "/apps/"+app+"/env", u, map[string]any{
		"envs": []map[string]any{{"name": "A_RATHER_LONG_VARIABLE_NAME_FOR_A_SMALL_SCREEN", "value": "https://example.invalid/a/long/public/value/that/does/not/break", "public": true}},
	}).want(t, http.StatusAccepted)

	br := newBrowser(t, b)
	br.setViewport(375, 740, true)
	br.visit("/ui/login")
	br.noHorizontalScroll()
	br.login(u.Email, u.Password)
	br.noHorizontalScroll()
	br.screenshot("apps")
	br.clickNav(`a[href="/ui/apps/` + app + `"]`)
	br.waitText("#logs", "tick")
	br.noHorizontalScroll()
	br.screenshot("app")
}
