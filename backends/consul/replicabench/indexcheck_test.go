package replicabench

import (
	"testing"

	"github.com/hashicorp/consul/api"
)

// BenchmarkIndexCheck: the request a linearizable replica read starts with
// (a read of a key no Store key maps to, for its X-Consul-Index), in
// Consul's consistent mode and in its default mode, one client at a time.
func BenchmarkIndexCheck(b *testing.B) {
	f := newFixture(b)
	for _, c := range []struct {
		name string
		q    api.QueryOptions
	}{{"consistent", api.QueryOptions{RequireConsistent: true}}, {"default", api.QueryOptions{}}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				q := c.q
				if _, _, err := f.raw.KV().Get(f.prefix+"%read-index", &q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
