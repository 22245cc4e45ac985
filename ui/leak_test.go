package ui_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/berthpaas/berth/backends/local"
	"github.com/berthpaas/berth/plugins"
)

// TestMain fails the package's tests if any goroutine is still running
// after they end (a goroutine that outlives the Close of what started it).
// It also lets this test binary be the process shim of the local
// schedulers the action tests start (local.Config.Shim defaults to the
// running executable with the proc-shim argument) and the broker plugins
// of their servers (re-executed as `<binary> plugin NAME`).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == local.ShimCommand {
		os.Exit(local.ShimMain(os.Args[2:]))
	}
	if len(os.Args) > 2 && os.Args[1] == "plugin" {
		if err := plugins.ServeBuiltin(os.Args[2]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}
