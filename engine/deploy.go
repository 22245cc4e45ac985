package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sort"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine/release"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// lockApp takes the app's operation lease for op, or answers 409 naming
// who holds it. The lease expires after reconciler.lock_ttl; the
// reconciler releases it when the operation has converged.
func (s *Engine) lockApp(ctx context.Context, app, holder, op string, gen int64) error {
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

// changeApp is every state change of a deployed app's desired state: it
// takes the lease, applies fn to the app record (check-and-set), bumps the
// generation, records the pending deploy and kicks the reconciler. The
// answer is at once; progress is in GET /api/v1/apps/:app/ and its events.
func (s *Engine) changeApp(ctx context.Context, id *Identity, name, op string, fn func(a *state.App) error) (*state.App, *state.Deploy, error) {
	return s.changeAppWith(ctx, id, name, op, nil, fn)
}

// changeAppWith is changeApp with a step that writes Secrets (private
// values) between taking the lease and committing the app record: an
// operation refused for a held lease writes nothing, and when the commit
// fails the secret write is undone (pre returns the undo).
func (s *Engine) changeAppWith(ctx context.Context, id *Identity, name, op string, pre func(ctx context.Context) (undo func(), err error), fn func(a *state.App) error) (*state.App, *state.Deploy, error) {
	return s.changeAppRelease(ctx, id, name, op, nil, pre, fn)
}

// changeAppRelease is changeAppWith for a change whose desired release
// is rel (if not nil): the reconciler is handed the committed record and
// rel, and need not read them back before it submits.
func (s *Engine) changeAppRelease(ctx context.Context, id *Identity, name, op string, rel *state.Release, pre func(ctx context.Context) (undo func(), err error), fn func(a *state.App) error) (*state.App, *state.Deploy, error) {
	cur, err := state.GetApp(ctx, s.store, name)
	if err != nil {
		return nil, nil, err
	}
	holder := id.Name()
	if err := s.lockApp(ctx, name, holder, op, cur.Generation+1); err != nil {
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
	a, d, err := s.commitChange(ctx, name, holder, op, fn)
	if err != nil {
		undo()
		s.UnlockApp(ctx, name, -1)
		return nil, nil, err
	}
	if rel != nil && rel.MetaVersion != a.MetaVersion {
		rel = nil
	}
	s.changed(a, rel)
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
func (s *Engine) commitChange(ctx context.Context, name, holder, op string, fn func(a *state.App) error) (*state.App, *state.Deploy, error) {
	return s.commitChangeWith(ctx, name, holder, op, fn, nil)
}

// commitChangeWith is commitChange with dfn adjusting the deploy record.
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
		now := time.Now().UTC()
		d := &state.Deploy{App: name, Generation: a.Generation, Operation: op, MetaVersion: a.MetaVersion, State: state.DeployPending, By: holder, Updated: now, Started: now}
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
		wm, err := s.store.Txn(ctx, []backends.TxnOp{
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
		if wm != nil {
			a.ModifyIndex = wm.Index // the transaction's commit index (0: unknown)
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
	private := false
	for _, v := range a.Env {
		private = private || !v.Public
	}
	// An app without private variables reads nothing of their secret.
	if private {
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
	st, _, err := s.schedStatus(ctx, a.Name)
	if err != nil || st == nil {
		return nil, "unknown"
	}
	return st.Instances, string(st.Deployment)
}

// beforeRemoveApp undeploys an app (and its resource instances) before its
// record is removed.
func (s *Engine) beforeRemoveApp(ctx context.Context, id *Identity, a *state.App) error {
	if err := s.lockApp(ctx, a.Name, id.Name(), "remove", a.Generation+1); err != nil {
		return err
	}
	if err := s.unbindAll(ctx, id, a); err != nil {
		s.UnlockApp(ctx, a.Name, -1)
		return err
	}
	if s.sched != nil {
		sctx, cancel := context.WithTimeout(ctx, 4*s.cfg.SchedulerTimeoutDur)
		err := s.sched.Stop(sctx, a.Name)
		cancel()
		if err != nil {
			s.UnlockApp(ctx, a.Name, -1)
			return err
		}
	}
	s.forget(a.Name)
	_, _ = s.store.Delete(ctx, state.DeployKey(a.Name))
	_ = s.secrets.Delete(ctx, runtimeEnvPath(a.Name))
	s.UnlockApp(ctx, a.Name, -1)
	return nil
}

// DeployedApp is a deployed app as its users see it: its desired state,
// its current operation, the deploy policy in effect and each proc of its
// release with the instances the scheduler reports.
type DeployedApp struct {
	App *state.App
	// Deploy is the app's latest operation (nil before the first).
	Deploy *state.Deploy
	// ProgressDeadline and AutoRevert are the deploy policy in effect (the
	// app's own, else the defaults).
	ProgressDeadline time.Duration
	AutoRevert       bool
	// Procs are the procs of the app's current release (none when that
	// release is missing).
	Procs []ProcStatus
	// SchedulerStale is set when the scheduler did not answer: the units
	// shown are the last ones it reported.
	SchedulerStale *SchedulerStale
}

// ProcStatus is one proc of a deployed app's release.
type ProcStatus struct {
	Proc release.Proc // as released
	// Deployed is false for a proc undeployed on its own; its size is
	// then the release's, with no instances wanted.
	Deployed bool
	// Instances, CPU and MemoryMB are the size in effect (overrides
	// applied).
	Instances int
	CPU       float64
	MemoryMB  int
	// Units are the proc's instances as the scheduler reports them.
	Units []backends.Instance
}

// DeploySettings is the optional per-app deploy policy a deploy may set; it
// is kept on the app for its later operations. Nil fields leave the app's
// setting alone; an empty ProgressDeadline goes back to the default.
type DeploySettings struct {
	ProgressDeadline *string
	AutoRevert       *bool
}

func (p DeploySettings) check() error {
	if p.ProgressDeadline == nil || *p.ProgressDeadline == "" {
		return nil
	}
	d, err := time.ParseDuration(*p.ProgressDeadline)
	if err != nil || d < config.MinProgressDeadline || d > config.MaxProgressDeadline {
		return badRequest("progress_deadline must be a duration between %v and %v (e.g. \"90s\", \"5m\")", config.MinProgressDeadline, config.MaxProgressDeadline)
	}
	return nil
}

func (p DeploySettings) apply(x *state.App) {
	if p.ProgressDeadline != nil {
		x.ProgressDeadline = *p.ProgressDeadline
	}
	if p.AutoRevert != nil {
		x.AutoRevert = p.AutoRevert
	}
}

// Change is the outcome of an accepted change of an app's desired state:
// the app as committed and its pending operation, whose progress the
// reconciler records.
type Change struct {
	App    *state.App
	Deploy *state.Deploy
	// ResourceInstances names the resource instances a deploy created or
	// moved (if any).
	ResourceInstances []string
	// Proc is the proc a proc operation changed.
	Proc string
	// Ignored lists the fields of the request that did not take effect.
	Ignored []string
}

// loadApp validates an app name and loads the app for act.
func (s *Engine) loadApp(ctx context.Context, id *Identity, name string, act Action) (*state.App, error) {
	if err := names.App(name); err != nil {
		return nil, invalid(err)
	}
	return s.LoadApp(ctx, id, name, act)
}

// loadDeployed is loadApp for an app that must be deployed.
func (s *Engine) loadDeployed(ctx context.Context, id *Identity, name string, act Action) (*state.App, error) {
	a, err := s.loadApp(ctx, id, name, act)
	if err != nil {
		return nil, err
	}
	if !a.Deployed {
		return nil, notFound("app %q is registered but not deployed", a.Name)
	}
	return a, nil
}

// deployed builds the DeployedApp of a.
func (s *Engine) deployed(ctx context.Context, a *state.App) (*DeployedApp, error) {
	v := &DeployedApp{App: a}
	v.ProgressDeadline, v.AutoRevert = s.DeployPolicy(a)
	d, err := s.GetDeploy(ctx, a.Name)
	if err != nil {
		return nil, err
	}
	v.Deploy = d
	rel, _, err := state.Get[state.Release](ctx, s.store, state.ReleaseKey(a.Name, a.MetaVersion))
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return nil, err
	}
	var st *backends.AppStatus
	if s.sched != nil {
		st, v.SchedulerStale, err = s.schedStatus(ctx, a.Name)
		if err != nil && !errors.Is(err, backends.ErrNotFound) {
			return nil, err
		}
	}
	if rel == nil {
		return v, nil
	}
	spec, err := s.RenderSpec(ctx, a, rel)
	if err != nil {
		return nil, err
	}
	for _, p := range rel.Spec.Procs {
		ps := ProcStatus{Proc: p, CPU: p.CPU, MemoryMB: p.MemoryMB}
		for _, sp := range spec.Procs {
			if sp.Name == p.Name {
				ps.Deployed = true
				ps.Instances, ps.CPU, ps.MemoryMB = sp.Instances, sp.CPU, sp.MemoryMB
			}
		}
		if st != nil {
			for _, in := range st.Instances {
				if in.Proc == p.Name {
					ps.Units = append(ps.Units, in)
				}
			}
		}
		v.Procs = append(v.Procs, ps)
	}
	return v, nil
}

// ListDeployed lists the deployed apps the caller may read, of one app
// type ("" for all).
func (s *Engine) ListDeployed(ctx context.Context, id *Identity, appType string) ([]*DeployedApp, error) {
	out, _, err := s.ListDeployedPage(ctx, id, appType, Page{})
	return out, err
}

// GetDeployed is one deployed app the caller may read.
func (s *Engine) GetDeployed(ctx context.Context, id *Identity, app string) (*DeployedApp, error) {
	a, err := s.loadDeployed(ctx, id, app, ActAppRead)
	if err != nil {
		return nil, err
	}
	return s.deployed(ctx, a)
}

// DeployLatest deploys the app's latest pushed release.
func (s *Engine) DeployLatest(ctx context.Context, id *Identity, app string, set DeploySettings) (*Change, error) {
	if err := names.App(app); err != nil {
		return nil, invalid(err)
	}
	if err := set.check(); err != nil {
		return nil, err
	}
	a, err := s.LoadApp(ctx, id, app, ActAppDeploy)
	if err != nil {
		return nil, err
	}
	rel, err := s.latestRelease(ctx, a.Name)
	if err != nil {
		return nil, err
	}
	if rel == nil {
		return nil, badRequest("app %q has no pushed release: push one first (POST /api/v1/repos/%s/push/)", a.Name, a.Name)
	}
	return s.deployVersion(ctx, id, a, rel, set)
}

// DeployVersion deploys a pushed release of the app (a rollback too).
func (s *Engine) DeployVersion(ctx context.Context, id *Identity, app, metaVersion string, set DeploySettings) (*Change, error) {
	a, err := s.loadApp(ctx, id, app, ActAppUpdate)
	if err != nil {
		return nil, err
	}
	if err := names.MetaVersion(metaVersion); err != nil {
		return nil, invalid(err)
	}
	if err := set.check(); err != nil {
		return nil, err
	}
	rel, _, err := state.Get[state.Release](ctx, s.store, state.ReleaseKey(a.Name, metaVersion))
	if errors.Is(err, state.ErrNotFound) {
		return nil, badRequest("app %q has no release %s: push it first", a.Name, metaVersion)
	}
	if err != nil {
		return nil, err
	}
	return s.deployVersion(ctx, id, a, rel, set)
}

// deployVersion makes rel the app's desired version, creating the
// resource instances it uses.
func (s *Engine) deployVersion(ctx context.Context, id *Identity, a *state.App, rel *state.Release, set DeploySettings) (*Change, error) {
	if a.AppType == state.AppTypeResource {
		// A resource is deployed per client, as resource instances.
		return nil, badRequest("app %q is a resource: it is deployed as resource instances of the apps that use it", a.Name)
	}
	if s.sched == nil {
		return nil, Unavailable("no scheduler is configured")
	}
	instances, err := s.ensureResourceInstances(ctx, id, a, rel)
	if err != nil {
		return nil, err
	}
	na, d, err := s.changeAppRelease(ctx, id, a.Name, "deploy "+rel.MetaVersion, rel, nil, func(x *state.App) error {
		x.Deployed = true
		x.MetaVersion = rel.MetaVersion
		set.apply(x)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Change{App: na, Deploy: d, ResourceInstances: instances}, nil
}

// Undeploy stops a deployed app, keeping its registration.
func (s *Engine) Undeploy(ctx context.Context, id *Identity, app string) (*Change, error) {
	a, err := s.loadApp(ctx, id, app, ActAppUndeploy)
	if err != nil {
		return nil, err
	}
	if a.AppType == state.AppTypeResource {
		return nil, forbidden("app %q is a resource: resources cannot be undeployed (undeploy the apps that use it)", a.Name)
	}
	if !a.Deployed {
		return nil, notFound("app %q is not deployed", a.Name)
	}
	na, d, err := s.changeApp(ctx, id, a.Name, "undeploy", func(x *state.App) error {
		x.Deployed = false
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Change{App: na, Deploy: d}, nil
}

// DeployWatch follows an app's operation records (see WatchDeploy).
type DeployWatch struct {
	s     *Engine
	app   string
	wait  time.Duration
	index uint64
	last  []byte
}

// WatchDeploy starts following the operations of an app the caller may
// read: each Next answers the app's operation record when it changes, or
// nil after wait without a change.
func (s *Engine) WatchDeploy(ctx context.Context, id *Identity, app string, wait time.Duration) (*DeployWatch, *state.App, error) {
	a, err := s.loadApp(ctx, id, app, ActAppRead)
	if err != nil {
		return nil, nil, err
	}
	return &DeployWatch{s: s, app: a.Name, wait: wait}, a, nil
}

// Next blocks until the app's operation record differs from the last one
// answered (then it answers it, with the store's index of it), or until
// the wait has passed (then it answers nil). An error is the store's: the
// caller may retry.
func (w *DeployWatch) Next(ctx context.Context) (*state.Deploy, uint64, error) {
	for {
		p, meta, err := w.s.store.Get(ctx, state.DeployKey(w.app), &backends.QueryOptions{WaitIndex: w.index, WaitTime: w.wait})
		if err != nil {
			return nil, w.index, err
		}
		if meta.LastIndex < w.index {
			w.index = 0 // the store went back (restored): start over
		} else {
			w.index = meta.LastIndex
		}
		if p == nil || bytes.Equal(p.Value, w.last) {
			return nil, w.index, nil
		}
		w.last = p.Value
		var d state.Deploy
		if json.Unmarshal(p.Value, &d) != nil {
			if ctx.Err() != nil {
				return nil, w.index, ctx.Err()
			}
			continue
		}
		return &d, w.index, nil
	}
}

// invalid makes a validation failure of the names or release package (or
// any error) a KindInvalid domain error with the same message.
func invalid(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := AsError(err); ok {
		return err
	}
	return &Error{Kind: KindInvalid, Msg: err.Error()}
}
