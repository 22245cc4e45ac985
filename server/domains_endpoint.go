package server

import (
	"net/http"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/engine"
)

// domainRoutes are the routes of custom domains (tsuru's cname).
func (s *Server) domainRoutes() []route {
	const g, p, d = http.MethodGet, http.MethodPost, http.MethodDelete
	return []route{
		{Method: g, Path: "/apps/:app/cname", Out: api.Domains{}, Action: engine.ActAppRead, Tag: "apps", Summary: "An app's routes and custom domains", h: s.listDomains},
		{Method: p, Path: "/apps/:app/cname", In: api.DomainsRequest{}, Out: api.DomainsChange{}, Action: engine.ActAppDomainAdd, Tag: "apps", Status: 202, AlsoStatus: []int{200}, Summary: "Add custom domains (host names) to an app and redeploy its routes", h: s.addDomains},
		{Method: d, Path: "/apps/:app/cname", In: api.DomainsRequest{}, InOptional: true, Query: []queryParam{{Name: "cname", Doc: "a host name to remove (repeatable), instead of the body"}}, Out: api.DomainsChange{}, Action: engine.ActAppDomainRemove, Tag: "apps", Status: 202, AlsoStatus: []int{200}, Summary: "Remove custom domains from an app and redeploy its routes", h: s.removeDomains},
	}
}

// GET /apps/:app/cname
func (s *Server) listDomains(c *call) (any, error) {
	app := appTarget(c, "app")
	routes, custom, err := s.eng.Domains(c.ctx(), c.id, app)
	if err != nil {
		return nil, err
	}
	return api.Domains{AppName: app, Routes: routes, CName: custom}, nil
}

// POST /apps/:app/cname {"cname": ["www.example.com"]}; a deployed app is
// redeployed (202), an undeployed one answers 200.
func (s *Server) addDomains(c *call) (any, error) {
	app := appTarget(c, "app")
	var in api.DomainsRequest
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	return s.domainsChanged(s.eng.AddDomains(c.ctx(), c.id, app, in.CName))
}

// DELETE /apps/:app/cname?cname=HOST[&cname=HOST2] (or a body {"cname": [...]}).
func (s *Server) removeDomains(c *call) (any, error) {
	app := appTarget(c, "app")
	hosts := c.r.URL.Query()["cname"]
	if len(hosts) == 0 {
		var in api.DomainsRequest
		if err := decode(c, &in); err != nil {
			return nil, err
		}
		hosts = in.CName
	}
	return s.domainsChanged(s.eng.RemoveDomains(c.ctx(), c.id, app, hosts))
}

// domainsChanged answers the app's routes after a change and the redeploy
// it started (202), if any (200).
func (s *Server) domainsChanged(ch *engine.Change, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	out := api.DomainsChange{AppName: ch.App.Name, Routes: append([]string{}, ch.App.Routes...), CName: s.eng.CustomDomains(ch.App)}
	if ch.Deploy == nil {
		return out, nil
	}
	a, d := ch.App, ch.Deploy
	out.Operation = &api.Operation{
		AppName: a.Name, MetaVersion: a.MetaVersion, Generation: d.Generation, Operation: d.Operation, State: string(d.State),
		Watch: "/api/v1/apps/" + a.Name + "/", Events: "/api/v1/apps/" + a.Name + "/events/",
	}
	return &reply{Status: http.StatusAccepted, Body: out}, nil
}
