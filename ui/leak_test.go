package ui_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/berthpaas/berth/plugins"
)

// TestMain lets this test binary be the broker plugins of the servers its
// tests start (re-exec'd as `<binary> plugin NAME`, as berth does), and
// fails the package's tests if any goroutine is still running after they
// end (a goroutine that outlives the Close of what started it).
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == "plugin" {
		if err := plugins.ServeBuiltin(os.Args[2]); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}
