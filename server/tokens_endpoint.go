package server

import (
	"net/http"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
)

// tokenRoutes are the routes of team tokens (tsuru's GET /tokens and
// DELETE /tokens/:token_id; creation under the team, since POST /tokens is
// tsuru 1.9's app token) and of listing and revoking app tokens. The lead
// appends them to routes().
func (s *Server) tokenRoutes() []route {
	const g, p, d = http.MethodGet, http.MethodPost, http.MethodDelete
	return []route{
		{Method: p, Path: "/teams/:team/tokens", In: api.TeamTokenCreateRequest{}, Out: api.TeamTokenCreated{}, Status: http.StatusCreated, Action: engine.ActTeamTokenCreate, Tag: "tokens", Summary: "Create a team token: acts on the team's apps with only the actions given (its value is shown once)", h: s.createTeamToken},
		{Method: g, Path: "/teams/:team/tokens", Query: pageQuery, Out: []api.TeamToken{}, Action: engine.ActTeamTokenRead, Tag: "tokens", Summary: "List a team's tokens (never their values)", h: s.listTeamTokens},
		{Method: d, Path: "/teams/:team/tokens/:token_id", Out: api.Status{}, Action: engine.ActTeamTokenRevoke, Tag: "tokens", Summary: "Revoke a team token", h: s.revokeTeamToken},
		{Method: g, Path: "/tokens", Query: pageQuery, Out: []api.TeamToken{}, Action: engine.ActTeamTokenRead, Tag: "tokens", Summary: "List the tokens of the caller's teams (never their values)", h: s.listTeamTokens},
		{Method: d, Path: "/tokens/:token_id", Out: api.Status{}, Action: engine.ActTeamTokenRevoke, Tag: "tokens", Summary: "Revoke a team token", h: s.revokeTeamToken},
		{Method: g, Path: "/apps/:app/tokens", Query: pageQuery, Out: []api.AppTokenInfo{}, Action: engine.ActAppTokenRead, Tag: "tokens", Summary: "List an app's tokens (never their values)", h: s.listAppTokens},
		{Method: d, Path: "/apps/:app/tokens/:token_id", Out: api.Status{}, Action: engine.ActAppTokenRevoke, Tag: "tokens", Summary: "Revoke an app token", h: s.revokeAppToken},
	}
}

func teamTokenOut(rec *state.TeamToken) api.TeamToken {
	return api.TeamToken{
		ID: rec.ID, Team: rec.Team, Description: rec.Description, Actions: append([]string{}, rec.Actions...),
		Creator: rec.Creator, Created: rec.Created, Expires: rec.Expires, LastAccess: rec.LastUsed,
	}
}

// POST /teams/:team/tokens {"description", "actions", "expires_in"}
func (s *Server) createTeamToken(c *call) (any, error) {
	var in api.TeamTokenCreateRequest
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	c.target = c.param("team")
	rec, tok, err := s.eng.CreateTeamToken(c.ctx(), c.id, engine.TeamTokenRequest{
		Team: c.param("team"), Description: in.Description, Actions: in.Actions, ExpiresIn: in.ExpiresIn,
	})
	if err != nil {
		return nil, err
	}
	c.target = rec.Team + "/" + rec.ID
	return &reply{Status: http.StatusCreated, Body: &api.TeamTokenCreated{TeamToken: teamTokenOut(rec), Token: tok}}, nil
}

// GET /teams/:team/tokens, GET /tokens
func (s *Server) listTeamTokens(c *call) (any, error) {
	recs, err := s.eng.ListTeamTokens(c.ctx(), c.id, c.param("team"))
	if err != nil {
		return nil, err
	}
	out := make([]api.TeamToken, 0, len(recs))
	for _, r := range recs {
		out = append(out, teamTokenOut(r))
	}
	return pageSlice(c, out, func(t api.TeamToken) string { return t.ID })
}

// DELETE /teams/:team/tokens/:token_id, DELETE /tokens/:token_id
func (s *Server) revokeTeamToken(c *call) (any, error) {
	rec, err := s.eng.RevokeTeamToken(c.ctx(), c.id, c.param("team"), c.param("token_id"))
	if err != nil {
		return nil, err
	}
	c.target = rec.Team + "/" + rec.ID
	return nil, nil
}

// GET /apps/:app/tokens
func (s *Server) listAppTokens(c *call) (any, error) {
	a, err := s.appParam(c, "app", engine.ActAppTokenRead)
	if err != nil {
		return nil, err
	}
	l, err := s.eng.ListAppTokens(c.ctx(), c.id, a)
	if err != nil {
		return nil, err
	}
	out := make([]api.AppTokenInfo, 0, len(l))
	for _, t := range l {
		out = append(out, api.AppTokenInfo{ID: t.ID, App: t.App, Creator: t.Creator, Created: t.Created, Expires: t.Expires})
	}
	return pageSlice(c, out, func(t api.AppTokenInfo) string { return t.ID })
}

// DELETE /apps/:app/tokens/:token_id
func (s *Server) revokeAppToken(c *call) (any, error) {
	a, err := s.appParam(c, "app", engine.ActAppTokenRevoke)
	if err != nil {
		return nil, err
	}
	c.target = a.Name + "/" + c.param("token_id")
	return nil, s.eng.RevokeAppToken(c.ctx(), c.id, a, c.param("token_id"))
}
