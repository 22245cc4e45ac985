package api_test

import (
	"os"
	"testing"

	"github.com/berthpaas/berth/backends/local"
	"go.uber.org/goleak"
)

// TestMain lets this test binary be the process shim of the local
// schedulers its tests start (local.Config.Shim defaults to the running
// executable with the proc-shim argument).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == local.ShimCommand {
		os.Exit(local.ShimMain(os.Args[2:]))
	}
	goleak.VerifyTestMain(m)
}
