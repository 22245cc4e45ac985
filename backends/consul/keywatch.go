package consul

import (
	"context"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/hashicorp/consul/api"
)

// Consul KV has no "list from this key": a page of a long prefix
// (ListPage) needs the prefix's key names in order. Listing them at every
// page costs what the prefix holds (10,000 names for one page of 100), so
// the Store keeps the sorted names of each prefix it pages, fed by a
// blocking query (?keys&index=) that wakes on every change under it.
//
// A page waits until the names include every write this Store made under
// the prefix (the write's commit index); writes by other processes show
// within one round of the watch. The values of a page are always read from
// Consul, so a key deleted meanwhile is left out of the page (the names after
// it fill its place: a page is short only at the end). When the
// watch is failing or behind for longer than keyWatchWait, a page lists the
// names directly instead.

const (
	// keyWatchWait bounds how long a page waits for the watch to catch up
	// before listing the names itself.
	keyWatchWait = 2 * time.Second
	// maxKeyWatches bounds the prefixes watched; pages of further prefixes
	// list their names directly.
	maxKeyWatches = 32
)

// keyName is a key as the Store knows it and as Consul stores it.
type keyName struct{ user, consul string }

// keyWatch is the sorted key names under one prefix.
type keyWatch struct {
	prefix string

	mu      sync.Mutex
	names   []keyName // sorted by user key; replaced, never modified
	index   uint64    // the Consul index of names; 0 before the first answer
	need    uint64    // the commit index of this Store's latest write under prefix
	failing bool      // the latest query failed
	changed chan struct{}
}

// sortedNames maps the Consul key names under prefix to sorted keyNames.
func (s *Store) sortedNames(prefix string, names []string) []keyName {
	keys := make([]keyName, 0, len(names))
	for _, n := range names {
		k, ok := s.userKey(n)
		if !ok || !strings.HasPrefix(k, prefix) {
			continue
		}
		keys = append(keys, keyName{k, n})
	}
	// Escaping can change the order ("%25" sorts before "-"): sort by the real key.
	if !sort.SliceIsSorted(keys, func(i, j int) bool { return keys[i].user < keys[j].user }) {
		sort.Slice(keys, func(i, j int) bool { return keys[i].user < keys[j].user })
	}
	return keys
}

// listNames lists the key names under prefix directly.
func (s *Store) listNames(ctx context.Context, prefix string) ([]keyName, uint64, error) {
	names, meta, err := s.kv.Keys(s.prefix+escapePrefix(prefix), "", (&api.QueryOptions{RequireConsistent: s.consistent}).WithContext(ctx))
	if err != nil {
		return nil, 0, err
	}
	return s.sortedNames(prefix, names), meta.LastIndex, nil
}

// pageNames returns the sorted key names under prefix: the watch's when it
// is up to date with this Store's writes, else listed directly.
func (s *Store) pageNames(ctx context.Context, prefix string) ([]keyName, uint64, error) {
	if w := s.keyWatch(prefix); w != nil {
		if names, idx, ok := w.await(ctx, keyWatchWait); ok {
			return names, idx, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
	}
	return s.listNames(ctx, prefix)
}

// keyWatch returns the watch of prefix, starting it if needed (nil when
// the Store is closed or watches too many prefixes already).
func (s *Store) keyWatch(prefix string) *keyWatch {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.wctx.Err() != nil {
		return nil
	}
	if w := s.watches[prefix]; w != nil {
		return w
	}
	if len(s.watches) >= maxKeyWatches {
		return nil
	}
	if s.watches == nil {
		s.watches = map[string]*keyWatch{}
	}
	w := &keyWatch{prefix: prefix, changed: make(chan struct{})}
	s.watches[prefix] = w
	s.wwg.Add(1)
	go s.runKeyWatch(w)
	return w
}

// noteWrites raises the index the watches of the written keys must reach
// before a page uses them.
func (s *Store) noteWrites(ops []backends.TxnOp, index uint64) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for _, w := range s.watches {
		for _, op := range ops {
			if (op.Verb == backends.TxnSet || op.Verb == backends.TxnCAS) && strings.HasPrefix(op.Key, w.prefix) {
				w.mu.Lock()
				if index > w.need {
					w.need = index
				}
				w.mu.Unlock()
				break
			}
		}
	}
}

// runKeyWatch follows the key names under w.prefix until the Store closes.
func (s *Store) runKeyWatch(w *keyWatch) {
	defer s.wwg.Done()
	cp := s.prefix + escapePrefix(w.prefix)
	var idx uint64
	backoff := 100 * time.Millisecond
	for {
		names, meta, err := s.kv.Keys(cp, "", (&api.QueryOptions{WaitIndex: idx, WaitTime: DefaultWaitTime}).WithContext(s.wctx))
		if s.wctx.Err() != nil {
			return
		}
		if err != nil {
			w.update(nil, 0, true)
			idx = 0
			select {
			case <-s.wctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if meta.LastIndex == idx && idx != 0 {
			continue // the wait ran out: nothing changed
		}
		// An index that goes backwards (a restored or restarted agent)
		// starts over, as Consul's documentation advises.
		next := meta.LastIndex
		if next < idx || next == 0 {
			next = 0
		}
		w.update(s.sortedNames(w.prefix, names), meta.LastIndex, false)
		idx = next
	}
}

func (w *keyWatch) update(names []keyName, index uint64, failing bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failing = failing
	if !failing {
		w.names, w.index = names, index
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// await returns the names once they include this Store's writes under the
// prefix, or ok false if that takes longer than wait or the watch fails.
func (w *keyWatch) await(ctx context.Context, wait time.Duration) (names []keyName, index uint64, ok bool) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		w.mu.Lock()
		if !w.failing && w.index > 0 && w.index >= w.need {
			names, index = w.names, w.index
			w.mu.Unlock()
			return names, index, true
		}
		failing, changed := w.failing, w.changed
		w.mu.Unlock()
		if failing {
			return nil, 0, false
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil, 0, false
		case <-ctx.Done():
			return nil, 0, false
		}
	}
}

// stopKeyWatches ends the watches and waits for them.
func (s *Store) stopKeyWatches() {
	s.wmu.Lock()
	s.wcancel()
	s.wmu.Unlock()
	s.wwg.Wait()
}
