// Package reconciler converges the Scheduler to the desired state that the
// engine keeps in the Store. It is idempotent, driven by a Store watch on
// apps/, kicks from the engine and a periodic sweep, and keeps no state
// that matters across restarts: a restarted server resubmits every
// deployed app (Submit is declarative) and converges.
//
// With several servers on one Store only one reconciles. On a Store that
// can elect (backends.Elector: Consul) it is the holder of a session lock
// on locks/reconciler-leader (reconciler.leader_ttl, leader_lock_delay):
// a killed holder's lock is taken by another server once Consul
// invalidates its session, a holder that stops gracefully releases it at
// once, and a holder that loses it stops at once (its pass is cancelled).
// On bolt the server holds a lease record (locks/reconciler) that it
// renews. A server that does not hold the lock neither sweeps nor submits;
// it serves the whole API from the Store.
//
// Run owns every goroutine the reconciler starts; Close returns when they
// have all stopped.
package reconciler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
)

// Reconciler converges one engine's Scheduler to its desired state.
type Reconciler struct {
	eng      *engine.Engine
	log      hclog.Logger
	mu       sync.Mutex
	applied  map[string]string        // app -> hash of the last spec submitted
	restarts map[string]int64         // app -> restart generation applied
	dirty    map[string]bool          // apps changed since the last pass
	carried  map[string]*state.App    // dirty apps whose latest change came with its record (Changed): not read again
	seen     map[string]uint64        // app -> ModifyIndex of its record as a pass last took it up: the watch kicks for later changes only
	inflight map[string]bool          // apps whose operation may be under way
	retries  map[string]retry         // apps whose submit failed for want of the scheduler: when to try again
	releases map[string]cachedRelease // app -> its desired release, as last read
	all      bool                     // the next pass covers every app
	// progressFrom is where the next progress check starts (the app a
	// check that yielded to a kick did not get to).
	progressFrom string
	kickc        chan struct{}
	id           string
	holding      atomic.Bool // this server holds the reconciler lock (elected)
	elected      bool        // the Store elects (Consul): no lease record

	runMu   sync.Mutex
	closed  bool
	cancel  context.CancelFunc // ends the Run under way
	running sync.WaitGroup     // Run calls and the goroutines they start
}

var _ engine.Reconciler = (*Reconciler)(nil)

// New builds the reconciler of eng and connects eng to it
// (eng.SetReconciler). Call Run (or Start) to run it, Close to stop it.
func New(eng *engine.Engine) *Reconciler {
	log := eng.Logger().Named("reconciler")
	r := &Reconciler{eng: eng, log: log, applied: map[string]string{}, restarts: map[string]int64{}, dirty: map[string]bool{}, carried: map[string]*state.App{}, seen: map[string]uint64{}, inflight: map[string]bool{}, retries: map[string]retry{}, releases: map[string]cachedRelease{}, all: true, kickc: make(chan struct{}, 1), id: serverID(eng.Config().DataDir, log)}
	_, r.elected = eng.Store().(backends.Elector)
	eng.SetReconciler(r)
	return r
}

// ID is this server's identity as a holder of the reconciler lock.
func (r *Reconciler) ID() string { return r.id }

// Leader says whether this server runs the reconciler now (holds the
// reconciler lock or lease).
func (r *Reconciler) Leader() bool { return r.holding.Load() }

func (r *Reconciler) store() backends.Store     { return r.eng.Store() }
func (r *Reconciler) sched() backends.Scheduler { return r.eng.Scheduler() }

// Every scheduler call has a deadline: scheduler_timeout for a read, and
// writeCallFactor times it for a write (which makes several requests: read
// the job, register it, its oneshot jobs...).
const writeCallFactor = 4

func (r *Reconciler) callCtx(ctx context.Context, write bool) (context.Context, context.CancelFunc) {
	d := r.eng.Config().SchedulerTimeoutDur
	if d <= 0 {
		d = 5 * time.Second
	}
	if write {
		d *= writeCallFactor
	}
	return context.WithTimeout(ctx, d)
}

func (r *Reconciler) status(ctx context.Context, app string) (*backends.AppStatus, error) {
	ctx, cancel := r.callCtx(ctx, false)
	defer cancel()
	return r.sched().Status(ctx, app)
}

func (r *Reconciler) apps(ctx context.Context) ([]string, error) {
	ctx, cancel := r.callCtx(ctx, false)
	defer cancel()
	return r.sched().Apps(ctx)
}

func (r *Reconciler) submit(ctx context.Context, spec *backends.AppSpec) error {
	ctx, cancel := r.callCtx(ctx, true)
	defer cancel()
	return r.sched().Submit(ctx, spec)
}

func (r *Reconciler) stop(ctx context.Context, app string) error {
	ctx, cancel := r.callCtx(ctx, true)
	defer cancel()
	return r.sched().Stop(ctx, app)
}

func (r *Reconciler) restart(ctx context.Context, app string) error {
	ctx, cancel := r.callCtx(ctx, true)
	defer cancel()
	return r.sched().Restart(ctx, app, "")
}

// serverID is this server's identity as a lease holder. It is kept in the
// data dir, so a server restarted on its data dir (after a crash, too)
// takes its own reconciler lease back at once instead of waiting it out;
// servers sharing one Store have their own data dirs, hence their own ids.
func serverID(dataDir string, log hclog.Logger) string {
	if dataDir == "" {
		return "server-" + engine.NewSecret(8)
	}
	path := filepath.Join(dataDir, "server-id")
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id
		}
	}
	id := "server-" + engine.NewSecret(8)
	if err := os.MkdirAll(dataDir, 0o700); err == nil {
		err = os.WriteFile(path, []byte(id+"\n"), 0o600)
		if err == nil {
			return id
		}
		log.Warn("could not keep the server id in the data dir; a restart will wait out this server's reconciler lease", "path", path, "error", err)
	}
	return id
}

// release gives up the reconciler lease if this server holds it, so that
// a successor need not wait for it to expire.
func (r *Reconciler) release(ctx context.Context) {
	if r.elected {
		return // the lock was released when Run ended
	}
	_ = r.write(ctx, "reconciler lease release", "", func() error {
		cur, idx, err := state.Get[state.Lock](ctx, r.store(), reconcilerLockKey)
		if errors.Is(err, state.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if cur.Holder != r.id {
			return nil
		}
		ok, _, err := r.store().DeleteCAS(ctx, reconcilerLockKey, idx)
		if err == nil && !ok {
			return state.ErrConflict
		}
		return err
	})
}

// Store writes that fail are retried after a backoff from minWriteBackoff
// doubling up to maxWriteBackoff, until they succeed or the context ends.
const (
	minWriteBackoff = 100 * time.Millisecond
	maxWriteBackoff = 5 * time.Second
)

// write runs step, a read-check-write of one Store record, until it
// succeeds or ctx ends: a Store write error is logged and the step run
// again (it reads the record afresh, so a check-and-set conflict makes it
// decide again on what another writer wrote). A write of the reconciler's
// is never dropped while it runs: a deploy's recorded state is not lost to
// a Store that failed for a moment.
func (r *Reconciler) write(ctx context.Context, what, app string, step func() error) error {
	backoff := minWriteBackoff
	for attempt := 1; ; attempt++ {
		err := step()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			r.log.Warn("store write failed; not retried: stopping", "write", what, "app", app, "attempts", attempt, "error", err)
			return err
		}
		if errors.Is(err, state.ErrConflict) {
			// Another writer came first: read again and decide again.
			r.log.Debug("store write raced; retrying", "write", what, "app", app, "attempt", attempt)
			engine.Sleep(ctx, time.Duration(attempt%8)*time.Millisecond)
			continue
		}
		r.log.Warn("store write failed; retrying", "write", what, "app", app, "attempt", attempt, "in", backoff, "error", err)
		engine.Sleep(ctx, backoff)
		if backoff *= 2; backoff > maxWriteBackoff {
			backoff = maxWriteBackoff
		}
	}
}

// Kick asks for a pass soon over the named apps (none: every app); the
// pass reads their records.
func (r *Reconciler) Kick(apps ...string) {
	r.mu.Lock()
	if len(apps) == 0 {
		r.all = true
	}
	for _, a := range apps {
		r.dirty[a] = true
		delete(r.carried, a)
	}
	r.mu.Unlock()
	r.wake()
}

func (r *Reconciler) wake() {
	select {
	case r.kickc <- struct{}{}:
	default:
	}
}

// Changed asks for a pass soon over app a, whose record the engine has
// just committed (a, with the ModifyIndex it was written at). The pass
// takes a as it is instead of reading it back, unless a kick that reads
// the app is due anyway; of two changes carried before a pass, the later
// (by ModifyIndex) counts. rel, if it is the release a names, goes into
// the release cache (release records never change). The caller must not
// change a afterwards.
func (r *Reconciler) Changed(a *state.App, rel *state.Release) {
	if a == nil {
		return
	}
	if rel != nil && rel.App == a.Name && rel.MetaVersion == a.MetaVersion {
		r.mu.Lock()
		r.releases[a.Name] = cachedRelease{mv: a.MetaVersion, created: a.Created, rel: rel}
		r.mu.Unlock()
	}
	if a.ModifyIndex == 0 {
		r.Kick(a.Name) // no index to order it by: read it
		return
	}
	r.mu.Lock()
	cur, carried := r.carried[a.Name]
	switch {
	case r.dirty[a.Name] && !carried:
		// A kick that reads the record is due: it reads this change too.
	case carried && cur.ModifyIndex >= a.ModifyIndex:
		// A later change is carried already.
	default:
		r.dirty[a.Name] = true
		r.carried[a.Name] = a
	}
	r.mu.Unlock()
	r.wake()
}

// takenUp records that a pass took up app's record at index: the watch
// kicks for changes after it only.
func (r *Reconciler) takenUp(app string, index uint64) {
	r.mu.Lock()
	if index > r.seen[app] {
		r.seen[app] = index
	}
	r.mu.Unlock()
}

// Forget drops what the reconciler remembers of app: its next submit is
// not skipped as unchanged.
func (r *Reconciler) Forget(app string) {
	r.mu.Lock()
	delete(r.applied, app)
	delete(r.restarts, app)
	delete(r.retries, app)
	delete(r.releases, app)
	delete(r.seen, app)
	r.mu.Unlock()
}

// cachedRelease is an app's release as the reconciler last read it. A
// release record is written once (engine: state.Create) and only removed
// with its app, so the record of one app incarnation (its Created time)
// and meta_version never changes: a full pass need not read and decode
// 10,000 releases that it read before.
type cachedRelease struct {
	mv      string
	created time.Time
	rel     *state.Release
}

// desiredRelease reads the release a's desired state names, from the cache when
// it holds it.
func (r *Reconciler) desiredRelease(ctx context.Context, a *state.App) (*state.Release, error) {
	r.mu.Lock()
	c, ok := r.releases[a.Name]
	r.mu.Unlock()
	if ok && c.mv == a.MetaVersion && c.created.Equal(a.Created) {
		return c.rel, nil
	}
	rel, _, err := state.Get[state.Release](ctx, r.store(), state.ReleaseKey(a.Name, a.MetaVersion))
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.releases[a.Name] = cachedRelease{mv: a.MetaVersion, created: a.Created, rel: rel}
	r.mu.Unlock()
	return rel, nil
}

// retry is when an app whose submit failed because the scheduler did not
// answer is submitted again, and the backoff after that.
type retry struct {
	at      time.Time
	backoff time.Duration
}

// A submit that fails for want of the scheduler (backends.ErrUnavailable,
// a deadline) is retried after minRetryBackoff, doubling up to
// maxRetryBackoff (and never later than the sweep).
const (
	minRetryBackoff = time.Second
	maxRetryBackoff = 15 * time.Second
)

// transient tells a scheduler error worth retrying as is (the scheduler
// did not answer) from one that refused the spec.
func transient(err error) bool {
	return errors.Is(err, backends.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, backends.ErrCASConflict)
}

// retryLater schedules another submit of app after its next backoff and
// returns that backoff.
func (r *Reconciler) retryLater(app string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.retries[app].backoff * 2
	if b < minRetryBackoff {
		b = minRetryBackoff
	}
	if b > maxRetryBackoff {
		b = maxRetryBackoff
	}
	r.retries[app] = retry{at: time.Now().Add(b), backoff: b}
	return b
}

// kickDue kicks the apps whose retry is due.
func (r *Reconciler) kickDue() {
	now := time.Now()
	var due []string
	r.mu.Lock()
	for app, rt := range r.retries {
		if !rt.at.IsZero() && !now.Before(rt.at) {
			due = append(due, app)
			rt.at = time.Time{} // kicked; the backoff stays until a submit succeeds
			r.retries[app] = rt
		}
	}
	r.mu.Unlock()
	if len(due) > 0 {
		r.Kick(due...)
	}
}

// Start runs the reconciler in a goroutine of its own until Close.
func (r *Reconciler) Start() {
	r.runMu.Lock()
	defer r.runMu.Unlock()
	if r.closed {
		return
	}
	r.running.Add(1)
	go func() {
		defer r.running.Done()
		r.Run(context.Background())
	}()
}

// Run reconciles until ctx ends or Close is called: a pass whenever apps/
// changes, a kick comes or the interval passes, and a progress check of
// deploying apps. It returns when every goroutine it started has
// stopped. Without a scheduler it returns at once.
func (r *Reconciler) Run(ctx context.Context) {
	r.runMu.Lock()
	if r.closed || r.sched() == nil {
		r.runMu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	prev := r.cancel
	r.cancel = func() {
		cancel()
		if prev != nil {
			prev()
		}
	}
	r.running.Add(1)
	r.runMu.Unlock()
	defer r.running.Done()

	var watch sync.WaitGroup
	defer watch.Wait()
	defer cancel() // runs first: the watch stops, then Run waits for it
	watch.Add(1)
	go func() {
		defer watch.Done()
		r.watch(ctx)
	}()
	if el, ok := r.store().(backends.Elector); ok {
		r.campaign(ctx, el)
		return
	}
	r.loop(ctx)
}

// LeaderKey is the key of the reconciler's session lock (elected Stores);
// while held its value is a LeaderInfo.
const LeaderKey = "locks/reconciler-leader"

// LeaderInfo is the value of the reconciler lock's key while it is held.
type LeaderInfo struct {
	Holder string    `json:"holder"` // the server's id (its data dir's server-id)
	Addr   string    `json:"addr"`   // the server's bind_addr
	Since  time.Time `json:"since"`
}

// campaign takes the reconciler lock, reconciles while it holds it, and
// takes it again when it was lost, until ctx ends; then it releases it.
func (r *Reconciler) campaign(ctx context.Context, el backends.Elector) {
	cfg := r.eng.Config().Reconcile
	opts := backends.ElectOptions{TTL: cfg.LeaderTTLDur, LockDelay: cfg.LeaderLockDelayDur, Name: "berth reconciler " + r.id}
	if opts.TTL <= 0 {
		opts.TTL = 10 * time.Second
	}
	backoff := time.Second
	for ctx.Err() == nil {
		val, _ := json.Marshal(LeaderInfo{Holder: r.id, Addr: r.eng.Config().BindAddr, Since: time.Now().UTC()})
		lead, err := el.Elect(ctx, LeaderKey, val, opts)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.log.Warn("taking part in the reconciler election failed; retrying", "in", backoff, "error", err)
			engine.Sleep(ctx, backoff)
			// At most a TTL between tries: a Consul back from an outage
			// gets a holder again within about a TTL.
			if backoff *= 2; backoff > opts.TTL {
				backoff = opts.TTL
			}
			continue
		}
		backoff = time.Second
		r.lead(ctx, lead)
	}
}

// lead reconciles while this server holds the lock lead, then releases
// it: when ctx ends (a graceful stop: the next holder takes over at once)
// or the lock is lost (the pass under way is cancelled).
func (r *Reconciler) lead(ctx context.Context, lead backends.Leadership) {
	r.log.Info("this server holds the reconciler lock: reconciling", "server", r.id)
	// Another holder may have submitted meanwhile: what this server
	// applied before is no proof of what the scheduler runs. A full pass
	// looks at every app and every deploy under way.
	r.mu.Lock()
	r.applied, r.restarts, r.retries, r.seen = map[string]string{}, map[string]int64{}, map[string]retry{}, map[string]uint64{}
	r.mu.Unlock()
	r.Kick()
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-lead.Lost():
			cancel()
		case <-lctx.Done():
		}
	}()
	r.holding.Store(true)
	r.loop(lctx)
	r.holding.Store(false)
	cancel()
	wg.Wait()
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	if err := lead.Release(rctx); err != nil {
		r.log.Warn("releasing the reconciler lock failed (it ends with its session)", "error", err)
	}
	if ctx.Err() == nil {
		r.log.Warn("this server lost the reconciler lock: not reconciling until it holds it again", "server", r.id)
	} else {
		r.log.Info("reconciler lock released", "server", r.id)
	}
}

// Close stops Run, waits until all of the reconciler's goroutines have
// stopped, and gives up the reconciler lease if this server holds it.
func (r *Reconciler) Close() {
	r.runMu.Lock()
	r.closed = true
	if r.cancel != nil {
		r.cancel()
	}
	r.runMu.Unlock()
	r.running.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.release(ctx)
}

// watch follows apps/ in the Store (a blocking query) and kicks a pass
// over the apps that changed; it returns when ctx ends. Writes through
// this server kick the reconciler directly; the watch is for other
// writers (another server on the same Store).
func (r *Reconciler) watch(ctx context.Context) {
	log := r.log
	var index uint64
	var seen map[string]bool
	backoff := time.Second
	for ctx.Err() == nil {
		pairs, meta, err := r.store().List(ctx, state.AppsPrefix, &backends.QueryOptions{WaitIndex: index, WaitTime: r.eng.Config().Reconcile.IntervalDur})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Warn("watching apps failed; retrying", "in", backoff, "error", err)
			engine.Sleep(ctx, backoff)
			if backoff *= 2; backoff > time.Minute {
				backoff = time.Minute
			}
			continue
		}
		backoff = time.Second
		now := make(map[string]bool, len(pairs))
		var changed []string
		r.mu.Lock()
		for _, p := range pairs {
			name := strings.TrimPrefix(p.Key, state.AppsPrefix)
			now[name] = true
			// A change a pass has taken up already (the engine hands
			// the reconciler the records it commits) is not kicked
			// again.
			if p.ModifyIndex > index && p.ModifyIndex > r.seen[name] {
				changed = append(changed, name)
			}
		}
		r.mu.Unlock()
		for name := range seen {
			if !now[name] {
				changed = append(changed, name) // removed
			}
		}
		switch {
		case meta.LastIndex < index || index == 0:
			// The first look, or the Store's index went back (a
			// restored snapshot): everything may have changed.
			r.mu.Lock()
			r.seen = map[string]uint64{}
			r.mu.Unlock()
			r.Kick()
		case len(changed) > 0:
			r.Kick(changed...)
		}
		seen, index = now, meta.LastIndex
		// Writes through this server kick the reconciler directly; the
		// watch is for other writers. Coalescing their changes keeps a
		// burst of writes from listing every app once per write.
		engine.Sleep(ctx, watchCoalesce)
	}
}

// loop is Run's main loop.
func (r *Reconciler) loop(ctx context.Context) {
	log := r.log
	sweep := time.NewTicker(r.eng.Config().Reconcile.IntervalDur)
	defer sweep.Stop()
	progress := time.NewTicker(500 * time.Millisecond)
	defer progress.Stop()
	// Asynchronous broker operations pending when Berth stopped are
	// polled again at once; the service sweep keeps polling them.
	if r.leader(ctx) {
		for _, msg := range r.eng.ResumeOperations(ctx) {
			log.Info("service sweep", "repaired", msg)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kickc:
		case <-sweep.C:
			r.Kick()
			if r.leader(ctx) {
				for _, msg := range r.eng.ServiceSweep(ctx) {
					log.Info("service sweep", "repaired", msg)
				}
			}
		case <-progress.C:
			if r.leader(ctx) {
				r.progressYielding(ctx, r.kickPending)
				r.kickDue()
			}
			continue
		}
		if r.leader(ctx) {
			if err := r.passDirty(ctx); err != nil && ctx.Err() == nil {
				log.Warn("reconcile pass failed", "error", err)
			}
			r.progressYielding(ctx, r.kickPending)
		}
	}
}

// passDirty reconciles the apps changed since the last pass, or every app
// when a full pass is due (the first, the periodic sweep, a lost watch).
// A pass that fails leaves its apps due again.
func (r *Reconciler) passDirty(ctx context.Context) error {
	r.mu.Lock()
	all, dirty, carried := r.all, r.dirty, r.carried
	r.all, r.dirty, r.carried = false, map[string]bool{}, map[string]*state.App{}
	r.mu.Unlock()
	if all {
		_, err := r.Pass(ctx)
		r.trackUnderway(ctx)
		return err // a failed full pass is retried by the next sweep
	}
	names := make([]string, 0, len(dirty))
	for n := range dirty {
		names = append(names, n)
	}
	// The changes this server's engine committed (a user waits on them)
	// first, then the others (the watch's), each by name.
	sort.Slice(names, func(i, j int) bool {
		ci, cj := carried[names[i]] != nil, carried[names[j]] != nil
		if ci != cj {
			return ci
		}
		return names[i] < names[j]
	})
	r.mu.Lock()
	for _, n := range names {
		r.inflight[n] = true
	}
	r.mu.Unlock()
	var failed []string
	var firstErr error
	for _, name := range names {
		a, err := carried[name], error(nil)
		if a == nil {
			a, err = state.GetApp(ctx, r.store(), name)
		}
		if err == nil {
			r.takenUp(name, a.ModifyIndex)
		}
		if errors.Is(err, state.ErrNotFound) {
			// Removed: stop whatever the scheduler still runs of it.
			if _, err := r.status(ctx, name); err == nil {
				if err := r.stop(ctx, name); err != nil {
					failed, firstErr = append(failed, name), err
					continue
				}
			}
			r.Forget(name)
			continue
		}
		if err == nil {
			_, err = r.reconcileApp(ctx, a, nil)
		}
		if err != nil {
			failed = append(failed, name)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	// Failed apps are due again at the next pass (not at once: a lasting
	// failure must not spin).
	r.mu.Lock()
	for _, n := range failed {
		r.dirty[n] = true
	}
	r.mu.Unlock()
	return firstErr
}

const reconcilerLockKey = "locks/reconciler"

// watchCoalesce is the pause between two looks of the apps watch.
const watchCoalesce = 250 * time.Millisecond

// leader says whether this server may reconcile now. On an elected Store
// it holds the lock (loop runs only then, with a context that ends when
// the lock is lost); otherwise it takes or renews the reconciler lease.
func (r *Reconciler) leader(ctx context.Context) bool {
	if r.elected {
		return ctx.Err() == nil && r.holding.Load()
	}
	ok := r.lease(ctx)
	r.holding.Store(ok)
	return ok
}

// lease takes or renews the reconciler lease record (a Store that does
// not elect: bolt).
func (r *Reconciler) lease(ctx context.Context) bool {
	ttl := 3 * r.eng.Config().Reconcile.IntervalDur
	if ttl < 15*time.Second {
		ttl = 15 * time.Second
	}
	cur, idx, err := state.Get[state.Lock](ctx, r.store(), reconcilerLockKey)
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return false
	}
	if err == nil && cur.Holder != r.id && time.Now().Before(cur.Expires) {
		return false
	}
	if err == nil && cur.Holder == r.id && time.Until(cur.Expires) > ttl/2 {
		return true
	}
	l := &state.Lock{Holder: r.id, Operation: "reconciler", Expires: time.Now().Add(ttl).UTC()}
	_, err = state.Put(ctx, r.store(), reconcilerLockKey, l, idx)
	if err != nil && !errors.Is(err, state.ErrConflict) && ctx.Err() == nil {
		// Retried at the next tick of Run's loop (every 500ms); until
		// then this server does not reconcile.
		r.log.Warn("taking the reconciler lease failed; retrying", "error", err)
	}
	return err == nil
}

// Heal runs a pass now that resubmits every deployed app (the scheduler
// may have lost state); the healer endpoint runs it.
func (r *Reconciler) Heal(ctx context.Context) (*engine.PassResult, error) {
	if r.elected && !r.holding.Load() {
		return nil, engine.Unavailable("this server does not run the reconciler now: another server of the cluster holds its lock; try again")
	}
	r.mu.Lock()
	r.applied = map[string]string{}
	r.mu.Unlock()
	return r.Pass(ctx)
}

// passWorkers is how many apps a full pass reconciles at once.
const passWorkers = 4

// Pass reconciles every app once.
func (r *Reconciler) Pass(ctx context.Context) (*engine.PassResult, error) {
	apps, err := state.List[state.App](ctx, r.store(), state.AppsPrefix)
	if err != nil {
		return nil, err
	}
	res := &engine.PassResult{Submitted: []string{}, Stopped: []string{}, Failed: []string{}}
	known := map[string]bool{}
	// The deploy records in one read, not one read per app: a pass over
	// apps that run as recorded reads nothing else of the Store.
	deploys := r.deploySnapshot(ctx)
	// Apps are reconciled by passWorkers goroutines at once (each app by
	// one): a pass is CPU work (rendering and hashing specs) and waits on
	// the scheduler, and neither should be one app at a time at 10,000.
	type outcome struct {
		did string
		err error
	}
	outs := make([]outcome, len(apps))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(passWorkers, len(apps)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(apps) {
					return
				}
				if err := ctx.Err(); err != nil {
					outs[i].err = err
					continue
				}
				outs[i].did, outs[i].err = r.reconcileApp(ctx, apps[i], deploys)
			}
		}()
	}
	wg.Wait()
	for i, a := range apps {
		known[a.Name] = true
		res.Checked++
		did, err := outs[i].did, outs[i].err
		switch {
		case err != nil:
			res.Failed = append(res.Failed, a.Name)
		case did == "submitted":
			res.Submitted = append(res.Submitted, a.Name)
		case did == "stopped":
			res.Stopped = append(res.Stopped, a.Name)
		}
	}
	// Apps the scheduler runs that Berth no longer knows are stopped.
	running, err := r.apps(ctx)
	if err != nil {
		return res, err
	}
	for _, name := range running {
		if !known[name] {
			if err := r.stop(ctx, name); err == nil {
				res.Stopped = append(res.Stopped, name)
				r.Forget(name)
			}
		}
	}
	return res, nil
}

// deploySnapshot reads every deploy record (nil if that fails: each is
// then read when needed).
func (r *Reconciler) deploySnapshot(ctx context.Context) map[string]*state.Deploy {
	pairs, _, err := r.store().List(ctx, state.DeploysPrefix, nil)
	if err != nil {
		return nil
	}
	out := make(map[string]*state.Deploy, len(pairs))
	for _, p := range pairs {
		var d state.Deploy
		if json.Unmarshal(p.Value, &d) == nil {
			out[p.Key[len(state.DeploysPrefix):]] = &d
		}
	}
	return out
}

// reconcileApp brings one app's scheduler state to its desired state.
// deploys, if not nil, are the deploy records as a full pass read them at
// its start: an app whose record there is not failed is not read again to
// see whether its failed deploy is over.
func (r *Reconciler) reconcileApp(ctx context.Context, a *state.App, deploys map[string]*state.Deploy) (string, error) {
	if !a.Deployed {
		r.mu.Lock()
		_, had := r.applied[a.Name]
		r.mu.Unlock()
		st, err := r.status(ctx, a.Name)
		if err != nil && !errors.Is(err, backends.ErrNotFound) {
			return "", err
		}
		if st != nil || had {
			if err := r.stop(ctx, a.Name); err != nil {
				return "", err
			}
			r.Forget(a.Name)
			r.finish(ctx, a, state.DeployUndeployed, "")
			return "stopped", nil
		}
		r.finish(ctx, a, state.DeployUndeployed, "")
		return "", nil
	}
	rel, err := r.desiredRelease(ctx, a)
	if errors.Is(err, state.ErrNotFound) {
		r.finish(ctx, a, state.DeployFailed, fmt.Sprintf("release %s of app %s is missing", a.MetaVersion, a.Name))
		return "", err
	}
	if err != nil {
		return "", err
	}
	spec, err := r.eng.RenderSpec(ctx, a, rel)
	if err != nil {
		return "", err
	}
	h := engine.SpecHash(spec)
	r.mu.Lock()
	same := r.applied[a.Name] == h
	restartDone := r.restarts[a.Name] >= a.RestartGen
	r.mu.Unlock()
	if same {
		st, err := r.status(ctx, a.Name)
		switch {
		case errors.Is(err, backends.ErrNotFound):
			// Heal an app the scheduler lost (a restarted host, a
			// purged job).
			same = false
		case err != nil:
			return "", err
		case st.MetaVersion != spec.MetaVersion && !r.revertUnderway(ctx, a, st):
			// The scheduler runs another version than the one
			// submitted (changed behind Berth's back): submit again.
			r.log.Info("the scheduler runs another version; resubmitting", "app", a.Name, "runs", st.MetaVersion, "want", spec.MetaVersion)
			same = false
		case restartDone && st.MetaVersion == spec.MetaVersion && st.Deployment == backends.DeployRunning:
			if d, ok := deploys[a.Name]; deploys != nil && (!ok || d.State != state.DeployFailed) {
				// Not failed when the pass began; a failure
				// recorded since is seen by the next pass.
				break
			}
			r.leaveFailed(ctx, a)
		}
	}
	if !same {
		if err := r.eng.SyncRuntimeEnv(ctx, a.Name, spec.PrivateEnv); err != nil {
			return "", err
		}
		if err := r.submit(ctx, spec); err != nil {
			if transient(err) {
				// The scheduler did not answer: nothing is recorded
				// as applied, the deploy stays under way, and the
				// submit is tried again after a backoff.
				in := r.retryLater(a.Name)
				r.log.Warn("submit failed; retrying", "app", a.Name, "in", in, "error", err)
				r.note(ctx, a, fmt.Sprintf("the scheduler did not answer; retrying in %v: %v", in, err))
				return "", err
			}
			r.finish(ctx, a, state.DeployFailed, err.Error())
			r.mu.Lock()
			r.applied[a.Name] = h // do not resubmit a spec the scheduler refused until it changes
			delete(r.retries, a.Name)
			r.mu.Unlock()
			return "", err
		}
		r.mu.Lock()
		r.applied[a.Name] = h
		r.restarts[a.Name] = a.RestartGen
		delete(r.retries, a.Name)
		r.inflight[a.Name] = true
		r.mu.Unlock()
		r.mark(ctx, a, state.DeployDeploying)
		return "submitted", nil
	}
	if !restartDone {
		if err := r.restart(ctx, a.Name); err != nil {
			return "", err
		}
		r.mu.Lock()
		r.restarts[a.Name] = a.RestartGen
		r.mu.Unlock()
		r.mark(ctx, a, state.DeployDeploying)
		return "submitted", nil
	}
	return "", nil
}

// revertUnderway tells whether the scheduler runs the app's last running
// release because it reverted a failed deploy on its own (Nomad's
// auto_revert), which progress records (and makes the desired release):
// that is no version to overwrite.
func (r *Reconciler) revertUnderway(ctx context.Context, a *state.App, st *backends.AppStatus) bool {
	d, err := r.eng.GetDeploy(ctx, a.Name)
	if err != nil || d == nil {
		return err != nil // unknown: leave it to the next pass
	}
	return d.State == state.DeployDeploying && d.AutoRevert && d.LastRunning != "" && st.MetaVersion == d.LastRunning
}

// leaveFailed records as running a deploy recorded failed whose release
// the scheduler now runs, healthy, at the desired version (a newer
// deployment succeeded: after a heal, a re-registered job, a scheduler
// that retried).
func (r *Reconciler) leaveFailed(ctx context.Context, a *state.App) {
	d, err := r.eng.GetDeploy(ctx, a.Name)
	if err != nil || d == nil || d.State != state.DeployFailed || d.Generation != a.Generation || d.MetaVersion != a.MetaVersion || d.Reverted != nil {
		return
	}
	r.log.Info("the scheduler runs the app's release healthy: the failed deploy is over", "app", a.Name, "meta_version", a.MetaVersion)
	r.finish(ctx, a, state.DeployRunning, "")
}

// note sets the message of the app's deploy under way (same generation,
// pending or deploying), e.g. why its submit waits.
func (r *Reconciler) note(ctx context.Context, a *state.App, msg string) {
	_ = r.write(ctx, "deploy record", a.Name, func() error {
		d, idx, err := r.eng.DeployIndex(ctx, a.Name)
		if err != nil {
			return err
		}
		if d == nil || d.Generation != a.Generation || (d.State != state.DeployPending && d.State != state.DeployDeploying) || d.Message == msg {
			return nil
		}
		d.Message, d.Updated = msg, time.Now().UTC()
		_, err = state.Put(ctx, r.store(), state.DeployKey(a.Name), d, idx)
		return err
	})
}

// mark moves the app's current deploy record to state (same generation).
// It writes with check-and-set: a record a new operation wrote meanwhile
// is left alone.
func (r *Reconciler) mark(ctx context.Context, a *state.App, st state.DeployState) {
	_ = r.write(ctx, "deploy record", a.Name, func() error { return r.markOnce(ctx, a, st) })
}

func (r *Reconciler) markOnce(ctx context.Context, a *state.App, st state.DeployState) error {
	d, idx, err := r.eng.DeployIndex(ctx, a.Name)
	if err != nil {
		return err
	}
	if d != nil && d.Generation > a.Generation {
		return nil
	}
	if d == nil || d.Generation < a.Generation {
		d = &state.Deploy{App: a.Name, Generation: a.Generation, Operation: "reconcile", MetaVersion: a.MetaVersion}
	}
	if d.State == st {
		return nil
	}
	if d.State == state.DeployRunning && st == state.DeployDeploying && d.Generation == a.Generation {
		// A heal of a running app is a new deploy of the same generation.
		d.Operation = "heal"
	}
	d.State, d.Message, d.Updated = st, "", time.Now().UTC()
	if st == state.DeployDeploying {
		// The progress deadline runs from the submit; the lease lasts
		// at least until then.
		deadline, revert := r.eng.DeployPolicy(a)
		at := d.Updated.Add(deadline)
		d.Deadline, d.AutoRevert = &at, revert
		r.extendLease(ctx, a, at.Add(5*time.Second))
	}
	_, err = state.Put(ctx, r.store(), state.DeployKey(a.Name), d, idx)
	return err
}

// extendLease makes the app's lease of a's generation last until at, if
// it is held for that generation and would expire earlier.
func (r *Reconciler) extendLease(ctx context.Context, a *state.App, at time.Time) {
	_ = r.write(ctx, "app lease", a.Name, func() error {
		l, idx, err := state.Get[state.Lock](ctx, r.store(), state.LockKey(a.Name))
		if errors.Is(err, state.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if l.Generation != a.Generation || !l.Expires.Before(at) || time.Now().After(l.Expires) {
			return nil
		}
		l.Expires = at.UTC()
		_, err = state.Put(ctx, r.store(), state.LockKey(a.Name), l, idx)
		return err
	})
}

// finish ends the current operation with a final state: it releases the
// app's lease first, so that a client that sees the final state may start
// the next operation at once, then records the state (check-and-set, so a
// new operation's pending record is never overwritten).
func (r *Reconciler) finish(ctx context.Context, a *state.App, st state.DeployState, msg string) {
	r.eng.UnlockApp(ctx, a.Name, a.Generation)
	_ = r.write(ctx, "deploy record", a.Name, func() error { return r.finishOnce(ctx, a, st, msg) })
}

func (r *Reconciler) finishOnce(ctx context.Context, a *state.App, st state.DeployState, msg string) error {
	d, idx, err := r.eng.DeployIndex(ctx, a.Name)
	if err != nil {
		return err
	}
	if d != nil && d.Generation > a.Generation {
		return nil
	}
	if d == nil {
		if st == state.DeployUndeployed {
			return nil
		}
		d = &state.Deploy{App: a.Name, Generation: a.Generation, Operation: "reconcile", MetaVersion: a.MetaVersion}
	}
	if d.State != st || d.Message != msg || d.Generation != a.Generation {
		d.State, d.Message, d.Generation, d.Updated = st, msg, a.Generation, time.Now().UTC()
		if a.Deployed {
			d.MetaVersion = a.MetaVersion
		}
		if st == state.DeployRunning && a.Deployed {
			d.LastRunning = a.MetaVersion
		}
		if _, err = state.Put(ctx, r.store(), state.DeployKey(a.Name), d, idx); err != nil {
			return err
		}
		r.recordHistory(ctx, d)
	}
	return nil
}

// recordHistory appends an operation that reached its final state to the
// app's deploy history (engine.RecordHistory), retried as the other Store
// writes are.
func (r *Reconciler) recordHistory(ctx context.Context, d *state.Deploy) {
	_ = r.write(ctx, "deploy history", d.App, func() error { return r.eng.RecordHistory(ctx, d) })
}

// kickPending tells whether a kick waits for Run's loop.
func (r *Reconciler) kickPending() bool { return len(r.kickc) > 0 }

// progress follows apps whose operation is under way and records when it
// reaches running or failed. It looks at the apps this reconciler has
// touched since they were last final; a full pass (all=true) looks at every
// deploy record, as after a restart.
func (r *Reconciler) progress(ctx context.Context) { r.progressYielding(ctx, nil) }

// progressYielding is progress that stops early, after at least one app,
// when yield says so (a kick is waiting: a change must not wait for the
// progress checks of every deploy under way); the next call starts with
// the apps it did not check.
func (r *Reconciler) progressYielding(ctx context.Context, yield func() bool) {
	r.mu.Lock()
	names := make([]string, 0, len(r.inflight))
	for n := range r.inflight {
		names = append(names, n)
	}
	from := r.progressFrom
	r.progressFrom = ""
	r.mu.Unlock()
	sort.Strings(names)
	// Resume after the app the last call stopped at.
	if i := sort.SearchStrings(names, from); from != "" && i < len(names) {
		names = append(append(make([]string, 0, len(names)), names[i:]...), names[:i]...)
	}
	for i, name := range names {
		if i > 0 && yield != nil && yield() {
			r.mu.Lock()
			r.progressFrom = name
			r.mu.Unlock()
			return
		}
		d, err := r.eng.GetDeploy(ctx, name)
		if err != nil {
			continue
		}
		if d == nil || (d.State != state.DeployPending && d.State != state.DeployDeploying) {
			r.mu.Lock()
			delete(r.inflight, name)
			r.mu.Unlock()
			continue
		}
		a, err := state.GetApp(ctx, r.store(), name)
		if err != nil {
			continue
		}
		r.mu.Lock()
		_, submitted := r.applied[name]
		r.mu.Unlock()
		if !a.Deployed || !submitted {
			continue // the next pass handles it
		}
		st, err := r.status(ctx, name)
		if err != nil {
			continue
		}
		if st.MetaVersion == a.MetaVersion {
			switch st.Deployment {
			case state.DeployRunning:
				r.finish(ctx, a, state.DeployRunning, "")
				continue
			case state.DeployFailed:
				r.fail(ctx, a, d, st.Message)
				continue
			}
		} else if d.State == state.DeployDeploying && d.AutoRevert && d.LastRunning != "" && st.MetaVersion == d.LastRunning && d.Generation == a.Generation {
			// The scheduler reverted on its own (Nomad's auto_revert):
			// the deploy failed; record it and make the reverted
			// version the desired one.
			msg := fmt.Sprintf("the scheduler reverted to %s", st.MetaVersion)
			if st.Reverted != "" {
				msg += ": " + st.Reverted
			}
			r.fail(ctx, a, d, msg)
			continue
		}
		if d.State == state.DeployDeploying && d.Deadline != nil && d.Generation == a.Generation && st.MetaVersion == a.MetaVersion {
			r.followSchedulerDeadline(ctx, a, d, st.ProgressBy)
		}
		if d.State == state.DeployDeploying && d.Deadline != nil && d.Generation == a.Generation && time.Now().After(*d.Deadline) {
			r.fail(ctx, a, d, deadlineMessage(d, st))
		}
	}
}

// SchedulerDeadlineGrace is how long after a scheduler's own progress
// deadline Berth's deadline of the same deploy passes: the scheduler (and
// its auto_revert) decides first.
const SchedulerDeadlineGrace = 10 * time.Second

// followSchedulerDeadline moves the deploy's deadline (and the app's lease)
// to just after the scheduler's own progress deadline by, when that is
// later. A scheduler that keeps one (Nomad's update block) moves it on
// with every newly healthy allocation, so a rollout slower in all than
// progress_deadline but making progress is not failed; and Berth does not
// fail and revert a deploy at the same moment as the scheduler does.
func (r *Reconciler) followSchedulerDeadline(ctx context.Context, a *state.App, d *state.Deploy, by time.Time) {
	if by.IsZero() {
		return
	}
	at := by.Add(SchedulerDeadlineGrace).UTC()
	if !at.After(*d.Deadline) {
		return
	}
	moved := false
	_ = r.write(ctx, "deploy record", a.Name, func() error {
		cur, idx, err := r.eng.DeployIndex(ctx, a.Name)
		if err != nil {
			return err
		}
		if cur == nil || cur.Generation != d.Generation || cur.State != state.DeployDeploying {
			return nil
		}
		cur.Deadline = &at
		if _, err := state.Put(ctx, r.store(), state.DeployKey(a.Name), cur, idx); err != nil {
			return err
		}
		moved = true
		return nil
	})
	if !moved {
		return
	}
	d.Deadline = &at
	r.extendLease(ctx, a, at.Add(5*time.Second))
}

// deadlineMessage says that the progress deadline passed, and which
// instances were not healthy then.
func deadlineMessage(d *state.Deploy, st *backends.AppStatus) string {
	var bad []string
	for _, in := range st.Instances {
		if in.State == backends.StateRunning && in.Message == "" || in.State == backends.StateComplete {
			continue
		}
		s := fmt.Sprintf("%s.%d %s", in.Proc, in.Index, in.State)
		if in.Message != "" {
			s += " (" + in.Message + ")"
		}
		bad = append(bad, s)
	}
	took := d.Deadline.Sub(d.Updated).Round(time.Second)
	msg := fmt.Sprintf("progress deadline passed: the deploy was not healthy within %v", took)
	if len(bad) > 0 {
		msg += "; unhealthy instances: " + strings.Join(bad, ", ")
	}
	return msg
}

// fail ends the app's deploy as failed with msg. With auto_revert, and a
// last running release other than the failed one, the app is reverted to
// it: the failed state is recorded, then a new operation ("auto-revert to
// <version>", with the failed deploy in its record's "reverted") takes
// the lease over from the failed one in the same transaction as the app
// record, so no other operation can slip in between. Otherwise the lease
// is released.
func (r *Reconciler) fail(ctx context.Context, a *state.App, d *state.Deploy, msg string) {
	// The failing instance's last stderr lines say why, where the
	// scheduler keeps them.
	msg = engine.StderrMessage(msg, r.eng.LastStderr(ctx, a.Name, 10))
	target := d.LastRunning
	if !d.AutoRevert || target == "" || target == a.MetaVersion || !a.Deployed {
		r.finish(ctx, a, state.DeployFailed, msg)
		return
	}
	if _, _, err := state.Get[state.Release](ctx, r.store(), state.ReleaseKey(a.Name, target)); err != nil {
		r.finish(ctx, a, state.DeployFailed, msg+fmt.Sprintf("; not reverted: release %s is gone", target))
		return
	}
	failed := &state.Reverted{Generation: a.Generation, MetaVersion: a.MetaVersion, Message: msg}
	// Record the failure (the lease stays with this generation).
	if err := r.write(ctx, "deploy record", a.Name, func() error {
		cur, idx, err := r.eng.DeployIndex(ctx, a.Name)
		if err != nil {
			return err
		}
		if cur == nil || cur.Generation != a.Generation {
			return nil
		}
		cur.State, cur.Message, cur.Updated = state.DeployFailed, msg+"; reverting to "+target, time.Now().UTC()
		if _, err = state.Put(ctx, r.store(), state.DeployKey(a.Name), cur, idx); err != nil {
			return err
		}
		r.recordHistory(ctx, cur)
		return nil
	}); err != nil {
		return // stopping; the next leader's progress check fails it again
	}
	lease, _, err := state.Get[state.Lock](ctx, r.store(), state.LockKey(a.Name))
	if err != nil && !errors.Is(err, state.ErrNotFound) {
		return // retried at the next progress check
	}
	if err == nil && lease.Generation != a.Generation && time.Now().Before(lease.Expires) {
		return // another operation owns the app now
	}
	gen := a.Generation
	_, _, err = r.eng.CommitChangeWith(ctx, a.Name, "berth (auto_revert)", "auto-revert to "+target, func(x *state.App) error {
		if x.Generation != gen || !x.Deployed {
			return errRevertRaced
		}
		x.MetaVersion = target
		return nil
	}, func(nd *state.Deploy) { nd.Reverted = failed })
	if err != nil {
		if !errors.Is(err, errRevertRaced) {
			r.log.Warn("auto-revert failed", "app", a.Name, "to", target, "error", err)
			r.finish(ctx, a, state.DeployFailed, msg+"; the revert to "+target+" failed: "+err.Error())
		}
		return
	}
	r.log.Info("deploy failed; reverted", "app", a.Name, "from", a.MetaVersion, "to", target, "reason", msg)
	r.Kick(a.Name)
}

var errRevertRaced = errors.New("the app changed meanwhile")

// trackUnderway adds every app whose deploy record is pending or deploying
// to the apps progress follows (after a full pass).
func (r *Reconciler) trackUnderway(ctx context.Context) {
	pairs, _, err := r.store().List(ctx, state.DeploysPrefix, nil)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range pairs {
		var d state.Deploy
		if err := json.Unmarshal(p.Value, &d); err != nil || (d.State != state.DeployPending && d.State != state.DeployDeploying) {
			continue
		}
		r.inflight[p.Key[len(state.DeploysPrefix):]] = true
	}
}
