package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sort"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/state"
)

// LockApp takes the app's operation lease for op, or answers 409 naming
// who holds it. The lease expires after reconciler.lock_ttl; the
// reconciler releases it when the operation has converged.
func (s *Engine) LockApp(ctx context.Context, app, holder, op string, gen int64) error {
	key := state.LockKey(app)
	for attempt := 0; attempt < 16; attempt++ {
		cur, idx, err := state.Get[state.Lock](ctx, s.store, key)
		if err != nil && !errors.Is(err, state.ErrNotFound) {
			return err
		}
		if err == nil && time.Now().Before(cur.Expires) {
			e := conflict("app %q is busy: %s holds it for %q until %s; try again when that finishes",
				app, cur.Holder, cur.Operation, cur.Expires.Format(time.RFC3339))
			e.Holder, e.Operation = cur.Holder, cur.Operation
			return e
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

// UnlockApp releases the lease if it is still the one for gen (gen < 0:
// whatever lease there is).
func (s *Engine) UnlockApp(ctx context.Context, app string, gen int64) {
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

// ChangeApp is every state change of a deployed app's desired state: it
// takes the lease, applies fn to the app record (check-and-set), bumps the
// generation, records the pending deploy and kicks the reconciler. The
// answer is at once; progress is in GET /api/v1/apps/:app/ and its events.
func (s *Engine) ChangeApp(ctx context.Context, id *Identity, name, op string, fn func(a *state.App) error) (*state.App, *state.Deploy, error) {
	return s.ChangeAppWith(ctx, id, name, op, nil, fn)
}

// ChangeAppWith is ChangeApp with a step that writes Secrets (private
// values) between taking the lease and committing the app record: an
// operation refused for a held lease writes nothing, and when the commit
// fails the secret write is undone (pre returns the undo).
func (s *Engine) ChangeAppWith(ctx context.Context, id *Identity, name, op string, pre func(ctx context.Context) (undo func(), err error), fn func(a *state.App) error) (*state.App, *state.Deploy, error) {
	cur, err := state.GetApp(ctx, s.store, name)
	if err != nil {
		return nil, nil, err
	}
	holder := id.Name()
	if err := s.LockApp(ctx, name, holder, op, cur.Generation+1); err != nil {
		return nil, nil, err
	}
	undo := func() {}
	if pre != nil {
		u, err := pre(ctx)
		if err != nil {
			s.UnlockApp(ctx, name, -1)
			return nil, nil, err
		}
		if u != nil {
			undo = u
		}
	}
	a, d, err := s.CommitChange(ctx, name, holder, op, fn)
	if err != nil {
		undo()
		s.UnlockApp(ctx, name, -1)
		return nil, nil, err
	}
	s.rec.kick(name)
	return a, d, nil
}

// CommitChange applies fn to the app record and bumps its generation.
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
func (s *Engine) CommitChange(ctx context.Context, name, holder, op string, fn func(a *state.App) error) (*state.App, *state.Deploy, error) {
	return s.commitChangeWith(ctx, name, holder, op, fn, nil)
}

// commitChangeWith is CommitChange with dfn adjusting the deploy record.
func (s *Engine) commitChangeWith(ctx context.Context, name, holder, op string, fn func(a *state.App) error, dfn func(d *state.Deploy)) (*state.App, *state.Deploy, error) {
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

func (s *Engine) putDeploy(ctx context.Context, d *state.Deploy) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	_, err = s.store.Put(ctx, &backends.KVPair{Key: state.DeployKey(d.App), Value: b})
	return err
}

func (s *Engine) GetDeploy(ctx context.Context, app string) (*state.Deploy, error) {
	d, _, err := s.getDeployIndex(ctx, app)
	return d, err
}

// getDeployIndex reads the deploy record and its modify index (nil, 0 if
// there is none).
func (s *Engine) getDeployIndex(ctx context.Context, app string) (*state.Deploy, uint64, error) {
	d, idx, err := state.Get[state.Deploy](ctx, s.store, state.DeployKey(app))
	if errors.Is(err, state.ErrNotFound) {
		return nil, 0, nil
	}
	return d, idx, err
}

// runtimeEnvPath is where the merged private env (private vars and bound
// service credentials) of an app lives in Secrets; Nomad templates read it.
func runtimeEnvPath(app string) string { return "apps/" + app + "/runtime-env" }

// bindingPrefix is where an app's service credentials live in Secrets.
func bindingPrefix(app string) string { return "apps/" + app + "/bindings/" }

// privateEnv reads an app's private variables and bound credentials.
func (s *Engine) privateEnv(ctx context.Context, a *state.App) (map[string]string, error) {
	out := map[string]string{}
	sec, err := s.secrets.Get(ctx, EnvSecretPath(a.Name), 0)
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

// RenderSpec builds the scheduler's AppSpec from the app's desired state
// and its release: release procs, with the overrides that survive new
// versions (scale, cpu, memory, undeployed procs), env and routes.
func (s *Engine) RenderSpec(ctx context.Context, a *state.App, rel *state.Release) (*backends.AppSpec, error) {
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
	spec.ProgressDeadline, spec.AutoRevert = s.DeployPolicy(a)
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

// DeployPolicy is the app's progress deadline and auto_revert: its own
// settings, else the reconciler's defaults.
func (s *Engine) DeployPolicy(a *state.App) (time.Duration, bool) {
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

// Units reports an app's running instances from the scheduler, and the
// app's state: "registered" when it is not deployed, "unknown" when the
// scheduler cannot say.
func (s *Engine) Units(ctx context.Context, a *state.App) ([]backends.Instance, string) {
	if !a.Deployed || s.sched == nil {
		return nil, "registered"
	}
	st, err := s.sched.Status(ctx, a.Name)
	if err != nil {
		return nil, "unknown"
	}
	return st.Instances, string(st.Deployment)
}

// BeforeRemoveApp undeploys an app (and its resource instances) before its
// record is removed.
func (s *Engine) BeforeRemoveApp(ctx context.Context, id *Identity, a *state.App) error {
	if err := s.LockApp(ctx, a.Name, id.Name(), "remove", a.Generation+1); err != nil {
		return err
	}
	if err := s.unbindAll(ctx, id, a); err != nil {
		s.UnlockApp(ctx, a.Name, -1)
		return err
	}
	if s.sched != nil {
		if err := s.sched.Stop(ctx, a.Name); err != nil {
			s.UnlockApp(ctx, a.Name, -1)
			return err
		}
	}
	s.rec.forget(a.Name)
	_, _ = s.store.Delete(ctx, state.DeployKey(a.Name))
	_ = s.secrets.Delete(ctx, runtimeEnvPath(a.Name))
	s.UnlockApp(ctx, a.Name, -1)
	return nil
}
