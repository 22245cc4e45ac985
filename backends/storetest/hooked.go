package storetest

import (
	"context"
	"sync"

	"github.com/berthpaas/berth/backends"
)

// Hooked is a Store that runs a hook once when a key is read
// ("get:"+key) or a prefix listed ("list:"+prefix), after the read: it is
// the moment a concurrent request slips in between a check and the write
// that depends on it. Tests use it to drive races deterministically.
type Hooked struct {
	backends.Store
	mu    sync.Mutex
	Hooks map[string]func()
	// Read, if set, is called after every read with "get:"+key or
	// "list:"+prefix and the number of pairs read (a Get of a missing key
	// reads 0): tests count what an operation reads with it.
	Read func(what string, pairs int)
}

func (h *Hooked) read(what string, pairs int) {
	h.mu.Lock()
	f := h.Read
	h.mu.Unlock()
	if f != nil {
		f(what, pairs)
	}
}

func (h *Hooked) fire(what string) {
	h.mu.Lock()
	f := h.Hooks[what]
	delete(h.Hooks, what)
	h.mu.Unlock()
	if f != nil {
		f()
	}
}

// Get reads the key, then runs the "get:"+key hook.
func (h *Hooked) Get(ctx context.Context, key string, q *backends.QueryOptions) (*backends.KVPair, *backends.QueryMeta, error) {
	p, m, err := h.Store.Get(ctx, key, q)
	n := 0
	if p != nil {
		n = 1
	}
	h.read("get:"+key, n)
	h.fire("get:" + key)
	return p, m, err
}

// List lists the prefix, then runs the "list:"+prefix hook.
func (h *Hooked) List(ctx context.Context, prefix string, q *backends.QueryOptions) ([]*backends.KVPair, *backends.QueryMeta, error) {
	ps, m, err := h.Store.List(ctx, prefix, q)
	h.read("list:"+prefix, len(ps))
	h.fire("list:" + prefix)
	return ps, m, err
}
