package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends/consul"
	"github.com/berthpaas/berth/backends/devagent"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine/state"
)

// hookLog records the webhook calls of several test receivers in the
// order they arrived.
type hookLog struct {
	mu    sync.Mutex
	calls []hookCall
}

type hookCall struct {
	target   string // the receiver's name
	attempt  string // X-Berth-Attempt
	delivery string // X-Berth-Delivery
	event    string // the payload's "id"
}

// receiver starts a webhook receiver named name that answers status.
func (l *hookLog) receiver(t *testing.T, name string, status int) *httptest.Server {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			ID string `json:"id"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		l.mu.Lock()
		l.calls = append(l.calls, hookCall{target: name, attempt: r.Header.Get("X-Berth-Attempt"), delivery: r.Header.Get("X-Berth-Delivery"), event: body.ID})
		l.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (l *hookLog) snapshot() []hookCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]hookCall(nil), l.calls...)
}

// waitFor polls cond until it holds, failing the test after 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func addNotifier(t *testing.T, e *Engine, u string) {
	t.Helper()
	if _, err := e.AddNotifier(context.Background(), &Identity{Email: "root@b.co", Admin: true}, NotifyImagePush, u); err != nil {
		t.Fatal(err)
	}
}

// sharing makes an engine on the Store and Secrets of e, as a second
// server of one cluster (or e's server restarted) would be.
func sharing(e *Engine, mutate func(cfg *config.Config)) func(cfg *config.Config, d *Deps) {
	return func(cfg *config.Config, d *Deps) {
		d.Store, d.Secrets = e.store, e.secrets
		*cfg.Notify = *e.cfg.Notify
		if mutate != nil {
			mutate(cfg)
		}
	}
}

func queued(t *testing.T, e *Engine) []*queuedDelivery {
	t.Helper()
	qs, err := state.List[queuedDelivery](context.Background(), e.store, notifyQueuePrefix)
	if err != nil {
		t.Fatal(err)
	}
	return qs
}

// TestNotifyRestartLosesNoDelivery: an event queued by a server that
// stops before delivering it is delivered by the server started after it
// on the same Store.
func TestNotifyRestartLosesNoDelivery(t *testing.T) {
	var log hookLog
	ts := log.receiver(t, "hook", http.StatusOK)
	a, _ := newTestEngine(t, nil)
	addNotifier(t, a, ts.URL+"/hook")
	// a is never started: the event is queued, not delivered, when a stops.
	a.Notify(context.Background(), NotifyImagePush, map[string]string{"id": "ev1"})
	a.Close()
	if n := len(log.snapshot()); n != 0 {
		t.Fatalf("%d calls before the restart", n)
	}

	b, _ := newTestEngine(t, sharing(a, nil))
	b.Start()
	waitFor(t, "the queued event delivered after the restart", func() bool { return len(log.snapshot()) > 0 })
	waitFor(t, "the queue emptied", func() bool { return len(queued(t, b)) == 0 })
	if got := log.snapshot(); len(got) != 1 || got[0].event != "ev1" || got[0].attempt != "1" {
		t.Fatalf("calls %+v, want ev1 once at attempt 1", got)
	}
	ns, err := b.ListNotifiers(context.Background(), &Identity{Email: "root@b.co", Admin: true}, NotifyImagePush)
	if err != nil || len(ns) != 1 || ns[0].Delivered != 1 || ns[0].LastOutcome != NotifyDelivered || ns[0].Pending != 0 {
		t.Fatalf("notifier state %+v (%v), want 1 delivered", ns, err)
	}
}

// TestNotifyExpiredClaimTakenOver: a delivery claimed by a server that
// crashed (its claim expired) is delivered by another.
func TestNotifyExpiredClaimTakenOver(t *testing.T) {
	var log hookLog
	ts := log.receiver(t, "hook", http.StatusOK)
	e, _ := newTestEngine(t, nil)
	body, _ := json.Marshal(map[string]string{"id": "ev1"})
	past := time.Now().Add(-time.Minute)
	d := &queuedDelivery{ID: queueID(past), Event: NotifyImagePush, NotifierID: notifierID(ts.URL), URL: ts.URL, Body: body,
		NextAttempt: past, Created: past, ClaimedBy: "crashed", ClaimUntil: past.Add(30 * time.Second)}
	if _, err := state.Create(context.Background(), e.store, notifyQueuePrefix+d.ID, d); err != nil {
		t.Fatal(err)
	}
	e.Start()
	waitFor(t, "the orphaned delivery delivered", func() bool { return len(queued(t, e)) == 0 })
	if got := log.snapshot(); len(got) != 1 || got[0].event != "ev1" {
		t.Fatalf("calls %+v, want ev1 once", got)
	}
}

// TestNotifyTwoServersDeliverOnce: two engines on one Store deliver each
// event exactly once between them: on bolt (one file, two engines), and on
// a real Consul (two clients of one prefix, as two servers are).
func TestNotifyTwoServersDeliverOnce(t *testing.T) {
	t.Run("bolt", func(t *testing.T) {
		a, _ := newTestEngine(t, nil)
		b, _ := newTestEngine(t, sharing(a, nil))
		twoServersDeliverOnce(t, a, b)
	})
	t.Run("consul", func(t *testing.T) {
		addr := devagent.Consul(t)
		// The agent is this package's only one: stopped when this test
		// ends (after the engines and their clients, cleaned up before),
		// so that tests after it that check for stray goroutines find
		// none of its.
		t.Cleanup(devagent.Shutdown)
		prefix := "berth-notify-test/" + state.NewID()[:8]
		onConsul := func(cfg *config.Config, d *Deps) {
			st, err := consul.New(consul.Config{Address: addr, Prefix: prefix}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			d.Store, d.StoreName = st, "consul"
		}
		a, _ := newTestEngine(t, onConsul)
		b, _ := newTestEngine(t, func(cfg *config.Config, d *Deps) {
			onConsul(cfg, d)
			d.Secrets = a.secrets
		})
		twoServersDeliverOnce(t, a, b)
	})
}

func twoServersDeliverOnce(t *testing.T, a, b *Engine) {
	var log hookLog
	ts := log.receiver(t, "hook", http.StatusOK)
	addNotifier(t, a, ts.URL+"/hook")
	a.Start()
	b.Start()
	const events = 30
	for i := 0; i < events; i++ {
		e := a
		if i%2 == 1 {
			e = b
		}
		e.Notify(context.Background(), NotifyImagePush, map[string]string{"id": fmt.Sprint("ev", i)})
	}
	waitFor(t, "every event delivered", func() bool { return len(log.snapshot()) >= events })
	waitFor(t, "the queue emptied", func() bool { return len(queued(t, a)) == 0 })
	seen := map[string]int{}
	for _, c := range log.snapshot() {
		seen[c.event]++
	}
	for i := 0; i < events; i++ {
		if n := seen[fmt.Sprint("ev", i)]; n != 1 {
			t.Errorf("ev%d delivered %d times, want once", i, n)
		}
	}
	if len(seen) != events {
		t.Errorf("%d distinct events delivered, want %d", len(seen), events)
	}
	ns, err := b.ListNotifiers(context.Background(), &Identity{Email: "root@b.co", Admin: true}, NotifyImagePush)
	if err != nil || len(ns) != 1 || ns[0].Delivered != events {
		t.Fatalf("notifier state %+v (%v), want %d delivered", ns, err, events)
	}
}

// TestNotifyDeadWebhooksDoNotStallOthers: with four webhooks that always
// fail listed before a live one, the live one gets its event before any
// dead one is tried a second time (the old in-memory queue's workers
// each slept through their retry delay, and the live delivery waited
// for a dead one to give up). The dead ones are given up after
// notify.max_attempts, and each notifier's state says so.
func TestNotifyDeadWebhooksDoNotStallOthers(t *testing.T) {
	var log hookLog
	e, _ := newTestEngine(t, func(cfg *config.Config, d *Deps) {
		cfg.Notify.MaxAttempts = 2
		cfg.Notify.BackoffDur = 3 * time.Second
	})
	live := log.receiver(t, "live", http.StatusOK)
	// The live URL is chosen to sort after the dead ones in the notifier
	// list (by notifier id), so that it is queued last.
	liveURL := ""
	for k := 0; liveURL == ""; k++ {
		if u := fmt.Sprintf("%s/live%d", live.URL, k); notifierID(u) >= "c" {
			liveURL = u
		}
	}
	addNotifier(t, e, liveURL)
	for i := 0; i < 4; i++ {
		dead := log.receiver(t, fmt.Sprint("dead", i), http.StatusInternalServerError)
		for k := 0; ; k++ {
			if u := fmt.Sprintf("%s/d%d", dead.URL, k); notifierID(u) < notifierID(liveURL) {
				addNotifier(t, e, u)
				break
			}
		}
	}
	e.Start()
	e.Notify(context.Background(), NotifyImagePush, map[string]string{"id": "ev1"})

	waitFor(t, "the live webhook's delivery", func() bool {
		for _, c := range log.snapshot() {
			if c.target == "live" {
				return true
			}
		}
		return false
	})
	for _, c := range log.snapshot() {
		if c.target == "live" {
			break
		}
		if c.attempt != "1" {
			t.Fatalf("%s was tried again (attempt %s) before the live webhook got its event: calls %+v", c.target, c.attempt, log.snapshot())
		}
	}

	// The dead ones: tried max_attempts times, then given up.
	waitFor(t, "the dead deliveries given up", func() bool { return len(queued(t, e)) == 0 })
	attempts := map[string][]string{}
	deliveries := map[string]string{} // target -> its delivery id
	targets := map[string]string{}    // delivery id -> its target
	for _, c := range log.snapshot() {
		attempts[c.target] = append(attempts[c.target], c.attempt)
		// Every attempt of a delivery carries its one id; each
		// notifier's delivery has its own.
		if c.delivery == "" {
			t.Errorf("%s attempt %s: no X-Berth-Delivery", c.target, c.attempt)
		}
		if id, ok := deliveries[c.target]; ok && id != c.delivery {
			t.Errorf("%s: attempts carry delivery ids %q and %q", c.target, id, c.delivery)
		}
		if other, ok := targets[c.delivery]; ok && other != c.target {
			t.Errorf("delivery id %q sent to %s and %s", c.delivery, other, c.target)
		}
		deliveries[c.target], targets[c.delivery] = c.delivery, c.target
	}
	for target, as := range attempts {
		want := "1 2"
		if target == "live" {
			want = "1"
		}
		if got := strings.Join(as, " "); got != want {
			t.Errorf("%s: attempts %q, want %q", target, got, want)
		}
	}
	ns, err := e.ListNotifiers(context.Background(), &Identity{Email: "root@b.co", Admin: true}, NotifyImagePush)
	if err != nil || len(ns) != 5 {
		t.Fatalf("notifiers %+v (%v)", ns, err)
	}
	for _, n := range ns {
		if n.URL == liveURL {
			if n.Delivered != 1 || n.GaveUp != 0 || n.LastOutcome != NotifyDelivered {
				t.Errorf("live notifier state %+v", n)
			}
		} else if n.GaveUp != 1 || n.Delivered != 0 || n.LastOutcome != NotifyGaveUp || n.LastAttempts != 2 || !strings.Contains(n.LastError, "500") {
			t.Errorf("dead notifier state %+v", n)
		}
	}
}

// TestNotifyRemovedNotifierHearsNoMore: the retries queued for a notifier
// that is removed are dropped with it.
func TestNotifyRemovedNotifierHearsNoMore(t *testing.T) {
	var log hookLog
	e, _ := newTestEngine(t, func(cfg *config.Config, d *Deps) {
		cfg.Notify.MaxAttempts = 3
		cfg.Notify.BackoffDur = time.Minute
	})
	dead := log.receiver(t, "dead", http.StatusInternalServerError)
	live := log.receiver(t, "live", http.StatusOK)
	addNotifier(t, e, dead.URL)
	addNotifier(t, e, live.URL)
	e.Start()
	e.Notify(context.Background(), NotifyImagePush, map[string]string{"id": "ev1"})
	waitFor(t, "the live delivery done and the dead one's retry queued", func() bool {
		qs := queued(t, e)
		return len(qs) == 1 && qs[0].Attempt == 1 && qs[0].ClaimedBy == ""
	})
	root := &Identity{Email: "root@b.co", Admin: true}
	ns, err := e.ListNotifiers(context.Background(), root, NotifyImagePush)
	if err != nil || len(ns) != 2 {
		t.Fatalf("%+v %v", ns, err)
	}
	for _, n := range ns {
		if n.URL == dead.URL && (n.Pending != 1 || n.GaveUp != 0) || n.URL == live.URL && (n.Pending != 0 || n.Delivered != 1) {
			t.Errorf("notifier state %+v", n)
		}
	}
	if err := e.RemoveNotifier(context.Background(), root, NotifyImagePush, dead.URL); err != nil {
		t.Fatal(err)
	}
	if qs := queued(t, e); len(qs) != 0 {
		t.Fatalf("the removed notifier's retry is still queued: %+v", qs[0])
	}
}
