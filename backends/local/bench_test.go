package local

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
)

// BenchmarkDeployToRunning measures a deploy on the local scheduler: from
// Submit of a new version of a one-instance web app to its deployment being
// running (the new instance answers on its port, the old one stopped).
func BenchmarkDeployToRunning(b *testing.B) {
	s := newScheduler(b, b.TempDir())
	defer s.Close()
	spec := helloSpec(b, "bench")
	spec.Procs = spec.Procs[:1]
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		spec.MetaVersion = fmt.Sprintf("v%d", i)
		if err := s.Submit(ctx, spec); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			st, err := s.Status(ctx, "bench")
			if err == nil && st.Deployment == backends.DeployRunning && st.MetaVersion == spec.MetaVersion {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("v%d not running in 30s: %+v", i, st)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
