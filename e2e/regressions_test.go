package e2e

import (
	"net/http"
	"testing"
)

// Regression tests for server bugs found by the e2e tests. Each comment
// says what was wrong and what the server does now.

// POST /tokens loaded the app named in the body without validating the name
// first (server/apps_endpoint.go createAppToken -> s.loadApp): a name with
// a control character reached the Store as a key and the answer was a 500.
// The name is now checked with names.App: 400.
func TestRegressionAppTokenNameValidated(t *testing.T) {
	b := startBerth(t, Options{})
	u := b.newUser(t, "tok")
	for _, n := range []string{"a\x00b", "x\n", "../x", "a/b"} {
		r := b.do(t, "POST", "/tokens", u, map[string]any{"appname": n})
		r.check(t, http.StatusBadRequest)
	}
}

// Answers of the router itself (unknown path, wrong method) lacked the
// request_id field and the X-Request-Id header every other error has
// (server/http.go jsonStatusHandler, server/routes.go handleSwitch notFound).
// They now go through startRequest and writeError like every other answer.
func TestRegressionRouterErrorsHaveRequestID(t *testing.T) {
	b := startBerth(t, Options{})
	b.do(t, "GET", "/no/such/endpoint", nil, nil).check(t, http.StatusNotFound)
	b.do(t, "PATCH", "/apps", nil, nil).check(t, http.StatusMethodNotAllowed)
}

// DELETE /users removed the account and its team memberships, but not its
// maintainer roles (server/users_endpoint.go removeUser), so whoever
// registered the same email next (registration is open) inherited the
// roles. removeUser now drops the user from every app's maintainers.
func TestRegressionRemovedUserLosesMaintainerRole(t *testing.T) {
	b := startBerth(t, Options{})
	owner := b.newUser(t, "owner")
	b.createApp(t, owner, "kept")
	leaver := b.newUser(t, "leaver")
	b.addMaintainer(t, owner, "kept", leaver.Email, "admin")
	b.do(t, "DELETE", "/users", leaver, nil).want(t, http.StatusOK)

	r := b.do(t, "GET", "/api/v1/repos/kept/maintainers/", owner, nil).want(t, http.StatusOK)
	if listHas(r, "username", leaver.Email) {
		t.Errorf("a removed user is still a maintainer: %s", r)
	}
	newcomer := b.register(t, leaver.Email)
	newcomer.Token = b.login(t, newcomer.Email, newcomer.Password)
	b.do(t, "GET", "/api/v1/repos/kept/", newcomer, nil).check(t, http.StatusForbidden)
	b.do(t, "POST", "/tokens", newcomer, map[string]any{"appname": "kept"}).check(t, http.StatusForbidden)
}

// With open registration (the default), anyone could register an email that
// config lists in admins before the operator created it (or after that
// admin removed the account) and become a site admin: createUser
// (server/users_endpoint.go) accepted it and authenticate (server/auth.go)
// grants Admin from cfg.IsAdmin. Anonymous registration of such an email is
// now refused (403); an admin or `berth admin create-user` may create it.
func TestRegressionConfigAdminEmailNotClaimableByRegistration(t *testing.T) {
	b := startBerth(t, Options{ExtraHCL: "admins = [\"boss@e2e.test\"]\n"})
	pw := "pw-" + randHex(8)
	body := map[string]any{"email": "boss@e2e.test", "password": pw}
	if r := b.do(t, "POST", "/users", nil, body); r.Code == http.StatusOK {
		mallory := &User{Email: "boss@e2e.test", Token: b.login(t, "boss@e2e.test", pw)}
		if r := b.do(t, "GET", "/users/info", mallory, nil); r.Obj()["is_admin"] == true {
			t.Errorf("a self-registered account for the configured admin email is a site admin: %s", r)
		}
		b.do(t, "GET", "/api/v1/events/", mallory, nil).check(t, http.StatusForbidden)
		t.Fatalf("anonymous registration of a configured admin email was accepted: %s", r)
	} else {
		r.check(t, http.StatusForbidden)
	}
	// Nor by a signed-in user who is not an admin, nor in other case.
	plain := b.newUser(t, "plain")
	b.do(t, "POST", "/users", plain, body).check(t, http.StatusForbidden)
	b.do(t, "POST", "/users", nil, map[string]any{"email": "Boss@E2E.test", "password": pw}).check(t, http.StatusForbidden)

	// A site admin may create it; it is then a site admin.
	b.do(t, "POST", "/users", b.Admin, body).want(t, http.StatusOK)
	boss := &User{Email: "boss@e2e.test", Token: b.login(t, "boss@e2e.test", pw)}
	if r := b.do(t, "GET", "/users/info", boss, nil).want(t, http.StatusOK); r.Obj()["is_admin"] != true {
		t.Errorf("the configured admin, created by an admin, is not a site admin: %s", r)
	}
}

// Removing an app did not revoke its app tokens (server/apps.go
// unregisterApp deletes releases and env only; auth.go kept accepting the
// token, and policy.go may() matches it by app name). When anyone registered
// an app of the same name later, the old token acted on the new app. Now
// removing an app revokes its tokens, and a token is bound to the app's
// creation time, so a later app of the same name never accepts it.
func TestRegressionAppTokenDiesWithItsApp(t *testing.T) {
	b := startBerth(t, Options{})
	first := b.newUser(t, "first")
	second := b.newUser(t, "second")
	b.createApp(t, first, "reused")
	tok := b.appToken(t, first, "reused")
	b.do(t, "GET", "/api/v1/repos/reused/", tok, nil).want(t, http.StatusOK)
	b.do(t, "DELETE", "/apps/reused", first, nil).want(t, http.StatusOK)
	b.do(t, "GET", "/users/info", tok, nil).check(t, http.StatusUnauthorized)
	b.createApp(t, second, "reused")
	r := b.do(t, "GET", "/api/v1/repos/reused/", tok, nil)
	if r.Code != http.StatusUnauthorized && r.Code != http.StatusForbidden {
		t.Errorf("an app token of a removed app acts on a new app of the same name (owned by someone else): %s", r)
	}
	r = b.do(t, "POST", "/api/v1/repos/reused/push/", tok, pushBody(metaVersion(), 1))
	if r.Code != http.StatusUnauthorized && r.Code != http.StatusForbidden {
		t.Errorf("... and pushes releases to it: %s", r)
	}
}

// An app token kept working after its creator lost the right to make it
// (server/policy.go may(): an app token was checked against the app name
// only, not against its creator's current role), so a maintainer removed
// from an app kept full app-token access to it. Authenticating an app token
// now checks that its creator may still issue app tokens on the app.
func TestRegressionAppTokenDiesWithCreatorsRole(t *testing.T) {
	b := startBerth(t, Options{})
	owner := b.newUser(t, "owner")
	exadmin := b.newUser(t, "exadmin")
	b.createApp(t, owner, "guarded")
	b.addMaintainer(t, owner, "guarded", exadmin.Email, "admin")
	tok := b.appToken(t, exadmin, "guarded")
	b.do(t, "DELETE", "/api/v1/repos/guarded/maintainers/"+exadmin.Email+"/", owner, nil).want(t, http.StatusOK)
	b.do(t, "GET", "/api/v1/repos/guarded/", exadmin, nil).want(t, http.StatusForbidden)
	r := b.do(t, "POST", "/api/v1/repos/guarded/push/", tok, pushBody(metaVersion(), 1))
	if r.Code != http.StatusUnauthorized && r.Code != http.StatusForbidden {
		t.Errorf("a removed maintainer's app token still pushes to the app: %s", r)
	}
}
