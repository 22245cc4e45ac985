package server

import (
	"errors"

	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// GET /quota/:user -> {"items": limit, "available": left}
func (s *Server) getQuota(c *call) (any, error) {
	email, err := names.Email(c.param("user"))
	if err != nil {
		return nil, err
	}
	if c.id.AppToken || (c.id.Email != email && !c.id.Admin) {
		if err := s.eng.Allowed(c.ctx(), c.id, engine.ActUserQuotaOthers, nil); err != nil {
			return nil, err
		}
	}
	u, _, err := state.Get[state.User](c.ctx(), s.store, state.UserKey(email))
	if errors.Is(err, state.ErrNotFound) {
		return nil, notFound("user %s not found", email)
	}
	if err != nil {
		return nil, err
	}
	limit := s.eng.QuotaOf(u)
	avail := limit - u.Owned
	if avail < 0 {
		avail = 0
	}
	return map[string]int{"items": limit, "available": avail}, nil
}

// PUT /quota/:user {"limit": N} — admins change a user's quota.
func (s *Server) setQuota(c *call) (any, error) {
	if err := s.eng.Allowed(c.ctx(), c.id, engine.ActUserQuotaOthers, nil); err != nil {
		return nil, err
	}
	email, err := names.Email(c.param("user"))
	if err != nil {
		return nil, err
	}
	var in struct {
		Limit *int `json:"limit"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if in.Limit == nil || *in.Limit < 0 {
		return nil, badRequest("limit must be a number of apps, 0 or more")
	}
	_, _, err = state.Update(c.ctx(), s.store, state.UserKey(email), func(u *state.User) error {
		u.Quota = in.Limit
		return nil
	})
	if errors.Is(err, state.ErrNotFound) {
		return nil, notFound("user %s not found", email)
	}
	return nil, err
}
