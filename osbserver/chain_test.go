package osbserver_test

import (
	"testing"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/brokertest"
)

// TestConformanceThroughOSB runs the broker conformance suite on the osb
// broker (a go-plugin subprocess) speaking HTTP to Berth's OSB endpoint
// (a real HTTP server), which provisions with the real mysql broker on
// MariaDB: osb -> Berth /osb/v2 -> mysql.
func TestConformanceThroughOSB(t *testing.T) {
	for _, mode := range []struct {
		name  string
		async bool
	}{{"async", true}, {"sync", false}} {
		t.Run(mode.name, func(t *testing.T) {
			b := newBerth(t, t.TempDir(), mode.async)
			settings := map[string]string{"url": b.URL, "username": osbUser, "password": osbPass}
			brokertest.Run(t, func(t testing.TB) broker.Broker {
				return brokertest.Subprocess(t, "osb", settings)
			}, brokertest.Checker{Use: useDB, Isolated: isolatedDB, Persistent: !mode.async})
		})
	}
}
