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
// State: instances live in the hash <meta_prefix>:instances and bindings in
// <meta_prefix>:bindings:<instance> (with their passwords, so that a
// repeated Bind returns the same credentials), on the server itself;
// instances' users cannot read them. Changes to an instance hold a lock key
// (<meta_prefix>:lock:<instance>, SET NX with a 30s expiry).
// ACL user names: "berth.<instance>.o" (the instance's own user) and
// "berth.<instance>.b.<binding>"; Deprovision deletes every user whose name
// starts with "berth.<instance>.", so nothing is orphaned by a crash.
package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berthpaas/berth/plugins/broker"
	"github.com/berthpaas/berth/plugins/sdk"
	"github.com/hashicorp/go-hclog"
	goredis "github.com/redis/go-redis/v9"
)

// Broker is the Redis broker.
type Broker struct {
	log hclog.Logger

	mu  sync.RWMutex
	rdb *goredis.Client
	cfg config
}

var _ broker.Broker = (*Broker)(nil)

type config struct {
	addr, publicHost, publicPort, meta string
}

// New returns an unconfigured broker; Configure must be called first.
func New(logger hclog.Logger) *Broker {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Broker{log: logger}
}

const (
	serviceID = "redis"
	planID    = "redis-default"
)

var catalog = &broker.Catalog{Services: []broker.Service{{
	ID: serviceID, Name: "redis", Description: "A key prefix on a shared Redis, with an ACL user per binding",
	Plans: []broker.Plan{{ID: planID, Name: "default", Description: "Keys under one prefix on the shared server"}},
}}}

var settingKeys = map[string]bool{"addr": true, "username": true, "password": true,
	"public_host": true, "public_port": true, "meta_prefix": true}

// Configure connects to the server.
func (b *Broker) Configure(ctx context.Context, settings map[string]string) error {
	for k := range settings {
		if !settingKeys[k] {
			return fmt.Errorf("%w: unknown redis setting %q", broker.ErrBadRequest, k)
		}
	}
	c := config{addr: settings["addr"], meta: settings["meta_prefix"]}
	if c.addr == "" {
		return fmt.Errorf("%w: no target configured: the redis broker needs the addr setting (name an operator's broker_target)", broker.ErrBadRequest)
	}
	if c.meta == "" {
		c.meta = "berth:broker"
	}
	host, port, err := net.SplitHostPort(c.addr)
	if err != nil {
		return fmt.Errorf("%w: redis setting addr %q: %v", broker.ErrBadRequest, c.addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%w: redis setting addr %q: bad port", broker.ErrBadRequest, c.addr)
	}
	c.publicHost, c.publicPort = settings["public_host"], settings["public_port"]
	if c.publicHost == "" {
		c.publicHost = host
	}
	if c.publicPort == "" {
		c.publicPort = port
	}
	if strings.HasPrefix(c.meta, "berth:i:") {
		return fmt.Errorf("%w: redis setting meta_prefix must not be under berth:i:", broker.ErrBadRequest)
	}
	rdb := goredis.NewClient(&goredis.Options{
		Addr: c.addr, Username: settings["username"], Password: settings["password"],
		DialTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
		PoolSize: 8, MaxRetries: 1, DisableIdentity: true,
	})
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return fmt.Errorf("%w: redis server %s: %v", broker.ErrUnavailable, c.addr, err)
	}
	// ACL users need Redis 6; channel patterns (&) need Redis 7.
	if err := rdb.Do(ctx, "ACL", "WHOAMI").Err(); err != nil {
		rdb.Close()
		return fmt.Errorf("%w: redis server %s has no ACLs (Redis 7 or later needed): %v", broker.ErrBadRequest, c.addr, err)
	}
	b.mu.Lock()
	old := b.rdb
	b.rdb, b.cfg = rdb, c
	b.mu.Unlock()
	if old != nil {
		old.Close()
	}
	b.log.Info("configured", "addr", c.addr, "meta_prefix", c.meta)
	return nil
}

// Catalog implements broker.Broker.
func (b *Broker) Catalog(context.Context) (*broker.Catalog, error) { return catalog, nil }

// KeyPrefix returns the key prefix of an instance.
func KeyPrefix(instanceID string) string { return "berth:i:" + instanceID + ":" }

func userPrefix(instanceID string) string { return "berth." + instanceID + "." }

// OwnerUser returns the instance's own ACL user.
func OwnerUser(instanceID string) string { return userPrefix(instanceID) + "o" }

// BindingUser returns the ACL user of a binding.
func BindingUser(instanceID, bindingID string) string {
	return userPrefix(instanceID) + "b." + bindingID
}

type instanceRec struct {
	ServiceID string `json:"service_id"`
	PlanID    string `json:"plan_id"`
	Params    string `json:"params"`
}

type bindingRec struct {
	AppName  string `json:"app_name"`
	Params   string `json:"params"`
	User     string `json:"user"`
	Password string `json:"password"`
}

func canonical(params map[string]string) string {
	if params == nil {
		params = map[string]string{}
	}
	out, _ := json.Marshal(params)
	return string(out)
}

func randomPassword() string {
	var p [24]byte
	if _, err := rand.Read(p[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(p[:])
}

// session is the admin client holding the lock of one instance.
type session struct {
	b     *Broker
	rdb   *goredis.Client
	cfg   config
	id    string
	lock  string
	token string
}

var unlockScript = goredis.NewScript(`if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) end return 0`)

func (b *Broker) lock(ctx context.Context, instanceID string) (*session, error) {
	b.mu.RLock()
	rdb, cfg := b.rdb, b.cfg
	b.mu.RUnlock()
	if rdb == nil {
		return nil, fmt.Errorf("%w: redis broker is not configured", broker.ErrUnavailable)
	}
	s := &session{b: b, rdb: rdb, cfg: cfg, id: instanceID, lock: cfg.meta + ":lock:" + instanceID, token: randomPassword()}
	for {
		ok, err := rdb.SetNX(ctx, s.lock, s.token, 30*time.Second).Result()
		if err != nil {
			return nil, fmt.Errorf("%w: redis: locking instance %s: %v", broker.ErrUnavailable, instanceID, err)
		}
		if ok {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("redis: waiting for the lock of instance %s: %w", instanceID, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *session) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = unlockScript.Run(ctx, s.rdb, []string{s.lock}, s.token).Err()
}

func (s *session) instancesKey() string { return s.cfg.meta + ":instances" }
func (s *session) bindingsKey() string  { return s.cfg.meta + ":bindings:" + s.id }

func (s *session) instance(ctx context.Context) (*instanceRec, error) {
	raw, err := s.rdb.HGet(ctx, s.instancesKey(), s.id).Result()
	if errors.Is(err, goredis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redis: reading instance %s: %w", s.id, err)
	}
	var rec instanceRec
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		return nil, fmt.Errorf("redis: instance %s: corrupt record: %w", s.id, err)
	}
	return &rec, nil
}

// setUser creates or resets an ACL user limited to the instance's prefix.
func (s *session) setUser(ctx context.Context, user, password string) error {
	prefix := KeyPrefix(s.id)
	args := []any{"ACL", "SETUSER", user, "reset", "on", ">" + password,
		"~" + prefix + "*", "resetchannels", "&" + prefix + "*",
		"-@all", "+@read", "+@write", "+@transaction", "+@pubsub", "+@scripting", "+@connection",
		"-@admin", "-@dangerous", "-scan", "-randomkey", "-select"}
	if err := s.rdb.Do(ctx, args...).Err(); err != nil {
		return fmt.Errorf("redis: ACL SETUSER %s: %w", user, err)
	}
	return nil
}

// Provision implements broker.Broker.
func (b *Broker) Provision(ctx context.Context, req broker.ProvisionRequest) (*broker.ProvisionResponse, error) {
	req, err := sdk.CheckProvision(req, catalog)
	if err != nil {
		return nil, err
	}
	s, err := b.lock(ctx, req.InstanceID)
	if err != nil {
		return nil, err
	}
	defer s.close()
	rec := instanceRec{ServiceID: req.ServiceID, PlanID: req.PlanID, Params: canonical(req.Params)}
	existing, err := s.instance(ctx)
	if err != nil {
		return nil, err
	}
	if existing != nil {
		if *existing != rec {
			return nil, sdk.Conflict("instance", req.InstanceID)
		}
		return &broker.ProvisionResponse{AlreadyExisted: true}, nil
	}
	if err := s.setUser(ctx, OwnerUser(req.InstanceID), randomPassword()); err != nil {
		_ = s.destroy()
		return nil, err
	}
	raw, _ := json.Marshal(rec)
	if err := s.rdb.HSet(ctx, s.instancesKey(), req.InstanceID, raw).Err(); err != nil {
		_ = s.destroy()
		return nil, fmt.Errorf("redis: recording instance %s: %w", req.InstanceID, err)
	}
	b.log.Info("provisioned", "instance", req.InstanceID, "prefix", KeyPrefix(req.InstanceID))
	return &broker.ProvisionResponse{}, nil
}

// destroy deletes the instance's users, keys and records (fresh deadline).
func (s *session) destroy() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	users, err := s.rdb.Do(ctx, "ACL", "USERS").StringSlice()
	if err != nil {
		return fmt.Errorf("redis: ACL USERS: %w", err)
	}
	var mine []any
	for _, u := range users {
		if strings.HasPrefix(u, userPrefix(s.id)) {
			mine = append(mine, u)
		}
	}
	if len(mine) > 0 {
		if err := s.rdb.Do(ctx, append([]any{"ACL", "DELUSER"}, mine...)...).Err(); err != nil {
			return fmt.Errorf("redis: ACL DELUSER: %w", err)
		}
	}
	// Instance IDs hold no glob metacharacters, so the prefix is a literal.
	iter := s.rdb.Scan(ctx, 0, KeyPrefix(s.id)+"*", 500).Iterator()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.rdb.Unlink(ctx, batch...).Err()
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
	if err := s.rdb.Del(ctx, s.bindingsKey()).Err(); err != nil {
		return fmt.Errorf("redis: deleting binding records: %w", err)
	}
	if err := s.rdb.HDel(ctx, s.instancesKey(), s.id).Err(); err != nil {
		return fmt.Errorf("redis: deleting instance record: %w", err)
	}
	return nil
}

// Deprovision implements broker.Broker.
func (b *Broker) Deprovision(ctx context.Context, req broker.DeprovisionRequest) (*broker.DeprovisionResponse, error) {
	if err := broker.CheckID("instance_id", req.InstanceID); err != nil {
		return nil, err
	}
	s, err := b.lock(ctx, req.InstanceID)
	if err != nil {
		return nil, err
	}
	defer s.close()
	in, err := s.instance(ctx)
	if err != nil {
		return nil, err
	}
	if in == nil {
		return nil, sdk.Gone("instance", req.InstanceID)
	}
	if err := s.destroy(); err != nil {
		return nil, err
	}
	b.log.Info("deprovisioned", "instance", req.InstanceID)
	return &broker.DeprovisionResponse{}, nil
}

// Bind implements broker.Broker.
func (b *Broker) Bind(ctx context.Context, req broker.BindRequest) (*broker.BindResponse, error) {
	if err := sdk.CheckBind(req.InstanceID, req.BindingID); err != nil {
		return nil, err
	}
	s, err := b.lock(ctx, req.InstanceID)
	if err != nil {
		return nil, err
	}
	defer s.close()
	in, err := s.instance(ctx)
	if err != nil {
		return nil, err
	}
	if in == nil {
		return nil, sdk.NotFound(req.InstanceID)
	}
	params := canonical(req.Params)
	raw, err := s.rdb.HGet(ctx, s.bindingsKey(), req.BindingID).Result()
	switch {
	case err == nil:
		var rec bindingRec
		if err := json.Unmarshal([]byte(raw), &rec); err != nil {
			return nil, fmt.Errorf("redis: binding %s: corrupt record: %w", req.BindingID, err)
		}
		if rec.AppName != req.AppName || rec.Params != params {
			return nil, sdk.Conflict("binding", req.BindingID)
		}
		return &broker.BindResponse{Credentials: s.credentials(rec.User, rec.Password), AlreadyExisted: true}, nil
	case !errors.Is(err, goredis.Nil):
		return nil, fmt.Errorf("redis: reading binding %s: %w", req.BindingID, err)
	}
	rec := bindingRec{AppName: req.AppName, Params: params, User: BindingUser(req.InstanceID, req.BindingID), Password: randomPassword()}
	if err := s.setUser(ctx, rec.User, rec.Password); err != nil {
		return nil, err
	}
	out, _ := json.Marshal(rec)
	if err := s.rdb.HSet(ctx, s.bindingsKey(), req.BindingID, out).Err(); err != nil {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.rdb.Do(c, "ACL", "DELUSER", rec.User).Err()
		return nil, fmt.Errorf("redis: recording binding %s: %w", req.BindingID, err)
	}
	b.log.Info("bound", "instance", req.InstanceID, "binding", req.BindingID, "app", req.AppName, "user", rec.User)
	return &broker.BindResponse{Credentials: s.credentials(rec.User, rec.Password)}, nil
}

func (s *session) credentials(user, password string) map[string]string {
	u := url.URL{Scheme: "redis", User: url.UserPassword(user, password),
		Host: net.JoinHostPort(s.cfg.publicHost, s.cfg.publicPort), Path: "/0"}
	return map[string]string{"REDIS_URL": u.String(), "REDIS_KEY_PREFIX": KeyPrefix(s.id)}
}

// Unbind implements broker.Broker.
func (b *Broker) Unbind(ctx context.Context, req broker.UnbindRequest) error {
	if err := sdk.CheckBind(req.InstanceID, req.BindingID); err != nil {
		return err
	}
	s, err := b.lock(ctx, req.InstanceID)
	if err != nil {
		return err
	}
	defer s.close()
	exists, err := s.rdb.HExists(ctx, s.bindingsKey(), req.BindingID).Result()
	if err != nil {
		return fmt.Errorf("redis: reading binding %s: %w", req.BindingID, err)
	}
	if !exists {
		return sdk.Gone("binding", req.BindingID)
	}
	user := BindingUser(req.InstanceID, req.BindingID)
	// DELUSER also disconnects the user's clients.
	if err := s.rdb.Do(ctx, "ACL", "DELUSER", user).Err(); err != nil {
		return fmt.Errorf("redis: ACL DELUSER %s: %w", user, err)
	}
	if err := s.rdb.HDel(ctx, s.bindingsKey(), req.BindingID).Err(); err != nil {
		return fmt.Errorf("redis: deleting binding record: %w", err)
	}
	b.log.Info("unbound", "instance", req.InstanceID, "binding", req.BindingID, "user", user)
	return nil
}

// LastOperation implements broker.Broker: operations are synchronous.
func (b *Broker) LastOperation(ctx context.Context, req broker.LastOperationRequest) (*broker.LastOperationResponse, error) {
	if err := broker.CheckID("instance_id", req.InstanceID); err != nil {
		return nil, err
	}
	b.mu.RLock()
	rdb, cfg := b.rdb, b.cfg
	b.mu.RUnlock()
	if rdb == nil {
		return nil, fmt.Errorf("%w: redis broker is not configured", broker.ErrUnavailable)
	}
	ok, err := rdb.HExists(ctx, cfg.meta+":instances", req.InstanceID).Result()
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	if !ok {
		return nil, sdk.Gone("instance", req.InstanceID)
	}
	return &broker.LastOperationResponse{State: broker.StateSucceeded}, nil
}
