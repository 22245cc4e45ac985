package engine

import (
	"context"
	"sort"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/release"
	"github.com/berthpaas/berth/engine/state"
)

// Env lists an app's variables. Private values are not in the app record
// and are not answered: a private variable has only its name.
func (s *Engine) Env(ctx context.Context, id *Identity, app string) ([]state.EnvVar, error) {
	a, err := s.loadApp(ctx, id, app, ActAppEnvRead)
	if err != nil {
		return nil, err
	}
	return a.Env, nil
}

// EnvSet is one variable to set; a private value goes to Secrets.
type EnvSet struct {
	Name   string
	Value  string
	Public bool
}

// SetEnv sets variables of an app. A deployed app is redeployed with them
// (through its lease: a busy app is a conflict and nothing is written),
// unless noRestart; the Change is nil when there is no redeploy.
func (s *Engine) SetEnv(ctx context.Context, id *Identity, app string, vars []EnvSet, noRestart bool) (*Change, error) {
	a, err := s.loadApp(ctx, id, app, ActAppEnvSet)
	if err != nil {
		return nil, err
	}
	if len(vars) == 0 {
		return nil, badRequest("no variables given")
	}
	for _, e := range vars {
		if err := release.CheckEnv(e.Name, e.Value); err != nil {
			return nil, invalid(err)
		}
	}
	list := append([]EnvSet(nil), vars...)
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	priv := map[string]string{}
	var pubNames []string
	for _, e := range list {
		if !e.Public {
			priv[e.Name] = e.Value
		} else {
			pubNames = append(pubNames, e.Name)
		}
	}
	// A variable made public drops its private value.
	secret := func(ctx context.Context) (func(), error) {
		return s.mergeSecret(ctx, envSecretPath(a.Name), priv, pubNames)
	}
	apply := func(x *state.App) error {
		for _, e := range list {
			v := state.EnvVar{Name: e.Name, Public: e.Public}
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
	return s.envChange(ctx, id, a, "set env", noRestart, secret, apply)
}

// UnsetEnv removes variables of an app (each must exist), redeploying it
// as SetEnv does.
func (s *Engine) UnsetEnv(ctx context.Context, id *Identity, app string, names []string, noRestart bool) (*Change, error) {
	a, err := s.loadApp(ctx, id, app, ActAppEnvUnset)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, badRequest("name the variables to remove: ?env=NAME or {\"names\":[...]}")
	}
	for _, n := range names {
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
		return s.mergeSecret(ctx, envSecretPath(a.Name), nil, names)
	}
	return s.envChange(ctx, id, a, "unset env", noRestart, secret, func(x *state.App) error {
		out := x.Env[:0]
		for _, v := range x.Env {
			if !Contains(names, v.Name) {
				out = append(out, v)
			}
		}
		x.Env = out
		return nil
	})
}

// envChange applies an env change: through the deploy lease and a
// redeploy when the app is deployed, directly otherwise (then the Change
// is nil). secret writes the private values with check-and-set: after the
// lease is taken on the redeploy path (a conflict writes nothing), before
// the app record otherwise; it is undone when the app record cannot be
// written.
func (s *Engine) envChange(ctx context.Context, id *Identity, a *state.App, op string, noRestart bool, secret func(ctx context.Context) (func(), error), apply func(x *state.App) error) (*Change, error) {
	if a.Deployed && !noRestart {
		na, d, err := s.changeAppWith(ctx, id, a.Name, op, secret, apply)
		if err != nil {
			return nil, err
		}
		return &Change{App: na, Deploy: d}, nil
	}
	undo, err := secret(ctx)
	if err != nil {
		return nil, err
	}
	if _, _, err := state.Update(ctx, s.store, state.AppKey(a.Name), apply); err != nil {
		if undo != nil {
			undo()
		}
		return nil, err
	}
	return nil, nil
}

// RestartApp restarts every instance of a deployed app (rolling).
func (s *Engine) RestartApp(ctx context.Context, id *Identity, app string) (*Change, error) {
	a, err := s.loadApp(ctx, id, app, ActAppRestart)
	if err != nil {
		return nil, err
	}
	if !a.Deployed {
		return nil, badRequest("app %q is not deployed", a.Name)
	}
	na, d, err := s.changeApp(ctx, id, a.Name, "restart", func(x *state.App) error {
		x.RestartGen++
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Change{App: na, Deploy: d}, nil
}

// Swap exchanges two apps' public routes (blue-green), under both apps'
// leases and in one transaction; swapping again restores them. It answers
// each app's routes after the swap.
func (s *Engine) Swap(ctx context.Context, id *Identity, app1, app2 string) (map[string][]string, error) {
	if app1 == "" || app2 == "" || app1 == app2 {
		return nil, badRequest("name two different apps: /swap?app1=..&app2=..")
	}
	a1, err := s.LoadApp(ctx, id, app1, ActAppSwap)
	if err != nil {
		return nil, err
	}
	a2, err := s.LoadApp(ctx, id, app2, ActAppSwap)
	if err != nil {
		return nil, err
	}
	holder := id.Name()
	if err := s.lockApp(ctx, app1, holder, "swap", a1.Generation+1); err != nil {
		return nil, err
	}
	if err := s.lockApp(ctx, app2, holder, "swap", a2.Generation+1); err != nil {
		s.UnlockApp(ctx, app1, -1)
		return nil, err
	}
	defer s.UnlockApp(ctx, app1, -1)
	defer s.UnlockApp(ctx, app2, -1)
	a1.Routes, a2.Routes = a2.Routes, a1.Routes
	a1.Generation++
	a2.Generation++
	b1, err := jsonBytes(a1)
	if err != nil {
		return nil, err
	}
	b2, err := jsonBytes(a2)
	if err != nil {
		return nil, err
	}
	if _, err := s.store.Txn(ctx, []backends.TxnOp{
		{Verb: backends.TxnCAS, Key: state.AppKey(app1), Value: b1, Index: a1.ModifyIndex},
		{Verb: backends.TxnCAS, Key: state.AppKey(app2), Value: b2, Index: a2.ModifyIndex},
	}); err != nil {
		return nil, err
	}
	s.Kick(app1, app2)
	return map[string][]string{app1: a1.Routes, app2: a2.Routes}, nil
}
