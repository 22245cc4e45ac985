package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/engine"
)

const maskedValue = "*** (private)"

// GET /apps/:app/env — public values, private ones masked.
func (s *Server) getEnv(c *call) (any, error) {
	vars, err := s.eng.Env(c.ctx(), c.id, appTarget(c, "app"))
	if err != nil {
		return nil, err
	}
	out := []api.EnvVar{}
	for _, v := range vars {
		val := v.Value
		if !v.Public {
			val = maskedValue
		}
		out = append(out, api.EnvVar{Name: v.Name, Value: val, Public: v.Public})
	}
	return pageSlice(c, out, func(v api.EnvVar) string { return v.Name })
}

// parseEnvBody accepts an api.EnvSetRequest ({"envs":[{"name","value"
// [,"public"]}], "private": bool, "norestart": bool}) or a flat object
// {"KEY": "value", ...}.
func parseEnvBody(c *call) ([]engine.EnvSet, bool, error) {
	body, err := io.ReadAll(c.r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, false, err
		}
		return nil, false, badRequest("could not read the request body")
	}
	var probe map[string]json.RawMessage
	if err := decodeBytes(body, &probe); err != nil {
		return nil, false, err
	}
	var list []engine.EnvSet
	noRestart := false
	if _, ok := probe["envs"]; ok {
		var in api.EnvSetRequest
		if err := decodeBytes(body, &in); err != nil {
			return nil, false, err
		}
		for _, e := range in.Envs {
			pub := !in.Private
			if e.Public != nil {
				pub = *e.Public
			}
			list = append(list, engine.EnvSet{Name: e.Name, Value: e.Value, Public: pub})
		}
		noRestart = in.NoRestart
	} else {
		var flat map[string]string
		if err := decodeBytes(body, &flat); err != nil {
			return nil, false, engine.Invalid("send {\"envs\":[{\"name\":..,\"value\":..}],\"private\":false} or a flat object of string values")
		}
		for k, v := range flat {
			list = append(list, engine.EnvSet{Name: k, Value: v, Public: true})
		}
	}
	return list, noRestart, nil
}

// changed is the answer of an env change: the accepted redeploy (202,
// api.Operation), or a plain ok (200, api.Status) when the app was not
// redeployed.
func changed(ch *engine.Change, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	if ch == nil {
		return okStatus, nil
	}
	return accepted(ch), nil
}

// POST /apps/:app/env — set variables; a deployed app is redeployed.
func (s *Server) setEnv(c *call) (any, error) {
	app := appTarget(c, "app")
	list, noRestart, err := parseEnvBody(c)
	if err != nil {
		return nil, err
	}
	return changed(s.eng.SetEnv(c.ctx(), c.id, app, list, noRestart))
}

// DELETE /apps/:app/env?env=NAME[&env=NAME2] (or a body {"names":[...]}).
func (s *Server) unsetEnv(c *call) (any, error) {
	app := appTarget(c, "app")
	namesList := c.r.URL.Query()["env"]
	noRestart := c.r.URL.Query().Get("norestart") == "true"
	if len(namesList) == 0 {
		var in api.EnvUnsetRequest
		if err := decode(c, &in); err != nil {
			return nil, err
		}
		namesList, noRestart = in.Names, in.NoRestart
	}
	return changed(s.eng.UnsetEnv(c.ctx(), c.id, app, namesList, noRestart))
}

// GET /apps/:app/restart — restart every instance (rolling).
func (s *Server) restartApp(c *call) (any, error) {
	ch, err := s.eng.RestartApp(c.ctx(), c.id, appTarget(c, "app"))
	if err != nil {
		return nil, err
	}
	return operationOut(ch), nil
}

// PUT /swap?app1=&app2= — exchange the two apps' public routes
// (blue-green); swapping again restores them.
func (s *Server) swap(c *call) (any, error) {
	q := c.r.URL.Query()
	n1, n2 := q.Get("app1"), q.Get("app2")
	if n1 != "" && n2 != "" && n1 != n2 {
		c.target = n1 + "<->" + n2
	}
	routes, err := s.eng.Swap(c.ctx(), c.id, n1, n2)
	if err != nil {
		return nil, err
	}
	out := api.SwapResult{}
	for k, v := range routes {
		out[k] = v
	}
	return out, nil
}

// GET /healers
func (s *Server) listHealers(c *call) (any, error) {
	out := []api.Healer{}
	for _, h := range s.eng.Healers() {
		out = append(out, api.Healer{h.Name: h.Description})
	}
	return pageSlice(c, out, healerName)
}

// GET /healers/:healer — run it now.
func (s *Server) runHealer(c *call) (any, error) {
	res, err := s.eng.RunHealer(c.ctx(), c.id, c.param("healer"))
	if err != nil {
		return nil, err
	}
	out := &api.HealerResult{Healer: res.Name, Repaired: res.Repaired}
	if p := res.Pass; p != nil {
		out.Result = &api.PassResult{Checked: p.Checked, Submitted: p.Submitted, Stopped: p.Stopped, Failed: p.Failed}
	}
	return out, nil
}
