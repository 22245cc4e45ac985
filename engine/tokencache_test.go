package engine

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/config"
)

// countingSecrets counts the reads of token records.
type countingSecrets struct {
	backends.Secrets
	tokenReads atomic.Int64
}

func (c *countingSecrets) Get(ctx context.Context, path string, version int) (*backends.Secret, error) {
	if len(path) > 7 && path[:7] == "tokens/" {
		c.tokenReads.Add(1)
	}
	return c.Secrets.Get(ctx, path, version)
}

// Two servers on one Store and one Secrets: a token is read from Secrets
// once per server, not per request; revoked through one server (logout),
// it is refused at once by the other, which had it cached.
func TestTokenCacheFollowsRevocations(t *testing.T) {
	var cs *countingSecrets
	a, _ := newTestEngine(t, func(_ *config.Config, d *Deps) { cs = &countingSecrets{Secrets: d.Secrets}; d.Secrets = cs })
	b, err := New(Deps{Config: a.cfg, Store: a.store, Secrets: cs, StoreName: "bolt", SecretsName: "sealed"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := t.Context()
	if _, err := CreateUser(ctx, a.store, "dev@b.co", "password", false); err != nil {
		t.Fatal(err)
	}
	tok, _, err := a.IssueToken(ctx, "dev@b.co", TokenUser, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := a.IssueToken(ctx, "dev@b.co", TokenUser, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		for _, e := range []*Engine{a, b} {
			if id, err := e.Authenticate(ctx, tok); err != nil || id.Email != "dev@b.co" {
				t.Fatalf("Authenticate: %+v %v", id, err)
			}
		}
	}
	if n := cs.tokenReads.Load(); n != 2 {
		t.Fatalf("100 requests on two servers read the token from Secrets %d times, want 2", n)
	}
	id, err := a.Authenticate(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Logout(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Authenticate(ctx, tok); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("the other server accepted a token revoked through the first: %v", err)
	}
	// The user's other token still works (read again once).
	if _, err := b.Authenticate(ctx, other); err != nil {
		t.Fatalf("another token after a revocation: %v", err)
	}
}
