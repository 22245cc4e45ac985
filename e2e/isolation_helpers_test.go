package e2e

import (
	"os"
	"path/filepath"
	"testing"
)

// appReachable makes dir, a t.TempDir(), reachable by app procs, which run
// as uids of their own (local.isolation "uid" when the server is root):
// the test's temporary root (0700 by os.MkdirTemp) becomes 0711 (enter,
// not list) and dir 0755. It returns dir.
func appReachable(t testing.TB, dir string) string {
	t.Helper()
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{filepath.Dir(dir), 0o711}, {dir, 0o755}} {
		if err := os.Chmod(d.path, d.mode); err != nil {
			t.Fatalf("making %s reachable by app users: %v", d.path, err)
		}
	}
	return dir
}
