package e2e

// Browser tests of the app page's actions (issue 11): each is a form that
// leads to a confirmation page, whose Confirm button does it through the
// API; nothing changes before that.

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/berthpaas/berth/api"
)

// choose selects value in the select labelled label, as a user picks an
// option.
func (br *Browser) choose(label, value string) {
	br.t.Helper()
	sel := br.field(label)
	br.run("choosing "+value+" in "+label, chromedp.SetValue(chromedp.CSS(sel), value))
	if got := eval[string](br, `document.querySelector(`+jsString(sel)+`).value`); got != value {
		br.t.Fatalf("browser: %s offers no option %q (it holds %q)", label, value, got)
	}
}

// askAndConfirm submits the app page's form of action, checks the
// confirmation page asks question (and that check, run there, passes),
// takes its screenshot, clicks its Confirm button and checks the browser
// is back on the app page with the action's message.
func (br *Browser) askAndConfirm(app, action, question, done string, check func()) {
	br.t.Helper()
	form := `form[action="/ui/apps/` + app + `/` + action + `"]`
	if st := br.submitForm(form); st != http.StatusOK {
		br.t.Fatalf("asking to %s: the confirmation page answered %d: %s", action, st, br.text("main"))
	}
	if got := br.text(".act-question"); got != question {
		br.t.Fatalf("the confirmation page of %s asks %q, want %q", action, got, question)
	}
	if !br.exists(`.act-confirm a[href="/ui/apps/` + app + `"]`) {
		br.t.Fatalf("the confirmation page of %s has no Cancel link back to the app", action)
	}
	if check != nil {
		check()
	}
	br.screenshot("confirm-" + strings.ReplaceAll(action, "/", "-"))
	if st := br.clickNav(`.act-confirm ` + form + ` button[type="submit"]`); st != http.StatusOK {
		br.t.Fatalf("confirming %s: the page after answered %d: %s", action, st, br.text("main"))
	}
	if p := br.path(); p != "/ui/apps/"+app {
		br.t.Fatalf("confirming %s led to %s: %s", action, p, br.text("main"))
	}
	if got := br.text(".notice"); !strings.Contains(got, done) {
		br.t.Fatalf("after %s the app page says %q, want %q", action, got, done)
	}
}

// TestBrowserActions: on the app page a user deploys a release, scales
// its proc, sets a private variable (masked from then on), deploys a newer
// release and rolls back to the one before, and binds a Redis instance,
// each through its confirmation page; every step is checked through the
// API, before confirmation (nothing changed) and after. Then, on a phone's
// screen, the forms and a confirmation page fit without sideways scrolling.
func TestBrowserActions(t *testing.T) {
	b := startBerth(t, Options{})
	u := b.teamUser(t, "actions", "team-actions")
	app := "actions-app"
	b.createTeamApp(t, u, app, "team-actions")
	mv1, mv2 := metaVersion(), metaVersion()
	for mv2 == mv1 {
		mv2 = metaVersion()
	}
	b.push(t, u, app, loggingRelease(mv1, 1))
	b.push(t, u, app, loggingRelease(mv2, 1))
	svc, inst := b.unique("uiredis"), b.unique("uicache")
	b.do(t, "POST", "/services", u, yamlBody(fmt.Sprintf("id: %s\nbroker: redis\nteam: team-actions\ntarget: e2e-redis\n", svc))).want(t, http.StatusOK)
	b.do(t, "POST", "/services/instances", u, map[string]any{"name": inst, "service_name": svc}).want(t, http.StatusOK)
	t.Cleanup(func() { b.do(t, "DELETE", "/services/instances/"+inst, u, nil) })
	generation := func() int64 {
		t.Helper()
		r := b.do(t, "GET", "/api/v1/apps/"+app+"/", u, nil)
		if r.Code == http.StatusNotFound {
			return 0
		}
		return decodeAs[api.DeployedApp](t, r.want(t, http.StatusOK)).Generation
	}

	br := newBrowser(t, b)
	br.login(u.Email, u.Password)
	br.clickNav(`a[href="/ui/apps/` + app + `"]`)

	// Deploy the older release.
	br.choose("Release to deploy", mv1)
	br.askAndConfirm(app, "deploy", "Deploy release "+mv1+" of "+app+"?", "Deploy started", func() {
		b.do(t, "GET", "/api/v1/apps/"+app+"/", u, nil).want(t, http.StatusNotFound)
	})
	br.waitText("#deploy-progress", "running")
	if v := b.waitRunning(t, u, app, 1); v.MetaVersion != mv1 {
		t.Fatalf("deployed %s, want %s", v.MetaVersion, mv1)
	}

	// Scale the worker from 1 to 2.
	br.visit("/ui/apps/" + app)
	gen := generation()
	br.fill("Instances of worker", "2")
	br.askAndConfirm(app, "scale", "Scale worker of "+app+" from 1 to 2 instances?", "Scale started", func() {
		if p := b.proc(t, u, app, "worker"); p.NumInstances != 1 {
			t.Fatalf("the confirmation page scaled: %+v", p)
		}
	})
	b.waitRunning(t, u, app, gen+1)
	if p := b.proc(t, u, app, "worker"); p.NumInstances != 2 || len(p.Instances) != 2 {
		t.Fatalf("after the scale: %d wanted, %d instances", p.NumInstances, len(p.Instances))
	}

	// A private variable: never in a page, masked on the app page.
	secret := "s3cr3t-" + randHex(12)
	b.remember(secret, "the private variable set in the browser")
	gen = generation()
	br.fill("Name", "DB_PASSWORD")
	br.fill("Value", secret)
	br.click("#env-private")
	br.askAndConfirm(app, "env", "Set the private variable DB_PASSWORD of "+app+"?", "Variable set", func() {
		if strings.Contains(br.html(), secret) {
			t.Fatal("the confirmation page holds the private value")
		}
		for _, v := range decodeAs[[]api.EnvVar](t, b.do(t, "GET", "/apps/"+app+"/env", u, nil).want(t, http.StatusOK)) {
			if v.Name == "DB_PASSWORD" {
				t.Fatal("the confirmation page set the variable")
			}
		}
	})
	b.waitRunning(t, u, app, gen+1)
	br.visit("/ui/apps/" + app)
	if row := br.text(`tr:has(button[aria-label="Unset DB_PASSWORD"])`); !strings.Contains(row, "private (hidden)") {
		t.Fatalf("the env row of DB_PASSWORD reads %q, want it masked", row)
	}
	if strings.Contains(br.html(), secret) {
		t.Fatal("the app page holds the private value")
	}
	found := false
	for _, v := range decodeAs[[]api.EnvVar](t, b.do(t, "GET", "/apps/"+app+"/env", u, nil).want(t, http.StatusOK)) {
		found = found || (v.Name == "DB_PASSWORD" && !v.Public)
	}
	if !found {
		t.Fatal("DB_PASSWORD is not a private variable of the app")
	}
	br.screenshot("app-private-env")

	// Deploy the newer release, then roll back to the one that ran before.
	gen = generation()
	br.choose("Release to deploy", mv2)
	br.askAndConfirm(app, "deploy", "Deploy release "+mv2+" of "+app+"?", "Deploy started", nil)
	if v := b.waitRunning(t, u, app, gen+1); v.MetaVersion != mv2 {
		t.Fatalf("deployed %s, want %s", v.MetaVersion, mv2)
	}
	br.visit("/ui/apps/" + app)
	gen = generation()
	br.askAndConfirm(app, "rollback", "Roll "+app+" back to the release that ran before?", "Rollback started", func() {
		if v := b.deployed(t, u, app); v.MetaVersion != mv2 {
			t.Fatalf("the confirmation page rolled back: %s", v.MetaVersion)
		}
	})
	br.waitText("#deploy-progress", "running")
	if v := b.waitRunning(t, u, app, gen+1); v.MetaVersion != mv1 {
		t.Fatalf("rolled back to %s, want %s", v.MetaVersion, mv1)
	}

	// Bind the Redis instance.
	bound := func() []string {
		return decodeAs[api.ServiceInstance](t, b.do(t, "GET", "/services/instances/"+inst, u, nil).want(t, http.StatusOK)).Apps
	}
	gen = generation()
	br.choose("Service instance", inst)
	br.askAndConfirm(app, "bind", "Bind the "+svc+" instance "+inst+" to "+app+"?", "Service instance bound", func() {
		if apps := bound(); len(apps) != 0 {
			t.Fatalf("the confirmation page bound: %v", apps)
		}
	})
	if apps := bound(); !slices.Equal(apps, []string{app}) {
		t.Fatalf("the instance is bound to %v, want %s", apps, app)
	}
	b.waitRunning(t, u, app, gen+1)
	br.visit("/ui/apps/" + app)
	if got := br.text("ul.bound"); !strings.Contains(got, svc+"/"+inst) || !strings.Contains(got, "Unbind "+inst) {
		t.Fatalf("the bound services read %q", got)
	}
	br.screenshot("app-actions")

	// On a phone: the app page's forms and a confirmation page.
	br.setViewport(375, 740, true)
	br.visit("/ui/apps/" + app)
	br.noHorizontalScroll()
	br.screenshot("phone-app")
	br.fill("Instances of worker", "1")
	br.submitForm(`form[action="/ui/apps/` + app + `/scale"]`)
	if got := br.text(".act-question"); got != "Scale worker of "+app+" from 2 to 1 instance?" {
		t.Fatalf("the phone's confirmation page asks %q", got)
	}
	br.noHorizontalScroll()
	br.screenshot("phone-confirm")
	br.clickNav(`.act-confirm a[href="/ui/apps/` + app + `"]`) // Cancel
	if p := b.proc(t, u, app, "worker"); p.NumInstances != 2 {
		t.Fatalf("Cancel scaled the worker to %d", p.NumInstances)
	}
}

// TestBrowserAppPageReopened: every action ends back on the app page, so a
// user opens it again and again in one tab; each time its log tail and
// deploy progress follow (the streams of the pages left are closed: a
// browser keeps at most 6 connections to a host, and a tab whose old
// pages held theirs could load nothing more).
func TestBrowserAppPageReopened(t *testing.T) {
	b := startBerth(t, Options{})
	u := b.teamUser(t, "reopen", "team-reopen")
	app := "reopen-app"
	b.createTeamApp(t, u, app, "team-reopen")
	b.deployLogging(t, u, app)
	br := newBrowser(t, b)
	br.login(u.Email, u.Password)
	for i := 0; i < 5; i++ {
		br.visit("/ui/apps/" + app)
		br.waitText("#logs", "tick")
		br.waitText("#deploy-progress", "running")
		br.clickNav(`nav a[href="/ui/apps"]`) // away to another page
	}
}
