package server

import (
	"net/http"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/engine"
)

// adminRoutes are the site admins' routes that neither surface had: the
// list of users (the web console's Admin page). The lead appends them to
// routes().
func (s *Server) adminRoutes() []route {
	const g = http.MethodGet
	return []route{
		{Method: g, Path: "/users", Query: pageQuery, Out: []api.UserListItem{}, Action: engine.ActUserList, Tag: "users", Summary: "List every user with their teams and app quota (site admins)", h: s.listUsers},
	}
}

// GET /users
func (s *Server) listUsers(c *call) (any, error) {
	us, err := s.eng.Users(c.ctx(), c.id)
	if err != nil {
		return nil, err
	}
	out := make([]api.UserListItem, 0, len(us))
	for _, u := range us {
		out = append(out, api.UserListItem{
			Email: u.Email, IsAdmin: u.Admin, Created: u.Created, Teams: append([]string{}, u.Teams...),
			Quota: api.Quota{Items: u.Quota.Limit, Available: u.Quota.Available},
		})
	}
	return pageSlice(c, out, func(u api.UserListItem) string { return u.Email })
}
