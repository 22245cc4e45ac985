package main

import (
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends/consul"
	"github.com/berthpaas/berth/config"
)

// The Consul Store reads through the in-memory replica unless
// consul.read_replica = false.
func TestOpenStoreReadReplica(t *testing.T) {
	off := false
	for _, tc := range []struct {
		setting *bool
		replica bool
	}{{nil, true}, {&off, false}} {
		cfg := config.Default()
		cfg.Consul = &config.Consul{Address: "127.0.0.1:1", Prefix: "berth-test/", ReadReplica: tc.setting}
		st, name, err := openStore(cfg, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		_, isReplica := st.(*consul.Replica)
		if name != "consul" || isReplica != tc.replica {
			t.Errorf("read_replica=%v: store %T (%s), want the replica: %v", tc.setting, st, name, tc.replica)
		}
		_ = st.Close()
	}
}
