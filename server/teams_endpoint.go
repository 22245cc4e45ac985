package server

import (
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

type teamView struct {
	Name  string   `json:"name"`
	Users []string `json:"users"`
}

func teamOut(t *state.Team) teamView {
	us := append([]string{}, t.Users...)
	sort.Strings(us)
	return teamView{Name: t.Name, Users: us}
}

// GET /teams — the caller's teams (every team for admins).
func (s *Server) listTeams(c *call) (any, error) {
	if c.id.AppToken {
		return nil, forbidden("an app token cannot list teams")
	}
	ts, err := state.List[state.Team](c.ctx(), s.store, state.TeamsPrefix)
	if err != nil {
		return nil, err
	}
	out := []teamView{}
	for _, t := range ts {
		if c.id.Admin || engine.Contains(t.Users, c.id.Email) {
			out = append(out, teamOut(t))
		}
	}
	return out, nil
}

// POST /teams {"name"} — the creator becomes the first member.
func (s *Server) createTeam(c *call) (any, error) {
	if c.id.AppToken {
		return nil, forbidden("an app token cannot create teams")
	}
	var in struct {
		Name string `json:"name"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if err := names.Team(in.Name); err != nil {
		return nil, err
	}
	c.target = in.Name
	t := &state.Team{ID: state.NewID(), Name: in.Name, Users: []string{c.id.Email}, Created: time.Now().UTC()}
	if _, err := state.Create(c.ctx(), s.store, state.TeamKey(in.Name), t); err != nil {
		if errors.Is(err, state.ErrExists) {
			return nil, conflict("team %q already exists", in.Name)
		}
		return nil, err
	}
	return teamOut(t), nil
}

// teamForMember loads a team the caller belongs to (or any, for admins).
func (s *Server) teamForMember(c *call) (*state.Team, error) {
	name := c.param("team")
	if err := names.Team(name); err != nil {
		return nil, err
	}
	if c.id.AppToken {
		return nil, forbidden("an app token cannot manage teams")
	}
	t, _, err := state.Get[state.Team](c.ctx(), s.store, state.TeamKey(name))
	if errors.Is(err, state.ErrNotFound) {
		return nil, notFound("team %q not found", name)
	}
	if err != nil {
		return nil, err
	}
	if !c.id.Admin && !engine.Contains(t.Users, c.id.Email) {
		return nil, forbidden("you are not a member of team %q", name)
	}
	return t, nil
}

// GET /teams/:team
func (s *Server) getTeam(c *call) (any, error) {
	t, err := s.teamForMember(c)
	if err != nil {
		return nil, err
	}
	return teamOut(t), nil
}

// DELETE /teams/:team — refused while it owns apps (403), or while
// services or service instances refer to it (409, naming them: hand a
// service over by granting another team and revoking this one; engine.Remove the
// instances). The team's ID is never reused: a team created later under
// the same name matches none of the old team's grants.
func (s *Server) removeTeam(c *call) (any, error) {
	t, err := s.teamForMember(c)
	if err != nil {
		return nil, err
	}
	if t.ID == "" {
		if t, err = s.eng.TeamWithID(c.ctx(), t.Name); err != nil {
			return nil, err
		}
	}
	// The record is read before the checks and deleted only if unchanged
	// since (CAS): an app registered for the team meanwhile writes the team
	// record in its transaction, so either the check sees the app or the
	// delete fails.
	cur, idx, err := state.Get[state.Team](c.ctx(), s.store, state.TeamKey(t.Name))
	if errors.Is(err, state.ErrNotFound) {
		return nil, notFound("team %q not found", t.Name)
	}
	if err != nil {
		return nil, err
	}
	if cur.ID != t.ID {
		return nil, conflict("team %q changed meanwhile; try again", t.Name)
	}
	t = cur
	svcs, insts, err := s.eng.TeamHoldings(c.ctx(), t)
	if err != nil {
		return nil, err
	}
	if len(svcs) > 0 || len(insts) > 0 {
		var what []string
		if len(svcs) > 0 {
			what = append(what, "service(s) "+engine.QuoteList(svcs)+" (hand them over: grant another team, then revoke this one)")
		}
		if len(insts) > 0 {
			what = append(what, "service instance(s) "+engine.QuoteList(insts)+" (engine.Remove them)")
		}
		return nil, conflict("team %q still holds %s", t.Name, strings.Join(what, " and "))
	}
	apps, err := state.List[state.App](c.ctx(), s.store, state.AppsPrefix)
	if err != nil {
		return nil, err
	}
	for _, a := range apps {
		if engine.Contains(engine.AppTeams(a), t.Name) && engine.AppTeamMatches(a, t.Name, t) {
			return nil, forbidden("team %q still has access to app %q: engine.Remove it from the app first", t.Name, a.Name)
		}
	}
	ok, _, err := s.store.DeleteCAS(c.ctx(), state.TeamKey(t.Name), idx)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, conflict("team %q changed meanwhile; try again", t.Name)
	}
	return nil, nil
}

// PUT /teams/:team/:user
func (s *Server) addTeamUser(c *call) (any, error) {
	t, err := s.teamForMember(c)
	if err != nil {
		return nil, err
	}
	email, err := names.Email(c.param("user"))
	if err != nil {
		return nil, err
	}
	err = engine.UpdateForUser(c.ctx(), s.store, state.TeamKey(t.Name), email, func(t *state.Team) error {
		if engine.Contains(t.Users, email) {
			return conflict("%s is already in team %q", email, t.Name)
		}
		t.Users = append(t.Users, email)
		return nil
	})
	return nil, err
}

// DELETE /teams/:team/:user — the last member cannot leave.
func (s *Server) removeTeamUser(c *call) (any, error) {
	t, err := s.teamForMember(c)
	if err != nil {
		return nil, err
	}
	email, err := names.Email(c.param("user"))
	if err != nil {
		return nil, err
	}
	_, _, err = state.Update(c.ctx(), s.store, state.TeamKey(t.Name), func(t *state.Team) error {
		if !engine.Contains(t.Users, email) {
			return notFound("%s is not in team %q", email, t.Name)
		}
		if len(t.Users) == 1 {
			return forbidden("%s is the last member of team %q; engine.Remove the team instead", email, t.Name)
		}
		t.Users = engine.Remove(t.Users, email)
		return nil
	})
	return nil, err
}
