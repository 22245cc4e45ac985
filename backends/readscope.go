package backends

import (
	"context"
	"sync"
)

// ReadScope lets the reads of one operation (an API request: its token,
// user and app lookups) share the index a linearizable read starts with,
// in a Store that has one (the Consul Store's read replica): the first read
// in the scope learns the index (Consul's KV index), the later ones reuse it, and a write
// through the Store in the scope makes the next read learn it anew (so the
// operation reads its own writes). Every read in the scope still sees
// everything committed before the scope's first read began, so the
// operation stays linearizable. Stores without such an index ignore it.
type ReadScope struct {
	mu    sync.Mutex
	gen   uint64
	index uint64
}

type readScopeKey struct{}

// WithReadScope returns ctx with a fresh ReadScope; the reads of ctx and of
// the contexts derived from it share it.
func WithReadScope(ctx context.Context) context.Context {
	return context.WithValue(ctx, readScopeKey{}, &ReadScope{})
}

// ReadScopeOf is ctx's ReadScope, or nil.
func ReadScopeOf(ctx context.Context) *ReadScope {
	s, _ := ctx.Value(readScopeKey{}).(*ReadScope)
	return s
}

// Load returns the scope's index (0 when no read has set it since the
// scope began or since its last write) and the generation to give Set.
func (s *ReadScope) Load() (index, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.index, s.gen
}

// Set records index, unless a write reset the scope after gen was loaded.
func (s *ReadScope) Set(gen, index uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen == gen && index > s.index {
		s.index = index
	}
}

// Wrote records a write made in the scope, committed at index: the next
// reads must see it, and need see no more (index is later than anything
// the scope's reads saw), so they use it without learning an index anew.
// 0 (a write whose index is unknown, or that failed) is Reset.
func (s *ReadScope) Wrote(index uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	if index > s.index {
		s.index = index
	} else {
		s.index = 0
	}
}

// Reset forgets the index: a write was made in the scope.
func (s *ReadScope) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	s.index = 0
}
