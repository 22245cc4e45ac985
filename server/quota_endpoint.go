package server

import "github.com/berthpaas/berth/api"

// GET /quota/:user -> {"items": limit, "available": left}
func (s *Server) getQuota(c *call) (any, error) {
	q, err := s.eng.Quota(c.ctx(), c.id, c.param("user"))
	if err != nil {
		return nil, err
	}
	return api.Quota{Items: q.Limit, Available: q.Available}, nil
}

// PUT /quota/:user {"limit": N} — admins change a user's quota.
func (s *Server) setQuota(c *call) (any, error) {
	var in struct {
		Limit *int `json:"limit"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	return nil, s.eng.SetQuota(c.ctx(), c.id, c.param("user"), in.Limit)
}
