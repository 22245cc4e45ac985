package sdk

import (
	"context"
	"sort"
	"strings"
	"sync"
)

// Store keeps NewBroker's records: which instances and bindings exist, with
// their parameters and credentials (so that a repeated Bind returns the same
// ones). Keep it somewhere that survives a plugin restart, ideally the
// backing server itself: plugins/sdk/mysqlstore, plugins/sdk/redisstore and
// plugins/sdk/mongostore keep it on a MySQL/MariaDB, Redis or MongoDB server.
// MemoryStore is for examples and tests.
//
// Keys are short ASCII strings ("instance/<id>", "binding/<id>/<binding>").
// Get of a missing key returns ok false and no error; Delete of a missing
// key is not an error.
type Store interface {
	Get(ctx context.Context, key string) (value []byte, ok bool, err error)
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
	// List returns the keys starting with prefix, in ascending order.
	List(ctx context.Context, prefix string) ([]string, error)
}

// Locker serialises work on one instance among every broker (every plugin
// process) that shares it. NewBroker always serialises the calls on one
// instance within its process; when its Store is also a Locker, each call
// holds that lock too, so several processes sharing one server do not race.
// All three server stores of the SDK are Lockers.
type Locker interface {
	// Lock blocks until it holds the lock called name, or ctx ends.
	// The caller must call unlock exactly once.
	Lock(ctx context.Context, name string) (unlock func(), err error)
}

// MemoryStore returns a Store in memory: its records die with the process.
// It is also a Locker, so brokers sharing one MemoryStore behave like
// processes sharing one server.
func MemoryStore() Store { return &memStore{m: map[string][]byte{}} }

type memStore struct {
	mu    sync.Mutex
	m     map[string][]byte
	locks KeyedMutex
}

func (s *memStore) Get(_ context.Context, k string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return append([]byte(nil), v...), ok, nil
}

func (s *memStore) Put(_ context.Context, k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = append([]byte(nil), v...)
	return nil
}

func (s *memStore) Delete(_ context.Context, k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}

func (s *memStore) List(_ context.Context, prefix string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.m {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (s *memStore) Lock(ctx context.Context, name string) (func(), error) {
	return s.locks.Lock(ctx, name)
}

// KeyedMutex is a set of mutexes by name, within one process; waiting for
// one ends with the context. The zero value is ready to use; a name's entry
// lives only while someone holds or waits for it.
type KeyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	held chan struct{} // one token: held while full
	refs int
}

// Lock implements Locker.
func (k *KeyedMutex) Lock(ctx context.Context, name string) (func(), error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[name]
	if e == nil {
		e = &keyedEntry{held: make(chan struct{}, 1)}
		k.m[name] = e
	}
	e.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.m, name)
		}
		k.mu.Unlock()
	}
	select {
	case e.held <- struct{}{}:
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-e.held
			release()
		})
	}, nil
}
