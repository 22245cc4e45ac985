package server

import (
	"fmt"
	"sort"
	"time"

	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// tsuru-style app views.

type unitView struct {
	Name  string `json:"Name"`
	Ip    string `json:"Ip"`
	State string `json:"State"`
}

type appView struct {
	Name       string     `json:"Name"`
	Platform   string     `json:"Platform"`
	Framework  string     `json:"Framework"`
	Repository string     `json:"Repository"`
	Ip         string     `json:"Ip"`
	CName      []string   `json:"cname"`
	State      string     `json:"State"`
	Owner      string     `json:"Owner"`
	TeamOwner  string     `json:"TeamOwner"`
	Teams      []string   `json:"Teams"`
	Units      []unitView `json:"Units"`
	AppType    string     `json:"AppType"`
	Version    string     `json:"MetaVersion"`
	Created    time.Time  `json:"Created"`
}

func (s *Server) appOut(c *call, a *state.App) appView {
	teams := engine.AppTeams(a)
	sort.Strings(teams)
	insts, st := s.eng.Units(c.ctx(), a)
	units := make([]unitView, 0, len(insts))
	for _, in := range insts {
		units = append(units, unitView{Name: fmt.Sprintf("%s/%s/%d", a.Name, in.Proc, in.Index), Ip: in.Address, State: string(in.State)})
	}
	v := appView{
		Name: a.Name, Platform: a.Platform, Framework: a.Platform, Repository: a.GitURL,
		State: st, Owner: a.Owner, TeamOwner: a.TeamOwner, Teams: teams, Units: units,
		AppType: a.AppType, Version: a.MetaVersion, Created: a.Created, CName: s.eng.CustomDomains(a),
	}
	if len(a.Routes) > 0 {
		v.Ip = a.Routes[0]
	}
	if v.Teams == nil {
		v.Teams = []string{}
	}
	return v
}

// GET /apps
func (s *Server) listApps(c *call) (any, error) {
	apps, err := s.eng.VisibleApps(c.ctx(), c.id)
	if err != nil {
		return nil, err
	}
	out := make([]appView, 0, len(apps))
	for _, a := range apps {
		out = append(out, s.appOut(c, a))
	}
	return out, nil
}

// GET /apps/:app
func (s *Server) getApp(c *call) (any, error) {
	a, err := s.appParam(c, "app", engine.ActAppRead)
	if err != nil {
		return nil, err
	}
	return s.appOut(c, a), nil
}

// POST /apps {"name","platform","teamOwner"} -> {"status":"success","repository_url":...}
func (s *Server) createAppTsuru(c *call) (any, error) {
	var in struct {
		Name      string `json:"name"`
		Platform  string `json:"platform"`
		TeamOwner string `json:"teamOwner"`
		Plan      string `json:"plan"`
		Pool      string `json:"pool"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	c.target = in.Name
	a, err := s.eng.RegisterApp(c.ctx(), c.id, engine.NewApp{Name: in.Name, Platform: in.Platform, TeamOwner: in.TeamOwner})
	if err != nil {
		return nil, err
	}
	return map[string]string{"status": "success", "repository_url": a.GitURL}, nil
}

// DELETE /apps/:app
func (s *Server) removeApp(c *call) (any, error) {
	a, err := s.appParam(c, "app", engine.ActAppDelete)
	if err != nil {
		return nil, err
	}
	if err := s.eng.BeforeRemoveApp(c.ctx(), c.id, a); err != nil {
		return nil, err
	}
	if err := s.eng.UnregisterApp(c.ctx(), a); err != nil {
		return nil, err
	}
	// Its app tokens die with it. (Should this fail, they are refused all
	// the same: a token is bound to the app it was issued for, not to an
	// app that later gets the same name; see checkAppToken.)
	if err := s.eng.RevokeAppTokens(c.ctx(), a.Name); err != nil {
		c.log.Warn("could not revoke the app tokens of a removed app", "app", a.Name, "error", err)
	}
	return nil, nil
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
	if name == "" {
		return nil, badRequest("appname is required")
	}
	if err := names.App(name); err != nil {
		return nil, err
	}
	c.target = name
	if c.id.AppToken {
		return nil, forbidden("an app token cannot create tokens")
	}
	a, err := s.eng.LoadApp(c.ctx(), c.id, name, engine.ActAppToken)
	if err != nil {
		return nil, err
	}
	ttl, err := s.eng.AppTokenTTL(in.Expires)
	if err != nil {
		return nil, err
	}
	tok, exp, err := s.eng.IssueAppToken(c.ctx(), c.id.Email, a, ttl)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"Token":    tok,
		"Creation": time.Now().UTC().Format(time.RFC3339),
		"Expires":  int64(time.Until(exp).Round(time.Second) / time.Second),
		"AppName":  a.Name,
	}, nil
}

// GET /platforms
func (s *Server) listPlatforms(c *call) (any, error) {
	out := make([]map[string]string, 0, len(s.cfg.Platforms))
	for _, p := range s.cfg.Platforms {
		out = append(out, map[string]string{"Name": p})
	}
	return out, nil
}
