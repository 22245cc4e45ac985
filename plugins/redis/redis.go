// Package redis is the built-in Redis service broker (Redis 7 or later: it
// relies on ACL users with key and channel patterns).
//
// An instance is a key prefix, "berth:i:<instance>:", and an ACL user
// limited to it. Each binding gets its own ACL user with the same limits,
// so Unbind revokes exactly that app's access (ACL DELUSER also disconnects
// its clients). Bind returns REDIS_URL (redis://user:password@host:port/0)
// and REDIS_KEY_PREFIX. Deprovision deletes the instance's users and keys.
//
// What an ACL user may run: the @read, @write, @transaction, @pubsub,
// @scripting and @connection categories, on keys matching its prefix and
// pub/sub channels matching it, minus @admin and @dangerous commands and
// minus SCAN and RANDOMKEY, which would reveal other instances' key names.
// SELECT is not allowed: every instance lives in database 0.
//
// Settings:
//
//	addr        admin address (required: without it Configure fails "no
//	            target configured"; there is no default server)
//	username    admin ACL user (default: the default user)
//	password    admin password (default empty)
//	public_host host given to apps (default: the host of addr)
//	public_port port given to apps (default: the port of addr)
//	meta_prefix key prefix of the broker's state (default berth:broker)
//
// State: the broker is an sdk.NewBroker around this package's provider; its
// records (instances and bindings, with the bindings' credentials so that a
// repeated Bind returns the same ones) and its per-instance lock live under
// <meta_prefix> on the server itself (plugins/sdk/redisstore); instances'
// users cannot read them. The records of an earlier broker (hashes
// <meta_prefix>:instances and :bindings:<instance>) are imported on Configure.
// ACL user names: "berth.<instance>.o" (the instance's own user) and
// "berth.<instance>.b.<binding>"; Deprovision deletes every user whose name
// starts with "berth.<instance>.", so nothing is orphaned by a crash.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/sdk"
	"github.com/berthpaas/berth/plugins/sdk/redisstore"
	"github.com/hashicorp/go-hclog"
	goredis "github.com/redis/go-redis/v9"
)

// provider is the Redis side of the broker: sdk.NewBroker does the rest.
type provider struct {
	log hclog.Logger

	mu  sync.RWMutex
	rdb *goredis.Client
	cfg config
}

var _ sdk.Connector = (*provider)(nil)

type config struct {
	addr, publicHost, publicPort, meta string
}

// New returns an unconfigured broker; Configure must be called first.
func New(logger hclog.Logger) broker.Broker {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return sdk.NewBroker(&provider{log: logger}, nil)
}

const (
	serviceID = "redis"
	planID    = "redis-default"
)

var catalog = &broker.Catalog{Services: []broker.Service{{
	ID: serviceID, Name: "redis", Description: "A key prefix on a shared Redis, with an ACL user per binding",
	Plans: []broker.Plan{{ID: planID, Name: "default", Description: "Keys under one prefix on the shared server"}},
}}}

func (p *provider) Catalog() *broker.Catalog { return catalog }

var settingKeys = map[string]bool{"addr": true, "username": true, "password": true,
	"public_host": true, "public_port": true, "meta_prefix": true}

// Connect connects to the server and opens the broker's records there.
func (p *provider) Connect(ctx context.Context, settings map[string]string) (sdk.Store, error) {
	for k := range settings {
		if !settingKeys[k] {
			return nil, fmt.Errorf("%w: unknown redis setting %q", broker.ErrBadRequest, k)
		}
	}
	c := config{addr: settings["addr"], meta: settings["meta_prefix"]}
	if c.addr == "" {
		return nil, fmt.Errorf("%w: no target configured: the redis broker needs the addr setting (name an operator's broker_target)", broker.ErrBadRequest)
	}
	if c.meta == "" {
		c.meta = "berth:broker"
	}
	host, port, err := net.SplitHostPort(c.addr)
	if err != nil {
		return nil, fmt.Errorf("%w: redis setting addr %q: %v", broker.ErrBadRequest, c.addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, fmt.Errorf("%w: redis setting addr %q: bad port", broker.ErrBadRequest, c.addr)
	}
	c.publicHost, c.publicPort = settings["public_host"], settings["public_port"]
	if c.publicHost == "" {
		c.publicHost = host
	}
	if c.publicPort == "" {
		c.publicPort = port
	}
	if strings.HasPrefix(c.meta, "berth:i:") {
		return nil, fmt.Errorf("%w: redis setting meta_prefix must not be under berth:i:", broker.ErrBadRequest)
	}
	rdb := goredis.NewClient(&goredis.Options{
		Addr: c.addr, Username: settings["username"], Password: settings["password"],
		DialTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
		PoolSize: 8, MaxRetries: 1, DisableIdentity: true,
	})
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("%w: redis server %s: %v", broker.ErrUnavailable, c.addr, err)
	}
	// ACL users need Redis 6; channel patterns (&) need Redis 7.
	if err := rdb.Do(ctx, "ACL", "WHOAMI").Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("%w: redis server %s has no ACLs (Redis 7 or later needed): %v", broker.ErrBadRequest, c.addr, err)
	}
	store := redisstore.New(rdb, c.meta)
	if err := importLegacy(ctx, rdb, store, c); err != nil {
		rdb.Close()
		return nil, err
	}
	p.mu.Lock()
	old := p.rdb
	p.rdb, p.cfg = rdb, c
	p.mu.Unlock()
	if old != nil {
		old.Close()
	}
	p.log.Info("configured", "addr", c.addr, "meta_prefix", c.meta)
	return store, nil
}

func (p *provider) client() (*goredis.Client, config) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.rdb, p.cfg
}

// KeyPrefix returns the key prefix of an instance.
func KeyPrefix(instanceID string) string { return "berth:i:" + instanceID + ":" }

func userPrefix(instanceID string) string { return "berth." + instanceID + "." }

// OwnerUser returns the instance's own ACL user.
func OwnerUser(instanceID string) string { return userPrefix(instanceID) + "o" }

// BindingUser returns the ACL user of a binding.
func BindingUser(instanceID, bindingID string) string {
	return userPrefix(instanceID) + "b." + bindingID
}

func randomPassword() string {
	var p [24]byte
	if _, err := rand.Read(p[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(p[:])
}

// setUser creates or resets an ACL user limited to the instance's prefix.
func setUser(ctx context.Context, rdb *goredis.Client, instanceID, user, password string) error {
	prefix := KeyPrefix(instanceID)
	args := []any{"ACL", "SETUSER", user, "reset", "on", ">" + password,
		"~" + prefix + "*", "resetchannels", "&" + prefix + "*",
		"-@all", "+@read", "+@write", "+@transaction", "+@pubsub", "+@scripting", "+@connection",
		"-@admin", "-@dangerous", "-scan", "-randomkey", "-select"}
	if err := rdb.Do(ctx, args...).Err(); err != nil {
		return fmt.Errorf("redis: ACL SETUSER %s: %w", user, err)
	}
	return nil
}

// CreateInstance creates the instance's own ACL user.
func (p *provider) CreateInstance(ctx context.Context, req broker.ProvisionRequest) error {
	rdb, _ := p.client()
	if err := setUser(ctx, rdb, req.InstanceID, OwnerUser(req.InstanceID), randomPassword()); err != nil {
		return err
	}
	p.log.Info("provisioned", "instance", req.InstanceID, "prefix", KeyPrefix(req.InstanceID))
	return nil
}

// DeleteInstance deletes the instance's users (every user under its name,
// so none is orphaned by a crash) and keys.
func (p *provider) DeleteInstance(ctx context.Context, instanceID string) error {
	rdb, _ := p.client()
	users, err := rdb.Do(ctx, "ACL", "USERS").StringSlice()
	if err != nil {
		return fmt.Errorf("redis: ACL USERS: %w", err)
	}
	var mine []any
	for _, u := range users {
		if strings.HasPrefix(u, userPrefix(instanceID)) {
			mine = append(mine, u)
		}
	}
	if len(mine) > 0 {
		if err := rdb.Do(ctx, append([]any{"ACL", "DELUSER"}, mine...)...).Err(); err != nil {
			return fmt.Errorf("redis: ACL DELUSER: %w", err)
		}
	}
	// Instance IDs hold no glob metacharacters, so the prefix is a literal.
	iter := rdb.Scan(ctx, 0, KeyPrefix(instanceID)+"*", 500).Iterator()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := rdb.Unlink(ctx, batch...).Err()
		batch = batch[:0]
		return err
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			if err := flush(); err != nil {
				return fmt.Errorf("redis: deleting keys: %w", err)
			}
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("redis: scanning keys: %w", err)
	}
	if err := flush(); err != nil {
		return fmt.Errorf("redis: deleting keys: %w", err)
	}
	p.log.Info("deprovisioned", "instance", instanceID)
	return nil
}

// CreateBinding creates the binding's ACL user.
func (p *provider) CreateBinding(ctx context.Context, req broker.BindRequest) (map[string]string, error) {
	rdb, cfg := p.client()
	user, password := BindingUser(req.InstanceID, req.BindingID), randomPassword()
	if err := setUser(ctx, rdb, req.InstanceID, user, password); err != nil {
		return nil, err
	}
	p.log.Info("bound", "instance", req.InstanceID, "binding", req.BindingID, "app", req.AppName, "user", user)
	return credentials(cfg, req.InstanceID, user, password), nil
}

func credentials(cfg config, instanceID, user, password string) map[string]string {
	u := url.URL{Scheme: "redis", User: url.UserPassword(user, password),
		Host: net.JoinHostPort(cfg.publicHost, cfg.publicPort), Path: "/0"}
	return map[string]string{"REDIS_URL": u.String(), "REDIS_KEY_PREFIX": KeyPrefix(instanceID)}
}

// DeleteBinding deletes the binding's ACL user, which also disconnects its
// clients.
func (p *provider) DeleteBinding(ctx context.Context, instanceID, bindingID string) error {
	rdb, _ := p.client()
	user := BindingUser(instanceID, bindingID)
	if err := rdb.Do(ctx, "ACL", "DELUSER", user).Err(); err != nil {
		return fmt.Errorf("redis: ACL DELUSER %s: %w", user, err)
	}
	p.log.Info("unbound", "instance", instanceID, "binding", bindingID, "user", user)
	return nil
}
