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
