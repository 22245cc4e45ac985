package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/release"
	"github.com/berthpaas/berth/engine/state"
)

const maskedValue = "*** (private)"

// GET /apps/:app/env — public values, private ones masked.
func (s *Server) getEnv(c *call) (any, error) {
	a, err := s.appParam(c, "app", engine.ActAppEnvRead)
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, v := range a.Env {
		val := v.Value
		if !v.Public {
			val = maskedValue
		}
		out = append(out, map[string]any{"name": v.Name, "value": val, "public": v.Public})
	}
	return out, nil
}

type envIn struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Public *bool  `json:"public"`
}

// parseEnvBody accepts {"envs":[{"name","value"[,"public"]}], "private":
// bool, "norestart": bool} or a flat object {"KEY": "value", ...}.
func parseEnvBody(c *call) ([]envIn, bool, error) {
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
	var list []envIn
	noRestart := false
	if _, ok := probe["envs"]; ok {
		var in struct {
			Envs      []envIn `json:"envs"`
			Private   bool    `json:"private"`
			NoRestart bool    `json:"norestart"`
		}
		if err := decodeBytes(body, &in); err != nil {
			return nil, false, err
		}
		for _, e := range in.Envs {
			if e.Public == nil {
				pub := !in.Private
				e.Public = &pub
			}
			list = append(list, e)
		}
		noRestart = in.NoRestart
	} else {
		var flat map[string]string
		if err := decodeBytes(body, &flat); err != nil {
			return nil, false, badRequest("send {\"envs\":[{\"name\":..,\"value\":..}],\"private\":false} or a flat object of string values")
		}
		pub := true
		for k, v := range flat {
			list = append(list, envIn{Name: k, Value: v, Public: &pub})
		}
	}
	if len(list) == 0 {
		return nil, false, badRequest("no variables given")
	}
	for _, e := range list {
		if err := release.CheckEnv(e.Name, e.Value); err != nil {
			return nil, false, err
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return list, noRestart, nil
}

// POST /apps/:app/env — set variables; a deployed app is redeployed.
func (s *Server) setEnv(c *call) (any, error) {
	a, err := s.appParam(c, "app", engine.ActAppEnvWrite)
	if err != nil {
		return nil, err
	}
	list, noRestart, err := parseEnvBody(c)
	if err != nil {
		return nil, err
	}
	priv := map[string]string{}
	var pubNames []string
	for _, e := range list {
		if !*e.Public {
			priv[e.Name] = e.Value
		} else {
			pubNames = append(pubNames, e.Name)
		}
	}
	var secret func(ctx context.Context) (func(), error)
	if len(priv) > 0 || len(pubNames) > 0 {
		// A variable made public drops its private value.
		secret = func(ctx context.Context) (func(), error) {
			return s.eng.MergeSecret(ctx, engine.EnvSecretPath(a.Name), priv, pubNames)
		}
	}
	apply := func(x *state.App) error {
		for _, e := range list {
			v := state.EnvVar{Name: e.Name, Public: *e.Public}
			if v.Public {
				v.Value = e.Value
			}
			replaced := false
			for i := range x.Env {
				if x.Env[i].Name == e.Name {
					x.Env[i], replaced = v, true
				}
			}
			if !replaced {
				x.Env = append(x.Env, v)
			}
		}
		sort.Slice(x.Env, func(i, j int) bool { return x.Env[i].Name < x.Env[j].Name })
		return nil
	}
	return s.envChange(c, a, "set env", noRestart, secret, apply)
}

// envChange applies an env change: through the deploy lease and a
// redeploy when the app is deployed, directly otherwise. secret (if any)
// writes the private values with check-and-set: after the lease is taken
// on the redeploy path (a 409 writes nothing), before the app record
// otherwise; it is undone when the app record cannot be written.
func (s *Server) envChange(c *call, a *state.App, op string, noRestart bool, secret func(ctx context.Context) (func(), error), apply func(x *state.App) error) (any, error) {
	if a.Deployed && !noRestart {
		na, d, err := s.eng.ChangeAppWith(c.ctx(), c.id, a.Name, op, secret, apply)
		if err != nil {
			return nil, err
		}
		return accepted(na, d, nil), nil
	}
	undo := func() {}
	if secret != nil {
		u, err := secret(c.ctx())
		if err != nil {
			return nil, err
		}
		undo = u
	}
	if _, _, err := state.Update(c.ctx(), s.store, state.AppKey(a.Name), apply); err != nil {
		undo()
		return nil, err
	}
	return nil, nil
}

// DELETE /apps/:app/env?env=NAME[&env=NAME2] (or a body {"names":[...]}).
func (s *Server) unsetEnv(c *call) (any, error) {
	a, err := s.appParam(c, "app", engine.ActAppEnvWrite)
	if err != nil {
		return nil, err
	}
	namesList := c.r.URL.Query()["env"]
	noRestart := c.r.URL.Query().Get("norestart") == "true"
	if len(namesList) == 0 {
		var in struct {
			Names     []string `json:"names"`
			NoRestart bool     `json:"norestart"`
		}
		if err := decode(c, &in); err != nil {
			return nil, err
		}
		namesList, noRestart = in.Names, in.NoRestart
	}
	if len(namesList) == 0 {
		return nil, badRequest("name the variables to remove: ?env=NAME or {\"names\":[...]}")
	}
	for _, n := range namesList {
		found := false
		for _, v := range a.Env {
			if v.Name == n {
				found = true
			}
		}
		if !found {
			return nil, notFound("app %q has no variable %s", a.Name, n)
		}
	}
	secret := func(ctx context.Context) (func(), error) {
		return s.eng.MergeSecret(ctx, engine.EnvSecretPath(a.Name), nil, namesList)
	}
	return s.envChange(c, a, "unset env", noRestart, secret, func(x *state.App) error {
		out := x.Env[:0]
		for _, v := range x.Env {
			if !engine.Contains(namesList, v.Name) {
				out = append(out, v)
			}
		}
		x.Env = out
		return nil
	})
}

// GET /apps/:app/restart — restart every instance (rolling).
func (s *Server) restartApp(c *call) (any, error) {
	a, err := s.appParam(c, "app", engine.ActAppRestart)
	if err != nil {
		return nil, err
	}
	if !a.Deployed {
		return nil, badRequest("app %q is not deployed", a.Name)
	}
	na, d, err := s.eng.ChangeApp(c.ctx(), c.id, a.Name, "restart", func(x *state.App) error {
		x.RestartGen++
		return nil
	})
	if err != nil {
		return nil, err
	}
	b := accepted(na, d, nil)
	b.Status = http.StatusOK
	return b, nil
}

// PUT /swap?app1=&app2= — exchange the two apps' public routes
// (blue-green); swapping again restores them.
func (s *Server) swap(c *call) (any, error) {
	q := c.r.URL.Query()
	n1, n2 := q.Get("app1"), q.Get("app2")
	if n1 == "" || n2 == "" || n1 == n2 {
		return nil, badRequest("name two different apps: /swap?app1=..&app2=..")
	}
	c.target = n1 + "<->" + n2
	a1, err := s.eng.LoadApp(c.ctx(), c.id, n1, engine.ActAppSwap)
	if err != nil {
		return nil, err
	}
	a2, err := s.eng.LoadApp(c.ctx(), c.id, n2, engine.ActAppSwap)
	if err != nil {
		return nil, err
	}
	holder := c.id.Name()
	if err := s.eng.LockApp(c.ctx(), n1, holder, "swap", a1.Generation+1); err != nil {
		return nil, err
	}
	if err := s.eng.LockApp(c.ctx(), n2, holder, "swap", a2.Generation+1); err != nil {
		s.eng.UnlockApp(c.ctx(), n1, -1)
		return nil, err
	}
	defer s.eng.UnlockApp(c.ctx(), n1, -1)
	defer s.eng.UnlockApp(c.ctx(), n2, -1)
	r1, r2 := a1.Routes, a2.Routes
	a1.Routes, a2.Routes = r2, r1
	a1.Generation++
	a2.Generation++
	b1, err := engine.JsonBytes(a1)
	if err != nil {
		return nil, err
	}
	b2, err := engine.JsonBytes(a2)
	if err != nil {
		return nil, err
	}
	if _, err := s.store.Txn(c.ctx(), []backends.TxnOp{
		{Verb: backends.TxnCAS, Key: state.AppKey(n1), Value: b1, Index: a1.ModifyIndex},
		{Verb: backends.TxnCAS, Key: state.AppKey(n2), Value: b2, Index: a2.ModifyIndex},
	}); err != nil {
		return nil, err
	}
	s.eng.Kick(n1, n2)
	return map[string]any{n1: a1.Routes, n2: a2.Routes}, nil
}

// healers are named repairs an admin can run now.
var healers = map[string]string{
	"reconcile": "reconcile every app against the scheduler now (resubmit lost apps, stop orphans)",
	"services":  "repair drift between service instances and their brokers (orphaned instances, missing binding credentials)",
}

// GET /healers
func (s *Server) listHealers(c *call) (any, error) {
	out := []map[string]string{}
	keys := make([]string, 0, len(healers))
	for k := range healers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, map[string]string{k: healers[k]})
	}
	return out, nil
}

// GET /healers/:healer — run it now.
func (s *Server) runHealer(c *call) (any, error) {
	if err := s.eng.Allowed(c.ctx(), c.id, engine.ActHealerRun, nil); err != nil {
		return nil, err
	}
	name := c.param("healer")
	if _, ok := healers[name]; !ok {
		return nil, notFound("no healer %q; see GET /healers", name)
	}
	if name == "services" {
		repaired := s.eng.ServiceSweep(c.ctx())
		if repaired == nil {
			repaired = []string{}
		}
		return map[string]any{"healer": name, "repaired": repaired}, nil
	}
	if s.sched == nil {
		return nil, errStatus(503, "no scheduler is configured")
	}
	res, err := s.eng.Heal(c.ctx())
	if err != nil {
		return nil, err
	}
	return map[string]any{"healer": name, "result": res}, nil
}
