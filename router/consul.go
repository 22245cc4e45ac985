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
// fed by blocking queries: one on the catalog's services list, and one per
// routed service on its passing instances (GET
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

	mu       sync.RWMutex
	synced   bool
	lastErr  error
	hosts    map[string][]string // host -> services whose catalog tags route it
	services map[string]*service
	changed  chan struct{} // closed and replaced on every change of the copy
}

type service struct {
	name      string
	app       string
	tags      []string // catalog tags (the union over instances)
	known     bool     // instances read at least once
	instances []instance
	stop      context.CancelFunc
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
	c := &Consul{cfg: cfg, log: cfg.Logger, hosts: map[string][]string{}, services: map[string]*service{}, changed: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(1)
	go c.watchCatalog()
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
			break
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
	c.mu.Lock()
	for _, s := range c.services {
		s.stop()
	}
	c.mu.Unlock()
}

// setServices takes a new services list: starts watching new routed
// services, stops watching gone ones, and rebuilds the host index.
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
		s := c.services[name]
		if s == nil {
			s = &service{name: name}
			ctx, cancel := context.WithCancel(c.ctx)
			s.stop = cancel
			c.services[name] = s
			c.wg.Add(1)
			go c.watchService(ctx, s)
		}
		s.app, s.tags = app, tags
	}
	for name, s := range c.services {
		if !keep[name] {
			s.stop()
			delete(c.services, name)
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

func (c *Consul) watchService(ctx context.Context, s *service) {
	defer c.wg.Done()
	var idx uint64
	delay := 500 * time.Millisecond
	for ctx.Err() == nil {
		q := (&api.QueryOptions{WaitIndex: idx, WaitTime: c.cfg.WaitTime}).WithContext(ctx)
		entries, meta, err := c.cfg.Client.Health().Service(s.name, "", true, q)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			c.log.Warn("reading a service's instances from Consul failed; retrying", "service", s.name, "error", err, "in", delay)
			delay = c.backoff(ctx, delay)
			continue
		}
		delay = 500 * time.Millisecond
		idx = nextIndex(idx, meta.LastIndex)
		var ins []instance
		for _, e := range entries {
			if e.Service == nil || e.Service.Port <= 0 {
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
		c.mu.Lock()
		if ctx.Err() == nil {
			s.instances, s.known = ins, true
			c.notify()
		}
		c.mu.Unlock()
	}
}
