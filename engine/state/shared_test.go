package state_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/bolt"
	"github.com/berthpaas/berth/engine/state"
)

// A Shared cache answers the decoded record while the stored bytes are
// unchanged, and the new record as soon as they change (whatever the index).
func TestSharedFollowsStoreChanges(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	put := func(admin bool) {
		b, _ := json.Marshal(&state.User{Email: "a@b.co", Admin: admin})
		if _, err := st.Put(ctx, &backends.KVPair{Key: state.UserKey("a@b.co"), Value: b}); err != nil {
			t.Fatal(err)
		}
	}
	c := state.NewShared[state.User](2)
	if _, _, err := c.Get(ctx, st, state.UserKey("a@b.co")); err != state.ErrNotFound {
		t.Fatalf("missing record: err %v, want ErrNotFound", err)
	}
	put(false)
	u1, _, err := c.Get(ctx, st, state.UserKey("a@b.co"))
	if err != nil || u1.Admin {
		t.Fatalf("first read: %+v %v", u1, err)
	}
	u2, _, _ := c.Get(ctx, st, state.UserKey("a@b.co"))
	if u1 != u2 {
		t.Fatal("an unchanged record was decoded again")
	}
	put(true)
	u3, _, err := c.Get(ctx, st, state.UserKey("a@b.co"))
	if err != nil || !u3.Admin {
		t.Fatalf("after the change the cache answered %+v %v, want the admin record", u3, err)
	}
	// More records than the cache holds: still right.
	for _, k := range []string{"x", "y", "z"} {
		b, _ := json.Marshal(&state.User{Email: k})
		if _, err := st.Put(ctx, &backends.KVPair{Key: state.UserKey(k), Value: b}); err != nil {
			t.Fatal(err)
		}
		if u, _, err := c.Get(ctx, st, state.UserKey(k)); err != nil || u.Email != k {
			t.Fatalf("read of %s: %+v %v", k, u, err)
		}
	}
}
