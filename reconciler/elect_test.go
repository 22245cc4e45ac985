package reconciler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/consul"
	"github.com/berthpaas/berth/backends/devagent"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/reconciler/reconcilertest"
)

// cluster is n servers (engine + reconciler + a scheduler of their own)
// on one Consul prefix, not started.
type cluster struct {
	addr, prefix string
	rigs         []*rig
	scheds       []*reconcilertest.MemScheduler
}

func newCluster(t *testing.T, n int, lockDelay time.Duration) *cluster {
	t.Helper()
	addr := devagent.Consul(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	c := &cluster{addr: addr, prefix: "berth-test/" + hex.EncodeToString(b) + "/"}
	for i := 0; i < n; i++ {
		st, err := consul.New(consul.Config{Address: addr, Prefix: c.prefix}, hclog.NewNullLogger())
		if err != nil {
			t.Fatal(err)
		}
		sched := reconcilertest.NewMemScheduler()
		r := newRig(t, sched, func(backends.Store) backends.Store { return st })
		r.cfg.Reconcile.IntervalDur = time.Hour // no sweep during the test
		r.cfg.Reconcile.LeaderTTLDur = 2 * time.Second
		r.cfg.Reconcile.LeaderLockDelayDur = lockDelay
		t.Cleanup(func() { _ = st.Close() })
		c.rigs = append(c.rigs, r)
		c.scheds = append(c.scheds, sched)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = c.rigs[0].store.DeleteTree(ctx, "")
	})
	return c
}

// leaders lists the servers that run the reconciler now.
func (c *cluster) leaders() []int {
	var out []int
	for i, r := range c.rigs {
		if r.rec.Leader() {
			out = append(out, i)
		}
	}
	return out
}

// leader waits for exactly one server to lead and returns it.
func (c *cluster) leader(t *testing.T, not int) int {
	t.Helper()
	at := -1
	waitFor(t, "one server to hold the reconciler lock", func() bool {
		l := c.leaders()
		if len(l) > 1 {
			t.Fatalf("servers %v all run the reconciler", l)
		}
		if len(l) == 1 && l[0] != not {
			at = l[0]
			return true
		}
		return false
	})
	return at
}

// lockValue is what the lock's key says (straight from Consul).
func (c *cluster) lockValue(t *testing.T) (LeaderInfo, string) {
	t.Helper()
	cl, err := api.NewClient(&api.Config{Address: c.addr})
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := cl.KV().Get(c.prefix+LeaderKey, &api.QueryOptions{RequireConsistent: true})
	if err != nil {
		t.Fatal(err)
	}
	var li LeaderInfo
	if p == nil || p.Session == "" {
		return li, ""
	}
	if err := json.Unmarshal(p.Value, &li); err != nil {
		t.Fatalf("the lock's value %q: %v", p.Value, err)
	}
	return li, p.Session
}

// TestElectedReconcilerOneHolder: of three servers on one Consul prefix
// exactly one reconciles (submits); the others submit nothing, also when
// apps change. A graceful Close of the holder hands the reconciler to
// another at once (the lock delay, 30s here, does not apply to a
// release), which resubmits every app to its own scheduler once.
func TestElectedReconcilerOneHolder(t *testing.T) {
	c := newCluster(t, 3, 30*time.Second)
	const n = 6
	reconcilertest.SeedApps(t, c.rigs[0].store, "app", n, true)
	for _, r := range c.rigs {
		r.start()
	}
	h := c.leader(t, -1)
	if li, sess := c.lockValue(t); sess == "" || li.Holder != c.rigs[h].rec.ID() {
		t.Fatalf("the lock key names %q (session %q), the leading server is %q", li.Holder, sess, c.rigs[h].rec.ID())
	}
	waitFor(t, "the holder to submit every app", func() bool { return c.scheds[h].SubmitCount() == n })

	// A change written behind every server's back reaches the holder's
	// scheduler only.
	ctx := context.Background()
	const mv2 = "1700000001-89abcdef0123456789abcdef0123456789abcdef"
	if _, err := state.Create(ctx, c.rigs[0].store, state.ReleaseKey("app00002", mv2), reconcilertest.Release("app00002", mv2)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := state.Update(ctx, c.rigs[0].store, state.AppKey("app00002"), func(a *state.App) error {
		a.MetaVersion, a.Generation = mv2, a.Generation+1
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the holder to run app00002's new version", func() bool { mv, _ := c.scheds[h].Spec("app00002"); return mv == mv2 })
	if got := c.scheds[h].SubmitCount(); got != n+1 {
		t.Errorf("the holder submitted %d times, want %d (each app once, the changed one once more)", got, n+1)
	}
	for i, s := range c.scheds {
		if i != h && s.SubmitCount() != 0 {
			t.Errorf("server %d, not the holder, submitted %d times", i, s.SubmitCount())
		}
	}

	// A graceful stop hands over at once.
	c.rigs[h].rec.Close()
	h2 := c.leader(t, h)
	waitFor(t, "the new holder to submit every app", func() bool { return c.scheds[h2].SubmitCount() == n })
	if mv, _ := c.scheds[h2].Spec("app00002"); mv != mv2 {
		t.Errorf("the new holder runs app00002 at %q, want %q", mv, mv2)
	}
	if li, _ := c.lockValue(t); li.Holder != c.rigs[h2].rec.ID() {
		t.Errorf("the lock key names %q, the leading server is %q", li.Holder, c.rigs[h2].rec.ID())
	}
	for i, s := range c.scheds {
		if i != h && i != h2 && s.SubmitCount() != 0 {
			t.Errorf("server %d, never the holder, submitted %d times", i, s.SubmitCount())
		}
	}
	// The new holder's heal works; a non-holder's is refused.
	for i, r := range c.rigs {
		if i == h {
			continue
		}
		_, err := r.rec.Heal(ctx)
		if i == h2 && err != nil {
			t.Errorf("heal on the holder: %v", err)
		}
		if i != h2 && err == nil {
			t.Errorf("heal on server %d, not the holder, was run", i)
		}
	}
}

// TestElectedReconcilerLostLock: a holder whose session Consul
// invalidates (as when it is cut off, or killed and its TTL passes) stops
// reconciling, and another server takes over after the lock delay.
func TestElectedReconcilerLostLock(t *testing.T) {
	c := newCluster(t, 2, 300*time.Millisecond)
	reconcilertest.SeedApps(t, c.rigs[0].store, "app", 3, true)
	for _, r := range c.rigs {
		r.start()
	}
	h := c.leader(t, -1)
	waitFor(t, "the holder to submit every app", func() bool { return c.scheds[h].SubmitCount() == 3 })
	_, sess := c.lockValue(t)
	cl, err := api.NewClient(&api.Config{Address: c.addr})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Session().Destroy(sess, nil); err != nil {
		t.Fatal(err)
	}
	// The server that lost the lock stops, and campaigns again: either
	// server may win the lock after the delay.
	waitFor(t, "another session to hold the lock", func() bool { _, s := c.lockValue(t); return s != "" && s != sess })
	h2 := c.leader(t, -1)
	if li, _ := c.lockValue(t); li.Holder != c.rigs[h2].rec.ID() {
		t.Errorf("the lock names %q, the leading server is %q", li.Holder, c.rigs[h2].rec.ID())
	}
	// Whoever holds it now resubmits every app to its scheduler once: it
	// cannot know what another holder did meanwhile.
	want := 3
	if h2 == h {
		want = 6
	}
	waitFor(t, "the new holder to submit every app", func() bool { return c.scheds[h2].SubmitCount() == want })
	if !waitLog(c.rigs[h], "lost the reconciler lock") {
		t.Errorf("the server that lost the lock did not say so; its log:\n%s", c.rigs[h].logs.String())
	}
}

func waitLog(r *rig, s string) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(r.logs.String(), s) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}
