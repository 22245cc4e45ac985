package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/config"
)

// ownSecretRoots are the first segments of the Secrets paths Berth writes
// itself (app env, bindings, service settings, token hashes, resets, the
// notify key): an operator's secret may not go there.
var ownSecretRoots = []string{"apps", "services", "tokens", "user-tokens", "app-tokens", "resets", "berth"}

// CheckOperatorSecretPath checks a path an operator puts a secret at (for
// a broker_target's secret_refs, or osb.password_secret): a valid path
// outside the paths Berth keeps its own secrets under.
func CheckOperatorSecretPath(path string) error {
	if err := config.ValidSecretPath(path); err != nil {
		return badRequest("%v", err)
	}
	root, _, _ := strings.Cut(path, "/")
	for _, r := range ownSecretRoots {
		if root == r {
			return badRequest("path %q: %s/ is where Berth keeps its own secrets; choose another path (e.g. brokers/<name>)", path, r)
		}
	}
	return nil
}

// PutOperatorSecret sets key of the secret at path to value, keeping the
// secret's other keys (a new version, written with check-and-set so that
// a concurrent writer's keys are not lost). It returns the new version.
// The value is never in an error.
func PutOperatorSecret(ctx context.Context, sec backends.Secrets, path, key, value string) (int, error) {
	if err := CheckOperatorSecretPath(path); err != nil {
		return 0, err
	}
	if key == "" || strings.ContainsAny(key, "#/") || len(key) > 128 {
		return 0, badRequest("key %q: must be 1-128 characters without '#' or '/'", key)
	}
	if value == "" {
		return 0, badRequest("the value is empty")
	}
	for attempt := 0; attempt < 5; attempt++ {
		data := map[string]string{}
		ver := 0
		cur, err := sec.Get(ctx, path, 0)
		switch {
		case err == nil:
			for k, v := range cur.Data {
				data[k] = v
			}
			ver = cur.Version
		case !errors.Is(err, backends.ErrNotFound):
			return 0, fmt.Errorf("reading %q: %w", path, err)
		}
		data[key] = value
		v, err := sec.PutCAS(ctx, path, data, ver)
		if errors.Is(err, backends.ErrCASMismatch) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("writing %q: %w", path, err)
		}
		return v, nil
	}
	return 0, conflict("the secret at %q keeps changing; try again", path)
}
