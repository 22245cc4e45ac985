package engine

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/engine/state"
)

// addTeam records a team with its members.
func addTeam(t *testing.T, e *Engine, name string, users ...string) *state.Team {
	t.Helper()
	tm := &state.Team{ID: state.NewID(), Name: name, Users: users, Created: time.Now().UTC()}
	if _, err := state.Create(context.Background(), e.store, state.TeamKey(name), tm); err != nil {
		t.Fatal(err)
	}
	return tm
}

// addTeamApp registers an app owned by id and by team.
func addTeamApp(t *testing.T, e *Engine, id *Identity, name, team string) {
	t.Helper()
	if _, err := e.RegisterApp(context.Background(), id, NewApp{Name: name, TeamOwner: team}); err != nil {
		t.Fatal(err)
	}
}

// authAs authenticates tok, as the HTTP layer does with a request's token.
func authAs(e *Engine, tok string) (*Identity, error) {
	return e.Authenticate(context.Background(), tok)
}

// teamTokenFixture: alice is in team ci-team, which owns app web; bob's
// team other owns app elsewhere. Alice creates a token for ci-team that
// may deploy and read.
type teamTokenFixture struct {
	e          *Engine
	alice, bob *Identity
	tok        string
	rec        *state.TeamToken
}

func newTeamTokenFixture(t *testing.T) *teamTokenFixture {
	t.Helper()
	e := newDeployEngine(t)
	f := &teamTokenFixture{e: e, alice: addUser(t, e, "alice@example.com"), bob: addUser(t, e, "bob@example.com")}
	addTeam(t, e, "ci-team", f.alice.Email)
	addTeam(t, e, "other", f.bob.Email)
	addTeamApp(t, e, f.alice, "web", "ci-team")
	addTeamApp(t, e, f.bob, "elsewhere", "other")
	push(t, e, "web", "v1")
	push(t, e, "elsewhere", "v1")
	var err error
	f.rec, f.tok, err = e.CreateTeamToken(context.Background(), f.alice, TeamTokenRequest{
		Team: "ci-team", Description: "CI", Actions: []string{"app.deploy", "app.read"}, ExpiresIn: 3600,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestTeamTokenDeploysTheTeamsAppOnly(t *testing.T) {
	f := newTeamTokenFixture(t)
	ctx := context.Background()
	id, err := authAs(f.e, f.tok)
	if err != nil {
		t.Fatal(err)
	}
	if id.Admin || id.Team == nil || id.Team.Team != "ci-team" {
		t.Fatalf("identity %+v", id)
	}
	if got := id.Name(); !strings.HasPrefix(got, "team-token:ci-team/"+f.rec.ID) || !strings.Contains(got, "alice@example.com") {
		t.Fatalf("audit name %q", got)
	}
	if _, err := f.e.DeployLatest(ctx, id, "web", DeploySettings{}); err != nil {
		t.Fatalf("the team token could not deploy its team's app: %v", err)
	}
	done(f.e, "web")
	// Moving the app to another release is part of deploying.
	push(t, f.e, "web", "v2")
	if _, err := f.e.DeployVersion(ctx, id, "web", "v2", DeploySettings{}); err != nil {
		t.Fatalf("app.deploy does not cover moving to another release: %v", err)
	}
	_, err = f.e.DeployLatest(ctx, id, "elsewhere", DeploySettings{})
	wantKind(t, "deploy of another team's app", err, ErrForbidden)
	if !strings.Contains(err.Error(), `team "ci-team"`) {
		t.Fatalf("message %q", err)
	}
	web, err := state.GetApp(ctx, f.e.store, "web")
	if err != nil {
		t.Fatal(err)
	}
	for _, act := range []Action{ActAppEnvWrite, ActAppEnvSet, ActAppScale, ActProcPatch, ActProcUndeploy, ActAppUndeploy, ActAppDelete, ActAppToken, ActTeamTokenCreate, ActAppList, ActEventsRead} {
		err := f.e.Allowed(ctx, id, act, web)
		wantKind(t, "an action not granted ("+string(act)+")", err, ErrForbidden)
	}
	for _, act := range []Action{ActAppRead, ActAppDeploy, ActAppUpdate, ActProcDeploy} {
		if err := f.e.Allowed(ctx, id, act, web); err != nil {
			t.Fatalf("%s was granted (app.read, app.deploy): %v", act, err)
		}
	}
	// A scaling token may patch procs (scale them), and only that.
	_, scaleTok, err := f.e.CreateTeamToken(ctx, f.alice, TeamTokenRequest{Team: "ci-team", Actions: []string{"app.scale"}})
	if err != nil {
		t.Fatal(err)
	}
	sid, err := authAs(f.e, scaleTok)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.e.Allowed(ctx, sid, ActProcPatch, web); err != nil {
		t.Fatalf("app.scale does not cover proc.patch: %v", err)
	}
	wantKind(t, "app.scale token deploying", f.e.Allowed(ctx, sid, ActAppUpdate, web), ErrForbidden)
	// A token cannot make or see tokens.
	_, _, err = f.e.CreateTeamToken(ctx, id, TeamTokenRequest{Team: "ci-team", Actions: []string{"app.read"}})
	wantKind(t, "a team token creating a token", err, ErrForbidden)
	_, err = f.e.ListTeamTokens(ctx, id, "ci-team")
	wantKind(t, "a team token listing tokens", err, ErrForbidden)
}

func TestTeamTokenOnAppOfARecreatedTeam(t *testing.T) {
	f := newTeamTokenFixture(t)
	ctx := context.Background()
	// An app that names the team but was given a team of that name
	// created since is not the team's.
	web, _ := state.GetApp(ctx, f.e.store, "web")
	web.TeamIDs = map[string]string{"ci-team": "some-other-id"}
	id, err := authAs(f.e, f.tok)
	if err != nil {
		t.Fatal(err)
	}
	wantKind(t, "app of another team of the same name", f.e.Allowed(ctx, id, ActAppRead, web), ErrForbidden)
	// The team removed and re-created: the token is dead.
	if err := state.Delete(ctx, f.e.store, state.TeamKey("ci-team")); err != nil {
		t.Fatal(err)
	}
	addTeam(t, f.e, "ci-team", f.alice.Email)
	_, err = authAs(f.e, f.tok)
	wantKind(t, "token of a re-created team", err, ErrUnauthenticated)
	list, err := f.e.ListTeamTokens(ctx, f.alice, "")
	if err != nil || len(list) != 0 {
		t.Fatalf("list after the team was re-created: %v %+v", err, list)
	}
}

func TestTeamTokenRevokedAndExpired(t *testing.T) {
	f := newTeamTokenFixture(t)
	ctx := context.Background()
	// Bob is not in ci-team: he neither sees nor revokes its token.
	if _, err := f.e.RevokeTeamToken(ctx, f.bob, "", f.rec.ID); !errorsIs(err, ErrNotFound) {
		t.Fatalf("bob revoking ci-team's token: %v", err)
	}
	if _, err := f.e.RevokeTeamToken(ctx, f.bob, "ci-team", f.rec.ID); !errorsIs(err, ErrForbidden) {
		t.Fatalf("bob revoking through ci-team: %v", err)
	}
	if l, _ := f.e.ListTeamTokens(ctx, f.bob, ""); len(l) != 0 {
		t.Fatalf("bob sees %+v", l)
	}
	if _, err := f.e.RevokeTeamToken(ctx, f.alice, "", f.rec.ID); err != nil {
		t.Fatal(err)
	}
	_, err := authAs(f.e, f.tok)
	wantKind(t, "a revoked token", err, ErrUnauthenticated)
	if l, _ := f.e.ListTeamTokens(ctx, f.alice, "ci-team"); len(l) != 0 {
		t.Fatalf("revoked token still listed: %+v", l)
	}
	_, err = f.e.RevokeTeamToken(ctx, f.alice, "", f.rec.ID)
	wantKind(t, "revoking twice", err, ErrNotFound)
	for _, bad := range []string{"", "../../users/x", strings.ToUpper(f.rec.ID), f.rec.ID + "0"} {
		_, err = f.e.RevokeTeamToken(ctx, f.alice, "", bad)
		wantKind(t, "revoking "+bad, err, ErrNotFound)
	}

	// Expiry: a token past its expiry is refused and no longer listed.
	rec, tok, err := f.e.CreateTeamToken(ctx, f.alice, TeamTokenRequest{Team: "ci-team", Actions: []string{"app.read"}, ExpiresIn: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := authAs(f.e, tok); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	time.Sleep(2100 * time.Millisecond)
	_, err = authAs(f.e, tok)
	wantKind(t, "an expired token", err, ErrUnauthenticated)
	if l, _ := f.e.ListTeamTokens(ctx, f.alice, "ci-team"); len(l) != 0 {
		t.Fatalf("expired token %s still listed: %+v", rec.ID, l)
	}
}

func TestTeamTokenCreator(t *testing.T) {
	f := newTeamTokenFixture(t)
	ctx := context.Background()
	// The creator leaves the team: refused (403), kept; back in: works.
	setUsers := func(users ...string) {
		if _, _, err := state.Update(ctx, f.e.store, state.TeamKey("ci-team"), func(tm *state.Team) error { tm.Users = users; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	carol := addUser(t, f.e, "carol@example.com")
	setUsers(carol.Email)
	_, err := authAs(f.e, f.tok)
	wantKind(t, "creator left the team", err, ErrForbidden)
	if l, _ := f.e.ListTeamTokens(ctx, carol, "ci-team"); len(l) != 1 {
		t.Fatalf("a team member should still see the token: %+v", l)
	}
	setUsers(carol.Email, f.alice.Email)
	if _, err := authAs(f.e, f.tok); err != nil {
		t.Fatalf("creator back in the team: %v", err)
	}
	// The creator's account removed (as DELETE /users does): the token
	// dies with it, even if the email is registered again.
	if err := state.Delete(ctx, f.e.store, state.UserKey(f.alice.Email)); err != nil {
		t.Fatal(err)
	}
	if err := f.e.revokeUserTokens(ctx, f.alice.Email, ""); err != nil {
		t.Fatal(err)
	}
	addUser(t, f.e, f.alice.Email)
	_, err = authAs(f.e, f.tok)
	wantKind(t, "token of a removed creator", err, ErrUnauthenticated)
	if l, _ := f.e.ListTeamTokens(ctx, carol, "ci-team"); len(l) != 0 {
		t.Fatalf("a removed creator's token is still listed: %+v", l)
	}
}

func TestTeamTokenRecreatedCreatorAccount(t *testing.T) {
	f := newTeamTokenFixture(t)
	ctx := context.Background()
	// The account deleted without its tokens revoked, and the email taken
	// again: the new account does not inherit the token.
	if err := state.Delete(ctx, f.e.store, state.UserKey(f.alice.Email)); err != nil {
		t.Fatal(err)
	}
	addUser(t, f.e, f.alice.Email)
	_, err := authAs(f.e, f.tok)
	wantKind(t, "token of an earlier account of the same email", err, ErrUnauthenticated)
}

func TestTeamTokenCreateChecks(t *testing.T) {
	f := newTeamTokenFixture(t)
	ctx := context.Background()
	cases := []struct {
		who  *Identity
		in   TeamTokenRequest
		kind error
	}{
		{f.bob, TeamTokenRequest{Team: "ci-team", Actions: []string{"app.read"}}, ErrForbidden},
		{f.alice, TeamTokenRequest{Team: "nope", Actions: []string{"app.read"}}, ErrNotFound},
		{f.alice, TeamTokenRequest{Team: "ci-team"}, ErrInvalid},
		{f.alice, TeamTokenRequest{Team: "ci-team", Actions: []string{"app.delete"}}, ErrInvalid},
		{f.alice, TeamTokenRequest{Team: "ci-team", Actions: []string{"app.token.create"}}, ErrInvalid},
		{f.alice, TeamTokenRequest{Team: "ci-team", Actions: []string{"events.read"}}, ErrInvalid},
		{f.alice, TeamTokenRequest{Team: "ci-team", Actions: []string{"no.such"}}, ErrInvalid},
		{f.alice, TeamTokenRequest{Team: "ci-team", Actions: []string{"app.read"}, ExpiresIn: -1}, ErrInvalid},
		{f.alice, TeamTokenRequest{Team: "ci-team", Actions: []string{"app.read"}, ExpiresIn: 1 << 40}, ErrInvalid},
		{&Identity{Email: f.alice.Email, AppToken: true, App: "web"}, TeamTokenRequest{Team: "ci-team", Actions: []string{"app.read"}}, ErrForbidden},
	}
	for i, c := range cases {
		_, _, err := f.e.CreateTeamToken(ctx, c.who, c.in)
		wantKind(t, "case "+string(rune('0'+i)), err, c.kind)
	}
	if g := GrantableActions(); !contains(g, "app.deploy") || contains(g, "app.delete") || contains(g, "team.token.create") {
		t.Fatalf("grantable actions %v", g)
	}
}

func contains(l []string, s string) bool { return Contains(l, s) }

func TestTeamTokenListNeverShowsTheValue(t *testing.T) {
	f := newTeamTokenFixture(t)
	ctx := context.Background()
	if _, err := authAs(f.e, f.tok); err != nil {
		t.Fatal(err)
	}
	l, err := f.e.ListTeamTokens(ctx, f.alice, "")
	if err != nil || len(l) != 1 {
		t.Fatalf("%v %+v", err, l)
	}
	got := l[0]
	if got.ID != f.rec.ID || got.Team != "ci-team" || got.Description != "CI" || got.Creator != "alice@example.com" ||
		strings.Join(got.Actions, ",") != "app.deploy,app.read" || got.LastUsed == nil || time.Until(got.Expires) > time.Hour {
		t.Fatalf("listed %+v", got)
	}
	b, _ := json.Marshal(l)
	if strings.Contains(string(b), f.tok) {
		t.Fatalf("the token's value is in the list: %s", b)
	}
	// A site admin sees every team's tokens.
	root := &Identity{Email: "root@example.com", Admin: true}
	if l, err := f.e.ListTeamTokens(ctx, root, ""); err != nil || len(l) != 1 {
		t.Fatalf("admin list: %v %+v", err, l)
	}
}

func TestAppTokensListAndRevoke(t *testing.T) {
	f := newTeamTokenFixture(t)
	ctx := context.Background()
	web, _ := state.GetApp(ctx, f.e.store, "web")
	tok1, _, err := f.e.issueAppToken(ctx, f.alice.Email, web, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tok2, _, err := f.e.issueAppToken(ctx, f.alice.Email, web, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	l, err := f.e.ListAppTokens(ctx, f.alice, web)
	if err != nil || len(l) != 2 {
		t.Fatalf("%v %+v", err, l)
	}
	b, _ := json.Marshal(l)
	if strings.Contains(string(b), tok1) || strings.Contains(string(b), tok2) {
		t.Fatalf("a value is listed: %s", b)
	}
	var id1 string
	for _, x := range l {
		if strings.HasPrefix(tokenHash(tok1), x.ID) {
			id1 = x.ID
		}
		if x.Creator != "alice@example.com" || x.App != "web" {
			t.Fatalf("listed %+v", x)
		}
	}
	if id1 == "" {
		t.Fatalf("no id for the first token in %+v", l)
	}
	if err := f.e.RevokeAppToken(ctx, f.alice, web, id1); err != nil {
		t.Fatal(err)
	}
	if _, err := authAs(f.e, tok1); !errorsIs(err, ErrUnauthenticated) {
		t.Fatalf("revoked app token: %v", err)
	}
	if _, err := authAs(f.e, tok2); err != nil {
		t.Fatalf("the other app token: %v", err)
	}
	if l, _ := f.e.ListAppTokens(ctx, f.alice, web); len(l) != 1 || l[0].ID == id1 {
		t.Fatalf("after revoke: %+v", l)
	}
	wantKind(t, "revoke again", f.e.RevokeAppToken(ctx, f.alice, web, id1), ErrNotFound)
	// Another app's tokens are not this app's.
	other, _ := state.GetApp(ctx, f.e.store, "elsewhere")
	wantKind(t, "revoke through another app", f.e.RevokeAppToken(ctx, f.alice, other, tokenHash(tok2)[:16]), ErrNotFound)
}
