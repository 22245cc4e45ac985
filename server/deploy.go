package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/state"
)

// lockApp takes the app's operation lease for op, or answers 409 naming
// who holds it. The lease expires after reconciler.lock_ttl; the
// reconciler releases it when the operation has converged.
func (s *Server) lockApp(ctx context.Context, app, holder, op string, gen int64) error {
	key := state.LockKey(app)
	for attempt := 0; attempt < 16; attempt++ {
		cur, idx, err := state.Get[state.Lock](ctx, s.store, key)
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return err
		}
		if err == nil && time.Now().Before(cur.Expires) {
			return &Error{Status: 409, Msg: fmt.Sprintf("app %q is busy: %s holds it for %q until %s; try again when that finishes",
				app, cur.Holder, cur.Operation, cur.Expires.Format(time.RFC3339)),
				Extra: map[string]any{"lock_holder": cur.Holder, "lock_operation": cur.Operation}}
		}
		l := &state.Lock{Holder: holder, Operation: op, Generation: gen, Expires: time.Now().Add(s.cfg.Reconcile.LockTTLDur).UTC()}
		if errors.Is(err, state.ErrNotFound) {
			idx = 0
		}
		if _, err := state.Put(ctx, s.store, key, l, idx); errors.Is(err, state.ErrConflict) {
			continue
		} else if err != nil {
			return err
		}
		return nil
	}
	return conflict("app %q is busy", app)
}

// unlockApp releases the lease if it is still the one for gen (gen < 0:
// whatever lease there is).
func (s *Server) unlockApp(ctx context.Context, app string, gen int64) {
	key := state.LockKey(app)
	cur, idx, err := state.Get[state.Lock](ctx, s.store, key)
	if err != nil {
		return
	}
	if gen >= 0 && cur.Generation != gen {
		return
	}
	_, _, _ = s.store.DeleteCAS(ctx, key, idx)
}

// changeApp is every state change of a deployed app's desired state: it
// takes the lease, applies fn to the app record (check-and-set), bumps the
// generation, records the pending deploy and kicks the reconciler. The
// answer is at once; progress is in GET /api/v1/apps/:app/ and its events.
func (s *Server) changeApp(c *call, name, op string, fn func(a *state.App) error) (*state.App, *state.Deploy, error) {
	return s.changeAppWith(c, name, op, nil, fn)
}

// changeAppWith is changeApp with a step that writes Secrets (private
// values) between taking the lease and committing the app record: an
// operation refused for a held lease writes nothing, and when the commit
// fails the secret write is undone (pre returns the undo).
func (s *Server) changeAppWith(c *call, name, op string, pre func(ctx context.Context) (undo func(), err error), fn func(a *state.App) error) (*state.App, *state.Deploy, error) {
	ctx := c.ctx()
	cur, err := state.GetApp(ctx, s.store, name)
	if err != nil {
		return nil, nil, err
	}
	holder := c.id.Name()
	if err := s.lockApp(ctx, name, holder, op, cur.Generation+1); err != nil {
		return nil, nil, err
	}
	undo := func() {}
	if pre != nil {
		u, err := pre(ctx)
		if err != nil {
			s.unlockApp(ctx, name, -1)
			return nil, nil, err
		}
		if u != nil {
			undo = u
		}
	}
	a, d, err := s.commitChange(ctx, name, holder, op, fn)
	if err != nil {
		undo()
		s.unlockApp(ctx, name, -1)
		return nil, nil, err
	}
	s.rec.kick(name)
	return a, d, nil
}

// commitChange applies fn to the app record and bumps its generation.
// The app record, the pending deploy record and the lease (naming the
// generation that releases it) are written in one transaction: the
// reconciler, woken by the app's change, always finds the deploy record of
// that generation, with its operation and author. The caller holds the
// lease.
//
// The deploy record carries the app's last running release (LastRunning)
// from the previous record: it is read and written with check-and-set, so
// a running state the reconciler records meanwhile is not lost. dfn (if
// any) adjusts the new deploy record.
func (s *Server) commitChange(ctx context.Context, name, holder, op string, fn func(a *state.App) error) (*state.App, *state.Deploy, error) {
	return s.commitChangeWith(ctx, name, holder, op, fn, nil)
}

// commitChangeWith is commitChange with dfn adjusting the deploy record.
func (s *Server) commitChangeWith(ctx context.Context, name, holder, op string, fn func(a *state.App) error, dfn func(d *state.Deploy)) (*state.App, *state.Deploy, error) {
	for attempt := 0; ; attempt++ {
		a, idx, err := state.Get[state.App](ctx, s.store, state.AppKey(name))
		if err != nil {
			return nil, nil, err
		}
		prev, didx, err := s.getDeployIndex(ctx, name)
		if err != nil {
			return nil, nil, err
		}
		if err := fn(a); err != nil {
			return nil, nil, err
		}
		a.Generation++
		d := &state.Deploy{App: name, Generation: a.Generation, Operation: op, MetaVersion: a.MetaVersion, State: state.DeployPending, By: holder, Updated: time.Now().UTC()}
		if !a.Deployed {
			d.MetaVersion = ""
		}
		if prev != nil {
			d.LastRunning = prev.LastRunning
		}
		if dfn != nil {
			dfn(d)
		}
		l := &state.Lock{Holder: holder, Operation: op, Generation: a.Generation, Expires: time.Now().Add(s.cfg.Reconcile.LockTTLDur).UTC()}
		ab, _ := json.Marshal(a)
		db, _ := json.Marshal(d)
		lb, _ := json.Marshal(l)
		_, err = s.store.Txn(ctx, []backends.TxnOp{
			{Verb: backends.TxnCAS, Key: state.AppKey(name), Value: ab, Index: idx},
			{Verb: backends.TxnCAS, Key: state.DeployKey(name), Value: db, Index: didx},
			{Verb: backends.TxnSet, Key: state.LockKey(name), Value: lb},
		})
		if errors.Is(err, backends.ErrCASConflict) && attempt < 64 {
			time.Sleep(time.Duration(attempt) * time.Millisecond)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		return a, d, nil
	}
}

func (s *Server) putDeploy(ctx context.Context, d *state.Deploy) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	_, err = s.store.Put(ctx, &backends.KVPair{Key: state.DeployKey(d.App), Value: b})
	return err
}

func (s *Server) getDeploy(ctx context.Context, app string) (*state.Deploy, error) {
	d, _, err := s.getDeployIndex(ctx, app)
	return d, err
}

// getDeployIndex reads the deploy record and its modify index (nil, 0 if
// there is none).
func (s *Server) getDeployIndex(ctx context.Context, app string) (*state.Deploy, uint64, error) {
	d, idx, err := state.Get[state.Deploy](ctx, s.store, state.DeployKey(app))
	if errors.Is(err, state.ErrNotFound) {
		return nil, 0, nil
	}
	return d, idx, err
}

// accepted is the 202 answer of an operation.
func accepted(a *state.App, d *state.Deploy, extra map[string]any) *reply {
	body := map[string]any{
		"appname": a.Name, "meta_version": a.MetaVersion, "generation": d.Generation,
		"operation": d.Operation, "state": d.State,
		"watch": "/api/v1/apps/" + a.Name + "/", "events": "/api/v1/apps/" + a.Name + "/events/",
	}
	for k, v := range extra {
		body[k] = v
	}
	return &reply{Status: 202, Body: body}
}

// deployRoutes registers the deploy engine's endpoints (both surfaces).
func (s *Server) deployRoutes() {
	g, p, u, d, pa := "GET", "POST", "PUT", "DELETE", "PATCH"
	s.handle(g, "/api/v1/apps", authed, s.listDeployed)
	s.handle(p, "/api/v1/apps", act("app.deploy"), s.deployApp)
	s.handle(g, "/api/v1/apps/:app", authed, s.getDeployed)
	s.handle(u, "/api/v1/apps/:app", act("app.update"), s.updateDeployed)
	s.handle(d, "/api/v1/apps/:app", act("app.undeploy"), s.undeployApp)
	s.handle(g, "/api/v1/apps/:app/events", authed, s.streamEvents)
	s.handle(g, "/api/v1/apps/:app/procs", authed, s.listProcs)
	s.handle(p, "/api/v1/apps/:app/procs", act("proc.deploy"), s.deployProc)
	s.handle(g, "/api/v1/apps/:app/procs/:proc", authed, s.getProc)
	s.handle(pa, "/api/v1/apps/:app/procs/:proc", act("proc.patch"), s.patchProc)
	s.handle(d, "/api/v1/apps/:app/procs/:proc", act("proc.undeploy"), s.undeployProc)
	s.handle(g, "/api/v1/resources/:resource/instances", authed, s.listResourceInstances)

	s.handle(g, "/apps/:app/restart", act("app.restart"), s.restartApp)
	s.handle(g, "/apps/:app/env", authed, s.getEnv)
	s.handle(p, "/apps/:app/env", act("app.env.set"), s.setEnv)
	s.handle(d, "/apps/:app/env", act("app.env.unset"), s.unsetEnv)
	s.handle(u, "/swap", act("app.swap"), s.swap)
	s.handle(g, "/healers", authed, s.listHealers)
	s.handle(g, "/healers/:healer", act("healer.run"), s.runHealer)
}

// runtimeEnvPath is where the merged private env (private vars and bound
// service credentials) of an app lives in Secrets; Nomad templates read it.
func runtimeEnvPath(app string) string { return "apps/" + app + "/runtime-env" }

// bindingPrefix is where an app's service credentials live in Secrets.
func bindingPrefix(app string) string { return "apps/" + app + "/bindings/" }

// privateEnv reads an app's private variables and bound credentials.
func (s *Server) privateEnv(ctx context.Context, a *state.App) (map[string]string, error) {
	out := map[string]string{}
	sec, err := s.secrets.Get(ctx, envSecretPath(a.Name), 0)
	if err != nil && !errors.Is(err, backends.ErrNotFound) {
		return nil, err
	}
	if err == nil {
		for _, v := range a.Env {
			if !v.Public {
				if val, ok := sec.Data[v.Name]; ok {
					out[v.Name] = val
				}
			}
		}
	}
	paths, err := s.secrets.List(ctx, bindingPrefix(a.Name))
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		b, err := s.secrets.Get(ctx, p, 0)
		if errors.Is(err, backends.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for k, v := range b.Data {
			out[k] = v
		}
	}
	return out, nil
}

// renderSpec builds the scheduler's AppSpec from the app's desired state
// and its release: release procs, with the overrides that survive new
// versions (scale, cpu, memory, undeployed procs), env and routes.
func (s *Server) renderSpec(ctx context.Context, a *state.App, rel *state.Release) (*backends.AppSpec, error) {
	spec := &backends.AppSpec{App: a.Name, MetaVersion: a.MetaVersion, Env: map[string]string{}, SecretPath: s.secretRd + runtimeEnvPath(a.Name)}
	for _, v := range a.Env {
		if v.Public {
			spec.Env[v.Name] = v.Value
		}
	}
	priv, err := s.privateEnv(ctx, a)
	if err != nil {
		return nil, err
	}
	spec.PrivateEnv = priv
	spec.ProgressDeadline, spec.AutoRevert = s.deployPolicy(a)
	hasWeb := false
	for _, p := range rel.Spec.Procs {
		o := a.Procs[p.Name]
		if o.Undeployed {
			continue
		}
		ps := backends.ProcSpec{
			Name: p.Name, Type: p.Type, Cmd: p.Cmd, Image: p.Image, Port: p.Port, Instances: p.NumInstances,
			CPU: p.CPU, MemoryMB: p.MemoryMB, Env: p.Env, HealthCheck: p.HealthCheck,
		}
		if o.NumInstances != nil {
			ps.Instances = *o.NumInstances
		}
		if o.CPU != nil {
			ps.CPU = *o.CPU
		}
		if o.MemoryMB != nil {
			ps.MemoryMB = *o.MemoryMB
		}
		if p.Type == backends.ProcWeb {
			hasWeb = true
		}
		spec.Procs = append(spec.Procs, ps)
	}
	sort.Slice(spec.Procs, func(i, j int) bool { return spec.Procs[i].Name < spec.Procs[j].Name })
	if hasWeb {
		spec.Routes = append([]string(nil), a.Routes...)
	}
	return spec, nil
}

// deployPolicy is the app's progress deadline and auto_revert: its own
// settings, else the reconciler's defaults.
func (s *Server) deployPolicy(a *state.App) (time.Duration, bool) {
	deadline := s.cfg.Reconcile.ProgressDeadlineDur
	if d, err := time.ParseDuration(a.ProgressDeadline); err == nil && d > 0 {
		deadline = d
	}
	revert := s.cfg.Reconcile.AutoRevert == nil || *s.cfg.Reconcile.AutoRevert
	if a.AutoRevert != nil {
		revert = *a.AutoRevert
	}
	return deadline, revert
}

// specHash fingerprints a spec (private values included, so a changed
// secret redeploys); it is kept in memory only.
func specHash(spec *backends.AppSpec, restartGen int64) string {
	b, _ := json.Marshal(struct {
		S *backends.AppSpec
		R int64
	}{spec, restartGen})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// units reports an app's running instances from the scheduler, and the
// app's state for the tsuru view.
func (s *Server) units(c *call, a *state.App) ([]unitView, string) {
	units := []unitView{}
	if !a.Deployed || s.sched == nil {
		return units, "registered"
	}
	st, err := s.sched.Status(c.ctx(), a.Name)
	if err != nil {
		return units, "unknown"
	}
	for _, in := range st.Instances {
		units = append(units, unitView{Name: fmt.Sprintf("%s/%s/%d", a.Name, in.Proc, in.Index), Ip: in.Address, State: in.State})
	}
	return units, st.Deployment
}

// beforeRemoveApp undeploys an app (and its resource instances) before its
// record is removed.
func (s *Server) beforeRemoveApp(c *call, a *state.App) error {
	if err := s.lockApp(c.ctx(), a.Name, c.id.Name(), "remove", a.Generation+1); err != nil {
		return err
	}
	if err := s.unbindAll(c, a); err != nil {
		s.unlockApp(c.ctx(), a.Name, -1)
		return err
	}
	if s.sched != nil {
		if err := s.sched.Stop(c.ctx(), a.Name); err != nil {
			s.unlockApp(c.ctx(), a.Name, -1)
			return err
		}
	}
	s.rec.forget(a.Name)
	_, _ = s.store.Delete(c.ctx(), state.DeployKey(a.Name))
	_ = s.secrets.Delete(c.ctx(), runtimeEnvPath(a.Name))
	s.unlockApp(c.ctx(), a.Name, -1)
	return nil
}
