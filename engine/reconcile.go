package engine

import (
	"context"
	"errors"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/state"
)

// What the reconciler (package reconciler) needs of the engine, beyond
// Store, Scheduler, RenderSpec, DeployPolicy, UnlockApp and ServiceSweep.

// DeployIndex reads the app's deploy record and its modify index, for a
// check-and-set write of it (nil, 0 when there is none).
func (s *Engine) DeployIndex(ctx context.Context, app string) (*state.Deploy, uint64, error) {
	return s.getDeployIndex(ctx, app)
}

// CommitChangeWith is commitChange with dfn adjusting the new deploy
// record (the reconciler's auto-revert records the failed deploy in it).
func (s *Engine) CommitChangeWith(ctx context.Context, name, holder, op string, fn func(a *state.App) error, dfn func(d *state.Deploy)) (*state.App, *state.Deploy, error) {
	return s.commitChangeWith(ctx, name, holder, op, fn, dfn)
}

// SpecHash fingerprints a rendered spec (private values included, so a
// changed secret redeploys); the reconciler keeps it in memory only, to
// tell whether an app needs submitting again.
func SpecHash(spec *backends.AppSpec) string { return specHash(spec, 0) }

// SyncRuntimeEnv keeps the merged private env (spec.PrivateEnv) of app in
// Secrets for schedulers that read it there (Nomad's Vault template); it
// writes only on change, with check-and-set: a concurrent writer (another
// server that believed it led) makes it fail, never a lost write.
func (s *Engine) SyncRuntimeEnv(ctx context.Context, app string, priv map[string]string) error {
	cur, err := s.secrets.Get(ctx, runtimeEnvPath(app), 0)
	if err != nil && !errors.Is(err, backends.ErrNotFound) {
		return err
	}
	if err == nil && equalMaps(cur.Data, priv) {
		return nil
	}
	if len(priv) == 0 {
		if err == nil {
			return s.secrets.Delete(ctx, runtimeEnvPath(app))
		}
		return nil
	}
	ver := 0
	if cur != nil {
		ver = cur.Version
	}
	_, err = s.secrets.PutCAS(ctx, runtimeEnvPath(app), priv, ver)
	return err
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
