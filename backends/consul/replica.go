package consul

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	iradix "github.com/hashicorp/go-immutable-radix"

	"github.com/berthpaas/berth/backends"
)

// globalInflight is how many of the (O(1)) global index requests may be in
// flight at once: with two, a read waits about one round trip for a request
// sent after it began, instead of up to two behind a single one.
var globalInflight = 1

// Replica is a Store whose reads are served from an in-memory replica of the
// Store's Consul prefix, and whose writes go to Consul unchanged
// (check-and-set transactions, as Store's).
//
// The replica is an immutable radix tree (github.com/hashicorp/go-immutable-radix,
// the tree go-memdb and so Nomad's and Consul's state stores are built on) of
// the prefix's keys, fed by one blocking recursive list of the prefix: each
// answer is diffed into a new tree by ModifyIndex, and the Consul index it
// answered at is recorded as the replica's applied index. go-memdb's tables
// and secondary indexes would add nothing here: the Store has one index, by
// key, and a radix tree gives ordered prefix walks and lock-free snapshots.
//
// Reads stay linearizable across servers (the ReadIndex scheme of etcd and
// Raft): a read first learns Consul's current KV index G with one
// consistent request (O(1) in Consul: a read of a key no Store key escapes
// to), shared by every read that arrived before it was sent (one in flight;
// the reads arriving meanwhile share the next one). The replica keeps
// "complete", a KV index up to which it is known to hold every change under
// the prefix. When complete >= G, the read is answered from memory.
// Otherwise something was written somewhere in Consul since: the read goes
// to Consul directly (the plain Store's read), and in the background one
// consistent list of the prefix's keys up to the first '/' (a few keys, but
// O(keys under the prefix) in Consul) learns the prefix's index P as the
// watch reports it; once the watch has applied P, complete moves up to the
// highest G read before that list was sent. (With waitWatch, used by tests,
// the read waits for that instead of reading Consul.) So reads are served
// from memory while nothing is written, and cost one shared O(1) request
// plus the plain read while writes come in.
//
// The reads of one API request share the index in a backends.ReadScope: the
// first read learns G, the others reuse it; a write through the Replica in
// the scope makes the next read learn G anew, so a request reads its writes.
type Replica struct {
	*Store

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	tree     *iradix.Tree // key -> *backends.KVPair (never handed out: copied)
	tombs    *iradix.Tree // deleted key -> uint64 index its deletion was seen at
	applied  uint64       // Consul index of the prefix the tree reflects
	epoch    uint64       // bumped when Consul's index went backwards and the tree was rebuilt
	changed  chan struct{}
	watchErr error // the watch's last failure, nil once it succeeds again

	// complete is a Consul KV index (global, all prefixes) at which the
	// tree is known to hold every change under the prefix; maxGlobal is
	// the highest global index read so far.
	complete, maxGlobal uint64

	pending []probe // confirmations waiting for the watch to apply their index

	globalBatch, prefixBatch batch

	// waitWatch makes a read whose index the replica may not hold yet wait
	// for its watch; else (the default) the read goes to Consul directly
	// and the prefix's index is confirmed in the background.
	waitWatch bool

	cmu                      sync.Mutex
	confirming, confirmAgain bool

	onDirect func() // tests: called when a read goes to Consul directly
}

// batch is one kind of index request shared by the reads waiting for it.
type batch struct {
	name string
	run  func(context.Context, *probe) error
	hook func() // tests: called as each request is sent

	max int // requests in flight at most (0 is 1)

	mu       sync.Mutex
	inflight int
	next     *probe // the request the callers arriving now share, not yet sent
}

type probe struct {
	done   chan struct{}
	index  uint64
	covers uint64 // prefixIndex: the global index it confirms
	epoch  uint64
	err    error
}

var _ backends.Store = (*Replica)(nil)

// NewReplica starts the replica of s's prefix (its watch runs until Close).
// Until its first list has been applied (and whenever it may lag), reads go
// to Consul directly.
func NewReplica(s *Store) *Replica {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Replica{Store: s, ctx: ctx, cancel: cancel, tree: iradix.New(), tombs: iradix.New(), changed: make(chan struct{})}
	r.globalBatch.name, r.globalBatch.run, r.globalBatch.max = "read-index", r.globalIndex, globalInflight
	r.prefixBatch.name, r.prefixBatch.run = "read-index", r.prefixIndex
	r.wg.Add(1)
	go r.watch()
	return r
}

// Close stops the watch, waits for it and for probes in flight, and closes the Store.
func (r *Replica) Close() error {
	r.cancel()
	r.wg.Wait()
	return r.Store.Close()
}

// Sync waits until the replica holds everything committed in Consul before
// the call began (or the context ends): the reads that follow are served
// from memory until something is written.
func (r *Replica) Sync(ctx context.Context) error {
	_, _, _, _, err := r.sync(ctx, "sync", "", true)
	return err
}

// Applied is the Consul index the replica has applied (0 before the first list).
func (r *Replica) Applied() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied
}

// watch keeps the tree up to date with blocking lists of the prefix.
func (r *Replica) watch() {
	defer r.wg.Done()
	backoff := 50 * time.Millisecond
	for r.ctx.Err() == nil {
		r.mu.Lock()
		idx := r.applied
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(r.ctx, DefaultWaitTime+DefaultWaitTime/16+r.callTimeout())
		opts := (&api.QueryOptions{WaitIndex: idx, WaitTime: DefaultWaitTime}).WithContext(ctx)
		pairs, meta, err := r.kv.List(r.prefix, opts)
		cancel()
		if err != nil {
			if r.ctx.Err() != nil {
				return
			}
			r.mu.Lock()
			r.watchErr = err
			r.mu.Unlock()
			r.logger.Warn("watching the store prefix failed; retrying", "in", backoff, "error", err)
			select {
			case <-r.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		r.apply(pairs, meta.LastIndex)
	}
}

// apply diffs one recursive list of the prefix, answered at index, into the
// tree. Only the watch changes the tree, so the diff is made outside the
// lock, on the immutable tree it read, and swapped in at the end.
func (r *Replica) apply(pairs api.KVPairs, index uint64) {
	r.mu.Lock()
	r.watchErr = nil
	tree, tombTree, applied := r.tree, r.tombs, r.applied
	r.mu.Unlock()
	if index == applied {
		return // the wait ended with nothing new
	}
	reset := index < applied
	if reset {
		// Consul's index went backwards (a snapshot restore, tombstones
		// reaped, a new cluster): rebuild from this list alone.
		r.logger.Info("consul's index of the store prefix went backwards; rebuilding the replica", "from", applied, "to", index)
		tree, tombTree = iradix.New(), iradix.New()
	}
	txn := tree.Txn()
	tombs := tombTree.Txn()
	seen := make(map[string]struct{}, len(pairs))
	for _, p := range pairs {
		bp, ok := r.pair(p)
		if !ok {
			continue
		}
		k := []byte(bp.Key)
		seen[bp.Key] = struct{}{}
		if old, ok := txn.Get(k); ok && old.(*backends.KVPair).ModifyIndex == bp.ModifyIndex {
			continue
		}
		txn.Insert(k, bp)
		tombs.Delete(k)
	}
	if tree.Len() > 0 {
		// Keys gone from the list were deleted at or before index.
		tree.Root().Walk(func(k []byte, _ interface{}) bool {
			if _, ok := seen[string(k)]; !ok {
				txn.Delete(k)
				tombs.Insert(k, index)
			}
			return false
		})
	}
	newTree, newTombs := txn.Commit(), tombs.Commit()
	r.mu.Lock()
	defer r.mu.Unlock()
	if reset {
		r.epoch++
		r.complete, r.pending = 0, nil
	}
	r.tree, r.tombs, r.applied = newTree, newTombs, index
	for len(r.pending) > 0 && r.pending[0].index <= index {
		r.complete = max(r.complete, r.pending[0].covers)
		r.pending = r.pending[1:]
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// shared runs one request of batch b whose answer every caller shares: it
// returns the answer of a request sent after the call began. At most b.max
// requests of a batch are in flight; the callers arriving meanwhile share
// the next one, sent as one in flight returns.
func (r *Replica) shared(ctx context.Context, b *batch) (*probe, error) {
	b.mu.Lock()
	p := b.next
	if p == nil {
		p = &probe{done: make(chan struct{})}
		if b.inflight < max(b.max, 1) {
			b.inflight++
			r.wg.Add(1)
			go r.send(b, p)
		} else {
			b.next = p
		}
	}
	b.mu.Unlock()
	select {
	case <-p.done:
		return p, p.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// send runs request p of batch b, then the one queued behind it, if any.
func (r *Replica) send(b *batch, p *probe) {
	defer r.wg.Done()
	for p != nil {
		if b.hook != nil {
			b.hook()
		}
		ctx, cancel := backends.CallContext(r.ctx, r.callTimeout())
		if err := b.run(ctx, p); err != nil {
			p.err = r.wrap(ctx, b.name, "", err)
		}
		cancel()
		close(p.done)
		b.mu.Lock()
		if p, b.next = b.next, nil; p == nil {
			b.inflight--
		}
		b.mu.Unlock()
	}
}

// globalIndex is the index request every read starts with: a consistent
// read of a key no Store key escapes to, whose X-Consul-Index is Consul's
// KV index (the highest index of any KV write or delete, on any prefix) at
// a moment after the read began. It costs Consul O(1).
func (r *Replica) globalIndex(ctx context.Context, p *probe) error {
	r.mu.Lock()
	p.epoch = r.epoch
	r.mu.Unlock()
	_, meta, err := r.kv.Get(r.prefix+"%read-index", (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return err
	}
	p.index = meta.LastIndex
	r.mu.Lock()
	if p.index < r.maxGlobal {
		// Consul's KV index went backwards (a snapshot restore, a new
		// cluster): what the replica was known to hold says nothing now;
		// the watch rebuilds it.
		r.complete, r.maxGlobal, r.pending = 0, 0, nil
	}
	r.maxGlobal = max(r.maxGlobal, p.index)
	r.mu.Unlock()
	return nil
}

// prefixIndex is the confirmation a read needs when Consul's KV index has
// moved past the index the replica is known complete at: a consistent list
// of the prefix's keys up to the first '/' (a few keys), whose
// X-Consul-Index is the prefix's index as the watch's recursive list reports
// it. It costs Consul O(keys under the prefix). Sent after every global
// index up to p.covers was read, it tells that once the replica has applied
// p.index it holds every change committed up to p.covers.
func (r *Replica) prefixIndex(ctx context.Context, p *probe) error {
	r.mu.Lock()
	p.epoch, p.covers = r.epoch, r.maxGlobal
	r.mu.Unlock()
	_, meta, err := r.kv.Keys(r.prefix, "/", (&api.QueryOptions{RequireConsistent: true}).WithContext(ctx))
	if err != nil {
		return err
	}
	p.index = meta.LastIndex
	return nil
}

// sync returns the tree when it holds everything committed before the call
// began (or before the call's ReadScope began); ok is false when it may not
// and the replica does not wait for its watch: the caller then reads from
// Consul directly.
func (r *Replica) sync(ctx context.Context, op, key string, wait bool) (tree, tombs *iradix.Tree, index uint64, ok bool, err error) {
	ctx, cancel := r.call(ctx, nil)
	defer cancel()
	var g uint64
	scope := backends.ReadScopeOf(ctx)
	if scope != nil {
		var gen uint64
		if g, gen = scope.Load(); g == 0 {
			defer func() {
				if err == nil {
					scope.Set(gen, g)
				}
			}()
		}
	}
	if g == 0 {
		p, err := r.shared(ctx, &r.globalBatch)
		if err != nil {
			return nil, nil, 0, false, r.syncErr(ctx, op, key, err)
		}
		g = p.index
	}
	r.mu.Lock()
	tree, tombs, index, ok = r.tree, r.tombs, r.applied, r.complete >= g && r.applied > 0
	r.mu.Unlock()
	if ok {
		return tree, tombs, index, true, nil
	}
	if !wait && !r.waitWatch {
		r.confirmLater()
		return nil, nil, 0, false, nil
	}
	for {
		c, err := r.shared(ctx, &r.prefixBatch)
		if err != nil {
			return nil, nil, 0, false, r.syncErr(ctx, op, key, err)
		}
		for {
			r.mu.Lock()
			tree, tombs, applied, ch, cur := r.tree, r.tombs, r.applied, r.changed, r.epoch
			werr := r.watchErr
			if cur == c.epoch && applied >= c.index && applied > 0 {
				r.complete = max(r.complete, c.covers)
			}
			r.mu.Unlock()
			if cur != c.epoch {
				break // rebuilt since the index was read: read it again
			}
			if applied >= c.index && applied > 0 {
				return tree, tombs, applied, true, nil
			}
			select {
			case <-ch:
			case <-ctx.Done():
				if werr != nil {
					return nil, nil, 0, false, r.syncErr(ctx, op, key, werr)
				}
				return nil, nil, 0, false, r.syncErr(ctx, op, key, fmt.Errorf("the replica has applied index %d, not yet %d", applied, c.index))
			}
		}
	}
}

// confirmLater has the prefix's index confirmed in the background (one
// request at a time, and one more if asked meanwhile): once the watch has
// applied it, the reads of indexes it covers are served from memory again.
func (r *Replica) confirmLater() {
	r.cmu.Lock()
	defer r.cmu.Unlock()
	if r.confirming {
		r.confirmAgain = true
		return
	}
	r.confirming = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			ctx, cancel := backends.CallContext(r.ctx, r.callTimeout())
			p := &probe{}
			if r.prefixBatch.hook != nil {
				r.prefixBatch.hook()
			}
			err := r.prefixIndex(ctx, p)
			cancel()
			if err == nil {
				r.mu.Lock()
				if p.epoch == r.epoch {
					if r.applied >= p.index {
						r.complete = max(r.complete, p.covers)
					} else {
						r.pending = append(r.pending, *p)
					}
				}
				r.mu.Unlock()
			}
			r.cmu.Lock()
			if err != nil || !r.confirmAgain || r.ctx.Err() != nil {
				r.confirming, r.confirmAgain = false, false
				r.cmu.Unlock()
				return
			}
			r.confirmAgain = false
			r.cmu.Unlock()
		}
	}()
}

func (r *Replica) syncErr(ctx context.Context, op, key string, err error) error {
	var ue *backends.UnavailableError
	if errors.As(err, &ue) {
		return err
	}
	return r.wrap(ctx, op, key, err)
}

// wait blocks, for a read with a WaitIndex, until the replica changes or
// the wait ends; false when it ended.
func (r *Replica) wait(ctx context.Context, deadline time.Time) (*iradix.Tree, *iradix.Tree, uint64, bool) {
	r.mu.Lock()
	ch := r.changed
	r.mu.Unlock()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
		return nil, nil, 0, false
	case <-ctx.Done():
		return nil, nil, 0, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tree, r.tombs, r.applied, true
}

func waitOf(q *backends.QueryOptions) time.Duration {
	if q.WaitTime <= 0 {
		return DefaultWaitTime
	}
	return q.WaitTime
}

// Get reads one key from the replica. LastIndex is the key's ModifyIndex,
// or for an absent key its deletion's index, else the prefix's index.
func (r *Replica) Get(ctx context.Context, key string, q *backends.QueryOptions) (*backends.KVPair, *backends.QueryMeta, error) {
	if key == "" {
		return nil, nil, backends.ErrInvalidKey
	}
	tree, tombs, applied, ok, err := r.sync(ctx, "get", key, false)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		if r.onDirect != nil {
			r.onDirect()
		}
		return r.Store.Get(ctx, key, q)
	}
	get := func(tree, tombs *iradix.Tree, applied uint64) (*backends.KVPair, uint64) {
		if v, ok := tree.Get([]byte(key)); ok {
			p := v.(*backends.KVPair)
			return &backends.KVPair{Key: p.Key, Value: append([]byte(nil), p.Value...), CreateIndex: p.CreateIndex, ModifyIndex: p.ModifyIndex}, p.ModifyIndex
		}
		return nil, applied
	}
	p, idx := get(tree, tombs, applied)
	if q != nil && q.WaitIndex > 0 {
		deadline := time.Now().Add(waitOf(q))
		for idx == q.WaitIndex {
			var ok bool
			if tree, tombs, applied, ok = r.wait(ctx, deadline); !ok {
				break
			}
			p, idx = get(tree, tombs, applied)
		}
		if err := ctx.Err(); err != nil && idx == q.WaitIndex {
			return nil, nil, fmt.Errorf("consul get %q: %w", key, err)
		}
	}
	return p, &backends.QueryMeta{LastIndex: idx}, nil
}

// List reads every key under prefix from the replica, sorted by key.
// LastIndex is the highest ModifyIndex or deletion index under prefix, else
// the prefix's index.
func (r *Replica) List(ctx context.Context, prefix string, q *backends.QueryOptions) ([]*backends.KVPair, *backends.QueryMeta, error) {
	tree, tombs, applied, ok, err := r.sync(ctx, "list", prefix, false)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		if r.onDirect != nil {
			r.onDirect()
		}
		return r.Store.List(ctx, prefix, q)
	}
	list := func(tree, tombs *iradix.Tree, applied uint64) ([]*backends.KVPair, uint64) {
		var out []*backends.KVPair
		var idx uint64
		tree.Root().WalkPrefix([]byte(prefix), func(_ []byte, v interface{}) bool {
			p := v.(*backends.KVPair)
			out = append(out, &backends.KVPair{Key: p.Key, Value: append([]byte(nil), p.Value...), CreateIndex: p.CreateIndex, ModifyIndex: p.ModifyIndex})
			idx = max(idx, p.ModifyIndex)
			return false
		})
		if prefix == "" {
			return out, applied
		}
		tombs.Root().WalkPrefix([]byte(prefix), func(_ []byte, v interface{}) bool {
			idx = max(idx, v.(uint64))
			return false
		})
		if idx == 0 {
			idx = applied
		}
		return out, idx
	}
	out, idx := list(tree, tombs, applied)
	if q != nil && q.WaitIndex > 0 {
		deadline := time.Now().Add(waitOf(q))
		for idx == q.WaitIndex {
			var ok bool
			if tree, tombs, applied, ok = r.wait(ctx, deadline); !ok {
				break
			}
			out, idx = list(tree, tombs, applied)
		}
		if err := ctx.Err(); err != nil && idx == q.WaitIndex {
			return nil, nil, fmt.Errorf("consul list %q: %w", prefix, err)
		}
	}
	if out == nil {
		out = []*backends.KVPair{}
	}
	return out, &backends.QueryMeta{LastIndex: idx}, nil
}

// The writes go to Consul as the Store's; each resets the operation's
// ReadScope, so that the operation's next read sees the write.

// Put writes unconditionally.
func (r *Replica) Put(ctx context.Context, p *backends.KVPair) (*backends.WriteMeta, error) {
	defer resetScope(ctx)
	return r.Store.Put(ctx, p)
}

// CAS writes p.Value if the key's ModifyIndex is p.ModifyIndex (0 = absent).
func (r *Replica) CAS(ctx context.Context, p *backends.KVPair) (bool, *backends.WriteMeta, error) {
	defer resetScope(ctx)
	return r.Store.CAS(ctx, p)
}

// Delete removes a key; an absent key is fine.
func (r *Replica) Delete(ctx context.Context, key string) (*backends.WriteMeta, error) {
	defer resetScope(ctx)
	return r.Store.Delete(ctx, key)
}

// DeleteCAS removes a key if its ModifyIndex is index.
func (r *Replica) DeleteCAS(ctx context.Context, key string, index uint64) (bool, *backends.WriteMeta, error) {
	defer resetScope(ctx)
	return r.Store.DeleteCAS(ctx, key, index)
}

// DeleteTree removes every key under prefix.
func (r *Replica) DeleteTree(ctx context.Context, prefix string) (*backends.WriteMeta, error) {
	defer resetScope(ctx)
	return r.Store.DeleteTree(ctx, prefix)
}

// Txn applies ops atomically with a Consul KV transaction.
func (r *Replica) Txn(ctx context.Context, ops []backends.TxnOp) (*backends.WriteMeta, error) {
	defer resetScope(ctx)
	return r.Store.Txn(ctx, ops)
}

func resetScope(ctx context.Context) {
	if s := backends.ReadScopeOf(ctx); s != nil {
		s.Reset()
	}
}

// ListPage reads one page of the keys under prefix after the key after
// from the replica (a seek in the radix tree: a page costs what it holds);
// see backends.Store. LastIndex is the replica's applied index of the whole
// Store prefix, at least the index of any change under prefix.
func (r *Replica) ListPage(ctx context.Context, prefix, after string, limit int) ([]*backends.KVPair, *backends.QueryMeta, error) {
	tree, _, applied, ok, err := r.sync(ctx, "list", prefix, false)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		if r.onDirect != nil {
			r.onDirect()
		}
		return r.Store.ListPage(ctx, prefix, after, limit)
	}
	start := prefix
	if after > start {
		start = after
	}
	it := tree.Root().Iterator()
	it.SeekLowerBound([]byte(start))
	out := []*backends.KVPair{}
	for k, v, ok := it.Next(); ok; k, v, ok = it.Next() {
		if !strings.HasPrefix(string(k), prefix) {
			break
		}
		if after != "" && string(k) <= after {
			continue
		}
		p := v.(*backends.KVPair)
		out = append(out, &backends.KVPair{Key: p.Key, Value: append([]byte(nil), p.Value...), CreateIndex: p.CreateIndex, ModifyIndex: p.ModifyIndex})
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, &backends.QueryMeta{LastIndex: applied}, nil
}
