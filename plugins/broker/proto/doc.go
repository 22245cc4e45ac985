// Package brokerpb is the Go code generated from broker.proto, the protocol
// (version 2) between Berth and its broker plugins. Regenerate it with
// `make proto`; plugins/broker wraps it in the Broker interface.
package brokerpb
