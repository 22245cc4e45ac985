package engine

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/berthpaas/berth/config"
)

// TestClusterIDSharedThroughStore: without a configured cluster_id, the
// servers on one Store (here many starting at once) get one id, created
// once and kept there; a configured id wins.
func TestClusterIDSharedThroughStore(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	ctx := context.Background()
	ids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			id, err := ClusterID(ctx, e.Store(), "")
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || !strings.HasPrefix(id, "berth-") || !config.ValidClusterID(id) {
			t.Fatalf("cluster ids %q: want one valid id", ids)
		}
	}
	if again, err := ClusterID(ctx, e.Store(), ""); err != nil || again != ids[0] {
		t.Fatalf("a later server got %q (%v), want %q", again, err, ids[0])
	}
	if got, err := ClusterID(ctx, e.Store(), "blue"); err != nil || got != "blue" {
		t.Fatalf("configured cluster id: got %q (%v)", got, err)
	}
}
