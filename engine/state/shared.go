package state

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/berthpaas/berth/backends"
)

// Shared reads records of one type that are read on every request and
// changed rarely (a token's user), decoding each stored value once: a
// record whose stored bytes are the ones decoded before is answered with
// that decoded value. The value is shared by every caller, so they must not
// change it (Get is for that). A Store change is always seen: the cache is
// checked against the bytes the Store answers now, not an index.
type Shared[T any] struct {
	mu  sync.Mutex
	max int
	m   map[string]sharedEntry[T]
}

type sharedEntry[T any] struct {
	raw []byte
	v   *T
}

// NewShared is a Shared cache of up to max records (the whole cache is
// dropped when it is full; max <= 0 is 4096).
func NewShared[T any](max int) *Shared[T] {
	if max <= 0 {
		max = 4096
	}
	return &Shared[T]{max: max, m: make(map[string]sharedEntry[T])}
}

// Get is state.Get with the decoded value shared (read-only).
func (c *Shared[T]) Get(ctx context.Context, st backends.Store, key string) (*T, uint64, error) {
	p, _, err := st.Get(ctx, key, nil)
	if err != nil {
		return nil, 0, err
	}
	if p == nil {
		return nil, 0, ErrNotFound
	}
	v, err := c.decode(key, p.Value)
	if err != nil {
		return nil, 0, err
	}
	return v, p.ModifyIndex, nil
}

// decode is the record stored as raw at key, shared (read-only).
func (c *Shared[T]) decode(key string, raw []byte) (*T, error) {
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok && bytes.Equal(e.raw, raw) {
		return e.v, nil
	}
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("record %s is corrupt: %w", key, err)
	}
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[key] = sharedEntry[T]{raw: bytes.Clone(raw), v: v}
	c.mu.Unlock()
	return v, nil
}

// apps caches decoded app records, the records nearly every request reads
// (the permission check of every app route, lists, the reconciler): each
// is decoded once per change and every reader gets its own Clone. It holds
// the 4,096 most recently decoded (about 10 MB), not the whole fleet.
var apps = NewShared[App](4096)

// Decode decodes the record stored as raw at key. App records are decoded
// once per change and copied (App.Clone); other records are decoded.
func Decode[T any](key string, raw []byte) (*T, error) {
	if _, ok := any((*T)(nil)).(*App); ok {
		a, err := apps.decode(key, raw)
		if err != nil {
			return nil, err
		}
		return any(a.Clone()).(*T), nil
	}
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("record %s is corrupt: %w", key, err)
	}
	return v, nil
}

// Clone is a deep copy of a: no map, slice or pointer of the copy is
// shared with a (TestAppCloneSharesNothing checks every field).
func (a *App) Clone() *App {
	if a == nil {
		return nil
	}
	c := *a
	c.Teams = slices.Clone(a.Teams)
	c.TeamIDs = maps.Clone(a.TeamIDs)
	c.Maintainers = maps.Clone(a.Maintainers)
	if a.Procs != nil {
		c.Procs = make(map[string]ProcOverride, len(a.Procs))
		for k, p := range a.Procs {
			c.Procs[k] = p.clone()
		}
	}
	c.Env = slices.Clone(a.Env)
	c.Routes = slices.Clone(a.Routes)
	c.Bindings = slices.Clone(a.Bindings)
	c.AutoRevert = clonePtr(a.AutoRevert)
	return &c
}

func (p ProcOverride) clone() ProcOverride {
	p.NumInstances = clonePtr(p.NumInstances)
	p.CPU = clonePtr(p.CPU)
	p.MemoryMB = clonePtr(p.MemoryMB)
	return p
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
