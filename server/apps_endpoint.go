package server

import (
	"fmt"
	"time"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/names"
)

// appOut is the tsuru view of an app.
func appOut(st *engine.AppStatus, cname []string) api.App {
	a := st.App
	units := make([]api.Unit, 0, len(st.Units))
	for _, in := range st.Units {
		units = append(units, api.Unit{Name: fmt.Sprintf("%s/%s/%d", a.Name, in.Proc, in.Index), Ip: in.Address, State: string(in.State)})
	}
	v := api.App{
		Name: a.Name, Platform: a.Platform, Framework: a.Platform, Repository: a.GitURL,
		State: st.State, Owner: a.Owner, TeamOwner: a.TeamOwner, Teams: st.Teams, Units: units,
		AppType: a.AppType, MetaVersion: a.MetaVersion, Created: a.Created, CName: cname,
	}
	if len(a.Routes) > 0 {
		v.Ip = a.Routes[0]
	}
	return v
}

// GET /apps
func (s *Server) listApps(c *call) (any, error) {
	p, err := pageOf(c)
	if err != nil {
		return nil, err
	}
	apps, next, err := s.eng.ListAppsPage(c.ctx(), c.id, p)
	if err != nil {
		return nil, err
	}
	setNext(c, next)
	out := make([]api.App, 0, len(apps))
	for _, a := range apps {
		out = append(out, appOut(a, s.eng.CustomDomains(a.App)))
	}
	return out, nil
}

// GET /apps/:app
func (s *Server) getApp(c *call) (any, error) {
	a, err := s.eng.GetApp(c.ctx(), c.id, appTarget(c, "app"))
	if err != nil {
		return nil, err
	}
	return appOut(a, s.eng.CustomDomains(a.App)), nil
}

// POST /apps {"name","platform","teamOwner"} -> {"status":"success","repository_url":...}
func (s *Server) createAppTsuru(c *call) (any, error) {
	var in api.AppCreateRequest
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	c.target = in.Name
	a, err := s.eng.RegisterApp(c.ctx(), c.id, engine.NewApp{Name: in.Name, Platform: in.Platform, TeamOwner: in.TeamOwner})
	if err != nil {
		return nil, err
	}
	return api.AppCreated{Status: "success", RepositoryURL: a.GitURL}, nil
}

// DELETE /apps/:app
func (s *Server) removeApp(c *call) (any, error) {
	if err := s.eng.RemoveApp(c.ctx(), c.id, appTarget(c, "app")); err != nil {
		return nil, err
	}
	return api.Status{Status: "ok"}, nil
}

// POST /tokens {"appname"|"app", "expires": seconds} -> an app token.
func (s *Server) createAppToken(c *call) (any, error) {
	var in struct {
		AppName string `json:"appname"`
		App     string `json:"app"`
		Expires int64  `json:"expires"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	name := in.AppName
	if name == "" {
		name = in.App
	}
	if names.App(name) == nil {
		c.target = name
	}
	tok, err := s.eng.CreateAppToken(c.ctx(), c.id, name, in.Expires)
	if err != nil {
		return nil, err
	}
	return api.AppToken{
		Token:    tok.Token,
		Creation: time.Now().UTC().Format(time.RFC3339),
		Expires:  int64(time.Until(tok.Expires).Round(time.Second) / time.Second),
		AppName:  tok.App,
	}, nil
}

// GET /platforms
func (s *Server) listPlatforms(c *call) (any, error) {
	ps := s.eng.Platforms()
	out := make([]api.Platform, 0, len(ps))
	for _, p := range ps {
		out = append(out, api.Platform{Name: p})
	}
	return pageSlice(c, out, func(p api.Platform) string { return p.Name })
}
