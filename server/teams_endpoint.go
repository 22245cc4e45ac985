package server

import (
	"sort"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// teamOut is a team as answered: its members sorted.
func teamOut(t *state.Team) api.Team {
	us := append([]string{}, t.Users...)
	sort.Strings(us)
	return api.Team{Name: t.Name, Users: us}
}

// GET /teams — the caller's teams (every team for admins).
func (s *Server) listTeams(c *call) (any, error) {
	p, err := pageOf(c)
	if err != nil {
		return nil, err
	}
	ts, next, err := s.eng.TeamsPage(c.ctx(), c.id, p)
	if err != nil {
		return nil, err
	}
	setNext(c, next)
	out := make([]api.Team, 0, len(ts))
	for _, t := range ts {
		out = append(out, teamOut(t))
	}
	return out, nil
}

// POST /teams {"name"} — the creator becomes the first member.
func (s *Server) createTeam(c *call) (any, error) {
	var in struct {
		Name string `json:"name"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if names.Team(in.Name) == nil {
		c.target = in.Name
	}
	t, err := s.eng.CreateTeam(c.ctx(), c.id, in.Name)
	if err != nil {
		return nil, err
	}
	return teamOut(t), nil
}

// GET /teams/:team
func (s *Server) getTeam(c *call) (any, error) {
	t, err := s.eng.Team(c.ctx(), c.id, c.param("team"))
	if err != nil {
		return nil, err
	}
	return teamOut(t), nil
}

// DELETE /teams/:team (engine.RemoveTeam)
func (s *Server) removeTeam(c *call) (any, error) {
	return nil, s.eng.RemoveTeam(c.ctx(), c.id, c.param("team"))
}

// PUT /teams/:team/:user
func (s *Server) addTeamUser(c *call) (any, error) {
	return nil, s.eng.AddTeamUser(c.ctx(), c.id, c.param("team"), c.param("user"))
}

// DELETE /teams/:team/:user — the last member cannot leave.
func (s *Server) removeTeamUser(c *call) (any, error) {
	return nil, s.eng.RemoveTeamUser(c.ctx(), c.id, c.param("team"), c.param("user"))
}
