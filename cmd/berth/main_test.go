package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/berthpaas/berth/backends/local"
)

// TestMain lets this test binary be the process shim of the local
// schedulers its tests start (local.Config.Shim defaults to the running
// executable with the proc-shim argument) ...
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == local.ShimCommand {
		os.Exit(local.ShimMain(os.Args[2:]))
	}
	// ... and the broker plugins of their servers (re-exec'd as
	// `berth plugin NAME`).
	if len(os.Args) > 2 && os.Args[1] == "plugin" {
		if err := runPlugin(os.Args[2:]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}
