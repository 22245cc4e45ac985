package e2e

// Browser tests of the console's Services, Teams and Admin pages (issue
// 11), with the harness of browser_helpers_test.go.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestBrowserServicesTeamsAdmin: a user creates a team token on the team
// page (its value shown once, gone on reload), sees it authenticate, then
// revokes it through the confirmation and sees it refused; creates a
// redis instance on the Services page and binds it to an app (after the
// confirmation); another user sees neither; the admin opens Admin (users,
// backend health, audit events) while the user is refused it.
func TestBrowserServicesTeamsAdmin(t *testing.T) {
	b := startBerth(t, Options{})
	u := b.newUser(t, "pages")
	team := b.unique("team-pages")
	b.do(t, "POST", "/teams", u, map[string]any{"name": team}).want(t, http.StatusOK)
	app := b.unique("pages-app")
	b.do(t, "POST", "/api/v1/repos/", u, map[string]any{"appname": app, "team": team}).want(t, http.StatusCreated)
	svc := b.unique("pages-cache")
	b.do(t, "POST", "/services", u, yamlBody(fmt.Sprintf("id: %s\nbroker: redis\nteam: %s\ntarget: e2e-redis\n", svc, team))).want(t, http.StatusOK)
	other := b.newUser(t, "pages-other")
	otherTeam := b.unique("team-other")
	b.do(t, "POST", "/teams", other, map[string]any{"name": otherTeam}).want(t, http.StatusOK)

	br := newBrowser(t, b)
	br.login(u.Email, u.Password)
	if br.exists(`nav a[href="/ui/admin"]`) {
		t.Errorf("a user who is not an admin sees the Admin link")
	}

	// Teams: the team, its member; a token made from the form.
	br.clickNav(`nav a[href="/ui/teams"]`)
	br.clickNav(`a[href="/ui/teams/` + team + `"]`)
	if got := br.text("main"); !strings.Contains(got, u.Email) || !strings.Contains(got, "owner of "+app) {
		t.Fatalf("the team page reads %q, want the member and the role on the app", got)
	}
	br.fill("Description", "ci from the browser")
	br.click(`input[value="app.read"]`)
	br.submitForm(`form[action="/ui/teams/` + team + `/tokens"]`)
	if got := br.text(".new-token"); !strings.Contains(got, "will not be shown again") {
		t.Fatalf("the new token's box reads %q", got)
	}
	tok := eval[string](br, `document.getElementById("newtok-value").value`)
	if len(tok) < 32 {
		t.Fatalf("the token shown is %q", tok)
	}
	b.remember(tok, "a team token created in the browser")
	br.screenshot("team-token-created")
	tu := &User{Email: u.Email, Token: tok}
	b.do(t, "GET", "/apps/"+app, tu, nil).want(t, http.StatusOK)
	// Shown once: opened again, the page lists the token without its value.
	br.visit("/ui/teams/" + team)
	if br.exists("#newtok-value") || strings.Contains(br.html(), tok) {
		t.Fatal("the team page opened again shows the token's value")
	}
	if got := br.text("main"); !strings.Contains(got, "ci from the browser") {
		t.Fatalf("the team page does not list the token: %q", got)
	}
	br.screenshot("team")
	// Revoke: the confirmation page first; the token works until confirmed.
	br.submitForm(`form[action$="/revoke"]`)
	if got := br.text("main"); !strings.Contains(got, "Revoke token") {
		t.Fatalf("the revoke confirmation reads %q", got)
	}
	b.do(t, "GET", "/apps/"+app, tu, nil).want(t, http.StatusOK)
	br.submitForm(`form.confirm`)
	br.waitText("#result", "no longer works")
	b.do(t, "GET", "/apps/"+app, tu, nil).want(t, http.StatusUnauthorized)

	// Services: a redis instance from the form, then bound to the app.
	br.clickNav(`nav a[href="/ui/services"]`)
	inst := "pages-" + randHex(4)
	br.click(`details.new-instance summary`)
	br.fill("Name", inst)
	br.submitForm(`form[action="/ui/services/instances"]`)
	br.waitText("#result", "Created service instance "+inst)
	row := `tr:has(th[scope="row"])`
	if got := br.text(row); !strings.Contains(got, inst) || !strings.Contains(got, "ready") || !strings.Contains(got, "none") {
		t.Fatalf("the instance's row reads %q, want it ready and bound to none", got)
	}
	t.Cleanup(func() {
		// Unbound (if a failure left it bound), then removed from Redis.
		_, _ = b.try("DELETE", "/services/instances/"+inst+"/"+app, u, nil, nil)
		b.do(t, "DELETE", "/services/instances/"+inst, u, nil).want(t, http.StatusOK)
	})
	br.submitForm(`form[action="/ui/services/instances/` + inst + `/bind"]`)
	if got := br.text("main"); !strings.Contains(got, "Bind service instance "+inst+" to app "+app+"?") {
		t.Fatalf("the bind confirmation reads %q", got)
	}
	if apps := b.do(t, "GET", "/services/instances/"+inst, u, nil).want(t, http.StatusOK).Raw; strings.Contains(string(apps), app) {
		t.Fatalf("the instance is bound before the confirmation: %s", apps)
	}
	br.submitForm(`form.confirm`)
	br.waitText("#result", "Bound "+inst+" to app "+app)
	if got := br.text(row); !strings.Contains(got, app) {
		t.Fatalf("the instance's row after the bind reads %q", got)
	}
	if body := string(b.do(t, "GET", "/services/instances/"+inst, u, nil).want(t, http.StatusOK).Raw); !strings.Contains(body, app) {
		t.Fatalf("the API does not have the instance bound: %s", body)
	}
	br.screenshot("services")
	// Admin is refused to her, with the API's refusal.
	br.allowConsole(`403`)
	if st := br.visit("/ui/admin"); st != http.StatusForbidden {
		t.Errorf("the admin page for a user answered %d", st)
	}
	br.logout()

	// Another user sees neither the service, nor the instance, nor the team.
	br.login(other.Email, other.Password)
	br.clickNav(`nav a[href="/ui/services"]`)
	if got := br.html(); strings.Contains(got, inst) || strings.Contains(got, svc) {
		t.Error("another team's user sees the instance or the service")
	}
	br.clickNav(`nav a[href="/ui/teams"]`)
	if strings.Contains(br.html(), team) {
		t.Error("another team's user sees the team")
	}
	br.logout()

	// The admin: Admin in the nav; users, backend health, audit events.
	br.login(b.Admin.Email, b.Admin.Password)
	br.clickNav(`nav a[href="/ui/admin"]`)
	main := br.text("main")
	for _, want := range []string{u.Email, other.Email, "store", "secrets", "ok"} {
		if !strings.Contains(main, want) {
			t.Errorf("the admin page lacks %q: %q", want, main)
		}
	}
	br.screenshot("admin")
	br.clickNav(`a[href="/ui/admin/events"]`)
	if got := br.text("main"); !strings.Contains(got, "team.token.revoke") || !strings.Contains(got, "service.bind") {
		t.Errorf("the audit events page lacks the revoke and the bind: %q", got)
	}
	br.screenshot("admin-events")

	// On a phone's screen the three pages do not scroll sideways (their
	// tables scroll inside their own box).
	br.setViewport(375, 740, true)
	for _, p := range []string{"/ui/services", "/ui/teams/" + team, "/ui/admin"} {
		br.visit(p)
		br.noHorizontalScroll()
	}
	br.screenshot("admin-phone")
}
