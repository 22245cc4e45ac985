package server

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/berthpaas/berth/backends/devagent"
)

// TestMain fails the package's tests if any goroutine is still running
// after they end (a goroutine that outlives the Close of what started it).
// The dev agents some benchmarks start are stopped before the check.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(devagent.RunThenShutdown(m))
}
