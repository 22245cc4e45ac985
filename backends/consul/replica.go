package consul

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	iradix "github.com/hashicorp/go-immutable-radix"

	"github.com/berthpaas/berth/backends"
)

// globalInflight is how many of the (O(1)) global index requests may be in
// flight at once: with two, a read waits about one round trip for a request
// sent after it began, instead of up to two behind a single one.
var globalInflight = 1

const (
	// maxShards bounds the top-level directories the replica follows;
	// reads under further ones go to Consul directly.
	maxShards = 64
	// defaultMaxTombs bounds the deletions a shard remembers (see trimTombs).
	defaultMaxTombs = 4096
	// pageWait bounds how long a page waits for its directory's watch
	// before it reads Consul directly (see ListPage).
	pageWait = 2 * time.Second
)

// Replica is a Store whose reads are served from an in-memory replica of the
// Store's Consul prefix, and whose writes go to Consul unchanged
// (check-and-set transactions, as Store's).
//
// The replica is sharded by the Store's top-level directories (users/,
// apps/, locks/, events/, ...: a key's shard is its escaped first segment).
// Each shard is an immutable radix tree (github.com/hashicorp/go-immutable-radix,
// the tree go-memdb and so Nomad's and Consul's state stores are built on)
// of the shard's keys, fed by its own blocking recursive list of
// <prefix><segment> (the segment without its '/', so that the shard's index
// confirmation below can be a list of one name): each answer is diffed into
// a new tree by ModifyIndex, and the Consul index it answered at (the
// highest index of any change under <prefix><segment>) is the shard's
// applied index. Consul wakes a blocking list only for changes under its
// own prefix, so a write re-lists its own directory alone: the reconciler
// lock's heartbeat, deploy locks and audit events no longer re-list apps/.
// Shards are made on demand, by the first read under a directory (and for
// every directory by Sync); no query follows the whole prefix. go-memdb's
// tables and secondary indexes would add nothing here: the Store has one
// index, by key, and a radix tree gives ordered prefix walks and lock-free
// snapshots.
//
// Reads stay linearizable across servers (the ReadIndex scheme of etcd and
// Raft): a read first learns Consul's current KV index G with one
// request (O(1) in Consul: a read of a key no Store key escapes to, in the
// Store's read mode: Consul's default mode, answered by the leader from its
// state, or with Config.ConsistentReads its consistent mode, which also
// rules out a deposed leader that does not know it yet), shared by every read that arrived before it was sent (one in flight;
// the reads arriving meanwhile share the next one). Each shard keeps
// "complete", a KV index up to which it is known to hold every change under
// its directory. When the read's shard is complete >= G, the read is
// answered from memory. Otherwise something was written somewhere in Consul
// since: the read goes to Consul directly (the plain Store's read), and in
// the background one list of the shard's keys up to the first
// '/' after <prefix><segment> (one name; O(keys in the directory) in Consul,
// but nothing to send or decode) learns the shard's index P as its watch
// reports it; once the watch has applied P, the shard's complete moves up
// to the highest G read before that list was sent. (With waitWatch, used by
// tests, the read waits for that instead of reading Consul.) So a write to
// locks/ costs the next read of apps/ one confirmation of apps/, not a
// re-list of it. Reads spanning several directories (a prefix with no '/')
// go to Consul directly.
//
// With the Store's change log (Config.ChangeLog), a shard's watch follows
// its directory's log instead of re-listing the directory, and reads just
// the keys each write changed; a write that bypassed the log is found by
// the confirmation above, which then re-lists the directory (replicalog.go).
//
// Each shard remembers the keys it saw deleted (tombs), for List's index;
// at most maxTombs of them: see trimTombs.
//
// The reads of one API request share the index in a backends.ReadScope: the
// first read learns G, the others reuse it; a write through the Replica in
// the scope makes the next reads use the write's index (so a request reads
// its writes), and a shard not known complete at an index the replica has
// seen (a write's, or a G) is read from Consul directly with no request for
// G first: G would be at least that.
type Replica struct {
	*Store

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	single bool // one shard, "", following the whole prefix (ReplicaOptions.SingleWatch)
	logged bool // the shards follow the Store's change log (Config.ChangeLog; not with single)

	mu       sync.Mutex
	maxTombs int // the deletions a shard remembers at most (see trimTombs)
	shards   map[string]*shard
	epoch    uint64 // bumped when any shard was rebuilt

	// maxGlobal is the highest global index read so far.
	maxGlobal uint64

	globalBatch batch

	// waitWatch makes a read whose index the replica may not hold yet wait
	// for its watch; else (the default) the read goes to Consul directly
	// and the shard's index is confirmed in the background.
	waitWatch bool

	cmu sync.Mutex // guards the shards' confirming, confirmAgain

	// lease is the replica's cluster membership (Join): reads from memory
	// with no read-index request while it holds.
	lease *leases

	// How the reads were answered (ReadCounts).
	leasedReads, indexedReads, directReads atomic.Uint64

	onDirect    func()                       // tests: called when a read goes to Consul directly
	confirmHook func()                       // tests: called as each shard confirmation is sent
	onApply     func(shard string, keys int) // tests: called (r.mu held) as a shard applies a list of keys
	onFetch     func(shard string, keys int) // tests: called as a shard reads the keys its change log names
}

// shard is the replica of the keys under one top-level directory: its
// fields but name, rng and prefixBatch are guarded by Replica.mu.
type shard struct {
	name string // the escaped first segment of its keys; "" (SingleWatch) is every key
	rng  string // the Consul prefix its watch lists: the Store's prefix + name
	// logRng is the prefix of its change log (with Config.ChangeLog);
	// amu serializes what applies the log or a list to the tree then.
	logRng string
	amu    sync.Mutex

	tree    *iradix.Tree // key -> *backends.KVPair (never handed out: copied)
	tombs   *iradix.Tree // deleted key -> uint64 index its deletion was seen at
	floor   uint64       // the highest index of a tomb trimmed away
	applied uint64       // the Consul index of rng the tree reflects
	epoch   uint64       // bumped when Consul's index went backwards and the tree was rebuilt
	changed chan struct{}
	// watchErr is the watch's last failure, nil once it succeeds again.
	watchErr error

	// complete is a Consul KV index (global, all prefixes) at which the
	// tree is known to hold every change of the shard.
	complete uint64
	pending  []probe // confirmations waiting for the watch to apply their index

	prefixBatch batch

	confirming, confirmAgain bool // guarded by Replica.cmu

	// With read leases (lease.go): the highest commit index of a write to
	// the directory a member was told of (the shard answers from memory
	// once it has applied it), and a global index the shard must be
	// complete up to (its member's join, an intent closed by an epoch bump).
	fence, need uint64
	// fences are the write indexes a member was told of by key (fence is
	// the DeleteTrees'); dropped as the shard applies them.
	fences map[string]uint64
}

// view is what one read uses of a shard: a snapshot.
type view struct {
	tree, tombs    *iradix.Tree
	applied, floor uint64
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

// ReplicaOptions tunes a Replica.
type ReplicaOptions struct {
	// SingleWatch follows the whole prefix with one blocking list, every
	// change re-listing every key (the replica before it was sharded by
	// directory; kept to compare the two in benchmarks).
	SingleWatch bool
	// WaitWatch makes a read whose index the replica may not hold yet wait
	// for the watch to apply it, instead of reading Consul directly.
	WaitWatch bool
}

// NewReplica starts the replica of s's prefix (its watches run until
// Close). Until a directory's first list has been applied (and whenever it
// may lag), reads under it go to Consul directly.
func NewReplica(s *Store) *Replica { return NewReplicaWith(s, ReplicaOptions{}) }

// NewReplicaWith is NewReplica with options.
func NewReplicaWith(s *Store, o ReplicaOptions) *Replica {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Replica{Store: s, ctx: ctx, cancel: cancel, shards: map[string]*shard{}, single: o.SingleWatch, waitWatch: o.WaitWatch, maxTombs: defaultMaxTombs}
	r.logged = s.changeLog && !r.single
	r.globalBatch.name, r.globalBatch.run, r.globalBatch.max = "read-index", r.globalIndex, globalInflight
	if r.single {
		r.shard("")
	} else {
		// Start the watches of the directories there are now; more start
		// as reads need them.
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			ctx, cancel := backends.CallContext(r.ctx, r.callTimeout())
			defer cancel()
			_, _ = r.discover(ctx, false)
		}()
	}
	return r
}

// Close stops the watches, waits for them and for probes in flight, and closes the Store.
func (r *Replica) Close() error {
	r.mu.Lock()
	l := r.lease
	r.mu.Unlock()
	if l != nil {
		l.close()
	}
	r.cancel()
	r.wg.Wait()
	return r.Store.Close()
}

// shardName is the shard of a Consul key relative to the Store's prefix (or
// of a prefix that has a '/').
func (r *Replica) shardName(esc string) string {
	if r.single {
		return ""
	}
	if i := strings.IndexByte(esc, '/'); i >= 0 {
		return esc[:i]
	}
	return esc
}

// shard returns the shard name, starting its watch if needed; nil when the
// replica follows too many directories already or is closed.
func (r *Replica) shard(name string) *shard {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sh := r.shards[name]; sh != nil {
		return sh
	}
	if len(r.shards) >= maxShards || r.ctx.Err() != nil {
		return nil
	}
	sh := &shard{name: name, rng: r.prefix + name, logRng: r.logDir(name), tree: iradix.New(), tombs: iradix.New(), changed: make(chan struct{})}
	sh.prefixBatch.name = "read-index"
	sh.prefixBatch.run = func(ctx context.Context, p *probe) error { return r.prefixIndex(ctx, sh, p) }
	sh.prefixBatch.hook = func() {
		if r.confirmHook != nil {
			r.confirmHook()
		}
	}
	if r.lease != nil {
		// Complete up to every index seen so far: a member's join, a
		// write it was told of, an intent closed by an epoch bump.
		sh.need = r.maxGlobal
	}
	r.shards[name] = sh
	r.wg.Add(1)
	if r.logged {
		go r.watchLog(sh)
	} else {
		go r.watch(sh)
	}
	return sh
}

// keyShard is the shard of a Store key; listShard that of every key under
// a prefix, nil when they may be in several (a prefix with no '/').
func (r *Replica) keyShard(key string) *shard {
	if r.single {
		return r.shard("")
	}
	return r.shard(keyShardName(key))
}

// keyShardName is the escaped first segment of key.
func keyShardName(key string) string {
	// The common key ("apps/hello") escapes to itself up to its first
	// '/': no need to escape the whole key.
	if i := strings.IndexByte(key, '/'); i > 0 && key[0] != '.' && plainASCII(key[:i]) {
		return key[:i]
	}
	esc := escapeKey(key)
	if i := strings.IndexByte(esc, '/'); i >= 0 {
		return esc[:i]
	}
	return esc
}

// plainASCII is whether s is printable ASCII with no '%' (so escapeKey
// keeps it as it is, except a leading '.').
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '%' {
			return false
		}
	}
	return true
}

func (r *Replica) listShard(prefix string) *shard {
	esc := escapePrefix(prefix)
	if !r.single && !strings.Contains(esc, "/") {
		return nil
	}
	return r.shard(r.shardName(esc))
}

// discover starts the shards of the directories under the prefix now (one
// consistent list of the names up to the first '/'), returning every shard.
func (r *Replica) discover(ctx context.Context, consistent bool) ([]*shard, error) {
	if !r.single {
		names, _, err := r.kv.Keys(r.prefix, "/", (&api.QueryOptions{RequireConsistent: consistent}).WithContext(ctx))
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if strings.HasPrefix(n, r.prefix) && len(n) > len(r.prefix) && !strings.HasPrefix(n, r.prefix+logDirName) {
				r.shard(r.shardName(n[len(r.prefix):]))
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*shard, 0, len(r.shards))
	for _, sh := range r.shards {
		out = append(out, sh)
	}
	return out, nil
}

// Sync waits until the replica holds everything committed in Consul before
// the call began (or the context ends): the reads that follow are served
// from memory until something is written.
func (r *Replica) Sync(ctx context.Context) error {
	ctx, cancel := r.call(ctx, nil)
	defer cancel()
	// One global index for all the shards, read before the directories are
	// listed: a directory made before the call began is found.
	ctx = backends.WithReadScope(ctx)
	g, err := r.readIndex(ctx)
	if err != nil {
		return r.syncErr(ctx, "sync", "", err)
	}
	shards, err := r.discover(ctx, true)
	if err != nil {
		return r.syncErr(ctx, "sync", "", err)
	}
	for _, sh := range shards {
		if _, _, err := r.syncShard(ctx, "sync", "", sh, g, true); err != nil {
			return err
		}
	}
	return nil
}

// Applied is the highest Consul index any shard has applied (0 before the first list).
func (r *Replica) Applied() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var a uint64
	for _, sh := range r.shards {
		a = max(a, sh.applied)
	}
	return a
}

// watch keeps the shard's tree up to date with blocking lists of its range.
func (r *Replica) watch(sh *shard) {
	defer r.wg.Done()
	backoff := 50 * time.Millisecond
	for r.ctx.Err() == nil {
		r.mu.Lock()
		idx := sh.applied
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(r.ctx, DefaultWaitTime+DefaultWaitTime/16+r.callTimeout())
		opts := (&api.QueryOptions{WaitIndex: idx, WaitTime: DefaultWaitTime}).WithContext(ctx)
		pairs, meta, err := r.kv.List(sh.rng, opts)
		cancel()
		if err != nil {
			if !r.watchFailed(sh, "watching the store prefix failed; retrying", err, &backoff) {
				return
			}
			continue
		}
		backoff = 50 * time.Millisecond
		r.apply(sh, pairs, meta.LastIndex)
	}
}

// watchFailed records a failure of shard sh's watch, logs it and waits
// *backoff (doubled for the next, up to 2s) before the watch tries again;
// false when the replica is closing.
func (r *Replica) watchFailed(sh *shard, msg string, err error, backoff *time.Duration) bool {
	if r.ctx.Err() != nil {
		return false
	}
	r.mu.Lock()
	sh.watchErr = err
	r.mu.Unlock()
	r.logger.Warn(msg, "directory", sh.name, "in", *backoff, "error", err)
	select {
	case <-r.ctx.Done():
		return false
	case <-time.After(*backoff):
	}
	*backoff = min(2**backoff, 2*time.Second)
	return true
}

// apply diffs one recursive list of the shard's range, answered at index,
// into its tree. Only the shard's watch changes its tree, so the diff is
// made outside the lock, on the immutable tree it read, and swapped in at
// the end.
func (r *Replica) apply(sh *shard, pairs api.KVPairs, index uint64) {
	r.mu.Lock()
	sh.watchErr = nil
	tree, tombTree, applied, floor, maxTombs := sh.tree, sh.tombs, sh.applied, sh.floor, r.maxTombs
	r.mu.Unlock()
	if index == applied {
		return // the wait ended with nothing new
	}
	reset := index < applied
	if reset {
		// Consul's index went backwards (a snapshot restore, tombstones
		// reaped, a new cluster): rebuild from this list alone.
		r.logger.Info("consul's index of the store prefix went backwards; rebuilding the replica", "directory", sh.name, "from", applied, "to", index)
		tree, tombTree, floor = iradix.New(), iradix.New(), 0
	}
	txn := tree.Txn()
	tombs := tombTree.Txn()
	seen := make(map[string]struct{}, len(pairs))
	for _, p := range pairs {
		// The range is the segment without its '/': keys of other
		// segments that start with it ("apps2/") are other shards'.
		if !r.single && (len(p.Key) < len(r.prefix) || r.shardName(p.Key[len(r.prefix):]) != sh.name) {
			continue
		}
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
	newTombs, floor = trimTombs(newTombs, floor, maxTombs)
	r.install(sh, newTree, newTombs, index, floor, reset, len(pairs))
}

// install swaps in a shard's new tree, applied at index.
func (r *Replica) install(sh *shard, newTree, newTombs *iradix.Tree, index, floor uint64, reset bool, n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.onApply != nil {
		r.onApply(sh.name, n)
	}
	if reset {
		sh.epoch++
		r.epoch++
		sh.complete, sh.pending = 0, nil
	}
	sh.tree, sh.tombs, sh.applied, sh.floor = newTree, newTombs, index, floor
	for k, w := range sh.fences {
		if w <= index {
			delete(sh.fences, k)
		}
	}
	for len(sh.pending) > 0 && sh.pending[0].index <= index {
		sh.complete = max(sh.complete, sh.pending[0].covers)
		sh.pending = sh.pending[1:]
	}
	close(sh.changed)
	sh.changed = make(chan struct{})
}

// trimTombs keeps the tombs at most limit deletions long: past it, the
// older half is dropped and floor raised to the highest index dropped. The
// tombs serve List's index of a prefix (the highest index of a change
// under it, as Consul's graveyard does); List reports at least floor for
// any prefix that has keys or tombs, so its index never goes backwards when
// tombs are dropped (a blocking reader is at worst woken once more).
func trimTombs(tombs *iradix.Tree, floor uint64, limit int) (*iradix.Tree, uint64) {
	if limit <= 0 || tombs.Len() <= limit {
		return tombs, floor
	}
	idx := make([]uint64, 0, tombs.Len())
	tombs.Root().Walk(func(_ []byte, v interface{}) bool {
		idx = append(idx, v.(uint64))
		return false
	})
	slices.Sort(idx)
	cut := idx[len(idx)-limit/2-1] // keep the limit/2 newest (fewer when indexes tie)
	txn := tombs.Txn()
	tombs.Root().Walk(func(k []byte, v interface{}) bool {
		if v.(uint64) <= cut {
			txn.Delete(k)
		}
		return false
	})
	return txn.Commit(), max(floor, cut)
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

// globalIndex is the index request every read starts with: a read (in the
// Store's read mode) of a key no Store key escapes to, whose X-Consul-Index is Consul's
// KV index (the highest index of any KV write or delete, on any prefix) at
// a moment after the read began. It costs Consul O(1).
func (r *Replica) globalIndex(ctx context.Context, p *probe) error {
	r.mu.Lock()
	p.epoch = r.epoch
	r.mu.Unlock()
	_, meta, err := r.kv.Get(r.prefix+"%read-index", (&api.QueryOptions{RequireConsistent: r.consistent}).WithContext(ctx))
	if err != nil {
		return err
	}
	p.index = meta.LastIndex
	r.mu.Lock()
	if p.index < r.maxGlobal {
		// Consul's KV index went backwards (a snapshot restore, a new
		// cluster): what the replica was known to hold says nothing now;
		// the watch rebuilds it.
		r.maxGlobal = 0
		r.forgetComplete()
	}
	r.maxGlobal = max(r.maxGlobal, p.index)
	r.mu.Unlock()
	return nil
}

// forgetComplete forgets what every shard was known to hold (r.mu held).
func (r *Replica) forgetComplete() {
	for _, sh := range r.shards {
		sh.complete, sh.pending = 0, nil
	}
}

// prefixIndex is the confirmation a read of shard sh needs when Consul's KV
// index has moved past the index the shard is known complete at: a list
// (in the Store's read mode) of the keys of the shard's range up to the first '/'
// (the directory's one name, and that of any other segment starting with
// the same letters), whose X-Consul-Index is the range's index as the
// shard's watch reports it. It costs Consul O(keys in the range), and
// nothing to send. Sent after every global index up to p.covers was read,
// it tells that once the shard has applied p.index it holds every change
// committed up to p.covers.
func (r *Replica) prefixIndex(ctx context.Context, sh *shard, p *probe) error {
	r.mu.Lock()
	p.epoch, p.covers = sh.epoch, r.maxGlobal
	r.mu.Unlock()
	_, meta, err := r.kv.Keys(sh.rng, "/", (&api.QueryOptions{RequireConsistent: r.consistent}).WithContext(ctx))
	if err != nil {
		return err
	}
	p.index = meta.LastIndex
	return nil
}

// readIndex is the global index a read must see the changes up to: the
// ReadScope's, or a shared request's sent after the call began.
func (r *Replica) readIndex(ctx context.Context) (uint64, error) {
	var g, gen uint64
	scope := backends.ReadScopeOf(ctx)
	if scope != nil {
		if g, gen = scope.Load(); g != 0 {
			return g, nil
		}
	}
	p, err := r.shared(ctx, &r.globalBatch)
	if err != nil {
		return 0, err
	}
	if scope != nil {
		scope.Set(gen, p.index)
	}
	return p.index, nil
}

// sync returns a view of shard sh when it holds everything committed
// before the call began (or before the call's ReadScope began); ok is false
// when it may not and the replica does not wait for its watch: the caller
// then reads from Consul directly.
func (r *Replica) sync(ctx context.Context, op, key string, sh *shard, wait bool) (v view, ok bool, err error) {
	var g uint64
	if scope := backends.ReadScopeOf(ctx); scope != nil {
		g, _ = scope.Load()
	}
	r.mu.Lock()
	v = view{sh.tree, sh.tombs, sh.applied, sh.floor}
	tree := op != "get"
	if r.lease != nil {
		switch r.lease.state(sh, key, tree, time.Now()) {
		case memOK:
			// Under the lease: no write this server was not told of has
			// committed to the directory since the shard applied it.
			r.mu.Unlock()
			r.leasedReads.Add(1)
			return v, true, nil
		case memIntent:
			if !wait && !r.waitWatch {
				// A write to the directory is in flight: Consul answers
				// (no index request, no confirmation: the lease still
				// holds, and the shard answers again once it closes).
				r.mu.Unlock()
				return view{}, false, nil
			}
		case memFence:
			// A write this server was told of has committed: its watch
			// brings it in a moment.
			r.mu.Unlock()
			if v, ok := r.waitFence(ctx, sh, key, tree); ok {
				r.leasedReads.Add(1)
				return v, true, nil
			}
			if !wait && !r.waitWatch {
				return view{}, false, nil
			}
			r.mu.Lock()
			v = view{sh.tree, sh.tombs, sh.applied, sh.floor}
		}
	}
	ok = sh.complete >= g && sh.applied > 0
	behind := sh.complete < r.maxGlobal
	r.mu.Unlock()
	if g != 0 && ok {
		// The request's scope knows the index: answered from memory when
		// the shard holds it, with no call (and no deadline).
		r.indexedReads.Add(1)
		return v, true, nil
	}
	if g == 0 && behind && !wait && !r.waitWatch {
		// A later index than the shard is known complete at was seen (a
		// write went through here, or a read learnt it): any read index
		// learnt now would be at least that, so the read goes to Consul
		// directly without asking for one, while the shard's index is
		// confirmed in the background.
		r.confirmLater(sh)
		return view{}, false, nil
	}
	ctx, cancel := r.call(ctx, nil)
	defer cancel()
	g, err = r.readIndex(ctx)
	if err != nil {
		return view{}, false, r.syncErr(ctx, op, key, err)
	}
	return r.syncShard(ctx, op, key, sh, g, wait)
}

// syncShard is sync once the global index g is known.
func (r *Replica) syncShard(ctx context.Context, op, key string, sh *shard, g uint64, wait bool) (v view, ok bool, err error) {
	r.mu.Lock()
	v, ok = view{sh.tree, sh.tombs, sh.applied, sh.floor}, sh.complete >= g && sh.applied > 0
	r.mu.Unlock()
	if ok {
		r.indexedReads.Add(1)
		return v, true, nil
	}
	if !wait && !r.waitWatch {
		r.confirmLater(sh)
		return view{}, false, nil
	}
	for {
		c, err := r.shared(ctx, &sh.prefixBatch)
		if err != nil {
			return view{}, false, r.syncErr(ctx, op, key, err)
		}
		if r.logged {
			r.catchUp(ctx, sh, c.index)
		}
		for {
			r.mu.Lock()
			v, ch, cur, werr := view{sh.tree, sh.tombs, sh.applied, sh.floor}, sh.changed, sh.epoch, sh.watchErr
			if cur == c.epoch && v.applied >= c.index && v.applied > 0 {
				sh.complete = max(sh.complete, c.covers)
			}
			r.mu.Unlock()
			if cur != c.epoch {
				break // rebuilt since the index was read: read it again
			}
			if v.applied >= c.index && v.applied > 0 {
				r.indexedReads.Add(1)
				return v, true, nil
			}
			select {
			case <-ch:
			case <-ctx.Done():
				if werr != nil {
					return view{}, false, r.syncErr(ctx, op, key, werr)
				}
				return view{}, false, r.syncErr(ctx, op, key, fmt.Errorf("the replica of %q has applied index %d, not yet %d", sh.name, v.applied, c.index))
			}
		}
	}
}

// confirmLater has the shard's index confirmed in the background (one
// request at a time, and one more if asked meanwhile): once its watch has
// applied it, the reads of indexes it covers are served from memory again.
func (r *Replica) confirmLater(sh *shard) {
	r.cmu.Lock()
	defer r.cmu.Unlock()
	if sh.confirming {
		sh.confirmAgain = true
		return
	}
	sh.confirming = true
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			ctx, cancel := backends.CallContext(r.ctx, r.callTimeout())
			p := &probe{}
			sh.prefixBatch.hook()
			err := r.prefixIndex(ctx, sh, p)
			if err == nil && r.logged {
				r.catchUp(ctx, sh, p.index)
			}
			cancel()
			if err == nil {
				r.mu.Lock()
				if p.epoch == sh.epoch {
					if sh.applied >= p.index {
						sh.complete = max(sh.complete, p.covers)
					} else {
						sh.pending = append(sh.pending, *p)
					}
				}
				r.mu.Unlock()
			}
			r.cmu.Lock()
			if err != nil || !sh.confirmAgain || r.ctx.Err() != nil {
				sh.confirming, sh.confirmAgain = false, false
				r.cmu.Unlock()
				return
			}
			sh.confirmAgain = false
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

// wait blocks, for a read with a WaitIndex, until the shard changes or the
// wait ends; false when it ended.
func (r *Replica) wait(ctx context.Context, sh *shard, deadline time.Time) (view, bool) {
	r.mu.Lock()
	ch := sh.changed
	r.mu.Unlock()
	if !waitChange(ctx, ch, deadline) {
		return view{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return view{sh.tree, sh.tombs, sh.applied, sh.floor}, true
}

// waitChange waits until ch is closed (a shard changed); false when the
// deadline or the context ended first.
func waitChange(ctx context.Context, ch <-chan struct{}, deadline time.Time) bool {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

func waitOf(q *backends.QueryOptions) time.Duration {
	if q.WaitTime <= 0 {
		return DefaultWaitTime
	}
	return q.WaitTime
}

// ReadCounts reports how the replica's reads were answered since it
// started: from memory under the read lease, from memory after a
// read-index request (or within a request that knew its index), and from
// Consul directly.
func (r *Replica) ReadCounts() (leased, indexed, direct uint64) {
	return r.leasedReads.Load(), r.indexedReads.Load(), r.directReads.Load()
}

func (r *Replica) direct() {
	r.directReads.Add(1)
	if r.onDirect != nil {
		r.onDirect()
	}
}

func copyPair(p *backends.KVPair) *backends.KVPair {
	return &backends.KVPair{Key: p.Key, Value: append([]byte(nil), p.Value...), CreateIndex: p.CreateIndex, ModifyIndex: p.ModifyIndex}
}

// Get reads one key from the replica. LastIndex is the key's ModifyIndex,
// or for an absent key the index of its shard.
func (r *Replica) Get(ctx context.Context, key string, q *backends.QueryOptions) (*backends.KVPair, *backends.QueryMeta, error) {
	if key == "" {
		return nil, nil, backends.ErrInvalidKey
	}
	sh := r.keyShard(key)
	if sh == nil {
		r.direct()
		return r.Store.Get(ctx, key, q)
	}
	v, ok, err := r.sync(ctx, "get", key, sh, false)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		r.direct()
		return r.Store.Get(ctx, key, q)
	}
	get := func(v view) (*backends.KVPair, uint64) {
		if p, ok := v.tree.Get([]byte(key)); ok {
			p := p.(*backends.KVPair)
			return copyPair(p), p.ModifyIndex
		}
		return nil, v.applied
	}
	p, idx, err := blockOn(ctx, r, sh, q, v, get)
	if err != nil {
		return nil, nil, fmt.Errorf("consul get %q: %w", key, err)
	}
	return p, &backends.QueryMeta{LastIndex: idx}, nil
}

// blockOn answers read(v) and, for a read with a WaitIndex, reads again
// each time the shard changes until the index moves past it or the wait
// ends (Consul's blocking query, from memory); err is the context's when it
// ended the wait with the index unchanged.
func blockOn[T any](ctx context.Context, r *Replica, sh *shard, q *backends.QueryOptions, v view, read func(view) (T, uint64)) (T, uint64, error) {
	out, idx := read(v)
	if q == nil || q.WaitIndex == 0 {
		return out, idx, nil
	}
	deadline := time.Now().Add(waitOf(q))
	for idx == q.WaitIndex {
		var ok bool
		if v, ok = r.wait(ctx, sh, deadline); !ok {
			break
		}
		out, idx = read(v)
	}
	if err := ctx.Err(); err != nil && idx == q.WaitIndex {
		var zero T
		return zero, 0, err
	}
	return out, idx, nil
}

// List reads every key under prefix from the replica, sorted by key.
// LastIndex is the highest ModifyIndex or deletion index under prefix (at
// least the highest index of a deletion the shard no longer remembers),
// else the shard's index. A prefix that may span several directories (one
// with no '/') is read from Consul directly.
func (r *Replica) List(ctx context.Context, prefix string, q *backends.QueryOptions) ([]*backends.KVPair, *backends.QueryMeta, error) {
	sh := r.listShard(prefix)
	if sh == nil {
		r.direct()
		return r.Store.List(ctx, prefix, q)
	}
	v, ok, err := r.sync(ctx, "list", prefix, sh, false)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		r.direct()
		return r.Store.List(ctx, prefix, q)
	}
	list := func(v view) ([]*backends.KVPair, uint64) {
		var out []*backends.KVPair
		var idx uint64
		v.tree.Root().WalkPrefix([]byte(prefix), func(_ []byte, val interface{}) bool {
			p := val.(*backends.KVPair)
			out = append(out, copyPair(p))
			idx = max(idx, p.ModifyIndex)
			return false
		})
		if prefix == "" {
			return out, v.applied
		}
		v.tombs.Root().WalkPrefix([]byte(prefix), func(_ []byte, val interface{}) bool {
			idx = max(idx, val.(uint64))
			return false
		})
		if idx == 0 {
			return out, v.applied
		}
		return out, max(idx, v.floor)
	}
	out, idx, err := blockOn(ctx, r, sh, q, v, list)
	if err != nil {
		return nil, nil, fmt.Errorf("consul list %q: %w", prefix, err)
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
	wm, err := r.Store.Put(ctx, p)
	r.wrote(ctx, wm, err == nil)
	return wm, err
}

// CAS writes p.Value if the key's ModifyIndex is p.ModifyIndex (0 = absent).
func (r *Replica) CAS(ctx context.Context, p *backends.KVPair) (bool, *backends.WriteMeta, error) {
	ok, wm, err := r.Store.CAS(ctx, p)
	r.wrote(ctx, wm, ok && err == nil)
	return ok, wm, err
}

// Delete removes a key; an absent key is fine.
func (r *Replica) Delete(ctx context.Context, key string) (*backends.WriteMeta, error) {
	wm, err := r.Store.Delete(ctx, key)
	r.wrote(ctx, wm, err == nil)
	return wm, err
}

// DeleteCAS removes a key if its ModifyIndex is index.
func (r *Replica) DeleteCAS(ctx context.Context, key string, index uint64) (bool, *backends.WriteMeta, error) {
	ok, wm, err := r.Store.DeleteCAS(ctx, key, index)
	r.wrote(ctx, wm, ok && err == nil)
	return ok, wm, err
}

// DeleteTree removes every key under prefix.
func (r *Replica) DeleteTree(ctx context.Context, prefix string) (*backends.WriteMeta, error) {
	wm, err := r.Store.DeleteTree(ctx, prefix)
	r.wrote(ctx, wm, err == nil)
	return wm, err
}

// Txn applies ops atomically with a Consul KV transaction.
func (r *Replica) Txn(ctx context.Context, ops []backends.TxnOp) (*backends.WriteMeta, error) {
	wm, err := r.Store.Txn(ctx, ops)
	r.wrote(ctx, wm, err == nil)
	return wm, err
}

// wrote records a write through the replica: its scope's next reads must
// see it (at its index when it succeeded, else at an index learnt anew),
// and, as its index is a committed KV index, it counts as a global index
// read: a shard not known complete at it is read from Consul directly,
// with no read-index request first, until its watch has caught up.
func (r *Replica) wrote(ctx context.Context, wm *backends.WriteMeta, ok bool) {
	var idx uint64
	if ok && wm != nil {
		idx = wm.Index
	}
	if s := backends.ReadScopeOf(ctx); s != nil {
		s.Wrote(idx)
	}
	if idx > 0 {
		r.mu.Lock()
		r.maxGlobal = max(r.maxGlobal, idx)
		r.mu.Unlock()
	}
}

// ListPage reads one page of the keys under prefix after the key after
// from the replica (a seek in the radix tree: a page costs what it holds);
// see backends.Store. LastIndex is the index of the prefix's shard, at
// least the index of any change under prefix. While the shard may lag, the
// page waits for its watch (one confirmation of the shard's index) rather
// than read Consul: the Store's direct page would start a watch of the
// prefix's key names of its own (keywatch.go), a second query re-listing
// the directory's names at every change. A prefix that may span several
// directories (one with no '/'), or a shard whose watch is failing or
// takes longer than pageWait, is paged from Consul directly.
func (r *Replica) ListPage(ctx context.Context, prefix, after string, limit int) ([]*backends.KVPair, *backends.QueryMeta, error) {
	sh := r.listShard(prefix)
	if sh != nil {
		r.mu.Lock()
		if sh.watchErr != nil {
			sh = nil
		}
		r.mu.Unlock()
	}
	if sh == nil {
		r.direct()
		return r.Store.ListPage(ctx, prefix, after, limit)
	}
	wctx, cancel := context.WithTimeout(ctx, pageWait)
	v, ok, err := r.sync(wctx, "list", prefix, sh, true)
	cancel()
	if err != nil && ctx.Err() != nil {
		return nil, nil, err
	}
	if !ok {
		r.direct()
		return r.Store.ListPage(ctx, prefix, after, limit)
	}
	start := prefix
	if after > start {
		start = after
	}
	it := v.tree.Root().Iterator()
	it.SeekLowerBound([]byte(start))
	out := []*backends.KVPair{}
	for k, val, ok := it.Next(); ok; k, val, ok = it.Next() {
		if !strings.HasPrefix(string(k), prefix) {
			break
		}
		if after != "" && string(k) <= after {
			continue
		}
		out = append(out, copyPair(val.(*backends.KVPair)))
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, &backends.QueryMeta{LastIndex: v.applied}, nil
}
