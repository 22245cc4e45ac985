package consul

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/berthpaas/berth/backends"
)

var _ backends.Elector = (*Store)(nil)

// Defaults of an election whose options leave them out.
const (
	DefaultLockTTL   = 10 * time.Second
	DefaultLockDelay = time.Second
)

// errSessionLost is returned by Elect when the session it made to take the
// lock was invalidated before the lock was taken.
var errSessionLost = errors.New("consul: the lock's session was invalidated")

// Elect takes the lock on key under the Store's prefix, the way
// github.com/hashicorp/consul/api.Lock does (compatible with `consul
// lock`): a session with a TTL and lock delay, and a KV acquire of the key
// with the lock flag; it waits with blocking queries on the key while
// another session holds it. Once held, the session is renewed every TTL/3
// and the key watched with consistent blocking queries: the lock is lost
// (Lost closes) when the key no longer names the session, when Consul says
// the session is gone, or when it could not be renewed for the TTL.
//
// Hand-over within the TTL. Consul invalidates a session only after
// twice its TTL without renewal, so a holder killed outright would keep
// the lock for up to 2 x TTL. The holder therefore writes a heartbeat
// next to the key (key + ".heartbeat": its session, a counter and its
// TTL) after every renewal, and gives the lock up itself (Lost) once it
// could not renew and write the heartbeat for one TTL. A contender that
// sees the heartbeat of the session holding the key make no progress for
// that TTL (measured on its own clock from when it saw the last beat,
// which is after the holder's last successful round began) destroys the
// holder's session: the key is freed with the session's lock delay, the
// holder has stopped by then, and the contender takes the key once the
// delay is over. A holder that never wrote a heartbeat (`consul lock`,
// api.Lock) is left to Consul's own session TTL.
func (s *Store) Elect(ctx context.Context, key string, value []byte, o backends.ElectOptions) (backends.Leadership, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, err
	}
	if o.TTL <= 0 {
		o.TTL = DefaultLockTTL
	}
	if o.LockDelay <= 0 {
		// 0 would be Consul's default of 15s: the least it takes is 1ms.
		o.LockDelay = time.Millisecond
	}
	name := o.Name
	if name == "" {
		name = "berth lock " + key
	}
	se := &api.SessionEntry{Name: name, TTL: o.TTL.String(), LockDelay: o.LockDelay, Behavior: api.SessionBehaviorRelease}
	id, _, err := s.client.Session().Create(se, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return nil, s.wrap(ctx, "session create", key, err)
	}
	hb, err := s.key(key + heartbeatSuffix)
	if err != nil {
		return nil, err
	}
	l := &leadership{s: s, key: k, beatKey: hb, userKey: key, session: id, o: o, lost: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(1)
	go l.renew()
	if err := l.acquire(ctx, value); err != nil {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.Release(rctx)
		return nil, err
	}
	// The first heartbeat before Elect returns: a holder killed at once
	// is handed over within the TTL too.
	if err := l.beat(ctx); err != nil {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = l.Release(rctx)
		return nil, err
	}
	l.wg.Add(1)
	go l.monitor()
	return l, nil
}

// leadership is one session and, once acquire returned, the lock it holds.
type leadership struct {
	s       *Store
	key     string // the Consul key
	beatKey string // the Consul key of the heartbeat
	userKey string
	session string
	o       backends.ElectOptions
	// held is set once the key was taken; from then on renew writes a
	// heartbeat after every renewal.
	held  atomic.Bool
	beats atomic.Uint64 // heartbeats written

	ctx    context.Context // ends at Release: stops renew and monitor
	cancel context.CancelFunc
	wg     sync.WaitGroup

	lostOnce sync.Once
	lost     chan struct{}

	relOnce sync.Once
	relErr  error
}

func (l *leadership) Lost() <-chan struct{} { return l.lost }

func (l *leadership) lose(why string) {
	l.lostOnce.Do(func() {
		if why != "" {
			l.s.logger.Warn("lock lost", "key", l.userKey, "reason", why)
		}
		close(l.lost)
	})
}

// retry is the pause before another look when the key was free but could
// not be taken (a lock delay in effect) or Consul failed.
func (l *leadership) retry() time.Duration {
	d := l.o.LockDelay / 2
	if d < 100*time.Millisecond {
		d = 100 * time.Millisecond
	}
	if d > time.Second {
		d = time.Second
	}
	return d
}

// heartbeatSuffix names the heartbeat key next to a lock's key.
const heartbeatSuffix = ".heartbeat"

// heartbeat is the value of a lock's heartbeat key: the holder's session,
// a counter it moves on with every renewal, and the session's TTL (how
// long contenders wait for the counter to move before they end the
// session).
type heartbeat struct {
	Session string `json:"session"`
	N       uint64 `json:"n"`
	TTL     string `json:"ttl"`
}

// beat writes the next heartbeat.
func (l *leadership) beat(ctx context.Context) error {
	b, _ := json.Marshal(heartbeat{Session: l.session, N: l.beats.Add(1), TTL: l.o.TTL.String()})
	if _, err := l.s.kv.Put(&api.KVPair{Key: l.beatKey, Value: b}, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return l.s.wrap(ctx, "lock heartbeat", l.userKey, err)
	}
	return nil
}

// stalled follows the heartbeat of the sessions holding a lock, for a
// contender: since when the last beat it saw has not moved.
type stalled struct {
	session string
	value   string
	since   time.Time
	ttl     time.Duration
}

// see records what the contender sees: the session holding the key and
// the heartbeat pair (nil: none). It returns how long the holder's
// heartbeat has not moved, and the holder's TTL; ok is false when the
// holder writes no heartbeat of its session (an api.Lock holder, or one
// that has only just taken the key): Consul's TTL applies to it.
func (st *stalled) see(session string, beat *api.KVPair, now time.Time) (still, ttl time.Duration, ok bool) {
	var hb heartbeat
	if beat == nil || json.Unmarshal(beat.Value, &hb) != nil || hb.Session != session {
		*st = stalled{}
		return 0, 0, false
	}
	d, err := time.ParseDuration(hb.TTL)
	if err != nil || d <= 0 {
		*st = stalled{}
		return 0, 0, false
	}
	if st.session != session || st.value != string(beat.Value) {
		*st = stalled{session: session, value: string(beat.Value), since: now, ttl: d}
	}
	return now.Sub(st.since), st.ttl, true
}

// acquire waits until the key is free and takes it for the session. While
// another session holds it, it follows that holder's heartbeat, and ends
// the holder's session when the heartbeat has not moved for the holder's
// TTL.
func (l *leadership) acquire(ctx context.Context, value []byte) error {
	kv := l.s.kv
	var waitIndex uint64
	var st stalled
	for {
		select {
		case <-l.lost:
			return errSessionLost
		default:
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// A blocking list of the key's prefix wakes on the key and on
		// its heartbeat; at most TTL/3 between looks, and a look when
		// a holder's heartbeat has been still for its TTL.
		wait := l.o.TTL / 3
		if st.session != "" {
			if rest := time.Until(st.since.Add(st.ttl)); rest < wait {
				wait = max(rest, 10*time.Millisecond)
			}
		}
		pairs, meta, err := kv.List(l.key, (&api.QueryOptions{WaitIndex: waitIndex, WaitTime: wait}).WithContext(ctx))
		if err != nil {
			return l.s.wrap(ctx, "lock read", l.userKey, err)
		}
		var pair, beat *api.KVPair
		for _, p := range pairs {
			switch p.Key {
			case l.key:
				pair = p
			case l.beatKey:
				beat = p
			}
		}
		if pair != nil && pair.Flags != api.LockFlagValue {
			return fmt.Errorf("consul: key %q is not a lock (flags %#x)", l.userKey, pair.Flags)
		}
		if pair != nil && pair.Session == l.session {
			l.held.Store(true)
			return nil
		}
		if pair != nil && pair.Session != "" {
			waitIndex = meta.LastIndex // held: wait for a change
			still, ttl, ok := st.see(pair.Session, beat, time.Now())
			if !ok || still < ttl {
				continue
			}
			// The holder has not renewed for its TTL: it has given
			// the lock up itself (or is dead). End its session, which
			// frees the key with the session's lock delay.
			l.s.logger.Warn("the lock's holder wrote no heartbeat for its TTL: ending its session", "key", l.userKey, "ttl", ttl, "still", still.Round(time.Millisecond))
			if _, err := l.s.client.Session().Destroy(pair.Session, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
				return l.s.wrap(ctx, "session destroy", l.userKey, err)
			}
			st, waitIndex = stalled{}, 0
			continue
		}
		st = stalled{}
		ok, _, err := kv.Acquire(&api.KVPair{Key: l.key, Value: value, Session: l.session, Flags: api.LockFlagValue}, (&api.WriteOptions{}).WithContext(ctx))
		if err != nil {
			return l.s.wrap(ctx, "lock acquire", l.userKey, err)
		}
		if ok {
			l.held.Store(true)
			return nil
		}
		// Free but refused: a lock delay is in effect, or another
		// session came first. Look again shortly.
		waitIndex = 0
		t := time.NewTimer(l.retry())
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// renew renews the session every TTL/3 until Release and, once the lock
// is held, writes the heartbeat after each renewal. A session Consul no
// longer knows is lost; so is one whose renewal and heartbeat did not both
// succeed for the TTL, counted from the start of the last round that did
// (contenders count from when they saw its heartbeat, later): the holder
// stops before a contender may end its session.
func (l *leadership) renew() {
	defer l.wg.Done()
	ttl := l.o.TTL
	last := time.Now()
	deadline := time.NewTimer(ttl)
	defer deadline.Stop()
	next := ttl / 3
	for {
		t := time.NewTimer(next)
		select {
		case <-l.ctx.Done():
			t.Stop()
			return
		case <-deadline.C:
			t.Stop()
			l.lose(fmt.Sprintf("the session could not be renewed for %v", ttl))
			return
		case <-t.C:
		}
		start := time.Now()
		cctx, cancel := context.WithDeadline(l.ctx, last.Add(ttl))
		entry, _, err := l.s.client.Session().Renew(l.session, (&api.WriteOptions{}).WithContext(cctx))
		if err == nil && entry != nil && l.held.Load() {
			err = l.beat(cctx)
		}
		cancel()
		if l.ctx.Err() != nil {
			return
		}
		switch {
		case err == nil && entry == nil:
			l.lose("consul no longer knows the session (expired or destroyed)")
			return
		case err != nil:
			if time.Since(last) >= ttl {
				l.lose(fmt.Sprintf("the session could not be renewed for %v: %v", ttl, err))
				return
			}
			next = l.retry()
		default:
			last, next = start, ttl/3
			deadline.Reset(time.Until(last.Add(ttl))) // Go 1.23 timers: no stale tick after Reset
		}
	}
}

// monitor watches the key with consistent blocking queries until Release:
// the lock is lost when the key no longer names the session, or when
// Consul cannot be read for the TTL.
func (l *leadership) monitor() {
	defer l.wg.Done()
	ttl := l.o.TTL
	last := time.Now()
	var index uint64
	for {
		cctx, cancel := context.WithTimeout(l.ctx, ttl)
		pair, meta, err := l.s.kv.Get(l.key, (&api.QueryOptions{RequireConsistent: true, WaitIndex: index, WaitTime: ttl / 2}).WithContext(cctx))
		cancel()
		if l.ctx.Err() != nil {
			return
		}
		if err != nil {
			if time.Since(last) >= ttl {
				l.lose(fmt.Sprintf("the lock could not be read for %v: %v", ttl, err))
				return
			}
			index = 0
			t := time.NewTimer(l.retry())
			select {
			case <-l.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		last = time.Now()
		if pair == nil || pair.Session != l.session {
			l.lose("the lock's key no longer names this session")
			return
		}
		index = meta.LastIndex
	}
}

// Release stops the renewal and the watch, releases the key (so the next
// holder need not wait out a lock delay) and destroys the session.
func (l *leadership) Release(ctx context.Context) error {
	l.relOnce.Do(func() {
		l.cancel()
		l.wg.Wait()
		var errs []error
		w := (&api.WriteOptions{}).WithContext(ctx)
		if l.held.Load() {
			// The heartbeat first, while the key is still this
			// session's: the next holder writes its own.
			_, _ = l.s.kv.Delete(l.beatKey, w)
			if _, _, err := l.s.kv.Release(&api.KVPair{Key: l.key, Session: l.session, Flags: api.LockFlagValue}, w); err != nil {
				errs = append(errs, l.s.wrap(ctx, "lock release", l.userKey, err))
			}
		}
		if _, err := l.s.client.Session().Destroy(l.session, w); err != nil {
			errs = append(errs, l.s.wrap(ctx, "session destroy", l.userKey, err))
		}
		l.lose("")
		l.relErr = errors.Join(errs...)
	})
	return l.relErr
}
