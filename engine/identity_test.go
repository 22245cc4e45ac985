package engine

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/engine/state"
)

// A grant recorded for a team is not honoured for a team re-created under
// the same name, even if the old team went away without the deletion
// check (a race, or data from before the check existed).
func TestGrantBoundToTeamID(t *testing.T) {
	s, _ := newTestEngine(t, nil)
	ctx := t.Context()
	old := &state.Team{ID: state.NewID(), Name: "t", Users: []string{"a@b.co"}, Created: time.Now()}
	if _, err := state.Create(ctx, s.store, state.TeamKey("t"), old); err != nil {
		t.Fatal(err)
	}
	svc := &state.Service{Name: "svc", Broker: "redis", OwnerTeams: []string{"t"}, Teams: []string{"t"}, TeamIDs: map[string]string{"t": old.ID}}
	if err := s.serviceAccess(ctx, &Identity{Email: "a@b.co"}, svc, true); err != nil {
		t.Fatalf("the granted team's member: %v", err)
	}
	if err := state.Delete(ctx, s.store, state.TeamKey("t")); err != nil {
		t.Fatal(err)
	}
	reborn := &state.Team{ID: state.NewID(), Name: "t", Users: []string{"thief@b.co"}, Created: time.Now()}
	if _, err := state.Create(ctx, s.store, state.TeamKey("t"), reborn); err != nil {
		t.Fatal(err)
	}
	for _, manage := range []bool{false, true} {
		if err := s.serviceAccess(ctx, &Identity{Email: "thief@b.co"}, svc, manage); err == nil {
			t.Errorf("a member of the re-created team has access (manage=%v)", manage)
		}
	}
	inst := &state.ServiceInstance{Name: "i", Teams: []string{"t"}, TeamIDs: map[string]string{"t": old.ID}}
	if teamMatches(inst.TeamIDs, "t", reborn) || !teamMatches(inst.TeamIDs, "t", old) {
		t.Error("teamMatches does not tell the two teams apart")
	}
	u := &state.User{ID: "u1", Email: "a@b.co"}
	if !ownsInstance(&state.ServiceInstance{Owner: "a@b.co", OwnerID: "u1"}, u) ||
		ownsInstance(&state.ServiceInstance{Owner: "a@b.co", OwnerID: "u0"}, u) ||
		ownsInstance(&state.ServiceInstance{Owner: "a@b.co", OwnerID: "u1"}, &state.User{Email: "a@b.co"}) {
		t.Error("ownsInstance does not compare the owner's ID")
	}
}

// Records written before IDs existed are pinned by the sweep: to the
// current team or user, or to a tombstone when the name is gone, so a name
// created afterwards matches nothing.
func TestPinIdentities(t *testing.T) {
	s, _ := newTestEngine(t, nil)
	ctx := t.Context()
	if _, err := state.Create(ctx, s.store, state.TeamKey("kept"), &state.Team{Name: "kept", Users: []string{"a@b.co"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := CreateUser(ctx, s.store, "a@b.co", "password", false); err != nil {
		t.Fatal(err)
	}
	if _, err := state.Create(ctx, s.store, state.ServiceKey("svc"), &state.Service{Name: "svc", Broker: "redis", OwnerTeams: []string{"kept"}, Teams: []string{"kept", "gone"}}); err != nil {
		t.Fatal(err)
	}
	for name, owner := range map[string]string{"i1": "a@b.co", "i2": "left@b.co"} {
		if _, err := state.Create(ctx, s.store, state.InstanceKey(name), &state.ServiceInstance{Name: name, ServiceName: "svc", Owner: owner, Teams: []string{"kept", "gone"}}); err != nil {
			t.Fatal(err)
		}
	}

	s.pinIdentities(ctx)

	kept, _, err := state.Get[state.Team](ctx, s.store, state.TeamKey("kept"))
	if err != nil || kept.ID == "" {
		t.Fatalf("the legacy team got no ID: %+v %v", kept, err)
	}
	gone := &state.Team{ID: state.NewID(), Name: "gone"} // created after the pin
	svc, _, _ := state.Get[state.Service](ctx, s.store, state.ServiceKey("svc"))
	if svc.TeamIDs["kept"] != kept.ID || !teamMatches(svc.TeamIDs, "kept", kept) || teamMatches(svc.TeamIDs, "gone", gone) {
		t.Errorf("service pinned to %v", svc.TeamIDs)
	}
	u, _, _ := state.Get[state.User](ctx, s.store, state.UserKey("a@b.co"))
	i1, _, _ := state.Get[state.ServiceInstance](ctx, s.store, state.InstanceKey("i1"))
	if u.ID == "" || i1.OwnerID != u.ID || !ownsInstance(i1, u) || teamMatches(i1.TeamIDs, "gone", gone) || !teamMatches(i1.TeamIDs, "kept", kept) {
		t.Errorf("instance i1 pinned to owner %q teams %v (user ID %q)", i1.OwnerID, i1.TeamIDs, u.ID)
	}
	i2, _, _ := state.Get[state.ServiceInstance](ctx, s.store, state.InstanceKey("i2"))
	if i2.Owner != "" {
		t.Errorf("an instance whose owner is gone keeps owner %q", i2.Owner)
	}
	// A second sweep changes nothing.
	_, before, _ := state.Get[state.Service](ctx, s.store, state.ServiceKey("svc"))
	s.pinIdentities(ctx)
	if _, after, _ := state.Get[state.Service](ctx, s.store, state.ServiceKey("svc")); after != before {
		t.Error("a second pin rewrote the service")
	}
}

// Deleting a user who owns a service instance with no team (only a site
// admin in no team can make one) is refused, naming it: no one would have
// it. Instances with a team are handed to it.
func TestRemoveUserWithLoneInstance(t *testing.T) {
	s, _ := newTestEngine(t, nil)
	ctx := t.Context()
	if _, err := CreateUser(ctx, s.store, "op@b.co", "password", true); err != nil {
		t.Fatal(err)
	}
	u, err := s.userWithID(ctx, "op@b.co")
	if err != nil {
		t.Fatal(err)
	}
	mk := func(name string, teams []string) {
		if _, err := state.Create(ctx, s.store, state.InstanceKey(name), &state.ServiceInstance{Name: name, Owner: u.Email, OwnerID: u.ID, Teams: teams}); err != nil {
			t.Fatal(err)
		}
	}
	mk("lone", []string{})
	mk("teamed", []string{"t"})
	err = s.RemoveUser(ctx, &Identity{Email: "op@b.co"})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `"lone"`) || strings.Contains(err.Error(), "teamed") {
		t.Fatalf("removing the owner of a lone instance: %v", err)
	}
	if _, _, err := state.Get[state.User](ctx, s.store, state.UserKey("op@b.co")); err != nil {
		t.Fatalf("the refused removal removed the user: %v", err)
	}
	if err := state.Delete(ctx, s.store, state.InstanceKey("lone")); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveUser(ctx, &Identity{Email: "op@b.co"}); err != nil {
		t.Fatal(err)
	}
	inst, _, err := state.Get[state.ServiceInstance](ctx, s.store, state.InstanceKey("teamed"))
	if err != nil || inst.Owner != "" || inst.OwnerID != "" {
		t.Errorf("the instance was not handed to its team: %+v %v", inst, err)
	}
}
