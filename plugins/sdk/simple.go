package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/berthpaas/berth/plugins/broker"
)

// Provider is what a third party writes with NewBroker: the operations on
// the backing server. NewBroker does the rest (ID validation, idempotency,
// conflicts, "gone" answers, records of what exists). Each method should be
// idempotent: it may be called again after a crash.
type Provider interface {
	Catalog() *broker.Catalog
	// CreateInstance makes the instance (e.g. a database).
	CreateInstance(ctx context.Context, req broker.ProvisionRequest) error
	// DeleteInstance removes it and everything in it.
	DeleteInstance(ctx context.Context, instanceID string) error
	// CreateBinding makes credentials for an app and returns them as
	// environment variables.
	CreateBinding(ctx context.Context, req broker.BindRequest) (map[string]string, error)
	// DeleteBinding revokes them.
	DeleteBinding(ctx context.Context, instanceID, bindingID string) error
}

// Configurer is implemented by a Provider that takes settings.
type Configurer interface {
	Configure(ctx context.Context, settings map[string]string) error
}

// Store keeps NewBroker's records: which instances and bindings exist, with
// their parameters and credentials (so that a repeated Bind returns the same
// ones). Keep it somewhere that survives a plugin restart, ideally the
// backing server itself; MemoryStore is for examples and tests.
type Store interface {
	Get(ctx context.Context, key string) (value []byte, ok bool, err error)
	Put(ctx context.Context, key string, value []byte) error
	Delete(ctx context.Context, key string) error
	// List returns the keys starting with prefix.
	List(ctx context.Context, prefix string) ([]string, error)
}

// MemoryStore returns a Store in memory: its records die with the process.
func MemoryStore() Store { return &memStore{m: map[string][]byte{}} }

type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memStore) Get(_ context.Context, k string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[k]
	return v, ok, nil
}

func (s *memStore) Put(_ context.Context, k string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = append([]byte(nil), v...)
	return nil
}

func (s *memStore) Delete(_ context.Context, k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}

func (s *memStore) List(_ context.Context, prefix string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.m {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}

// NewBroker returns a complete broker.Broker around p, keeping its records
// in s. Calls on one instance are serialised within the process.
func NewBroker(p Provider, s Store) broker.Broker {
	return &simple{p: p, s: s, locks: map[string]*instanceLock{}}
}

type simple struct {
	p Provider
	s Store

	mu    sync.Mutex
	locks map[string]*instanceLock
}

type instanceLock struct {
	sync.Mutex
	refs int
}

type instanceRecord struct {
	Request broker.ProvisionRequest `json:"request"`
}

type bindingRecord struct {
	AppName     string            `json:"app_name"`
	Params      map[string]string `json:"params"`
	Credentials map[string]string `json:"credentials"`
}

func instanceKey(id string) string         { return "instance/" + id }
func bindingKey(id, binding string) string { return "binding/" + id + "/" + binding }

// lock serialises calls on one instance; it returns the unlock function.
func (b *simple) lock(id string) func() {
	b.mu.Lock()
	l := b.locks[id]
	if l == nil {
		l = &instanceLock{}
		b.locks[id] = l
	}
	l.refs++
	b.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		b.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(b.locks, id)
		}
		b.mu.Unlock()
	}
}

func (b *simple) get(ctx context.Context, key string, v any) (bool, error) {
	raw, ok, err := b.s.Get(ctx, key)
	if err != nil || !ok {
		return false, err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("corrupt record %s: %w", key, err)
	}
	return true, nil
}

func (b *simple) put(ctx context.Context, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.s.Put(ctx, key, raw)
}

func (b *simple) Configure(ctx context.Context, settings map[string]string) error {
	if c, ok := b.p.(Configurer); ok {
		return c.Configure(ctx, settings)
	}
	return nil
}

func (b *simple) Catalog(context.Context) (*broker.Catalog, error) { return b.p.Catalog(), nil }

func (b *simple) Provision(ctx context.Context, req broker.ProvisionRequest) (*broker.ProvisionResponse, error) {
	req, err := CheckProvision(req, b.p.Catalog())
	if err != nil {
		return nil, err
	}
	defer b.lock(req.InstanceID)()
	var rec instanceRecord
	if ok, err := b.get(ctx, instanceKey(req.InstanceID), &rec); err != nil {
		return nil, err
	} else if ok {
		old := rec.Request
		if old.ServiceID != req.ServiceID || old.PlanID != req.PlanID || !broker.EqualParams(old.Params, req.Params) {
			return nil, Conflict("instance", req.InstanceID)
		}
		return &broker.ProvisionResponse{AlreadyExisted: true}, nil
	}
	if err := b.p.CreateInstance(ctx, req); err != nil {
		return nil, err
	}
	if err := b.put(ctx, instanceKey(req.InstanceID), instanceRecord{Request: req}); err != nil {
		_ = b.p.DeleteInstance(context.WithoutCancel(ctx), req.InstanceID)
		return nil, err
	}
	return &broker.ProvisionResponse{}, nil
}

func (b *simple) Deprovision(ctx context.Context, req broker.DeprovisionRequest) (*broker.DeprovisionResponse, error) {
	if err := broker.CheckID("instance_id", req.InstanceID); err != nil {
		return nil, err
	}
	defer b.lock(req.InstanceID)()
	if ok, err := b.get(ctx, instanceKey(req.InstanceID), &instanceRecord{}); err != nil {
		return nil, err
	} else if !ok {
		return nil, Gone("instance", req.InstanceID)
	}
	prefix := bindingKey(req.InstanceID, "")
	keys, err := b.s.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := b.p.DeleteBinding(ctx, req.InstanceID, strings.TrimPrefix(k, prefix)); err != nil {
			return nil, err
		}
		if err := b.s.Delete(ctx, k); err != nil {
			return nil, err
		}
	}
	if err := b.p.DeleteInstance(ctx, req.InstanceID); err != nil {
		return nil, err
	}
	return &broker.DeprovisionResponse{}, b.s.Delete(ctx, instanceKey(req.InstanceID))
}

func (b *simple) Bind(ctx context.Context, req broker.BindRequest) (*broker.BindResponse, error) {
	if err := CheckBind(req.InstanceID, req.BindingID); err != nil {
		return nil, err
	}
	defer b.lock(req.InstanceID)()
	if ok, err := b.get(ctx, instanceKey(req.InstanceID), &instanceRecord{}); err != nil {
		return nil, err
	} else if !ok {
		return nil, NotFound(req.InstanceID)
	}
	var rec bindingRecord
	if ok, err := b.get(ctx, bindingKey(req.InstanceID, req.BindingID), &rec); err != nil {
		return nil, err
	} else if ok {
		if rec.AppName != req.AppName || !broker.EqualParams(rec.Params, req.Params) {
			return nil, Conflict("binding", req.BindingID)
		}
		return &broker.BindResponse{Credentials: rec.Credentials, AlreadyExisted: true}, nil
	}
	creds, err := b.p.CreateBinding(ctx, req)
	if err != nil {
		return nil, err
	}
	rec = bindingRecord{AppName: req.AppName, Params: req.Params, Credentials: creds}
	if err := b.put(ctx, bindingKey(req.InstanceID, req.BindingID), rec); err != nil {
		_ = b.p.DeleteBinding(context.WithoutCancel(ctx), req.InstanceID, req.BindingID)
		return nil, err
	}
	return &broker.BindResponse{Credentials: creds}, nil
}

func (b *simple) Unbind(ctx context.Context, req broker.UnbindRequest) error {
	if err := CheckBind(req.InstanceID, req.BindingID); err != nil {
		return err
	}
	defer b.lock(req.InstanceID)()
	key := bindingKey(req.InstanceID, req.BindingID)
	if ok, err := b.get(ctx, key, &bindingRecord{}); err != nil {
		return err
	} else if !ok {
		return Gone("binding", req.BindingID)
	}
	if err := b.p.DeleteBinding(ctx, req.InstanceID, req.BindingID); err != nil {
		return err
	}
	return b.s.Delete(ctx, key)
}

func (b *simple) LastOperation(ctx context.Context, req broker.LastOperationRequest) (*broker.LastOperationResponse, error) {
	if err := broker.CheckID("instance_id", req.InstanceID); err != nil {
		return nil, err
	}
	if ok, err := b.get(ctx, instanceKey(req.InstanceID), &instanceRecord{}); err != nil {
		return nil, err
	} else if !ok {
		return nil, Gone("instance", req.InstanceID)
	}
	return &broker.LastOperationResponse{State: broker.StateSucceeded}, nil
}
