package consul

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/devagent"
)

func pageKeys(t *testing.T, s *Store, prefix, after string, limit int) []string {
	t.Helper()
	ps, _, err := s.ListPage(context.Background(), prefix, after, limit)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range ps {
		out = append(out, p.Key)
	}
	return out
}

// Pages come from the watched key names: keys written through another
// Store (another Berth server on the same prefix) or straight into Consul
// show up once the watch has seen them, and deleted ones are left out at
// once (the values are read from Consul). A Store's own writes are in its
// next page (the conformance suite's ListPage tests).
func TestListPageSeesOtherWriters(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for i := range 5 {
		if _, err := s.Put(ctx, &backends.KVPair{Key: fmt.Sprintf("apps/a%d", i), Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if got := pageKeys(t, s, "apps/", "", 3); fmt.Sprint(got) != "[apps/a0 apps/a1 apps/a2]" {
		t.Fatalf("first page %v", got)
	}
	other, err := New(Config{Address: devagent.Consul(t), Prefix: s.prefix}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Put(ctx, &backends.KVPair{Key: "apps/a1b", Value: []byte("y")}); err != nil {
		t.Fatal(err)
	}
	if _, err := rawClient(t).KV().Put(&api.KVPair{Key: s.prefix + "apps/a0b", Value: []byte("z")}, nil); err != nil {
		t.Fatal(err)
	}
	want := "[apps/a0 apps/a0b apps/a1 apps/a1b apps/a2 apps/a3 apps/a4]"
	deadline := time.Now().Add(30 * time.Second)
	for fmt.Sprint(pageKeys(t, s, "apps/", "", 0)) != want {
		if time.Now().After(deadline) {
			t.Fatalf("the keys other writers made are not paged: %v, want %v", pageKeys(t, s, "apps/", "", 0), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := other.Delete(ctx, "apps/a1"); err != nil {
		t.Fatal(err)
	}
	if got := pageKeys(t, s, "apps/", "apps/a0b", 2); fmt.Sprint(got) != "[apps/a1b apps/a2]" {
		t.Fatalf("a page after another Store's delete: %v", got)
	}
	// Closing ends the watches (the package's leak check would see them).
	if err := other.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := other.ListPage(ctx, "apps/", "", 1); err != nil {
		t.Fatalf("ListPage after Close (no watch: the names listed directly): %v", err)
	}
}

// A page made from names that are behind Consul (a key deleted since they
// were listed) is filled from the names that follow: short only at the end.
// (Before, the deleted key left a hole and a short page, which a caller
// takes for the end of the list.)
func TestPageOfStaleNamesFillsThePage(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	var names []keyName
	for i := range 6 {
		k := fmt.Sprintf("apps/a%d", i)
		if _, err := s.Put(ctx, &backends.KVPair{Key: k, Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		names = append(names, keyName{user: k, consul: s.prefix + k})
	}
	for _, k := range []string{"apps/a1", "apps/a2"} {
		if _, err := s.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		after string
		limit int
		want  string
	}{
		{"", 2, "[apps/a0 apps/a3]"},
		{"apps/a0", 2, "[apps/a3 apps/a4]"},
		{"apps/a0", 0, "[apps/a3 apps/a4 apps/a5]"},
		{"apps/a4", 3, "[apps/a5]"},
	} {
		ps, err := s.pageOf(ctx, names, tc.after, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range ps {
			got = append(got, p.Key)
		}
		if fmt.Sprint(got) != tc.want {
			t.Errorf("page after %q limit %d: %v, want %s", tc.after, tc.limit, got, tc.want)
		}
	}
}
