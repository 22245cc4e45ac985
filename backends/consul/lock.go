package consul

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
// another session holds it. Once held, the session is renewed every TTL/2
// and the key watched with consistent blocking queries: the lock is lost
// (Lost closes) when the key no longer names the session, when Consul says
// the session is gone, or when it could not be renewed for the TTL (before
// Consul, which waits twice the TTL, lets anyone else take it).
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
	l := &leadership{s: s, key: k, userKey: key, session: id, o: o, lost: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(1)
	go l.renew()
	if err := l.acquire(ctx, value); err != nil {
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
	userKey string
	session string
	o       backends.ElectOptions
	held    bool

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

// acquire waits until the key is free and takes it for the session.
func (l *leadership) acquire(ctx context.Context, value []byte) error {
	kv := l.s.kv
	var waitIndex uint64
	wait := l.o.TTL / 2
	for {
		select {
		case <-l.lost:
			return errSessionLost
		default:
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		pair, meta, err := kv.Get(l.key, (&api.QueryOptions{WaitIndex: waitIndex, WaitTime: wait}).WithContext(ctx))
		if err != nil {
			return l.s.wrap(ctx, "lock read", l.userKey, err)
		}
		if pair != nil && pair.Flags != api.LockFlagValue {
			return fmt.Errorf("consul: key %q is not a lock (flags %#x)", l.userKey, pair.Flags)
		}
		if pair != nil && pair.Session == l.session {
			l.held = true
			return nil
		}
		if pair != nil && pair.Session != "" {
			waitIndex = meta.LastIndex // held: wait for a change
			continue
		}
		ok, _, err := kv.Acquire(&api.KVPair{Key: l.key, Value: value, Session: l.session, Flags: api.LockFlagValue}, (&api.WriteOptions{}).WithContext(ctx))
		if err != nil {
			return l.s.wrap(ctx, "lock acquire", l.userKey, err)
		}
		if ok {
			l.held = true
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

// renew renews the session every TTL/2 until Release; a session Consul
// no longer knows, or one not renewed for the TTL, is lost.
func (l *leadership) renew() {
	defer l.wg.Done()
	ttl := l.o.TTL
	last := time.Now()
	next := ttl / 2
	for {
		t := time.NewTimer(next)
		select {
		case <-l.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		cctx, cancel := context.WithTimeout(l.ctx, ttl/3)
		entry, _, err := l.s.client.Session().Renew(l.session, (&api.WriteOptions{}).WithContext(cctx))
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
			last, next = time.Now(), ttl/2
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
		if l.held {
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
