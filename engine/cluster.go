package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine/state"
)

// ClusterKey is the Store record of the cluster's id (ClusterRecord).
const ClusterKey = "cluster/id"

// ClusterRecord is the Berth cluster's id as kept in the Store.
type ClusterRecord struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
}

// ClusterID is the id of the Berth cluster on st: configured (the config's
// cluster_id) if set, else the one kept in the Store at ClusterKey, else a
// new one created there once (check-and-set, so servers starting together
// on one Store agree on it). A configured id that differs from the stored
// one wins (and is not written: the operator chose it).
func ClusterID(ctx context.Context, st backends.Store, configured string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	for attempt := 0; attempt < 5; attempt++ {
		rec, _, err := state.Get[ClusterRecord](ctx, st, ClusterKey)
		if err == nil {
			if !config.ValidClusterID(rec.ID) {
				return "", fmt.Errorf("the cluster id kept in the store at %s (%q) is not valid", ClusterKey, rec.ID)
			}
			return rec.ID, nil
		}
		if !errors.Is(err, state.ErrNotFound) {
			return "", fmt.Errorf("reading the cluster id: %w", err)
		}
		id := "berth-" + NewSecret(4)
		if _, err := state.Create(ctx, st, ClusterKey, &ClusterRecord{ID: id, Created: time.Now().UTC()}); err == nil {
			return id, nil
		} else if !errors.Is(err, state.ErrExists) {
			return "", fmt.Errorf("keeping the cluster id: %w", err)
		}
		// Another server created it first: read theirs.
	}
	return "", fmt.Errorf("the cluster id at %s could not be read or created", ClusterKey)
}
