package engine

import (
	"context"
	"sync"
	"time"

	"github.com/berthpaas/berth/backends"
)

// The token cache: each server keeps the token records it read from
// Secrets (Vault: one request per API call otherwise), and trusts one only
// while the Store's revocation key has not changed since before it was
// read. Every revocation deletes the token from Secrets and then writes
// the revocation key, so a record read before a revocation finished is
// dropped by every server at its next use (a read of the key, from memory
// on a Consul replica under its read lease); a record read after the
// delete is not found. Records are read again at least every
// tokenCacheAge, and at most tokenCacheMax are kept.
const (
	// revocationsKey is written at every token revocation; its
	// ModifyIndex is the revocation generation.
	revocationsKey = "token-revocations/last"
	tokenCacheMax  = 16384
	tokenCacheAge  = time.Minute
)

type cachedToken struct {
	data map[string]string // read only
	gen  uint64
	at   time.Time
}

type tokenCache struct {
	mu sync.Mutex
	m  map[string]cachedToken
}

func (c *tokenCache) get(hash string, gen uint64) (map[string]string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[hash]
	if !ok || t.gen != gen || time.Since(t.at) > tokenCacheAge {
		return nil, false
	}
	return t.data, true
}

func (c *tokenCache) put(hash string, data map[string]string, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= tokenCacheMax {
		c.m = map[string]cachedToken{} // all at once: simple, and rare
	}
	c.m[hash] = cachedToken{data: data, gen: gen, at: time.Now()}
}

func (c *tokenCache) drop(hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, hash)
}

// revocationGen is the Store's token revocation generation now.
func (s *Engine) revocationGen(ctx context.Context) (uint64, error) {
	p, _, err := s.store.Get(ctx, revocationsKey, nil)
	if err != nil || p == nil {
		return 0, err
	}
	return p.ModifyIndex, nil
}

// tokenRecord is the record of the token with hash h (read only): from
// the cache while no revocation happened since it was read, else from
// Secrets (backends.ErrNotFound when there is none).
func (s *Engine) tokenRecord(ctx context.Context, h string) (map[string]string, error) {
	gen, genErr := s.revocationGen(ctx)
	if genErr == nil {
		if data, ok := s.tokens.get(h, gen); ok {
			return data, nil
		}
	}
	// Without the generation (the Store does not answer) the record is
	// read but not kept; the request then fails on whichever backend is down.
	sec, err := s.secrets.Get(ctx, tokenPath(h), 0)
	if err != nil {
		return nil, err
	}
	if genErr == nil {
		s.tokens.put(h, sec.Data, gen)
	}
	return sec.Data, nil
}

// noteRevocation moves the revocation generation on (after a token was
// deleted from Secrets): every server's cached records are read again.
func (s *Engine) noteRevocation(ctx context.Context, h string) error {
	s.tokens.drop(h)
	_, err := s.store.Put(ctx, &backends.KVPair{Key: revocationsKey, Value: []byte(time.Now().UTC().Format(time.RFC3339Nano) + " " + NewSecret(4))})
	return err
}
