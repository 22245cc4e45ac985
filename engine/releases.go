package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/berthpaas/berth/engine/release"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// Pushed is the outcome of PushRelease.
type Pushed struct {
	Release *state.Release
	// Unchanged is true when the same release (same meta_version, same
	// spec) had been pushed before: nothing was recorded.
	Unchanged bool
}

// PushRelease records a release of an app: meta_version mv with spec. The
// caller must be a developer of the app (or its app token) and may use the
// resources the spec names. Pushing the same release again is Unchanged;
// pushing mv again with another spec is ErrConflict. A recorded release is
// announced to the imagepush notifiers.
func (s *Engine) PushRelease(ctx context.Context, id *Identity, app, mv string, spec *release.Spec) (*Pushed, error) {
	a, err := s.loadApp(ctx, id, app, ActAppPush)
	if err != nil {
		return nil, err
	}
	if err := names.MetaVersion(mv); err != nil {
		return nil, invalid(err)
	}
	if spec == nil {
		return nil, badRequest("the push needs a release spec")
	}
	if spec.AppName != "" && spec.AppName != a.Name {
		return nil, badRequest("the release spec is for app %q, not %q", spec.AppName, a.Name)
	}
	if err := s.checkResourceUse(ctx, id, spec.Resources); err != nil {
		return nil, err
	}
	by := id.Name()
	rel := &state.Release{App: a.Name, MetaVersion: mv, Spec: *spec, Pushed: time.Now().UTC(), PushedBy: by}
	if _, err := state.Create(ctx, s.store, state.ReleaseKey(a.Name, mv), rel); errors.Is(err, state.ErrExists) {
		old, _, gerr := state.Get[state.Release](ctx, s.store, state.ReleaseKey(a.Name, mv))
		if gerr != nil {
			return nil, gerr
		}
		ob, _ := json.Marshal(old.Spec)
		nb, _ := json.Marshal(spec)
		if !bytes.Equal(ob, nb) {
			return nil, conflict("meta_version %s of app %q was already pushed with a different spec", mv, a.Name)
		}
		return &Pushed{Release: old, Unchanged: true}, nil
	} else if err != nil {
		return nil, err
	}
	s.Notify(ctx, NotifyImagePush, map[string]any{
		"event": NotifyImagePush, "appname": a.Name, "meta_version": mv, "pushed_by": by, "time": rel.Pushed,
	})
	return &Pushed{Release: rel}, nil
}
