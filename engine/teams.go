package engine

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// Teams are the caller's teams (every team for site admins).
func (s *Engine) Teams(ctx context.Context, id *Identity) ([]*state.Team, error) {
	out, _, err := s.TeamsPage(ctx, id, Page{})
	return out, err
}

// CreateTeam creates team name; the caller becomes its first member.
func (s *Engine) CreateTeam(ctx context.Context, id *Identity, name string) (*state.Team, error) {
	if id == nil {
		return nil, unauthorized("authentication required")
	}
	if id.AppToken {
		return nil, forbidden("an app token cannot create teams")
	}
	if err := names.Team(name); err != nil {
		return nil, err
	}
	t := &state.Team{ID: state.NewID(), Name: name, Users: []string{id.Email}, Created: time.Now().UTC()}
	if _, err := state.Create(ctx, s.store, state.TeamKey(name), t); err != nil {
		if errors.Is(err, state.ErrExists) {
			return nil, conflict("team %q already exists", name)
		}
		return nil, err
	}
	return t, nil
}

// Team is a team the caller belongs to (any team, for site admins).
func (s *Engine) Team(ctx context.Context, id *Identity, name string) (*state.Team, error) {
	if err := names.Team(name); err != nil {
		return nil, err
	}
	if id == nil {
		return nil, unauthorized("authentication required")
	}
	if id.AppToken {
		return nil, forbidden("an app token cannot manage teams")
	}
	t, _, err := state.Get[state.Team](ctx, s.store, state.TeamKey(name))
	if errors.Is(err, state.ErrNotFound) {
		return nil, notFound("team %q not found", name)
	}
	if err != nil {
		return nil, err
	}
	if !id.Admin && !Contains(t.Users, id.Email) {
		return nil, forbidden("you are not a member of team %q", name)
	}
	return t, nil
}

// RemoveTeam deletes a team of the caller's. It is refused while the team
// has access to apps (Forbidden), or while services or service instances
// refer to it (Conflict, naming them: hand a service over by granting
// another team and revoking this one; remove the instances). The team's ID
// is never reused: a team created later under the same name matches none
// of the old team's grants.
func (s *Engine) RemoveTeam(ctx context.Context, id *Identity, name string) error {
	t, err := s.Team(ctx, id, name)
	if err != nil {
		return err
	}
	if t.ID == "" {
		if t, err = s.teamWithID(ctx, t.Name); err != nil {
			return err
		}
	}
	// The record is read before the checks and deleted only if unchanged
	// since (CAS): an app registered for the team meanwhile writes the team
	// record in its transaction, so either the check sees the app or the
	// delete fails.
	cur, idx, err := state.Get[state.Team](ctx, s.store, state.TeamKey(t.Name))
	if errors.Is(err, state.ErrNotFound) {
		return notFound("team %q not found", t.Name)
	}
	if err != nil {
		return err
	}
	if cur.ID != t.ID {
		return conflict("team %q changed meanwhile; try again", t.Name)
	}
	t = cur
	svcs, insts, err := s.teamHoldings(ctx, t)
	if err != nil {
		return err
	}
	if len(svcs) > 0 || len(insts) > 0 {
		var what []string
		if len(svcs) > 0 {
			what = append(what, "service(s) "+quoteList(svcs)+" (hand them over: grant another team, then revoke this one)")
		}
		if len(insts) > 0 {
			what = append(what, "service instance(s) "+quoteList(insts)+" (remove them)")
		}
		return conflict("team %q still holds %s", t.Name, strings.Join(what, " and "))
	}
	apps, err := state.List[state.App](ctx, s.store, state.AppsPrefix)
	if err != nil {
		return err
	}
	for _, a := range apps {
		if Contains(appTeams(a), t.Name) && appTeamMatches(a, t.Name, t) {
			return forbidden("team %q still has access to app %q: remove it from the app first", t.Name, a.Name)
		}
	}
	ok, _, err := s.store.DeleteCAS(ctx, state.TeamKey(t.Name), idx)
	if err != nil {
		return err
	}
	if !ok {
		return conflict("team %q changed meanwhile; try again", t.Name)
	}
	return nil
}

// AddTeamUser adds the user email to a team of the caller's. The user must
// exist (NotFound), and is added only if its account is not removed
// meanwhile (see updateForUser).
func (s *Engine) AddTeamUser(ctx context.Context, id *Identity, team, email string) error {
	t, err := s.Team(ctx, id, team)
	if err != nil {
		return err
	}
	email, err = names.Email(email)
	if err != nil {
		return err
	}
	return updateForUser(ctx, s.store, state.TeamKey(t.Name), email, func(t *state.Team) error {
		if Contains(t.Users, email) {
			return conflict("%s is already in team %q", email, t.Name)
		}
		t.Users = append(t.Users, email)
		return nil
	})
}

// RemoveTeamUser removes the user email from a team of the caller's; the
// last member cannot leave (the team is removed instead).
func (s *Engine) RemoveTeamUser(ctx context.Context, id *Identity, team, email string) error {
	t, err := s.Team(ctx, id, team)
	if err != nil {
		return err
	}
	email, err = names.Email(email)
	if err != nil {
		return err
	}
	_, _, err = state.Update(ctx, s.store, state.TeamKey(t.Name), func(t *state.Team) error {
		if !Contains(t.Users, email) {
			return notFound("%s is not in team %q", email, t.Name)
		}
		if len(t.Users) == 1 {
			return forbidden("%s is the last member of team %q; remove the team instead", email, t.Name)
		}
		t.Users = Remove(t.Users, email)
		return nil
	})
	return err
}
