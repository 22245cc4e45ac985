// Package consul implements backends.Store on Consul's KV store
// (github.com/hashicorp/consul/api): reads are KV reads with blocking
// queries, writes are KV transactions (so every write reports the Raft index
// it was committed at), and check-and-set is by ModifyIndex.
//
// Every key is stored under Config.Prefix, escaped so that any printable key
// round-trips (see escapeKey).
package consul

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
)

// DefaultWaitTime is the blocking-query wait used when QueryOptions.WaitTime is 0.
const DefaultWaitTime = 5 * time.Minute

// Config configures the Consul Store. Empty fields fall back to the usual
// CONSUL_* environment variables, then to Consul's defaults
// (http://127.0.0.1:8500).
type Config struct {
	// Address is host:port or a URL (http://, https://, unix://).
	Address string
	// Token is the ACL token (needs key read/write on Prefix).
	Token string
	// Prefix is prepended to every key, e.g. "berth/". A trailing '/' is
	// added when missing. Empty stores at the root of the KV store.
	Prefix string
	// Datacenter to use; empty is the agent's own.
	Datacenter string
	// TLS configures HTTPS to the agent.
	TLS TLSConfig
	// CallTimeout bounds each call to Consul (a blocking read: its wait
	// time and this); 0 is backends.DefaultCallTimeout. A call cut short
	// by it fails as unavailable.
	CallTimeout time.Duration
	// ConsistentReads makes every read of the Store (and the read-index
	// request of its replica) use Consul's consistent mode: the leader
	// confirms with a quorum that it still leads, on every request.
	// Otherwise (the default) reads use Consul's default mode: answered by
	// the leader from its state, strongly consistent except in the short
	// window in which a deposed leader may not know it yet.
	ConsistentReads bool
	// ChangeLog makes every write also write, in its transaction, which
	// keys it changed to a log per top-level directory (changelog.go),
	// which a Replica follows instead of re-listing the directory.
	ChangeLog bool
}

// TLSConfig is the TLS client configuration for talking to Consul.
type TLSConfig struct {
	CAFile             string
	CertFile           string
	KeyFile            string
	InsecureSkipVerify bool
	// ServerName is the name to verify the agent's certificate against.
	ServerName string
}

// Store is a backends.Store on Consul KV.
type Store struct {
	client    *api.Client
	kv        *api.KV
	transport *http.Transport
	prefix    string
	logger    hclog.Logger
	timeout   time.Duration
	// consistent: reads in Consul's consistent mode (Config.ConsistentReads).
	consistent bool

	// The key-name watches of the prefixes ListPage reads (keywatch.go).
	wmu     sync.Mutex
	watches map[string]*keyWatch
	wctx    context.Context
	wcancel context.CancelFunc
	wwg     sync.WaitGroup

	// The change log (changelog.go).
	changeLog bool
	lmu       sync.Mutex
	logWrites map[string]int  // writes logged per directory
	trimming  map[string]bool // directories whose log is being trimmed

	// guard announces each write to the cluster's members (read leases,
	// lease.go); nil without them.
	guard *leases
}

var _ backends.Store = (*Store)(nil)

// New makes a Store. It does not contact Consul; use Health for that.
func New(cfg Config, logger hclog.Logger) (*Store, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	logger = logger.Named("consul")
	prefix := strings.TrimLeft(cfg.Prefix, "/")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if escapeKey(prefix) != prefix {
		return nil, fmt.Errorf("consul: prefix %q has characters or segments Consul KV cannot take verbatim (%%, //, leading '.', control characters)", cfg.Prefix)
	}
	ac := api.DefaultConfigWithLogger(logger)
	if cfg.Address != "" {
		ac.Address = cfg.Address
		if strings.HasPrefix(cfg.Address, "http://") {
			// DefaultConfig may have picked https from CONSUL_HTTP_SSL.
			ac.Scheme = "http"
		}
	}
	if cfg.Token != "" {
		ac.Token = cfg.Token
	}
	if cfg.Datacenter != "" {
		ac.Datacenter = cfg.Datacenter
	}
	if t := cfg.TLS; t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify || t.ServerName != "" {
		ac.TLSConfig = api.TLSConfig{
			Address:            t.ServerName,
			CAFile:             t.CAFile,
			CertFile:           t.CertFile,
			KeyFile:            t.KeyFile,
			InsecureSkipVerify: t.InsecureSkipVerify,
		}
		if !strings.Contains(cfg.Address, "://") {
			ac.Scheme = "https"
		}
	}
	client, err := api.NewClient(ac)
	if err != nil {
		return nil, fmt.Errorf("consul: %w", err)
	}
	logger.Debug("consul store configured", "address", ac.Address, "scheme", ac.Scheme, "prefix", prefix, "datacenter", ac.Datacenter)
	wctx, wcancel := context.WithCancel(context.Background())
	return &Store{client: client, kv: client.KV(), transport: ac.Transport, prefix: prefix, logger: logger, wctx: wctx, wcancel: wcancel, timeout: cfg.CallTimeout,
		consistent: cfg.ConsistentReads, changeLog: cfg.ChangeLog}, nil
}

// key maps a Store key to its Consul key.
func (s *Store) key(key string) (string, error) {
	if key == "" {
		return "", backends.ErrInvalidKey
	}
	return s.prefix + escapeKey(key), nil
}

// userKey maps a Consul key back; ok is false for keys this Store did not write.
func (s *Store) userKey(k string) (string, bool) {
	if !strings.HasPrefix(k, s.prefix) {
		return "", false
	}
	return unescapeKey(k[len(s.prefix):])
}

func (s *Store) pair(p *api.KVPair) (*backends.KVPair, bool) {
	k, ok := s.userKey(p.Key)
	if !ok {
		return nil, false
	}
	return &backends.KVPair{Key: k, Value: p.Value, CreateIndex: p.CreateIndex, ModifyIndex: p.ModifyIndex}, true
}

// blocking runs a read, repeating it when Consul answers a blocking query
// early with an unchanged index, until the index moves or WaitTime passes.
func blocking(ctx context.Context, consistent bool, q *backends.QueryOptions, read func(*api.QueryOptions) (*api.QueryMeta, error)) error {
	if q == nil || q.WaitIndex == 0 {
		_, err := read((&api.QueryOptions{RequireConsistent: consistent}).WithContext(ctx))
		return err
	}
	wait := q.WaitTime
	if wait <= 0 {
		wait = DefaultWaitTime
	}
	deadline := time.Now().Add(wait)
	for {
		left := time.Until(deadline)
		if left < time.Millisecond {
			left = time.Millisecond // 0 would mean Consul's default of five minutes
		}
		qm, err := read((&api.QueryOptions{WaitIndex: q.WaitIndex, WaitTime: left}).WithContext(ctx))
		if err != nil {
			return err
		}
		if qm.LastIndex != q.WaitIndex || !time.Now().Before(deadline) {
			return nil
		}
	}
}

// call bounds one call: by the call timeout, plus a blocking read's wait.
func (s *Store) call(ctx context.Context, q *backends.QueryOptions) (context.Context, context.CancelFunc) {
	d := s.timeout
	if d <= 0 {
		d = backends.DefaultCallTimeout
	}
	if q != nil && q.WaitIndex > 0 {
		w := q.WaitTime
		if w <= 0 {
			w = DefaultWaitTime
		}
		d += w + w/16 // Consul adds up to wait/16 of jitter
	}
	return backends.CallContext(ctx, d)
}

// Get reads one key.
func (s *Store) Get(ctx context.Context, key string, q *backends.QueryOptions) (*backends.KVPair, *backends.QueryMeta, error) {
	k, err := s.key(key)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := s.call(ctx, q)
	defer cancel()
	var (
		pair *api.KVPair
		meta *api.QueryMeta
	)
	err = blocking(ctx, s.consistent, q, func(o *api.QueryOptions) (*api.QueryMeta, error) {
		var err error
		pair, meta, err = s.kv.Get(k, o)
		return meta, err
	})
	if err != nil {
		return nil, nil, s.wrap(ctx, "get", key, err)
	}
	qm := &backends.QueryMeta{LastIndex: meta.LastIndex}
	if pair == nil {
		return nil, qm, nil
	}
	p, ok := s.pair(pair)
	if !ok {
		return nil, qm, nil
	}
	return p, qm, nil
}

// List reads every key under prefix, sorted by key.
func (s *Store) List(ctx context.Context, prefix string, q *backends.QueryOptions) ([]*backends.KVPair, *backends.QueryMeta, error) {
	cp := s.prefix + escapePrefix(prefix)
	ctx, cancel := s.call(ctx, q)
	defer cancel()
	var (
		pairs api.KVPairs
		meta  *api.QueryMeta
	)
	err := blocking(ctx, s.consistent, q, func(o *api.QueryOptions) (*api.QueryMeta, error) {
		var err error
		pairs, meta, err = s.kv.List(cp, o)
		return meta, err
	})
	if err != nil {
		return nil, nil, s.wrap(ctx, "list", prefix, err)
	}
	out := make([]*backends.KVPair, 0, len(pairs))
	for _, p := range pairs {
		if strings.HasPrefix(p.Key, s.prefix+logDirName) {
			continue // the change log and other keys of the Store's own
		}
		if bp, ok := s.pair(p); ok {
			out = append(out, bp)
		} else {
			s.logger.Warn("skipping a Consul key this store cannot decode", "key", p.Key)
		}
	}
	// Escaping can change the order ("%25" sorts before "-"): sort by the real key.
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, &backends.QueryMeta{LastIndex: meta.LastIndex}, nil
}

// ListPage reads one page of the keys under prefix after the key after; see
// backends.Store. Consul KV has no start key, so it finds the page's keys
// among the prefix's key names (kept sorted in memory by a blocking query,
// see keywatch.go) and reads the values of the page's keys alone, 64 at a
// time in one read-only transaction each. Its LastIndex is the index of
// the key names.
func (s *Store) ListPage(ctx context.Context, prefix, after string, limit int) ([]*backends.KVPair, *backends.QueryMeta, error) {
	ctx, cancel := s.call(ctx, nil)
	defer cancel()
	names, index, err := s.pageNames(ctx, prefix)
	if err != nil {
		return nil, nil, s.wrap(ctx, "list", prefix, err)
	}
	out, err := s.pageOf(ctx, names, after, limit)
	if err != nil {
		return nil, nil, s.wrap(ctx, "list", prefix, err)
	}
	return out, &backends.QueryMeta{LastIndex: index}, nil
}

// pageOf reads the values of the names after after, up to limit (0: all).
// The names may be behind Consul (a watch's): a name deleted since is left
// out and the next names fill its place, so a page is short only at the
// end of the names.
func (s *Store) pageOf(ctx context.Context, names []keyName, after string, limit int) ([]*backends.KVPair, error) {
	// The names after after: a binary search in the sorted names.
	rest := names[sort.Search(len(names), func(i int) bool { return after == "" || names[i].user > after }):]
	out := make([]*backends.KVPair, 0, min(len(rest), max(limit, 0)))
	for len(rest) > 0 && (limit <= 0 || len(out) < limit) {
		n := len(rest)
		if limit > 0 {
			n = min(n, limit-len(out))
		}
		chunk := rest[:min(n, backends.MaxTxnOps)]
		rest = rest[len(chunk):]
		tops := make(api.TxnOps, 0, len(chunk))
		for _, k := range chunk {
			tops = append(tops, &api.TxnOp{KV: &api.KVTxnOp{Verb: api.KVGet, Key: k.consul}})
		}
		ok, resp, _, err := s.client.Txn().Txn(tops, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return nil, err
		}
		if ok {
			for _, r := range resp.Results {
				if r.KV == nil {
					continue
				}
				if bp, ok := s.pair(r.KV); ok {
					out = append(out, bp)
				}
			}
			continue
		}
		// A key of the chunk was deleted since it was listed (a get of an
		// absent key fails the transaction): read them one by one.
		for _, k := range chunk {
			p, _, err := s.kv.Get(k.consul, (&api.QueryOptions{RequireConsistent: s.consistent}).WithContext(ctx))
			if err != nil {
				return nil, err
			}
			if p == nil {
				continue
			}
			if bp, ok := s.pair(p); ok {
				out = append(out, bp)
			}
		}
	}
	return out, nil
}

// Put writes unconditionally.
func (s *Store) Put(ctx context.Context, p *backends.KVPair) (*backends.WriteMeta, error) {
	wm, err := s.Txn(ctx, []backends.TxnOp{{Verb: backends.TxnSet, Key: p.Key, Value: p.Value}})
	return wm, unwrapTxn(err)
}

// CAS writes p.Value if the key's ModifyIndex is p.ModifyIndex (0 = absent).
func (s *Store) CAS(ctx context.Context, p *backends.KVPair) (bool, *backends.WriteMeta, error) {
	wm, err := s.Txn(ctx, []backends.TxnOp{{Verb: backends.TxnCAS, Key: p.Key, Value: p.Value, Index: p.ModifyIndex}})
	if errors.Is(err, backends.ErrCASConflict) {
		return false, &backends.WriteMeta{}, nil
	}
	if err != nil {
		return false, nil, unwrapTxn(err)
	}
	return true, wm, nil
}

// Delete removes a key; an absent key is fine.
func (s *Store) Delete(ctx context.Context, key string) (*backends.WriteMeta, error) {
	wm, err := s.Txn(ctx, []backends.TxnOp{{Verb: backends.TxnDelete, Key: key}})
	return wm, unwrapTxn(err)
}

// DeleteCAS removes a key if its ModifyIndex is index.
func (s *Store) DeleteCAS(ctx context.Context, key string, index uint64) (bool, *backends.WriteMeta, error) {
	wm, err := s.Txn(ctx, []backends.TxnOp{{Verb: backends.TxnDeleteCAS, Key: key, Index: index}})
	if errors.Is(err, backends.ErrCASConflict) {
		return false, &backends.WriteMeta{}, nil
	}
	if err != nil {
		return false, nil, unwrapTxn(err)
	}
	return true, wm, nil
}

// DeleteTree removes every key under prefix.
func (s *Store) DeleteTree(ctx context.Context, prefix string) (*backends.WriteMeta, error) {
	cp := s.prefix + escapePrefix(prefix)
	ctx, cancel := s.call(ctx, nil)
	defer cancel()
	if s.changeLog {
		return s.deleteTreeLogged(ctx, prefix, cp)
	}
	if _, err := s.kv.DeleteTree(cp, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return nil, s.wrap(ctx, "delete-tree", prefix, err)
	}
	idx, err := s.currentIndex(ctx, cp)
	if err != nil {
		return nil, s.wrap(ctx, "delete-tree", prefix, err)
	}
	return &backends.WriteMeta{Index: idx}, nil
}

// currentIndex is the index Consul reports for a read of the absent key k:
// the KV store's latest index. Consul does not report the index of a delete,
// so deletes report this index, read right after: it is at least the index
// the delete was committed at.
func (s *Store) currentIndex(ctx context.Context, k string) (uint64, error) {
	_, meta, err := s.kv.Get(k, (&api.QueryOptions{RequireConsistent: s.consistent}).WithContext(ctx))
	if err != nil {
		return 0, err
	}
	return meta.LastIndex, nil
}

// Txn applies ops atomically with a Consul KV transaction.
func (s *Store) Txn(ctx context.Context, ops []backends.TxnOp) (*backends.WriteMeta, error) {
	if len(ops) > backends.MaxTxnOps {
		return nil, backends.ErrTxnTooLarge
	}
	if len(ops) == 0 {
		return &backends.WriteMeta{}, nil
	}
	ctx, cancel := s.call(ctx, nil)
	defer cancel()
	tops := make(api.TxnOps, 0, len(ops))
	writes := false
	for i, op := range ops {
		k, err := s.key(op.Key)
		if err != nil {
			return nil, &backends.TxnError{OpIndex: i, Key: op.Key, Err: err}
		}
		kop := &api.KVTxnOp{Key: k}
		switch op.Verb {
		case backends.TxnSet:
			kop.Verb, kop.Value, writes = api.KVSet, nonNil(op.Value), true
		case backends.TxnCAS:
			kop.Verb, kop.Value, kop.Index, writes = api.KVCAS, nonNil(op.Value), op.Index, true
		case backends.TxnDelete:
			kop.Verb = api.KVDelete
		case backends.TxnDeleteCAS:
			kop.Verb, kop.Index = api.KVDeleteCAS, op.Index
		case backends.TxnCheckIndex:
			if op.Index == 0 {
				kop.Verb = api.KVCheckNotExists
			} else {
				kop.Verb, kop.Index = api.KVCheckIndex, op.Index
			}
		case backends.TxnCheckNotExists:
			kop.Verb = api.KVCheckNotExists
		default:
			return nil, &backends.TxnError{OpIndex: i, Key: op.Key, Err: fmt.Errorf("unknown transaction verb %q", op.Verb)}
		}
		tops = append(tops, &api.TxnOp{KV: kop})
	}
	var logged []string
	if s.changeLog {
		var lops api.TxnOps
		lops, logged = s.logOps(ops)
		tops = append(tops, lops...)
	}
	ok, resp, g, err := s.guardedTxn(ctx, tops, txnKeys(ops))
	if err != nil {
		return nil, s.wrap(ctx, "txn", ops[0].Key, err)
	}
	if !ok {
		if resp != nil && len(resp.Errors) > 0 {
			e := resp.Errors[0]
			key := ""
			if e.OpIndex >= 0 && e.OpIndex < len(ops) {
				key = ops[e.OpIndex].Key
			}
			return nil, &backends.TxnError{OpIndex: e.OpIndex, Key: key, Err: txnFailure(e.What)}
		}
		return nil, &backends.TxnError{OpIndex: 0, Key: ops[0].Key, Err: backends.ErrCASConflict}
	}
	var idx uint64
	if writes {
		// A write's result carries the transaction's commit index, which is
		// above the index of anything a check returned. (The change log's
		// results are not the caller's: a set of a key to its value does
		// not move its index.)
		for _, r := range resp.Results[:min(len(ops), len(resp.Results))] {
			if r.KV != nil && r.KV.ModifyIndex > idx {
				idx = r.KV.ModifyIndex
			}
		}
	}
	if writes {
		s.noteWrites(ops, idx)
	}
	if len(logged) > 0 {
		s.noteLogged(logged)
	}
	if g != nil {
		// The change log's entries are new keys: their index is the commit's.
		var c uint64
		for _, r := range resp.Results {
			if r.KV != nil {
				c = max(c, r.KV.ModifyIndex)
			}
		}
		g.end(c, committed)
	}
	if idx == 0 {
		k, _ := s.key(ops[0].Key)
		if idx, err = s.currentIndex(ctx, k); err != nil {
			return nil, s.wrap(ctx, "txn", ops[0].Key, err)
		}
	}
	return &backends.WriteMeta{Index: idx}, nil
}

// guardedTxn sends a transaction; with read leases it is announced to the
// cluster's members first and carries the epoch check, and is made again
// (announced anew) when that check alone failed. g is the announcement of
// a committed transaction, for its caller to end with the commit index.
func (s *Store) guardedTxn(ctx context.Context, tops api.TxnOps, fp footprint) (ok bool, resp *api.TxnResponse, g *guarded, err error) {
	if s.guard == nil || fp.empty() {
		ok, resp, _, err = s.client.Txn().Txn(tops, (&api.QueryOptions{}).WithContext(ctx))
		return ok, resp, nil, err
	}
	for attempt := 0; ; attempt++ {
		g, err = s.guard.begin(ctx, fp)
		if err != nil {
			return false, nil, nil, err
		}
		all := append(tops[:len(tops):len(tops)], g.ops...)
		ok, resp, _, err = s.client.Txn().Txn(all, (&api.QueryOptions{}).WithContext(ctx))
		switch {
		case err != nil:
			g.end(0, unknown)
			return false, nil, nil, err
		case ok:
			return true, resp, g, nil
		}
		g.end(0, rolledBack)
		epochOnly := resp != nil && len(resp.Errors) > 0
		if resp != nil {
			for _, e := range resp.Errors {
				if e.OpIndex < len(tops) {
					epochOnly = false
				}
			}
		}
		if !epochOnly {
			if resp != nil {
				// The caller's errors only, with their indexes.
				errs := resp.Errors[:0:0]
				for _, e := range resp.Errors {
					if e.OpIndex < len(tops) {
						errs = append(errs, e)
					}
				}
				resp = &api.TxnResponse{Results: resp.Results, Errors: errs}
			}
			return false, resp, nil, nil
		}
		if attempt >= 8 {
			return false, nil, nil, &backends.UnavailableError{Backend: "consul", Role: "store", Op: "txn", Reason: "the cluster's members changed during every attempt", Err: errors.New("epoch changed")}
		}
		if err := s.guard.refreshView(ctx); err != nil {
			return false, nil, nil, err
		}
	}
}

// txnFailure maps the reason Consul gives for rolling back a transaction.
// Failed preconditions ("index is stale", "current modify index ... != ...",
// "key ... exists", "key ... doesn't exist") are CAS conflicts.
func txnFailure(what string) error {
	w := strings.ToLower(what)
	for _, s := range []string{"stale", "modify index", "exists", "doesn't exist", "does not exist"} {
		if strings.Contains(w, s) {
			return fmt.Errorf("%w: %s", backends.ErrCASConflict, what)
		}
	}
	return errors.New(what)
}

// unwrapTxn turns the TxnError of a one-operation transaction into a plain error.
func unwrapTxn(err error) error {
	var te *backends.TxnError
	if errors.As(err, &te) {
		return te.Err
	}
	return err
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// wrap marks transport failures, server errors and calls cut short by
// the call timeout (ctx is the call's context) as a
// *backends.UnavailableError.
func (s *Store) wrap(ctx context.Context, op, key string, err error) error {
	var (
		se api.StatusError
		ue *url.Error
		ne net.Error
	)
	unavailable := func(reason string) error {
		return &backends.UnavailableError{Backend: "consul", Role: "store", Op: fmt.Sprintf("%s %q", op, key), Reason: reason, Err: err}
	}
	switch {
	case backends.NoAnswer(ctx):
		// Cut short by the call deadline: not the caller's deadline (the
		// cause is kept as text, so that it does not match it).
		reason := "no answer within " + s.callTimeout().String()
		err = errors.New(reason + ": " + err.Error())
		return unavailable(reason)
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("consul %s %q: %w", op, key, err)
	case errors.As(err, &se) && se.Code < 500 && se.Code != http.StatusTooManyRequests:
		return fmt.Errorf("consul %s %q: %w", op, key, err)
	case errors.As(err, &se):
		return unavailable(fmt.Sprintf("consul answered %d %s", se.Code, strings.TrimSpace(se.Body)))
	case errors.As(err, &ue), errors.As(err, &ne):
		return unavailable(backends.Reason(err))
	case strings.Contains(err.Error(), "No cluster leader"), strings.Contains(err.Error(), "rpc error"):
		return unavailable(backends.Reason(err))
	}
	return fmt.Errorf("consul %s %q: %w", op, key, err)
}

func (s *Store) callTimeout() time.Duration {
	if s.timeout <= 0 {
		return backends.DefaultCallTimeout
	}
	return s.timeout
}

// Health checks that the agent answers, the cluster has a leader and the
// token may read the prefix.
func (s *Store) Health(ctx context.Context) error {
	ctx, cancel := s.call(ctx, nil)
	defer cancel()
	leader, err := s.client.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return s.wrap(ctx, "health", "status/leader", err)
	}
	if leader == "" {
		return &backends.UnavailableError{Backend: "consul", Role: "store", Op: "health", Reason: "no cluster leader", Err: errors.New("no cluster leader")}
	}
	if _, _, err := s.kv.Get(s.prefix+"%health", (&api.QueryOptions{}).WithContext(ctx)); err != nil {
		return s.wrap(ctx, "health", s.prefix, err)
	}
	return nil
}

// Close releases idle connections.
func (s *Store) Close() error {
	s.stopKeyWatches()
	if s.transport != nil {
		s.transport.CloseIdleConnections()
	}
	return nil
}
