package engine

import (
	"context"
	"errors"
	"time"

	"github.com/berthpaas/berth/backends"
)

// updateSecret read-modify-writes the secret at path with check-and-set:
// fn gets a copy of the current values (empty if absent) and edits it in
// place; the write retries on a concurrent change, so no writer's update is
// lost. An empty result is written as an empty version (a delete cannot be
// checked-and-set). It returns the values before the winning write. When
// the write itself fails (not a check-and-set mismatch) it returns the
// values it was written over with the error: the backend may have applied
// it all the same (its answer lost, or it answered too late).
func (s *Engine) updateSecret(ctx context.Context, path string, fn func(cur map[string]string)) (map[string]string, error) {
	for attempt := 0; attempt < 128; attempt++ {
		prev, ver := map[string]string{}, 0
		sec, err := s.secrets.Get(ctx, path, 0)
		switch {
		case err == nil:
			prev, ver = sec.Data, sec.Version
		case !errors.Is(err, backends.ErrNotFound):
			return nil, err
		}
		next := make(map[string]string, len(prev))
		for k, v := range prev {
			next[k] = v
		}
		fn(next)
		if ver == 0 && len(next) == 0 {
			return prev, nil // nothing there, nothing to write
		}
		if ver > 0 && equalMaps(prev, next) {
			return prev, nil
		}
		if _, err := s.secrets.PutCAS(ctx, path, next, ver); errors.Is(err, backends.ErrCASMismatch) {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			time.Sleep(time.Duration(attempt%8) * time.Millisecond)
			continue
		} else if err != nil {
			return prev, err
		}
		return prev, nil
	}
	return nil, conflict("too many concurrent changes of the same secret; try again")
}

// mergeSecret sets the values in set and removes the names in del, and
// returns an undo that restores exactly those names to what they were
// (leaving other writers' changes alone).
//
// A write that fails without a clear refusal (the backend did not answer
// in time, or its answer was lost) may have been applied all the same:
// then the names it touched are put back at once, where they still hold
// what it wrote, so that a failed request leaves no value in Secrets that
// the app record was not changed for. (If the backend still does not
// answer, that is logged: the names keep what the backend holds.)
func (s *Engine) mergeSecret(ctx context.Context, path string, set map[string]string, del []string) (undo func(), err error) {
	var touched []string
	prev, err := s.updateSecret(ctx, path, func(cur map[string]string) {
		touched = touched[:0]
		for k, v := range set {
			cur[k] = v
			touched = append(touched, k)
		}
		for _, k := range del {
			delete(cur, k)
			touched = append(touched, k)
		}
	})
	if err != nil {
		if prev != nil {
			s.restoreSecret(ctx, path, prev, touched, func(cur map[string]string, k string) bool {
				v, ok := cur[k]
				if w, inSet := set[k]; inSet {
					return ok && v == w // still what the write set
				}
				return !ok // still removed by the write
			})
		}
		return nil, err
	}
	undo = func() {
		s.restoreSecret(ctx, path, prev, touched, nil)
	}
	return undo, nil
}

// restoreSecret puts the names touched by a write at path back to their
// values in prev (absent names are removed); with only, just the names
// for which only(cur, name) holds. It gives up, logging why, after 10 s.
func (s *Engine) restoreSecret(ctx context.Context, path string, prev map[string]string, touched []string, only func(cur map[string]string, k string) bool) {
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_, err := s.updateSecret(uctx, path, func(cur map[string]string) {
		var put []string
		for _, k := range touched {
			if only == nil || only(cur, k) {
				put = append(put, k)
			}
		}
		for _, k := range put {
			if v, ok := prev[k]; ok {
				cur[k] = v
			} else {
				delete(cur, k)
			}
		}
	})
	if err != nil {
		s.log.Warn("could not undo a secret change of a refused or failed operation", "path", path, "error", err)
	}
}
