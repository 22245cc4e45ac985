package server

import (
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
)

// GET /api/v1/resources/:resource/instances/
func (s *Server) listResourceInstances(c *call) (any, error) {
	res, err := s.appParam(c, "resource", engine.ActAppRead)
	if err != nil {
		return nil, err
	}
	if res.AppType != state.AppTypeResource {
		return nil, notFound("app %q is not a resource", res.Name)
	}
	apps, err := state.List[state.App](c.ctx(), s.store, state.AppsPrefix)
	if err != nil {
		return nil, err
	}
	out := []*deployedView{}
	for _, a := range apps {
		if a.AppType != state.AppTypeResourceInstance || a.Resource != res.Name || !engine.SameIncarnationOf(a.ResourceCreated, res) {
			continue
		}
		v, err := s.deployedOut(c, a)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
