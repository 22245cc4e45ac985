package engine

import (
	"errors"
	"testing"
)

func TestTeams(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	ctx := t.Context()
	a := mustUser(t, e, "a@b.co", "secret1", false)
	b := mustUser(t, e, "b@b.co", "secret1", false)
	admin := &Identity{Email: "op@b.co", Admin: true}
	if _, err := e.CreateTeam(ctx, a, "Bad Name"); !errors.Is(err, ErrInvalid) && err == nil {
		t.Fatalf("an invalid team name: %v", err)
	}
	tm, err := e.CreateTeam(ctx, a, "devs")
	if err != nil || tm.ID == "" || len(tm.Users) != 1 || tm.Users[0] != "a@b.co" {
		t.Fatalf("creating a team: %+v, %v", tm, err)
	}
	if _, err := e.CreateTeam(ctx, b, "devs"); !errors.Is(err, ErrConflict) {
		t.Fatalf("the same team again: %v", err)
	}
	if _, err := e.CreateTeam(ctx, &Identity{Email: "a@b.co", AppToken: true, App: "x"}, "other"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("an app token creating a team: %v", err)
	}
	// Members and admins see it; others do not.
	if _, err := e.Team(ctx, b, "devs"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a non-member reading the team: %v", err)
	}
	if _, err := e.Team(ctx, admin, "devs"); err != nil {
		t.Fatalf("an admin reading the team: %v", err)
	}
	if _, err := e.Team(ctx, a, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an unknown team: %v", err)
	}
	if ts, err := e.Teams(ctx, b); err != nil || len(ts) != 0 {
		t.Fatalf("a non-member's teams: %v, %v", ts, err)
	}
	if ts, err := e.Teams(ctx, admin); err != nil || len(ts) != 1 {
		t.Fatalf("an admin's teams: %v, %v", ts, err)
	}
	// Members.
	if err := e.AddTeamUser(ctx, a, "devs", "ghost@b.co"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("adding a user with no account: %v", err)
	}
	if err := e.AddTeamUser(ctx, b, "devs", "b@b.co"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a non-member adding itself: %v", err)
	}
	if err := e.AddTeamUser(ctx, a, "devs", "b@b.co"); err != nil {
		t.Fatal(err)
	}
	if err := e.AddTeamUser(ctx, a, "devs", "b@b.co"); !errors.Is(err, ErrConflict) {
		t.Fatalf("adding a member twice: %v", err)
	}
	if ts, err := e.Teams(ctx, b); err != nil || len(ts) != 1 || ts[0].Name != "devs" {
		t.Fatalf("the new member's teams: %v, %v", ts, err)
	}
	if err := e.RemoveTeamUser(ctx, b, "devs", "a@b.co"); err != nil {
		t.Fatal(err)
	}
	if err := e.RemoveTeamUser(ctx, b, "devs", "a@b.co"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removing a non-member: %v", err)
	}
	if err := e.RemoveTeamUser(ctx, b, "devs", "b@b.co"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("the last member leaving: %v", err)
	}
	// A team with an app is not removed; without, it is.
	if _, err := e.RegisterApp(ctx, b, NewApp{Name: "hello", TeamOwner: "devs"}); err != nil {
		t.Fatal(err)
	}
	if err := e.RemoveTeam(ctx, b, "devs"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("removing a team with an app: %v", err)
	}
	if _, err := e.CreateTeam(ctx, a, "empty"); err != nil {
		t.Fatal(err)
	}
	if err := e.RemoveTeam(ctx, b, "empty"); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a non-member removing a team: %v", err)
	}
	if err := e.RemoveTeam(ctx, a, "empty"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Team(ctx, a, "empty"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the removed team: %v", err)
	}
}
