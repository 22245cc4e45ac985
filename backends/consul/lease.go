package consul

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/berthpaas/berth/backends"
)

// Read leases: reads served from memory with no request to Consul, still
// linearizable across the servers on one prefix (Replica.Join).
//
// The read-index scheme (replica.go) asks Consul for its index before every
// read, because a server cannot otherwise know that no other server has
// committed a write it has not seen yet. With leases the servers tell each
// other instead, before they write, the way Chubby's and Spanner's leases do:
//
//   - Each server is a member: <prefix>%members/m/<id>, locked by a Consul
//     session of its own (TTL sessionTTL, deleted with the session), whose
//     value is the address of its peer listener and a random token a peer
//     must present. It renews the session every leaseTTL/3; its lease runs
//     leaseTTL from the start of its last successful renewal. Joining writes
//     the member key and <prefix>%members/epoch in one transaction, at
//     index M; the member answers from memory only once each shard is known
//     complete up to M.
//   - A write (every transaction of the Store) first registers an intent,
//     naming the directories (shards) it changes, with every other member of
//     its members view (and with its own replica), each acknowledging before
//     the write is sent; its transaction carries a check of the epoch key's
//     index as that view read it, so a write whose view is out of date (a
//     member joined or was removed since) is rolled back and made again.
//     After the commit at index W it tells the members "done at W".
//   - A member answers a read from memory while its lease holds, no intent is
//     open on the read's directory, the shard has applied every write index
//     it was told of for it, and the shard is complete up to its join index.
//     Otherwise the read takes the read-index path.
//   - A member a writer cannot reach in intentTimeout has its session
//     destroyed by the writer, which bumps the epoch and waits leaseTTL
//     (plus a margin) before it writes: by then the member's lease has run
//     out (its renewals fail with the session gone), so it no longer answers
//     from memory; it joins again as a new member.
//   - An intent not closed within intentTTL (its writer died or was cut off
//     mid-write) is closed by the member holding it: it bumps the epoch (so
//     the writer's transaction, if still on its way, is rolled back) and
//     waits for its shards to be complete up to the bump's index.
//
// So a read that begins after a write finished sees it on every server, and
// a write's effect is never seen on one server and missed afterwards on
// another. Writes that bypass Berth (consul kv put) are not announced: the
// replica sees them within one confirmation round (confirmEvery, one list
// of each directory's one name a second).
//
// Reads of locks/ (written by the session locks, outside the Store's
// transactions) always take the read-index path.
const (
	leaseTTL      = 3 * time.Second
	leaseMargin   = 500 * time.Millisecond
	sessionTTL    = 10 * time.Second // Consul's least TTL
	intentTimeout = 2 * time.Second
	confirmEvery  = time.Second
	membersDir    = "%members/"
	epochKey      = "%members/epoch"
	memberDir     = "%members/m/"
	// lockedDir is the directory whose keys are written outside the Store's
	// transactions (session locks and their heartbeats).
	lockedDir = "locks"
)

// LeaseOptions configure Replica.Join.
type LeaseOptions struct {
	// Listen is the address of the peer listener ("host:0" picks a port).
	Listen string
	// Advertise is the address peers dial (default: the listener's).
	Advertise string
	// Now and the durations are for tests (zero: the defaults above).
	LeaseTTL, IntentTimeout, IntentTTL time.Duration
}

type memberInfo struct {
	Addr  string `json:"addr"`
	Token string `json:"token"`
}

type peer struct {
	id      string
	addr    string
	token   string
	session string
}

// leases is a Replica's membership; the fields under "guarded by r.mu" are
// read with the shard views, so a read checks them and takes its view at
// one moment.
type leases struct {
	r       *Replica
	id      string
	token   string
	ln      net.Listener
	srv     *http.Server
	advert  string
	client  *http.Client
	ttl     time.Duration
	rpcWait time.Duration
	openTTL time.Duration
	stop    chan struct{}
	ctx     context.Context // ends at close
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	// guarded by r.mu
	joined     bool
	session    string
	until      time.Time // the lease: reads from memory before it
	joinIndex  uint64
	openKeys   map[string]int // open intents (received and own) per Store key
	openTrees  map[string]int // and per prefix (a DeleteTree's)
	open       map[string]*intent
	onLeaseOff func() // tests

	// tests: a member that stops answering (as under SIGSTOP): its peer
	// listener holds every message, and it renews and joins nothing.
	frozen atomic.Bool

	// lost tells the renewal that the member key is gone: join again.
	lost chan struct{}

	// the members view, guarded by vmu
	vmu   sync.Mutex
	peers map[string]peer
	epoch uint64 // ModifyIndex of the epoch key in the view (0: absent)
	vidx  uint64 // the index the view was listed at
	vok   bool
}

// footprint is what a write changes: Store keys, and prefixes (a
// DeleteTree's; "" is every key).
type footprint struct {
	Keys  []string `json:"keys,omitempty"`
	Trees []string `json:"trees,omitempty"`
}

func (f footprint) empty() bool { return len(f.Keys) == 0 && len(f.Trees) == 0 }

// first names the footprint in errors.
func (f footprint) first() string {
	if len(f.Keys) > 0 {
		return f.Keys[0]
	}
	if len(f.Trees) > 0 {
		return f.Trees[0]
	}
	return ""
}

type intent struct {
	fp  footprint
	own bool
}

type intentMsg struct {
	From  string `json:"from"`
	Token string `json:"token"`
	ID    string `json:"id"`
	footprint
	Index uint64 `json:"index,omitempty"` // done: the commit index; 0: rolled back
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Join makes the replica a member of its prefix's cluster and, once it has
// joined, answers reads from memory under a lease (see above). It starts a
// peer listener on o.Listen. Writes through the Store announce themselves
// to the members from the moment Join returns. Close ends the membership.
func (r *Replica) Join(o LeaseOptions) error {
	if r.single || !r.logged {
		return errors.New("consul: read leases need the change log and the sharded replica")
	}
	if r.lease != nil {
		return errors.New("consul: already joined")
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("consul: peer listener: %w", err)
	}
	l := &leases{r: r, id: randHex(8), token: randHex(24), ln: ln, advert: o.Advertise, stop: make(chan struct{}), lost: make(chan struct{}, 1),
		ttl: o.LeaseTTL, rpcWait: o.IntentTimeout, openTTL: o.IntentTTL, openKeys: map[string]int{}, openTrees: map[string]int{}, open: map[string]*intent{}}
	l.ctx, l.cancel = context.WithCancel(r.ctx)
	if l.advert == "" {
		l.advert = ln.Addr().String()
	}
	if l.ttl <= 0 {
		l.ttl = leaseTTL
	}
	if l.rpcWait <= 0 {
		l.rpcWait = intentTimeout
	}
	if l.openTTL <= 0 {
		l.openTTL = r.callTimeout() + 5*time.Second
	}
	l.client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: time.Minute}, Timeout: l.rpcWait}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /intent", l.serveIntent)
	mux.HandleFunc("POST /done", l.serveDone)
	l.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	r.mu.Lock()
	r.lease = l
	r.mu.Unlock()
	r.Store.guard = l
	l.wg.Add(3)
	go func() { defer l.wg.Done(); _ = l.srv.Serve(ln) }()
	go l.watchMembers()
	go l.run()
	return nil
}

// Member reports the replica's member id and whether it now answers from memory under a lease.
func (r *Replica) Member() (id string, leased bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lease == nil {
		return "", false
	}
	return r.lease.id, r.lease.joined && time.Now().Before(r.lease.until)
}

func (l *leases) close() {
	l.cancel()
	close(l.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = l.srv.Shutdown(ctx)
	cancel()
	l.wg.Wait()
	l.r.mu.Lock()
	s := l.session
	l.joined, l.session = false, ""
	l.r.mu.Unlock()
	if s != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, _ = l.r.client.Session().Destroy(s, (&api.WriteOptions{}).WithContext(ctx))
		cancel()
	}
	l.client.CloseIdleConnections()
}

func (l *leases) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-l.stop:
		return false
	case <-t.C:
		return true
	}
}

// run joins, renews the session (the lease) and joins again when the
// session is lost; it also has every shard confirmed each confirmEvery, so
// writes that bypass Berth are seen.
func (l *leases) run() {
	defer l.wg.Done()
	r := l.r
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		if l.frozen.Load() {
			if !l.sleep(10 * time.Millisecond) {
				return
			}
			continue
		}
		if err := l.join(); err != nil {
			r.logger.Warn("joining the cluster's read leases failed; reads take the read-index path meanwhile", "error", err, "retry_in", backoff)
			if !l.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		l.renew()
	}
}

func (l *leases) memberKey() string { return l.r.prefix + memberDir + l.id }

// join creates a session, takes the member key and bumps the epoch in one
// transaction, and marks every shard as needing to be complete up to it.
func (l *leases) join() error {
	r := l.r
	ctx, cancel := backends.CallContext(l.ctx, r.callTimeout())
	defer cancel()
	start := time.Now()
	sid, _, err := r.client.Session().Create(&api.SessionEntry{Name: "berth member " + l.id, TTL: sessionTTL.String(), LockDelay: time.Millisecond, Behavior: api.SessionBehaviorDelete},
		(&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return err
	}
	val, _ := json.Marshal(memberInfo{Addr: l.advert, Token: l.token})
	ops := api.TxnOps{
		{KV: &api.KVTxnOp{Verb: api.KVLock, Key: l.memberKey(), Value: val, Session: sid}},
		{KV: &api.KVTxnOp{Verb: api.KVSet, Key: r.prefix + epochKey, Value: []byte(l.id + " " + randHex(6))}},
	}
	ok, resp, _, err := r.client.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
	if err == nil && !ok {
		err = fmt.Errorf("member transaction rolled back: %v", resp.Errors)
	}
	if err != nil {
		_, _ = r.client.Session().Destroy(sid, (&api.WriteOptions{}).WithContext(ctx))
		return err
	}
	var m uint64
	for _, res := range resp.Results {
		if res.KV != nil {
			m = max(m, res.KV.ModifyIndex)
		}
	}
	r.mu.Lock()
	l.session, l.joinIndex, l.joined = sid, m, true
	l.until = start.Add(l.ttl)
	r.maxGlobal = max(r.maxGlobal, m)
	shards := make([]*shard, 0, len(r.shards))
	for _, sh := range r.shards {
		sh.need = max(sh.need, m)
		shards = append(shards, sh)
	}
	r.mu.Unlock()
	for _, sh := range shards {
		r.confirmLater(sh)
	}
	r.logger.Debug("joined the cluster's read leases", "member", l.id, "index", m)
	return nil
}

// renew renews the session every ttl/3 until it is lost or the replica closes.
func (l *leases) renew() {
	r := l.r
	tick := time.NewTicker(l.ttl / 3)
	defer tick.Stop()
	confirm := time.NewTicker(confirmEvery)
	defer confirm.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.lost:
			l.r.mu.Lock()
			sid := l.session
			l.session = ""
			l.r.mu.Unlock()
			ctx, cancel := backends.CallContext(l.ctx, r.callTimeout())
			_, _ = r.client.Session().Destroy(sid, (&api.WriteOptions{}).WithContext(ctx))
			cancel()
			l.leave("its member key is gone")
			return
		case <-confirm.C:
			r.mu.Lock()
			shards := make([]*shard, 0, len(r.shards))
			for _, sh := range r.shards {
				shards = append(shards, sh)
			}
			r.mu.Unlock()
			for _, sh := range shards {
				r.confirmLater(sh)
			}
		case <-tick.C:
			if l.frozen.Load() {
				continue
			}
			r.mu.Lock()
			sid := l.session
			r.mu.Unlock()
			start := time.Now()
			ctx, cancel := backends.CallContext(l.ctx, min(r.callTimeout(), l.ttl))
			entry, _, err := r.client.Session().Renew(sid, (&api.WriteOptions{}).WithContext(ctx))
			cancel()
			switch {
			case err != nil:
				// Consul does not answer: the lease runs out by itself.
				r.logger.Debug("renewing the member session failed", "error", err)
			case entry == nil:
				l.leave("its session is gone")
				return
			default:
				r.mu.Lock()
				if l.session == sid {
					l.until = start.Add(l.ttl)
				}
				r.mu.Unlock()
			}
		}
	}
}

// leave ends the lease at once (the session is gone: another member removed
// this one); run joins again.
func (l *leases) leave(why string) {
	l.r.mu.Lock()
	l.joined, l.until = false, time.Time{}
	f := l.onLeaseOff
	l.r.mu.Unlock()
	l.r.logger.Info("left the cluster's read leases; joining again", "member", l.id, "why", why)
	if f != nil {
		f()
	}
}

// watchMembers keeps the members view with blocking lists of %members/.
func (l *leases) watchMembers() {
	defer l.wg.Done()
	r := l.r
	var idx uint64
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-l.stop:
			return
		default:
		}
		ctx, cancel := context.WithCancel(l.ctx)
		pairs, meta, err := r.kv.List(r.prefix+membersDir, (&api.QueryOptions{WaitIndex: idx, WaitTime: DefaultWaitTime}).WithContext(ctx))
		cancel()
		if err != nil {
			if !l.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		if meta.LastIndex < idx {
			idx = 0
		} else {
			idx = meta.LastIndex
		}
		l.setView(pairs, meta.LastIndex)
	}
}

func (l *leases) setView(pairs api.KVPairs, index uint64) {
	peers := map[string]peer{}
	var epoch uint64
	self := false
	l.r.mu.Lock()
	sid, joinedAt := l.session, l.joinIndex
	l.r.mu.Unlock()
	for _, p := range pairs {
		k := strings.TrimPrefix(p.Key, l.r.prefix)
		switch {
		case k == epochKey:
			epoch = p.ModifyIndex
		case strings.HasPrefix(k, memberDir) && p.Session != "":
			id := k[len(memberDir):]
			if id == l.id && p.Session == sid {
				self = true
			}
			var mi memberInfo
			if id == l.id || json.Unmarshal(p.Value, &mi) != nil || mi.Addr == "" {
				continue
			}
			peers[id] = peer{id: id, addr: mi.Addr, token: mi.Token, session: p.Session}
		}
	}
	l.vmu.Lock()
	if index >= l.vidx || !l.vok {
		l.peers, l.epoch, l.vidx, l.vok = peers, epoch, index, true
	}
	l.vmu.Unlock()
	if !self && sid != "" && index >= joinedAt {
		// The member key is gone (deleted by hand, or the session was
		// destroyed): the writers no longer announce to this server.
		l.r.mu.Lock()
		gone := l.session == sid && l.joined
		if gone {
			l.joined, l.until = false, time.Time{}
		}
		l.r.mu.Unlock()
		if gone {
			l.r.logger.Info("this server's member key is gone; it answers no read from memory until it has joined again", "member", l.id)
			select {
			case l.lost <- struct{}{}:
			default:
			}
		}
	}
}

// refreshView lists the members now.
func (l *leases) refreshView(ctx context.Context) error {
	pairs, meta, err := l.r.kv.List(l.r.prefix+membersDir, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return err
	}
	l.vmu.Lock()
	l.vok = false
	l.vmu.Unlock()
	l.setView(pairs, meta.LastIndex)
	return nil
}

// guarded is one write's announcement: the operation the transaction
// carries, and what to do once its outcome is known.
type guarded struct {
	ops     api.TxnOps
	l       *leases
	id      string
	peers   []peer
	settled bool
}

// Write outcomes for guarded.end.
const (
	committed = iota
	rolledBack
	unknown // the transaction may or may not have been applied
)

// begin announces a write of footprint fp: an intent with every member of
// the view (and this replica), then the epoch check for the transaction.
func (l *leases) begin(ctx context.Context, fp footprint) (*guarded, error) {
	r := l.r
	for attempt := 0; ; attempt++ {
		l.vmu.Lock()
		ok := l.vok
		l.vmu.Unlock()
		if !ok {
			if err := l.refreshView(ctx); err != nil {
				return nil, r.wrap(ctx, "members", membersDir, err)
			}
		}
		l.vmu.Lock()
		peers := make([]peer, 0, len(l.peers))
		for _, p := range l.peers {
			peers = append(peers, p)
		}
		epoch := l.epoch
		l.vmu.Unlock()
		g := &guarded{l: l, id: randHex(10), peers: peers}
		l.openIntent(g.id, fp, true)
		failed := l.announce(ctx, peers, intentMsg{From: l.id, ID: g.id, footprint: fp})
		if len(failed) == 0 {
			verb := api.KVCheckIndex
			if epoch == 0 {
				verb = api.KVCheckNotExists
			}
			g.ops = api.TxnOps{{KV: &api.KVTxnOp{Verb: verb, Key: r.prefix + epochKey, Index: epoch}}}
			return g, nil
		}
		g.end(0, rolledBack)
		if err := ctx.Err(); err != nil {
			// The caller gave up (or ran out of time): that says nothing
			// of the members.
			return nil, r.wrap(ctx, "write", fp.first(), err)
		}
		// Members that did not acknowledge may still answer from memory:
		// remove them, let their leases run out, and start again.
		if err := l.evict(ctx, failed); err != nil {
			return nil, err
		}
		if attempt >= 3 {
			return nil, &backends.UnavailableError{Backend: "consul", Role: "store", Op: "write", Reason: "cluster members did not acknowledge the write's intent", Err: errors.New("members unreachable")}
		}
	}
}

// announce sends msg to every peer, each with its own token, in parallel;
// it returns those that did not acknowledge.
func (l *leases) announce(ctx context.Context, peers []peer, msg intentMsg) []peer {
	path := "/intent"
	if msg.empty() {
		path = "/done"
	}
	var (
		mu     sync.Mutex
		failed []peer
		wg     sync.WaitGroup
	)
	for _, p := range peers {
		wg.Add(1)
		go func(p peer) {
			defer wg.Done()
			m := msg
			m.Token = p.token
			if err := l.post(ctx, p.addr, path, m); err != nil {
				l.r.logger.Debug("a cluster member did not acknowledge", "member", p.id, "addr", p.addr, "what", path, "error", err)
				mu.Lock()
				failed = append(failed, p)
				mu.Unlock()
			}
		}(p)
	}
	wg.Wait()
	return failed
}

func (l *leases) post(ctx context.Context, addr, path string, m intentMsg) error {
	body, _ := json.Marshal(m)
	ctx, cancel := context.WithTimeout(ctx, l.rpcWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("answered %d", resp.StatusCode)
	}
	return nil
}

// evict removes members that did not acknowledge: their sessions are
// destroyed (their member keys go with them), the epoch is bumped, and the
// call waits until their leases have run out.
func (l *leases) evict(ctx context.Context, failed []peer) error {
	r := l.r
	for _, p := range failed {
		r.logger.Warn("removing a cluster member that did not acknowledge a write; it joins again when it can", "member", p.id, "addr", p.addr)
		if _, err := r.client.Session().Destroy(p.session, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
			return r.wrap(ctx, "members", membersDir, err)
		}
	}
	since := time.Now()
	if _, err := l.bump(ctx); err != nil {
		return r.wrap(ctx, "members", epochKey, err)
	}
	if err := l.refreshView(ctx); err != nil {
		return r.wrap(ctx, "members", membersDir, err)
	}
	wait := time.Until(since.Add(l.ttl + l.ttl/10 + leaseMargin))
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return r.wrap(ctx, "members", membersDir, ctx.Err())
	}
}

// bump writes the epoch key; every write prepared with an older view is
// then rolled back. It returns the bump's index.
func (l *leases) bump(ctx context.Context) (uint64, error) {
	r := l.r
	ok, resp, _, err := r.client.Txn().Txn(api.TxnOps{{KV: &api.KVTxnOp{Verb: api.KVSet, Key: r.prefix + epochKey, Value: []byte(l.id + " " + randHex(6))}}}, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return 0, err
	}
	if !ok || len(resp.Results) == 0 || resp.Results[0].KV == nil {
		return 0, errors.New("epoch transaction rolled back")
	}
	return resp.Results[0].KV.ModifyIndex, nil
}

// end settles the write: committed at index, rolled back, or unknown.
func (g *guarded) end(index uint64, outcome int) {
	if g == nil || g.settled {
		return
	}
	g.settled = true
	l, r := g.l, g.l.r
	switch outcome {
	case committed:
		l.closeIntent(g.id, index)
	case rolledBack:
		l.closeIntent(g.id, 0)
	default:
		// The members keep their intents until intentTTL and then close
		// them by bumping the epoch; this replica does so now.
		go l.expire(g.id)
		return
	}
	if len(g.peers) == 0 {
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		ctx, cancel := context.WithTimeout(r.ctx, l.rpcWait)
		defer cancel()
		l.announce(ctx, g.peers, intentMsg{From: l.id, ID: g.id, Index: index})
	}()
}

// openIntent registers an intent (r.mu).
func (l *leases) openIntent(id string, fp footprint, own bool) {
	r := l.r
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := l.open[id]; ok {
		return
	}
	l.open[id] = &intent{fp: fp, own: own}
	for _, k := range fp.Keys {
		l.openKeys[k]++
	}
	for _, t := range fp.Trees {
		l.openTrees[t]++
	}
	if !own {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			t := time.NewTimer(l.openTTL)
			defer t.Stop()
			select {
			case <-t.C:
				l.expire(id)
			case <-r.ctx.Done():
			}
		}()
	}
}

// closeIntent closes an intent whose write committed at index (0: rolled
// back): the shards must have applied index to answer its keys from memory.
func (l *leases) closeIntent(id string, index uint64) {
	r := l.r
	r.mu.Lock()
	defer r.mu.Unlock()
	in, ok := l.open[id]
	if !ok {
		return
	}
	delete(l.open, id)
	l.raise(in.fp, index, false)
}

// raise drops an intent of footprint fp and raises what the shards of its
// keys need: applied >= index for its keys (a write's commit), or with
// complete, complete >= index (r.mu held).
func (l *leases) raise(fp footprint, index uint64, complete bool) {
	r := l.r
	for _, k := range fp.Keys {
		if l.openKeys[k]--; l.openKeys[k] <= 0 {
			delete(l.openKeys, k)
		}
		sh := r.shards[keyShardName(k)]
		if index == 0 || sh == nil {
			continue
		}
		if complete {
			sh.need = max(sh.need, index)
		} else {
			if sh.fences == nil {
				sh.fences = map[string]uint64{}
			}
			sh.fences[k] = max(sh.fences[k], index)
		}
	}
	for _, t := range fp.Trees {
		if l.openTrees[t]--; l.openTrees[t] <= 0 {
			delete(l.openTrees, t)
		}
		if index == 0 {
			continue
		}
		esc := escapePrefix(t)
		for name, sh := range r.shards {
			if strings.Contains(esc, "/") && name != r.shardName(esc) {
				continue
			}
			if complete {
				sh.need = max(sh.need, index)
			} else {
				sh.fence = max(sh.fence, index)
			}
		}
	}
	r.maxGlobal = max(r.maxGlobal, index)
}

// expire closes an intent whose write's outcome is not known: the epoch is
// bumped (so the write, if still on its way, is rolled back) and the
// intent's shards must be complete up to the bump.
func (l *leases) expire(id string) {
	r := l.r
	backoff := 100 * time.Millisecond
	for {
		r.mu.Lock()
		_, ok := l.open[id]
		r.mu.Unlock()
		if !ok || r.ctx.Err() != nil {
			return
		}
		ctx, cancel := backends.CallContext(r.ctx, r.callTimeout())
		idx, err := l.bump(ctx)
		cancel()
		if err == nil {
			r.mu.Lock()
			in, ok := l.open[id]
			if ok {
				delete(l.open, id)
				l.raise(in.fp, idx, true)
			}
			r.mu.Unlock()
			r.logger.Debug("closed an intent whose write did not report", "intent", id, "epoch_index", idx)
			return
		}
		select {
		case <-r.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (l *leases) readMsg(w http.ResponseWriter, req *http.Request) (intentMsg, bool) {
	var m intentMsg
	if err := json.NewDecoder(io.LimitReader(req.Body, 64<<10)).Decode(&m); err != nil || m.ID == "" {
		http.Error(w, "bad message", http.StatusBadRequest)
		return m, false
	}
	if subtle.ConstantTimeCompare([]byte(m.Token), []byte(l.token)) != 1 {
		http.Error(w, "wrong token", http.StatusForbidden)
		return m, false
	}
	return m, true
}

func (l *leases) holdWhileFrozen(req *http.Request) {
	for l.frozen.Load() && req.Context().Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
}

func (l *leases) serveIntent(w http.ResponseWriter, req *http.Request) {
	l.holdWhileFrozen(req)
	m, ok := l.readMsg(w, req)
	if !ok {
		return
	}
	if req.Context().Err() != nil {
		return // the writer gave up on this member: it evicts it
	}
	if m.empty() || len(m.Keys)+len(m.Trees) > 4*backends.MaxTxnOps {
		http.Error(w, "no keys, or too many", http.StatusBadRequest)
		return
	}
	l.openIntent(m.From+"/"+m.ID, m.footprint, false)
	w.WriteHeader(http.StatusNoContent)
}

func (l *leases) serveDone(w http.ResponseWriter, req *http.Request) {
	l.holdWhileFrozen(req)
	m, ok := l.readMsg(w, req)
	if !ok {
		return
	}
	l.closeIntent(m.From+"/"+m.ID, m.Index)
	w.WriteHeader(http.StatusNoContent)
}

// fromMemory reports whether every read of shard sh may be answered from
// memory under the lease (r.mu held).
func (l *leases) fromMemory(sh *shard, now time.Time) bool {
	return l.state(sh, "", true, now) == memOK
}

// What a read may do under the lease.
const (
	memNo     = iota // no lease, or the shard is not known complete: the read-index path
	memOK            // from memory
	memIntent        // a write to what it reads is in flight: from Consul directly
	memFence         // the shard has not yet applied a write to it this server was told of: wait for its watch
)

// overlaps reports whether key k (tree: every key under prefix k) and
// prefix t may share a key.
func overlaps(k string, tree bool, t string) bool {
	return strings.HasPrefix(k, t) || (tree && strings.HasPrefix(t, k))
}

// under reports whether key x is k (tree: is under prefix k).
func under(x, k string, tree bool) bool {
	if tree {
		return strings.HasPrefix(x, k)
	}
	return x == k
}

// state is what a read of key k (tree: of the keys under prefix k) in
// shard sh may do under the lease (r.mu held).
func (l *leases) state(sh *shard, k string, tree bool, now time.Time) int {
	if !l.joined || !now.Before(l.until) || sh.name == lockedDir || sh.applied == 0 || sh.watchErr != nil ||
		sh.complete < sh.need || sh.complete < l.joinIndex {
		return memNo
	}
	for t := range l.openTrees {
		if overlaps(k, tree, t) {
			return memIntent
		}
	}
	if !tree {
		if l.openKeys[k] > 0 {
			return memIntent
		}
	} else {
		for x := range l.openKeys {
			if strings.HasPrefix(x, k) {
				return memIntent
			}
		}
	}
	if sh.applied < sh.fence {
		return memFence
	}
	if !tree {
		if sh.applied < sh.fences[k] {
			return memFence
		}
		return memOK
	}
	for x, w := range sh.fences {
		if sh.applied < w && strings.HasPrefix(x, k) {
			return memFence
		}
	}
	return memOK
}

// txnKeys is the footprint of a transaction: the keys its writes change.
func txnKeys(ops []backends.TxnOp) footprint {
	var fp footprint
	for _, op := range ops {
		switch op.Verb {
		case backends.TxnSet, backends.TxnCAS, backends.TxnDelete, backends.TxnDeleteCAS:
			if !slices.Contains(fp.Keys, op.Key) {
				fp.Keys = append(fp.Keys, op.Key)
			}
		}
	}
	return fp
}

// Leased reports whether the replica now answers reads of every directory
// it follows from memory (locks/ aside); those that may not are confirmed
// in the background, so that asking again soon may say yes.
func (r *Replica) Leased() bool {
	r.mu.Lock()
	l := r.lease
	var behind []*shard
	now := time.Now()
	for _, sh := range r.shards {
		if l == nil || (sh.name != lockedDir && !l.fromMemory(sh, now)) {
			behind = append(behind, sh)
		}
	}
	r.mu.Unlock()
	if l == nil {
		return false
	}
	for _, sh := range behind {
		r.confirmLater(sh)
	}
	return len(behind) == 0
}

// fenceWait bounds how long a read waits for its shard's watch to apply a
// write it was told of before it reads Consul directly.
const fenceWait = 50 * time.Millisecond

// waitFence waits (at most fenceWait) until shard sh may be read from
// memory again under the lease; false when it may not.
func (r *Replica) waitFence(ctx context.Context, sh *shard, k string, tree bool) (view, bool) {
	deadline := time.Now().Add(fenceWait)
	for {
		r.mu.Lock()
		st := memNo
		if r.lease != nil {
			st = r.lease.state(sh, k, tree, time.Now())
		}
		v, ch := view{sh.tree, sh.tombs, sh.applied, sh.floor}, sh.changed
		r.mu.Unlock()
		switch {
		case st == memOK:
			return v, true
		case st != memFence || !waitChange(ctx, ch, deadline):
			return view{}, false
		}
	}
}
