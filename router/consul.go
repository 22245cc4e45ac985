package router

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
)

// ConsulConfig configures a Consul Source.
type ConsulConfig struct {
	Client *api.Client
	// TagsPrefix is the routing tags' prefix (the nomad block's
	// consul_tags_prefix; default "urlprefix-"): the Nomad scheduler tags
	// an app's web service TagsPrefix+<host>+"/" for each of its routes,
	// custom domains included.
	TagsPrefix string
	// ClusterID, when set, restricts the router to services tagged
	// "berth-cluster=<ClusterID>" (the services of one Berth cluster).
	ClusterID string
	// WaitTime is the longest a blocking query waits (default 5m).
	WaitTime time.Duration
	Logger   hclog.Logger
}

// Consul is a Source reading the Consul catalog: the services tagged
// "berth" with routing tags, and their passing instances. It holds a copy
// fed by two blocking queries, whatever the number of apps: one on the
// catalog's services list, one on the checks of Berth's services (and the
// nodes' own checks: GET /v1/health/state/any, filtered). When a service
// appears, changes tags, or one of its checks (or a check of a node it
// runs on) changes, its passing instances are read again (GET
// /v1/health/service/<name>?passing); a request reads only the copy.
//
// An instance serves the hosts of its own routing tags, so during a
// rollout that changes an app's routes, old instances keep the old hosts.
// When Consul cannot be read the last copy keeps serving; until the first
// read of the catalog (and of a new service's instances) Route answers an
// error wrapping ErrNotReady.
type Consul struct {
	cfg    ConsulConfig
	log    hclog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{} // the reader of dirty services has work

	mu       sync.RWMutex
	synced   bool
	lastErr  error
	hosts    map[string][]string // host -> services whose catalog tags route it
	services map[string]*service
	changed  chan struct{}              // closed and replaced on every change of the copy
	dirty    map[string]bool            // services whose instances must be read again
	prints   map[string]string          // service -> fingerprint of its checks
	nodes    map[string]string          // node -> fingerprint of its own checks
	svcNodes map[string]map[string]bool // service -> the nodes its checks are on
	readIdx  map[string]uint64          // service -> the index of its last read
	reading  bool                       // a batch of reads is in flight
}

type service struct {
	name      string
	app       string
	tags      string // catalog tags, joined (the union over instances)
	known     bool   // instances read at least once
	instances []instance
}

type instance struct {
	addr  string
	hosts map[string]bool
}

// NewConsul starts watching the catalog; Close stops it.
func NewConsul(cfg ConsulConfig) *Consul {
	if cfg.TagsPrefix == "" {
		cfg.TagsPrefix = "urlprefix-"
	}
	if cfg.WaitTime <= 0 {
		cfg.WaitTime = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	c := &Consul{cfg: cfg, log: cfg.Logger, hosts: map[string][]string{}, services: map[string]*service{}, changed: make(chan struct{}),
		kick: make(chan struct{}, 1), dirty: map[string]bool{}, prints: map[string]string{}, nodes: map[string]string{}, svcNodes: map[string]map[string]bool{}, readIdx: map[string]uint64{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(3)
	go c.watchCatalog()
	go c.watchChecks()
	go c.readDirty()
	return c
}

// Close stops every watch and waits for them.
func (c *Consul) Close() {
	c.cancel()
	c.wg.Wait()
}

// Changed is closed at the next change of the copy (for tests and
// callers that wait for one).
func (c *Consul) Changed() <-chan struct{} {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.changed
}

func (c *Consul) notify() { // with c.mu held
	close(c.changed)
	c.changed = make(chan struct{})
}

// Route answers the passing instances routed at host.
func (c *Consul) Route(host string) (Target, bool, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if !c.synced {
		err := fmt.Errorf("%w: reading the Consul catalog", ErrNotReady)
		if c.lastErr != nil {
			err = fmt.Errorf("%w: reading the Consul catalog: %v", ErrNotReady, c.lastErr)
		}
		return Target{}, false, err
	}
	names := c.hosts[host]
	if len(names) == 0 {
		return Target{}, false, nil
	}
	var t Target
	for _, n := range names {
		s := c.services[n]
		if s == nil {
			continue
		}
		if t.App == "" {
			t.App = s.app
		}
		if !s.known {
			return Target{}, false, fmt.Errorf("%w: reading the instances of service %s", ErrNotReady, n)
		}
		for _, in := range s.instances {
			if in.hosts[host] {
				t.Addrs = append(t.Addrs, in.addr)
			}
		}
	}
	return t, true, nil
}

// routeHost answers the host of a routing tag ("" when tag is not one).
func (c *Consul) routeHost(tag string) string {
	h, ok := strings.CutPrefix(tag, c.cfg.TagsPrefix)
	if !ok {
		return ""
	}
	h, ok = strings.CutSuffix(h, "/")
	if !ok || h == "" || strings.ContainsAny(h, "/ ") {
		return ""
	}
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// ours reports whether tags mark a service (or an instance) of this
// router's Berth cluster, and answers its app.
func (c *Consul) ours(tags []string) (app string, ok bool) {
	berth, cluster := false, c.cfg.ClusterID == ""
	for _, t := range tags {
		switch {
		case t == "berth":
			berth = true
		case strings.HasPrefix(t, "berth-app="):
			app = strings.TrimPrefix(t, "berth-app=")
		case c.cfg.ClusterID != "" && t == "berth-cluster="+c.cfg.ClusterID:
			cluster = true
		}
	}
	return app, berth && cluster
}

func (c *Consul) hostsOf(tags []string) map[string]bool {
	var hs map[string]bool
	for _, t := range tags {
		if h := c.routeHost(t); h != "" {
			if hs == nil {
				hs = map[string]bool{}
			}
			hs[h] = true
		}
	}
	return hs
}

// backoff waits d (or until Close) and answers the next delay.
func (c *Consul) backoff(ctx context.Context, d time.Duration) time.Duration {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return min(2*d, 30*time.Second)
}

// nextIndex is the WaitIndex after a read answering last (an index that
// went backwards starts over).
func nextIndex(prev, last uint64) uint64 {
	if last < prev {
		return 0
	}
	return last
}

func (c *Consul) watchCatalog() {
	defer c.wg.Done()
	var idx uint64
	delay := 500 * time.Millisecond
	for c.ctx.Err() == nil {
		q := (&api.QueryOptions{WaitIndex: idx, WaitTime: c.cfg.WaitTime}).WithContext(c.ctx)
		svcs, meta, err := c.cfg.Client.Catalog().Services(q)
		if c.ctx.Err() != nil {
			return
		}
		if err != nil {
			c.log.Warn("reading the Consul catalog failed; retrying", "error", err, "in", delay)
			c.mu.Lock()
			c.lastErr = err
			c.notify()
			c.mu.Unlock()
			delay = c.backoff(c.ctx, delay)
			continue
		}
		delay = 500 * time.Millisecond
		idx = nextIndex(idx, meta.LastIndex)
		c.setServices(svcs)
	}
}

// markDirty has a service's instances read again (with c.mu held).
func (c *Consul) markDirty(name string) {
	if _, ok := c.services[name]; !ok {
		return
	}
	c.dirty[name] = true
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// setServices takes a new services list: new routed services and those
// whose tags changed are read, gone ones dropped, the host index rebuilt.
func (c *Consul) setServices(svcs map[string][]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	keep := map[string]bool{}
	hosts := map[string][]string{}
	for name, tags := range svcs {
		app, ok := c.ours(tags)
		if !ok {
			continue
		}
		hs := c.hostsOf(tags)
		if len(hs) == 0 {
			continue
		}
		keep[name] = true
		for h := range hs {
			hosts[h] = append(hosts[h], name)
		}
		joined := strings.Join(tags, "\x00")
		s := c.services[name]
		if s == nil {
			s = &service{name: name}
			c.services[name] = s
		}
		if s.tags != joined {
			s.app, s.tags = app, joined
			c.markDirty(name) // new, or its tags changed
		}
	}
	for name := range c.services {
		if !keep[name] {
			delete(c.services, name)
			delete(c.dirty, name)
			delete(c.readIdx, name)
		}
	}
	for _, names := range hosts {
		sort.Strings(names)
	}
	c.hosts = hosts
	c.synced = true
	c.lastErr = nil
	c.notify()
}

// checksFilter selects the checks of Berth's services and the nodes' own.
const checksFilter = `"berth" in ServiceTags or ServiceID == ""`

func (c *Consul) watchChecks() {
	defer c.wg.Done()
	var idx uint64
	delay := 500 * time.Millisecond
	for c.ctx.Err() == nil {
		q := (&api.QueryOptions{WaitIndex: idx, WaitTime: c.cfg.WaitTime, Filter: checksFilter}).WithContext(c.ctx)
		checks, meta, err := c.cfg.Client.Health().State(api.HealthAny, q)
		if c.ctx.Err() != nil {
			return
		}
		if err != nil {
			c.log.Warn("reading the checks from Consul failed; retrying", "error", err, "in", delay)
			delay = c.backoff(c.ctx, delay)
			continue
		}
		delay = 500 * time.Millisecond
		idx = nextIndex(idx, meta.LastIndex)
		c.setChecks(checks, meta.LastIndex)
	}
}

// setChecks compares the checks with the last ones: a service whose
// checks (their status, instances, tags) changed, or that runs on a node
// whose own checks changed, has its instances read again.
//
// A service read at an index at least the watch's (a read the watch's
// answer is not newer than) keeps the fingerprint of that read.
func (c *Consul) setChecks(checks api.HealthChecks, idx uint64) {
	svc := map[string][]string{}
	node := map[string][]string{}
	svcNodes := map[string]map[string]bool{}
	for _, ch := range checks {
		if ch.ServiceID == "" {
			node[ch.Node] = append(node[ch.Node], ch.CheckID+"="+ch.Status)
			continue
		}
		svc[ch.ServiceName] = append(svc[ch.ServiceName], checkPrint(ch))
		if svcNodes[ch.ServiceName] == nil {
			svcNodes[ch.ServiceName] = map[string]bool{}
		}
		svcNodes[ch.ServiceName][ch.Node] = true
	}
	join := func(m map[string][]string) map[string]string {
		out := make(map[string]string, len(m))
		for k, v := range m {
			sort.Strings(v)
			out[k] = strings.Join(v, "\x00")
		}
		return out
	}
	prints, nodes := join(svc), join(node)
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range c.prints {
		if _, ok := prints[name]; !ok {
			prints[name] = ""
		}
	}
	for name, p := range prints {
		switch {
		case c.readIdx[name] >= idx && c.readIdx[name] > 0:
			prints[name] = c.prints[name]
		case c.prints[name] != p:
			c.markDirty(name)
		}
		if prints[name] == "" {
			delete(prints, name)
		}
	}
	changedNodes := map[string]bool{}
	for n, p := range nodes {
		if c.nodes[n] != p {
			changedNodes[n] = true
		}
	}
	for n := range c.nodes {
		if _, ok := nodes[n]; !ok {
			changedNodes[n] = true
		}
	}
	if len(changedNodes) > 0 {
		for _, m := range []map[string]map[string]bool{c.svcNodes, svcNodes} {
			for name, ns := range m {
				for n := range ns {
					if changedNodes[n] {
						c.markDirty(name)
						break
					}
				}
			}
		}
	}
	c.prints, c.nodes, c.svcNodes = prints, nodes, svcNodes
}

// readDirty reads the instances of the services marked dirty, a few at a
// time; a failed read is retried with backoff.
func (c *Consul) readDirty() {
	defer c.wg.Done()
	delay := 500 * time.Millisecond
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.kick:
		}
		c.mu.Lock()
		names := make([]string, 0, len(c.dirty))
		for n := range c.dirty {
			names = append(names, n)
		}
		c.dirty = map[string]bool{}
		c.reading = true
		c.mu.Unlock()
		sort.Strings(names)
		work := make(chan string)
		var failed []string
		var fmu sync.Mutex
		var wg sync.WaitGroup
		for range min(4, len(names)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := range work {
					if err := c.readService(n); err != nil && c.ctx.Err() == nil {
						c.log.Warn("reading a service's instances from Consul failed; retrying", "service", n, "error", err)
						fmu.Lock()
						failed = append(failed, n)
						fmu.Unlock()
					}
				}
			}()
		}
		for _, n := range names {
			work <- n
		}
		close(work)
		wg.Wait()
		c.mu.Lock()
		c.reading = false
		c.notify()
		c.mu.Unlock()
		if len(failed) == 0 {
			delay = 500 * time.Millisecond
			continue
		}
		delay = c.backoff(c.ctx, delay)
		c.mu.Lock()
		for _, n := range failed {
			c.markDirty(n)
		}
		c.mu.Unlock()
	}
}

// readService reads the passing instances of a service into the copy.
// It reads every instance with its checks (a passing one has all its
// checks, its node's included, passing, as ?passing answers) and keeps
// the fingerprint of the checks it saw, so the checks watch does not have
// it read again for a state it has already read.
func (c *Consul) readService(name string) error {
	ctx, cancel := context.WithTimeout(c.ctx, 30*time.Second)
	defer cancel()
	entries, meta, err := c.cfg.Client.Health().Service(name, "", false, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return err
	}
	var ins []instance
	var print []string
	for _, e := range entries {
		for _, ch := range e.Checks {
			if ch.ServiceID != "" {
				print = append(print, checkPrint(ch))
			}
		}
		if e.Service == nil || e.Service.Port <= 0 || e.Checks.AggregatedStatus() != api.HealthPassing {
			continue
		}
		if _, ok := c.ours(e.Service.Tags); !ok {
			continue
		}
		host := e.Service.Address
		if host == "" && e.Node != nil {
			host = e.Node.Address
		}
		if host == "" {
			continue
		}
		ins = append(ins, instance{addr: net.JoinHostPort(host, strconv.Itoa(e.Service.Port)), hosts: c.hostsOf(e.Service.Tags)})
	}
	sort.Slice(ins, func(i, j int) bool { return ins[i].addr < ins[j].addr })
	sort.Strings(print)
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.services[name]; s != nil {
		s.instances, s.known = ins, true
		c.prints[name] = strings.Join(print, "\x00")
		c.readIdx[name] = meta.LastIndex
		c.notify()
	}
	return nil
}

// checkPrint is a service check's part of its service's fingerprint.
func checkPrint(ch *api.HealthCheck) string {
	return ch.Node + "/" + ch.ServiceID + "/" + ch.CheckID + "=" + ch.Status + "/" + strings.Join(ch.ServiceTags, ",")
}
