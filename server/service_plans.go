package server

import (
	"net/http"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/engine"
)

// servicePlanRoutes are the routes of services' plans (tsuru's GET
// /services/:name/plans), which the web console's new-instance form
// offers. The lead appends them to routes().
func (s *Server) servicePlanRoutes() []route {
	return []route{
		{Method: http.MethodGet, Path: "/services/:name/plans", Query: pageQuery, Out: []api.ServicePlan{}, Action: engine.ActServiceRead, Tag: "services", Summary: "A service's plans, from its broker's catalog", h: s.listServicePlans},
	}
}

// GET /services/:name/plans
func (s *Server) listServicePlans(c *call) (any, error) {
	ps, err := s.eng.ServicePlans(c.ctx(), c.id, c.param("name"))
	if err != nil {
		return nil, err
	}
	out := make([]api.ServicePlan, 0, len(ps))
	for _, p := range ps {
		out = append(out, api.ServicePlan{ID: p.ID, Name: p.Name, Description: p.Description})
	}
	return pageSlice(c, out, func(p api.ServicePlan) string { return p.ID })
}
