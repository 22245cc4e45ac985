// Package replicabench holds the benchmarks of the Consul Store's in-memory
// read replica (consul.Replica) against the plain Consul Store and raw
// Consul KV reads, side by side in one run on a Consul dev agent on
// loopback, 8 concurrent clients each:
//
//	go test -run '^$' -bench . ./backends/consul/replicabench/
//
// It has no code of its own: see bench_test.go.
package replicabench
