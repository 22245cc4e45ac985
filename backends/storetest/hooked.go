package storetest

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/berthpaas/berth/backends"
)

// Hooked is a Store that runs a hook once when a key is read
// ("get:"+key), a prefix listed ("list:"+prefix) or a page of it read
// ("page:"+prefix), after the read: it is the moment a concurrent request
// slips in between a check and the write that depends on it. Tests use it
// to drive races deterministically. It also counts its reads (Reads), so a
// test can tell how much of the store an operation read.
type Hooked struct {
	backends.Store
	mu    sync.Mutex
	Hooks map[string]func()

	gets, lists, pages, listed atomic.Int64
}

// ReadCount is what a Hooked store was asked to read.
type ReadCount struct {
	Gets  int64 // Get calls
	Lists int64 // List calls (each reads a whole prefix)
	Pages int64 // ListPage calls
	// Pairs is the number of key/value pairs List and ListPage returned.
	Pairs int64
}

// Reads is what the store was asked to read since it was made or since
// the last ResetReads.
func (h *Hooked) Reads() ReadCount {
	return ReadCount{Gets: h.gets.Load(), Lists: h.lists.Load(), Pages: h.pages.Load(), Pairs: h.listed.Load()}
}

// ResetReads sets the read counts back to zero.
func (h *Hooked) ResetReads() {
	h.gets.Store(0)
	h.lists.Store(0)
	h.pages.Store(0)
	h.listed.Store(0)
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
	h.gets.Add(1)
	h.fire("get:" + key)
	return p, m, err
}

// List lists the prefix, then runs the "list:"+prefix hook.
func (h *Hooked) List(ctx context.Context, prefix string, q *backends.QueryOptions) ([]*backends.KVPair, *backends.QueryMeta, error) {
	ps, m, err := h.Store.List(ctx, prefix, q)
	h.lists.Add(1)
	h.listed.Add(int64(len(ps)))
	h.fire("list:" + prefix)
	return ps, m, err
}

// ListPage reads a page of the prefix, then runs the "page:"+prefix hook.
func (h *Hooked) ListPage(ctx context.Context, prefix, after string, limit int) ([]*backends.KVPair, *backends.QueryMeta, error) {
	ps, m, err := h.Store.ListPage(ctx, prefix, after, limit)
	h.pages.Add(1)
	h.listed.Add(int64(len(ps)))
	h.fire("page:" + prefix)
	return ps, m, err
}
