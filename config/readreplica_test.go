package config

import "testing"

// consul.read_replica defaults to on; false turns the in-memory replica off.
func TestConsulReadReplica(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want bool
	}{
		{"consul {\n  prefix = \"berth/\"\n}\n", true},
		{"consul {\n  read_replica = true\n}\n", true},
		{"consul {\n  read_replica = false\n}\n", false},
	} {
		c, err := Parse([]byte(tc.src), "r.hcl")
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Consul.ReadReplicaOn(); got != tc.want {
			t.Errorf("%q: ReadReplicaOn() = %v, want %v", tc.src, got, tc.want)
		}
	}
}

// consul.consistent_reads defaults to off (Consul's default mode).
func TestConsulConsistentReads(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want bool
	}{
		{"consul {\n  prefix = \"berth/\"\n}\n", false},
		{"consul {\n  consistent_reads = true\n}\n", true},
	} {
		c, err := Parse([]byte(tc.src), "r.hcl")
		if err != nil {
			t.Fatal(err)
		}
		if c.Consul.ConsistentReads != tc.want {
			t.Errorf("%q: ConsistentReads = %v, want %v", tc.src, c.Consul.ConsistentReads, tc.want)
		}
	}
}

// consul.read_leases defaults to on, and needs the replica and the change log.
func TestConsulReadLeases(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want bool
	}{
		{"consul {\n  prefix = \"berth/\"\n}\n", true},
		{"consul {\n  read_leases = false\n}\n", false},
		{"consul {\n  read_replica = false\n}\n", false},
		{"consul {\n  change_log = false\n}\n", false},
		{"consul {\n  peer_addr = \"10.0.0.5:8301\"\n}\n", true},
	} {
		c, err := Parse([]byte(tc.src), "r.hcl")
		if err != nil {
			t.Fatal(err)
		}
		if got := c.Consul.ReadLeasesOn(); got != tc.want {
			t.Errorf("%q: ReadLeasesOn() = %v, want %v", tc.src, got, tc.want)
		}
	}
}
