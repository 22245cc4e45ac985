package main

import "testing"

// The read leases' peer listener: peer_addr, else bind_addr's host on any
// port; a bind_addr no other server can dial needs peer_addr.
func TestPeerListen(t *testing.T) {
	for _, tc := range []struct {
		peer, bind, want string
		err              bool
	}{
		{"", "127.0.0.1:8080", "127.0.0.1:0", false},
		{"", "10.1.2.3:8080", "10.1.2.3:0", false},
		{"", "[::1]:8080", "[::1]:0", false},
		{"10.0.0.5:9000", "0.0.0.0:8080", "10.0.0.5:9000", false},
		{"", "0.0.0.0:8080", "", true},
		{"", ":8080", "", true},
		{"", "[::]:8080", "", true},
	} {
		got, err := peerListen(tc.peer, tc.bind)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("peerListen(%q, %q) = %q, %v; want %q, error %v", tc.peer, tc.bind, got, err, tc.want, tc.err)
		}
	}
}
