package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/api"
)

// TestTeamTokens: a CI token for a team, on the real binary. A member
// creates it with a description, the actions it may do and an expiry; its
// value is in that answer only. With it CI pushes and deploys the team's
// app, reads its state; it is refused on another team's app, on an action
// it was not given, and on everything that is not an app action (tokens,
// teams, apps list). The team's members list it (never the value, with its
// last use), other users neither see nor revoke it; revoked, it stops at
// once. An app's tokens are listed and revoked the same way.
func TestTeamTokens(t *testing.T) {
	bin := buildWebapp(t)
	trackProcs(t)
	b := startBerth(t, Options{})
	alice := b.newUser(t, "ttalice")
	bob := b.newUser(t, "ttbob")
	team, other := b.unique("ci-team"), b.unique("other-team")
	app, otherApp := b.unique("ttweb"), b.unique("ttelse")
	b.do(t, "POST", "/teams", alice, map[string]any{"name": team}).want(t, http.StatusOK)
	b.do(t, "POST", "/teams", bob, map[string]any{"name": other}).want(t, http.StatusOK)
	b.do(t, "POST", "/apps", alice, map[string]any{"name": app, "teamOwner": team}).want(t, http.StatusOK)
	b.do(t, "POST", "/apps", bob, map[string]any{"name": otherApp, "teamOwner": other}).want(t, http.StatusOK)
	b.push(t, bob, otherApp, webRelease(metaVersion(), bin, 1))

	// Created by a member; what cannot be granted is refused.
	b.do(t, "POST", "/teams/"+team+"/tokens", bob, map[string]any{"actions": []string{"app.read"}}).want(t, http.StatusForbidden)
	bad := b.do(t, "POST", "/teams/"+team+"/tokens", alice, map[string]any{"actions": []string{"app.delete"}}).want(t, http.StatusBadRequest)
	if !strings.Contains(bad.Str("error"), "app.deploy") {
		t.Errorf("the refusal does not list what may be granted: %s", bad)
	}
	r := b.do(t, "POST", "/teams/"+team+"/tokens", alice, map[string]any{
		"description": "GitLab CI", "actions": []string{"app.push", "app.deploy", "app.read"}, "expires_in": 3600,
	}).want(t, http.StatusCreated)
	created := decodeAs[api.TeamTokenCreated](t, r)
	if len(created.Token) < 64 || created.Team != team || created.Creator != alice.Email || created.Description != "GitLab CI" ||
		time.Until(created.Expires) > time.Hour || time.Until(created.Expires) < 59*time.Minute {
		t.Fatalf("created: %s", r)
	}
	ci := &User{Email: alice.Email, Token: created.Token}

	// CI pushes and deploys the team's app, and reads it.
	v1 := metaVersion()
	b.push(t, ci, app, webRelease(v1, bin, 1, "WEBAPP_VERSION=one"))
	dep := b.operate(t, "POST", "/api/v1/apps/", ci, map[string]any{"appname": app}).want(t, http.StatusAccepted)
	if v := b.waitRunning(t, ci, app, generationOf(t, dep)); v.MetaVersion != v1 {
		t.Fatalf("deployed %+v", v)
	}
	v2 := metaVersion()
	b.push(t, ci, app, webRelease(v2, bin, 1, "WEBAPP_VERSION=two"))
	dep = b.operate(t, "PUT", "/api/v1/apps/"+app+"/", ci, map[string]any{"meta_version": v2}).want(t, http.StatusAccepted)
	if v := b.waitRunning(t, ci, app, generationOf(t, dep)); v.MetaVersion != v2 {
		t.Fatalf("moved to %+v", v)
	}

	// Refused: another team's app, an action not given, anything else.
	b.do(t, "GET", "/api/v1/apps/"+otherApp+"/", ci, nil).want(t, http.StatusForbidden)
	b.do(t, "POST", "/api/v1/apps/", ci, map[string]any{"appname": otherApp}).want(t, http.StatusForbidden)
	b.do(t, "POST", "/apps/"+app+"/env", ci, map[string]any{"envs": []map[string]any{{"name": "X", "value": "1"}}}).want(t, http.StatusForbidden)
	b.do(t, "DELETE", "/apps/"+app, ci, nil).want(t, http.StatusForbidden)
	b.do(t, "GET", "/teams/"+team+"/tokens", ci, nil).want(t, http.StatusForbidden)
	b.do(t, "POST", "/teams/"+team+"/tokens", ci, map[string]any{"actions": []string{"app.read"}}).want(t, http.StatusForbidden)
	b.do(t, "POST", "/tokens", ci, map[string]any{"appname": app}).want(t, http.StatusForbidden)
	b.do(t, "GET", "/teams", ci, nil).want(t, http.StatusForbidden)
	b.do(t, "GET", "/users/info", ci, nil).want(t, http.StatusForbidden)

	// Listed for the team's members, never with the value.
	for _, path := range []string{"/teams/" + team + "/tokens", "/tokens"} {
		r := b.do(t, "GET", path, alice, nil).want(t, http.StatusOK)
		if strings.Contains(string(r.Raw), created.Token) {
			t.Fatalf("GET %s shows the token's value: %s", path, r)
		}
		l := decodeAs[[]api.TeamToken](t, r)
		if len(l) != 1 || l[0].ID != created.ID || strings.Join(l[0].Actions, ",") != "app.deploy,app.push,app.read" ||
			l[0].LastAccess == nil || l[0].Creator != alice.Email {
			t.Fatalf("GET %s: %s", path, r)
		}
	}
	if l := decodeAs[[]api.TeamToken](t, b.do(t, "GET", "/tokens", bob, nil).want(t, http.StatusOK)); len(l) != 0 {
		t.Fatalf("bob sees another team's tokens: %+v", l)
	}
	b.do(t, "GET", "/teams/"+team+"/tokens", bob, nil).want(t, http.StatusForbidden)
	b.do(t, "DELETE", "/tokens/"+created.ID, bob, nil).want(t, http.StatusNotFound)
	b.do(t, "GET", "/api/v1/apps/"+app+"/", ci, nil).want(t, http.StatusOK)

	// Revoked: it stops at once, and is listed no more.
	b.do(t, "DELETE", "/tokens/"+created.ID, alice, nil).want(t, http.StatusOK)
	b.do(t, "GET", "/api/v1/apps/"+app+"/", ci, nil).want(t, http.StatusUnauthorized)
	if l := decodeAs[[]api.TeamToken](t, b.do(t, "GET", "/teams/"+team+"/tokens", alice, nil).want(t, http.StatusOK)); len(l) != 0 {
		t.Fatalf("a revoked token is listed: %+v", l)
	}
	b.do(t, "DELETE", "/teams/"+team+"/tokens/"+created.ID, alice, nil).want(t, http.StatusNotFound)

	// App tokens: listed (no values) and revoked by their maintainers.
	t1 := b.appToken(t, alice, app)
	t2 := b.appToken(t, alice, app)
	b.do(t, "GET", "/apps/"+app+"/tokens", bob, nil).want(t, http.StatusForbidden)
	b.do(t, "GET", "/apps/"+app+"/tokens", t1, nil).want(t, http.StatusForbidden)
	lr := b.do(t, "GET", "/apps/"+app+"/tokens", alice, nil).want(t, http.StatusOK)
	if strings.Contains(string(lr.Raw), t1.Token) || strings.Contains(string(lr.Raw), t2.Token) {
		t.Fatalf("an app token's value is listed: %s", lr)
	}
	apl := decodeAs[[]api.AppTokenInfo](t, lr)
	if len(apl) != 2 || apl[0].App != app || apl[0].Creator != alice.Email || apl[0].ID == apl[1].ID {
		t.Fatalf("app tokens: %s", lr)
	}
	b.do(t, "DELETE", "/apps/"+app+"/tokens/"+apl[0].ID, bob, nil).want(t, http.StatusForbidden)
	b.do(t, "DELETE", "/apps/"+otherApp+"/tokens/"+apl[0].ID, bob, nil).want(t, http.StatusNotFound)
	b.do(t, "DELETE", "/apps/"+app+"/tokens/"+apl[0].ID, alice, nil).want(t, http.StatusOK)
	working := 0
	for _, tok := range []*User{t1, t2} {
		if b.do(t, "GET", "/apps/"+app, tok, nil).Code == http.StatusOK {
			working++
		}
	}
	if working != 1 {
		t.Fatalf("%d app tokens work after one of two was revoked", working)
	}
	if l := decodeAs[[]api.AppTokenInfo](t, b.do(t, "GET", "/apps/"+app+"/tokens", alice, nil).want(t, http.StatusOK)); len(l) != 1 || l[0].ID != apl[1].ID {
		t.Fatalf("after the revoke: %+v", l)
	}
}
