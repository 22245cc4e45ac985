// Command example is a complete third-party service broker written with
// plugins/sdk. Its "server" is a token table in memory: each instance is a
// set of tokens, each binding gets one. Build it as
// <plugin_dir>/berth-broker-example and name "example" as a service's broker.
// A real broker would talk to its server in these methods, and give
// sdk.NewBroker a Store kept on that server (MemoryStore dies with the process).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/sdk"
)

type tokens struct {
	mu     sync.Mutex
	tokens map[string]map[string]string // instance -> binding -> token
}

func (t *tokens) Catalog() *broker.Catalog {
	return &broker.Catalog{Services: []broker.Service{{ID: "example-kv", Name: "example",
		Description: "In-memory example", Plans: []broker.Plan{{ID: "example-free", Name: "free"}}}}}
}

func (t *tokens) CreateInstance(_ context.Context, req broker.ProvisionRequest) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tokens[req.InstanceID] = map[string]string{}
	return nil
}

func (t *tokens) DeleteInstance(_ context.Context, id string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.tokens, id)
	return nil
}

func (t *tokens) CreateBinding(_ context.Context, req broker.BindRequest) (map[string]string, error) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.tokens[req.InstanceID][req.BindingID] = hex.EncodeToString(b)
	return map[string]string{"EXAMPLE_INSTANCE": req.InstanceID, "EXAMPLE_TOKEN": hex.EncodeToString(b)}, nil
}

func (t *tokens) DeleteBinding(_ context.Context, id, binding string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.tokens[id], binding)
	return nil
}

// New returns the example broker.
func New() broker.Broker {
	return sdk.NewBroker(&tokens{tokens: map[string]map[string]string{}}, sdk.MemoryStore())
}

func main() { sdk.Serve(New()) }
