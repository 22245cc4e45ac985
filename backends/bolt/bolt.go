// Package bolt is the embedded default backends.Store: one bbolt file with
// the semantics of Consul KV (a monotonic store index, check-and-set on each
// key's ModifyIndex, transactions of up to 64 operations, and blocking
// queries by WaitIndex).
//
// Layout of the file: bucket "kv" maps a key to its entry (CreateIndex,
// ModifyIndex, value); bucket "tombstones" maps a deleted key to the index
// and time of its deletion, so that deletes advance the LastIndex of every
// prefix they fall under; bucket "meta" holds the store index and the
// highest index of tombstones reaped so far. Tombstones older than
// Options.TombstoneTTL are reaped; the reaped high-water mark keeps every
// List index monotonic afterwards.
package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/backends/boltfile"
	"github.com/hashicorp/go-hclog"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var _ backends.Store = (*Store)(nil)

// MaxKeyLen is the longest key, in bytes, the store accepts.
const MaxKeyLen = 4096

// Defaults for Options.
const (
	DefaultTimeout      = 5 * time.Second
	DefaultTombstoneTTL = time.Hour
	defaultWaitTime     = 5 * time.Minute
)

// ErrClosed is the cause of every call's failure on a closed Store: the
// call fails with a *backends.UnavailableError naming bolt that wraps it.
var ErrClosed = errors.New("bolt store is closed")

// unavailable marks a failure of the store file itself as a
// *backends.UnavailableError naming bolt (see boltfile.File.Unavailable).
func unavailable(op string, err error) error { return fileFailures.Unavailable(op, err) }

var fileFailures = boltfile.File{Backend: "bolt", Role: "store", What: "the store file", Closed: ErrClosed}

var (
	bucketKV    = []byte("kv")
	bucketTombs = []byte("tombstones")
	bucketMeta  = []byte("meta")
	metaIndex   = []byte("index")
	metaReaped  = []byte("reaped")
)

// errNoWrite rolls back a write transaction that had nothing to write.
var errNoWrite = errors.New("nothing to write")

// Options tune Open. The zero value is a good default.
type Options struct {
	// Logger receives operational messages (never values). Default: a null logger.
	Logger hclog.Logger
	// Timeout bounds the wait for the file lock when another process holds
	// the file open. Default 5s; it is never unbounded.
	Timeout time.Duration
	// TombstoneTTL is how long deletes are remembered (for the indexes of
	// blocking queries). Default one hour.
	TombstoneTTL time.Duration
	// NoSync skips fsync after each commit: faster, and loses recent writes
	// on a machine crash. For tests and throwaway stores only.
	NoSync bool
}

// Store is a backends.Store in one bbolt file.
type Store struct {
	db   *bbolt.DB
	log  hclog.Logger
	path string
	ttl  time.Duration

	mu      sync.Mutex
	changed chan struct{} // closed and replaced after every commit

	closeOnce sync.Once
	closed    chan struct{}
	reaperWG  sync.WaitGroup
}

// Open opens (creating if needed) the store file at path. The parent
// directory is created with mode 0700, the file with mode 0600. If another
// process holds the file, Open fails after opts.Timeout.
func Open(path string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.TombstoneTTL <= 0 {
		opts.TombstoneTTL = DefaultTombstoneTTL
	}
	if path == "" {
		return nil, errors.New("bolt: empty path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("bolt: create directory for %s: %w", path, err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: opts.Timeout, NoSync: opts.NoSync})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("bolt: %s is locked by another process (waited %v): %w", path, opts.Timeout, err)
		}
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, b := range [][]byte{bucketKV, bucketTombs, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if meta.Get(metaIndex) == nil {
			// Index 1 is the empty store: the first write is 2, so that a
			// blocking query on a fresh store (LastIndex 1) wakes on it.
			return meta.Put(metaIndex, u64(1))
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("bolt: initialise %s: %w", path, err)
	}
	s := &Store{
		db:      db,
		log:     opts.Logger,
		path:    path,
		ttl:     opts.TombstoneTTL,
		changed: make(chan struct{}),
		closed:  make(chan struct{}),
	}
	s.reaperWG.Add(1)
	go s.reaper()
	s.log.Debug("bolt store opened", "path", path)
	return s, nil
}

// Path is the file the store lives in.
func (s *Store) Path() string { return s.path }

// Close stops blocking queries (they return ErrClosed) and closes the file.
func (s *Store) Close() error {
	err := ErrClosed
	s.closeOnce.Do(func() {
		close(s.closed)
		s.reaperWG.Wait()
		err = s.db.Close()
		s.log.Debug("bolt store closed", "path", s.path)
	})
	return err
}

func (s *Store) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// Health reports whether the file is open and readable.
func (s *Store) Health(ctx context.Context) error {
	if err := s.begin(ctx, "health"); err != nil {
		return err
	}
	err := s.db.View(func(tx *bbolt.Tx) error {
		if tx.Bucket(bucketKV) == nil || tx.Bucket(bucketMeta) == nil {
			return &backends.UnavailableError{Backend: "bolt", Role: "store", Op: "health", Reason: "the store file lacks its buckets",
				Err: fmt.Errorf("bolt file %s lacks its buckets", s.path)}
		}
		return nil
	})
	return unavailable("health", err)
}

// begin checks, before a call op, that ctx is live and the store open.
func (s *Store) begin(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.isClosed() {
		return unavailable(op, ErrClosed)
	}
	return nil
}

// validKey accepts non-empty UTF-8 keys of printable characters.
func validKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", backends.ErrInvalidKey)
	}
	if len(key) > MaxKeyLen {
		return fmt.Errorf("%w: key longer than %d bytes", backends.ErrInvalidKey, MaxKeyLen)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: key %q is not UTF-8", backends.ErrInvalidKey, key)
	}
	for _, r := range key {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: key %q has a control character", backends.ErrInvalidKey, key)
		}
	}
	return nil
}

// validPrefix accepts "" and anything validKey accepts.
func validPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return validKey(prefix)
}

func u64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

func getU64(b *bbolt.Bucket, k []byte) uint64 {
	v := b.Get(k)
	if len(v) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// entry encoding: CreateIndex(8) ModifyIndex(8) value.
func encodeEntry(create, modify uint64, value []byte) []byte {
	b := make([]byte, 16+len(value))
	binary.BigEndian.PutUint64(b[0:], create)
	binary.BigEndian.PutUint64(b[8:], modify)
	copy(b[16:], value)
	return b
}

func decodeEntry(key []byte, raw []byte) (*backends.KVPair, error) {
	if len(raw) < 16 {
		return nil, fmt.Errorf("bolt: corrupt entry for key %q (%d bytes)", key, len(raw))
	}
	return &backends.KVPair{
		Key:         string(key),
		CreateIndex: binary.BigEndian.Uint64(raw[0:]),
		ModifyIndex: binary.BigEndian.Uint64(raw[8:]),
		Value:       bytes.Clone(raw[16:]), // bbolt memory is valid only inside the tx
	}, nil
}

func modifyIndexOf(raw []byte) uint64 {
	if len(raw) < 16 {
		return 0
	}
	return binary.BigEndian.Uint64(raw[8:])
}

// tombstone encoding: index(8) unix nanoseconds(8).
func encodeTomb(index uint64, at time.Time) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b[0:], index)
	binary.BigEndian.PutUint64(b[8:], uint64(at.UnixNano()))
	return b
}

func tombIndex(raw []byte) uint64 {
	if len(raw) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(raw)
}

func tombTime(raw []byte) time.Time {
	if len(raw) < 16 {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(raw[8:])))
}

// watchChan returns the channel the next commit closes.
func (s *Store) watchChan() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Store) notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// query runs read, and when q asks for a blocking query runs it again after
// each commit until the index it reports exceeds q.WaitIndex, q.WaitTime
// passes, or ctx ends.
func (s *Store) query(ctx context.Context, q *backends.QueryOptions, read func(tx *bbolt.Tx) (uint64, error)) (uint64, error) {
	if err := s.begin(ctx, "read"); err != nil {
		return 0, err
	}
	var timeout <-chan time.Time
	for {
		changed := s.watchChan() // before reading, so no commit is missed
		var idx uint64
		err := s.db.View(func(tx *bbolt.Tx) error {
			var err error
			idx, err = read(tx)
			return err
		})
		if err != nil {
			return 0, unavailable("read", err)
		}
		if q == nil || q.WaitIndex == 0 || idx > q.WaitIndex {
			return idx, nil
		}
		if timeout == nil {
			wait := q.WaitTime
			if wait <= 0 {
				wait = defaultWaitTime
			}
			t := time.NewTimer(wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-changed:
		case <-timeout:
			return idx, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-s.closed:
			return 0, unavailable("read", ErrClosed)
		}
	}
}

func currentIndex(tx *bbolt.Tx) uint64 {
	return getU64(tx.Bucket(bucketMeta), metaIndex)
}

// Get reads one key; see backends.Store.
func (s *Store) Get(ctx context.Context, key string, q *backends.QueryOptions) (*backends.KVPair, *backends.QueryMeta, error) {
	if err := validKey(key); err != nil {
		return nil, nil, err
	}
	var pair *backends.KVPair
	idx, err := s.query(ctx, q, func(tx *bbolt.Tx) (uint64, error) {
		pair = nil
		k := []byte(key)
		if raw := tx.Bucket(bucketKV).Get(k); raw != nil {
			p, err := decodeEntry(k, raw)
			if err != nil {
				return 0, err
			}
			pair = p
			return p.ModifyIndex, nil
		}
		if t := tx.Bucket(bucketTombs).Get(k); t != nil {
			return tombIndex(t), nil
		}
		return currentIndex(tx), nil
	})
	if err != nil {
		return nil, nil, err
	}
	return pair, &backends.QueryMeta{LastIndex: idx}, nil
}

// ListPage reads one page of the keys under prefix after the key after: a
// cursor Seek to the page's first key, then limit steps; see
// backends.Store. Its LastIndex is the store's index at the read.
func (s *Store) ListPage(ctx context.Context, prefix, after string, limit int) ([]*backends.KVPair, *backends.QueryMeta, error) {
	if err := validPrefix(prefix); err != nil {
		return nil, nil, err
	}
	var pairs []*backends.KVPair
	idx, err := s.query(ctx, nil, func(tx *bbolt.Tx) (uint64, error) {
		pairs = nil
		p := []byte(prefix)
		start := p
		if after > prefix {
			start = []byte(after)
		}
		c := tx.Bucket(bucketKV).Cursor()
		k, v := c.Seek(start)
		if k != nil && after != "" && string(k) == after {
			k, v = c.Next()
		}
		for ; k != nil && bytes.HasPrefix(k, p) && (limit <= 0 || len(pairs) < limit); k, v = c.Next() {
			kv, err := decodeEntry(k, v)
			if err != nil {
				return 0, err
			}
			pairs = append(pairs, kv)
		}
		return currentIndex(tx), nil
	})
	if err != nil {
		return nil, nil, err
	}
	return pairs, &backends.QueryMeta{LastIndex: idx}, nil
}

// List reads every key under prefix, sorted; see backends.Store.
func (s *Store) List(ctx context.Context, prefix string, q *backends.QueryOptions) ([]*backends.KVPair, *backends.QueryMeta, error) {
	if err := validPrefix(prefix); err != nil {
		return nil, nil, err
	}
	var pairs []*backends.KVPair
	idx, err := s.query(ctx, q, func(tx *bbolt.Tx) (uint64, error) {
		pairs = nil
		p := []byte(prefix)
		var max uint64
		c := tx.Bucket(bucketKV).Cursor()
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			kv, err := decodeEntry(k, v)
			if err != nil {
				return 0, err
			}
			pairs = append(pairs, kv)
			if kv.ModifyIndex > max {
				max = kv.ModifyIndex
			}
		}
		tc := tx.Bucket(bucketTombs).Cursor()
		for k, v := tc.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = tc.Next() {
			if i := tombIndex(v); i > max {
				max = i
			}
		}
		if max == 0 {
			// Nothing ever written under the prefix (or all of it reaped):
			// the store's index, as Consul does.
			return currentIndex(tx), nil
		}
		if r := getU64(tx.Bucket(bucketMeta), metaReaped); r > max {
			max = r
		}
		return max, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return pairs, &backends.QueryMeta{LastIndex: idx}, nil
}

// write runs fn in a write transaction at the next store index. fn reports
// whether it wrote anything; if not, the transaction is rolled back and the
// index is 0. An error from fn rolls back too.
func (s *Store) write(ctx context.Context, fn func(tx *bbolt.Tx, next uint64) (bool, error)) (uint64, error) {
	if err := s.begin(ctx, "write"); err != nil {
		return 0, err
	}
	var idx uint64
	err := s.db.Update(func(tx *bbolt.Tx) error {
		// The writer lock may have taken a while: look again.
		if err := ctx.Err(); err != nil {
			return err
		}
		meta := tx.Bucket(bucketMeta)
		next := getU64(meta, metaIndex) + 1
		wrote, err := fn(tx, next)
		if err != nil {
			return err
		}
		if !wrote {
			return errNoWrite
		}
		if err := meta.Put(metaIndex, u64(next)); err != nil {
			return err
		}
		idx = next
		return nil
	})
	switch {
	case errors.Is(err, errNoWrite):
		return 0, nil
	case err != nil:
		return 0, unavailable("write", err)
	}
	s.notify()
	return idx, nil
}

func set(tx *bbolt.Tx, key string, value []byte, idx uint64) error {
	kv := tx.Bucket(bucketKV)
	k := []byte(key)
	create := idx
	if raw := kv.Get(k); len(raw) >= 16 {
		create = binary.BigEndian.Uint64(raw[0:])
	}
	if err := kv.Put(k, encodeEntry(create, idx, value)); err != nil {
		return err
	}
	return tx.Bucket(bucketTombs).Delete(k)
}

// del deletes key if present, leaving a tombstone; it reports whether it did.
func del(tx *bbolt.Tx, key []byte, idx uint64, now time.Time) (bool, error) {
	kv := tx.Bucket(bucketKV)
	if kv.Get(key) == nil {
		return false, nil
	}
	if err := kv.Delete(key); err != nil {
		return false, err
	}
	return true, tx.Bucket(bucketTombs).Put(key, encodeTomb(idx, now))
}

// checkIndex reports whether key's ModifyIndex is index (0 = key absent).
func checkIndex(tx *bbolt.Tx, key string, index uint64) bool {
	raw := tx.Bucket(bucketKV).Get([]byte(key))
	if raw == nil {
		return index == 0
	}
	return index != 0 && modifyIndexOf(raw) == index
}

// Put writes unconditionally; see backends.Store.
func (s *Store) Put(ctx context.Context, p *backends.KVPair) (*backends.WriteMeta, error) {
	if p == nil {
		return nil, fmt.Errorf("%w: nil pair", backends.ErrInvalidKey)
	}
	if err := validKey(p.Key); err != nil {
		return nil, err
	}
	idx, err := s.write(ctx, func(tx *bbolt.Tx, next uint64) (bool, error) {
		return true, set(tx, p.Key, p.Value, next)
	})
	if err != nil {
		return nil, err
	}
	return &backends.WriteMeta{Index: idx}, nil
}

// CAS writes if the key's ModifyIndex is p.ModifyIndex; see backends.Store.
func (s *Store) CAS(ctx context.Context, p *backends.KVPair) (bool, *backends.WriteMeta, error) {
	if p == nil {
		return false, nil, fmt.Errorf("%w: nil pair", backends.ErrInvalidKey)
	}
	if err := validKey(p.Key); err != nil {
		return false, nil, err
	}
	ok := false
	idx, err := s.write(ctx, func(tx *bbolt.Tx, next uint64) (bool, error) {
		if !checkIndex(tx, p.Key, p.ModifyIndex) {
			return false, nil
		}
		ok = true
		return true, set(tx, p.Key, p.Value, next)
	})
	if err != nil {
		return false, nil, err
	}
	return ok, &backends.WriteMeta{Index: idx}, nil
}

// Delete removes a key; see backends.Store.
func (s *Store) Delete(ctx context.Context, key string) (*backends.WriteMeta, error) {
	if err := validKey(key); err != nil {
		return nil, err
	}
	now := time.Now()
	idx, err := s.write(ctx, func(tx *bbolt.Tx, next uint64) (bool, error) {
		return del(tx, []byte(key), next, now)
	})
	if err != nil {
		return nil, err
	}
	return &backends.WriteMeta{Index: idx}, nil
}

// DeleteCAS removes a key if its ModifyIndex is index. As in Consul, an
// absent key counts as deleted (true).
func (s *Store) DeleteCAS(ctx context.Context, key string, index uint64) (bool, *backends.WriteMeta, error) {
	if err := validKey(key); err != nil {
		return false, nil, err
	}
	now := time.Now()
	ok := false
	idx, err := s.write(ctx, func(tx *bbolt.Tx, next uint64) (bool, error) {
		raw := tx.Bucket(bucketKV).Get([]byte(key))
		if raw == nil {
			ok = true
			return false, nil
		}
		if modifyIndexOf(raw) != index {
			return false, nil
		}
		ok = true
		return del(tx, []byte(key), next, now)
	})
	if err != nil {
		return false, nil, err
	}
	return ok, &backends.WriteMeta{Index: idx}, nil
}

// DeleteTree removes every key under prefix; see backends.Store.
func (s *Store) DeleteTree(ctx context.Context, prefix string) (*backends.WriteMeta, error) {
	if err := validPrefix(prefix); err != nil {
		return nil, err
	}
	now := time.Now()
	idx, err := s.write(ctx, func(tx *bbolt.Tx, next uint64) (bool, error) {
		return deleteTree(tx, []byte(prefix), next, now)
	})
	if err != nil {
		return nil, err
	}
	return &backends.WriteMeta{Index: idx}, nil
}

func deleteTree(tx *bbolt.Tx, p []byte, idx uint64, now time.Time) (bool, error) {
	var keys [][]byte
	c := tx.Bucket(bucketKV).Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if _, err := del(tx, k, idx, now); err != nil {
			return false, err
		}
	}
	return len(keys) > 0, nil
}

// Txn applies ops atomically; see backends.Store.
func (s *Store) Txn(ctx context.Context, ops []backends.TxnOp) (*backends.WriteMeta, error) {
	if len(ops) > backends.MaxTxnOps {
		return nil, fmt.Errorf("%w: %d operations, at most %d", backends.ErrTxnTooLarge, len(ops), backends.MaxTxnOps)
	}
	for i, op := range ops {
		if err := validKey(op.Key); err != nil {
			return nil, &backends.TxnError{OpIndex: i, Key: op.Key, Err: err}
		}
		switch op.Verb {
		case backends.TxnSet, backends.TxnCAS, backends.TxnDelete, backends.TxnDeleteCAS,
			backends.TxnCheckIndex, backends.TxnCheckNotExists:
		default:
			return nil, &backends.TxnError{OpIndex: i, Key: op.Key, Err: fmt.Errorf("unknown transaction verb %q", op.Verb)}
		}
	}
	if err := s.begin(ctx, "write"); err != nil {
		return nil, err
	}
	if len(ops) == 0 {
		return &backends.WriteMeta{}, nil
	}
	now := time.Now()
	idx, err := s.write(ctx, func(tx *bbolt.Tx, next uint64) (bool, error) {
		wrote := false
		for i, op := range ops {
			conflict := func(why string) error {
				return &backends.TxnError{OpIndex: i, Key: op.Key, Err: fmt.Errorf("%w: %s", backends.ErrCASConflict, why)}
			}
			switch op.Verb {
			case backends.TxnSet:
				if err := set(tx, op.Key, op.Value, next); err != nil {
					return false, err
				}
				wrote = true
			case backends.TxnCAS:
				if !checkIndex(tx, op.Key, op.Index) {
					return false, conflict(fmt.Sprintf("modify index is not %d", op.Index))
				}
				if err := set(tx, op.Key, op.Value, next); err != nil {
					return false, err
				}
				wrote = true
			case backends.TxnDelete:
				d, err := del(tx, []byte(op.Key), next, now)
				if err != nil {
					return false, err
				}
				wrote = wrote || d
			case backends.TxnDeleteCAS:
				raw := tx.Bucket(bucketKV).Get([]byte(op.Key))
				if raw != nil && modifyIndexOf(raw) != op.Index {
					return false, conflict(fmt.Sprintf("modify index is not %d", op.Index))
				}
				d, err := del(tx, []byte(op.Key), next, now)
				if err != nil {
					return false, err
				}
				wrote = wrote || d
			case backends.TxnCheckIndex:
				if !checkIndex(tx, op.Key, op.Index) {
					if op.Index == 0 {
						return false, conflict("key exists")
					}
					return false, conflict(fmt.Sprintf("modify index is not %d", op.Index))
				}
			case backends.TxnCheckNotExists:
				if tx.Bucket(bucketKV).Get([]byte(op.Key)) != nil {
					return false, conflict("key exists")
				}
			}
		}
		return wrote, nil
	})
	if err != nil {
		return nil, err
	}
	return &backends.WriteMeta{Index: idx}, nil
}

// reaper removes expired tombstones every quarter TTL (at least a second).
func (s *Store) reaper() {
	defer s.reaperWG.Done()
	every := s.ttl / 4
	if every < time.Second {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
			if n, err := s.reapTombstones(time.Now().Add(-s.ttl)); err != nil {
				s.log.Warn("reaping tombstones failed", "path", s.path, "error", err)
			} else if n > 0 {
				s.log.Debug("reaped tombstones", "path", s.path, "count", n)
			}
		}
	}
}

// reapTombstones removes tombstones of deletes before cutoff and raises the
// reaped high-water mark to their highest index, so that no List index goes
// backwards. It does not advance the store index.
func (s *Store) reapTombstones(cutoff time.Time) (int, error) {
	if s.isClosed() {
		return 0, ErrClosed
	}
	n := 0
	err := s.db.Update(func(tx *bbolt.Tx) error {
		tombs := tx.Bucket(bucketTombs)
		meta := tx.Bucket(bucketMeta)
		reaped := getU64(meta, metaReaped)
		var keys [][]byte
		err := tombs.ForEach(func(k, v []byte) error {
			if tombTime(v).Before(cutoff) {
				keys = append(keys, bytes.Clone(k))
				if i := tombIndex(v); i > reaped {
					reaped = i
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(keys) == 0 {
			return errNoWrite
		}
		for _, k := range keys {
			if err := tombs.Delete(k); err != nil {
				return err
			}
		}
		n = len(keys)
		return meta.Put(metaReaped, u64(reaped))
	})
	if errors.Is(err, errNoWrite) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	// Watchers of prefixes whose tombstones went see a new index: wake them.
	s.notify()
	return n, nil
}
