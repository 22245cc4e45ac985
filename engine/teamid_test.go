package engine

import (
	"errors"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends/storetest"
	"github.com/berthpaas/berth/engine/state"
)

// An app is bound to the ID of the team it was registered for. The race
// of issue 8: DELETE /teams checks that the team owns no app, an app is
// registered for it before the delete; then someone else creates a team
// of that name. Either the delete or the registration must fail, and the
// new team's member gets no role on the app in any case.
func TestAppTeamBoundToTeamID(t *testing.T) {
	s, _ := newTestEngine(t, nil)
	ctx := t.Context()
	for _, e := range []string{"a@b.co", "thief@b.co"} {
		if _, err := CreateUser(ctx, s.store, e, "password", false); err != nil {
			t.Fatal(err)
		}
	}
	old := &state.Team{ID: state.NewID(), Name: "t", Users: []string{"a@b.co"}, Created: time.Now()}
	if _, err := state.Create(ctx, s.store, state.TeamKey("t"), old); err != nil {
		t.Fatal(err)
	}

	// The race: the app is registered while DELETE /teams/t runs, after
	// its check for apps.
	var regErr error
	hooked := &storetest.Hooked{Store: s.store, Hooks: map[string]func(){"list:" + state.AppsPrefix: func() {
		_, regErr = s.RegisterApp(ctx, &Identity{Email: "a@b.co"}, NewApp{Name: "raced", TeamOwner: "t"})
	}}}
	s.store = hooked
	delErr := s.RemoveTeam(ctx, &Identity{Email: "a@b.co"}, "t")
	s.store = hooked.Store
	if regErr == nil && delErr == nil {
		t.Errorf("both the team's delete and the registration of an app for it succeeded")
	}
	if regErr != nil && delErr != nil {
		t.Errorf("both failed: registration %v, delete %v", regErr, delErr)
	}
	if delErr != nil {
		if !errors.Is(delErr, ErrConflict) {
			t.Errorf("the delete that lost the race: %v (want 409)", delErr)
		}
		// The team is really deleted now, behind the app's back (as by
		// an older Berth, or a store edited by hand).
		if err := state.Delete(ctx, s.store, state.TeamKey("t")); err != nil {
			t.Fatal(err)
		}
	}
	app, err := state.GetApp(ctx, s.store, "raced")
	if err != nil {
		app = &state.App{Name: "raced", Owner: "a@b.co", TeamOwner: "t", Teams: []string{"t"}, TeamIDs: map[string]string{"t": old.ID},
			Maintainers: map[string]string{"a@b.co": state.RoleOwner}, Created: time.Now()}
	} else if app.TeamIDs["t"] != old.ID {
		t.Errorf("the app recorded team IDs %v, want t=%s", app.TeamIDs, old.ID)
	}

	// Someone else creates a team of the old name.
	reborn := &state.Team{ID: state.NewID(), Name: "t", Users: []string{"thief@b.co"}, Created: time.Now()}
	if _, err := state.Create(ctx, s.store, state.TeamKey("t"), reborn); err != nil {
		t.Fatal(err)
	}
	thief := &Identity{Email: "thief@b.co"}
	if err := s.Allowed(ctx, thief, ActAppRead, app); err == nil {
		t.Errorf("a member of the re-created team may read the app")
	}
	if tm, _ := s.teamsOf(ctx, app); s.roleOn(thief, app, tm) != "" {
		t.Errorf("a member of the re-created team has role %q on the app", s.roleOn(thief, app, tm))
	}
	// The owner keeps its role.
	if err := s.Allowed(ctx, &Identity{Email: "a@b.co"}, ActAppDelete, app); err != nil {
		t.Errorf("the owner: %v", err)
	}
	// The new team is not held by the old team's app: it may be deleted.
	if err := s.RemoveTeam(ctx, &Identity{Email: "thief@b.co"}, "t"); err != nil {
		t.Errorf("deleting the re-created team: %v", err)
	}
}

// App records older than team IDs keep working for their team (created
// before the app) and are pinned to it by the sweep; a team created after
// the app under the name of a deleted one gets nothing, before or after
// the sweep (which pins the app to a tombstone).
func TestAppTeamIDsPinned(t *testing.T) {
	s, _ := newTestEngine(t, nil)
	ctx := t.Context()
	t0 := time.Now().Add(-time.Hour)
	if _, err := state.Create(ctx, s.store, state.TeamKey("kept"), &state.Team{Name: "kept", Users: []string{"a@b.co"}, Created: t0}); err != nil {
		t.Fatal(err)
	}
	legacy := func(name, team string) {
		a := &state.App{Name: name, Owner: "o@b.co", TeamOwner: team, Teams: []string{team}, Maintainers: map[string]string{"o@b.co": state.RoleOwner}, Created: t0.Add(time.Minute)}
		if _, err := state.Create(ctx, s.store, state.AppKey(name), a); err != nil {
			t.Fatal(err)
		}
	}
	legacy("keptapp", "kept")
	legacy("goneapp", "gone") // its team was deleted behind its back
	if _, err := state.Create(ctx, s.store, state.TeamKey("gone"), &state.Team{ID: state.NewID(), Name: "gone", Users: []string{"thief@b.co"}, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		for app, who := range map[string]*Identity{"keptapp": {Email: "a@b.co"}, "goneapp": {Email: "thief@b.co"}} {
			a, err := state.GetApp(ctx, s.store, app)
			if err != nil {
				t.Fatal(err)
			}
			err = s.Allowed(ctx, who, ActAppRead, a)
			if app == "keptapp" && err != nil {
				t.Errorf("%s: the team's member may not read its app: %v", when, err)
			}
			if app == "goneapp" && err == nil {
				t.Errorf("%s: the member of a team created after the app may read it", when)
			}
		}
	}
	check("before the sweep")
	s.pinIdentities(ctx)
	check("after the sweep")
	kept, _, _ := state.Get[state.Team](ctx, s.store, state.TeamKey("kept"))
	ka, _ := state.GetApp(ctx, s.store, "keptapp")
	ga, _ := state.GetApp(ctx, s.store, "goneapp")
	if kept.ID == "" || ka.TeamIDs["kept"] != kept.ID || ga.TeamIDs["gone"] != tombstone {
		t.Errorf("pinned: keptapp %v (team ID %q), goneapp %v", ka.TeamIDs, kept.ID, ga.TeamIDs)
	}
}

// A maintainer role (or team membership) given to a user while
// RemoveUser removes the account must not survive it: whoever registers
// the email next would inherit it. The account is deleted behind the check
// that the user exists; the grant then fails (NotFound) instead. (server/
// tests the maintainer grant through its endpoint too.)
func TestGrantRacesUserRemoval(t *testing.T) {
	s, _ := newTestEngine(t, nil)
	ctx := t.Context()
	if _, err := CreateUser(ctx, s.store, "o@b.co", "password", false); err != nil {
		t.Fatal(err)
	}
	owner := &Identity{Email: "o@b.co"}
	if _, err := s.RegisterApp(ctx, owner, NewApp{Name: "kept"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTeam(ctx, owner, "t"); err != nil {
		t.Fatal(err)
	}
	for _, grant := range []struct {
		name string
		run  func() error
	}{
		{"maintainer", func() error {
			_, err := s.AddMaintainer(ctx, owner, "kept", "leaver@b.co", state.RoleAdmin)
			return err
		}},
		{"team member", func() error { return s.AddTeamUser(ctx, owner, "t", "leaver@b.co") }},
	} {
		if _, err := CreateUser(ctx, s.store, "leaver@b.co", "password", false); err != nil {
			t.Fatal(err)
		}
		var rmErr error
		hooked := &storetest.Hooked{Store: s.store, Hooks: map[string]func(){"get:" + state.UserKey("leaver@b.co"): func() {
			rmErr = s.RemoveUser(ctx, &Identity{Email: "leaver@b.co"})
		}}}
		s.store = hooked
		err := grant.run()
		s.store = hooked.Store
		if rmErr != nil {
			t.Fatalf("%s: removing the user: %v", grant.name, rmErr)
		}
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: granted to a user removed meanwhile: %v (want not found)", grant.name, err)
		}
		// The email registered again has no role and is in no team.
		if _, err := CreateUser(ctx, s.store, "leaver@b.co", "password", false); err != nil {
			t.Fatal(err)
		}
		app, _ := state.GetApp(ctx, s.store, "kept")
		if err := s.Allowed(ctx, &Identity{Email: "leaver@b.co"}, ActAppRead, app); err == nil {
			t.Errorf("%s: the re-registered email has a role on the app (maintainers %v)", grant.name, app.Maintainers)
		}
		if tm, _, _ := state.Get[state.Team](ctx, s.store, state.TeamKey("t")); Contains(tm.Users, "leaver@b.co") {
			t.Errorf("%s: the re-registered email is in the team: %v", grant.name, tm.Users)
		}
		if err := s.RemoveUser(ctx, &Identity{Email: "leaver@b.co"}); err != nil {
			t.Fatal(err)
		}
	}
}
