package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/berthpaas/berth/plugins/broker"
)

// Provider is what a third party writes with NewBroker: the operations on
// the backing server. NewBroker does the rest (ID validation, idempotency,
// conflicts, "gone" answers, records of what exists, serialising the calls
// on one instance). Each method must be idempotent: it may be called again
// after a crash, and a Delete of what does not exist succeeds. A Create that
// fails (or whose record cannot be written) is followed by the matching
// Delete, on a fresh context, so it need not clean up after itself.
type Provider interface {
	Catalog() *broker.Catalog
	// CreateInstance makes the instance (e.g. a database).
	CreateInstance(ctx context.Context, req broker.ProvisionRequest) error
	// DeleteInstance removes it and everything in it. NewBroker has called
	// DeleteBinding for every binding it knows of first.
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

// Connector is a Provider that connects to its backing server when the
// broker is configured and keeps NewBroker's records on that server, as the
// built-in brokers do: give NewBroker a nil Store, and each Configure calls
// Connect with the service's settings and uses the Store it returns (and its
// lock, if it is a Locker) from then on. Until a Connect succeeds, every call
// fails with ErrUnavailable.
type Connector interface {
	Connect(ctx context.Context, settings map[string]string) (Store, error)
}

// undoTimeout bounds the clean-up after a failed create, which runs on a
// fresh context so that a caller's expired deadline leaves nothing behind.
const undoTimeout = 30 * time.Second

// NewBroker returns a complete broker.Broker around p, keeping its records
// in s (nil when p is a Connector). Calls on one instance are serialised
// within the process, and across processes when s is also a Locker.
func NewBroker(p Provider, s Store) broker.Broker {
	return &simple{p: p, s: s}
}

type simple struct {
	p     Provider
	local KeyedMutex

	mu sync.RWMutex
	s  Store
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

// store returns the Store in use.
func (b *simple) store() (Store, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.s == nil {
		return nil, fmt.Errorf("%w: broker is not configured", broker.ErrUnavailable)
	}
	return b.s, nil
}

// lock serialises calls on one instance: in this process, then by the
// Store's lock if it has one. It returns the Store and the unlock function.
func (b *simple) lock(ctx context.Context, id string) (Store, func(), error) {
	s, err := b.store()
	if err != nil {
		return nil, nil, err
	}
	unlock, err := b.local.Lock(ctx, id)
	if err != nil {
		return nil, nil, fmt.Errorf("waiting for instance %s: %w", id, err)
	}
	if l, ok := s.(Locker); ok {
		unlockShared, err := l.Lock(ctx, id)
		if err != nil {
			unlock()
			return nil, nil, err
		}
		return s, func() { unlockShared(); unlock() }, nil
	}
	return s, unlock, nil
}

// undo runs a clean-up step on a fresh context with its own deadline.
func undo(f func(ctx context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), undoTimeout)
	defer cancel()
	_ = f(ctx)
}

func get(ctx context.Context, s Store, key string, v any) (bool, error) {
	raw, ok, err := s.Get(ctx, key)
	if err != nil || !ok {
		return false, err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("corrupt record %s: %w", key, err)
	}
	return true, nil
}

func put(ctx context.Context, s Store, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.Put(ctx, key, raw)
}

func (b *simple) Configure(ctx context.Context, settings map[string]string) error {
	switch c := b.p.(type) {
	case Connector:
		s, err := c.Connect(ctx, settings)
		if err != nil {
			return err
		}
		b.mu.Lock()
		b.s = s
		b.mu.Unlock()
	case Configurer:
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
	s, unlock, err := b.lock(ctx, req.InstanceID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var rec instanceRecord
	if ok, err := get(ctx, s, instanceKey(req.InstanceID), &rec); err != nil {
		return nil, err
	} else if ok {
		old := rec.Request
		if old.ServiceID != req.ServiceID || old.PlanID != req.PlanID || !broker.EqualParams(old.Params, req.Params) {
			return nil, Conflict("instance", req.InstanceID)
		}
		return &broker.ProvisionResponse{AlreadyExisted: true}, nil
	}
	if err := b.p.CreateInstance(ctx, req); err != nil {
		undo(func(ctx context.Context) error { return b.p.DeleteInstance(ctx, req.InstanceID) })
		return nil, err
	}
	if err := put(ctx, s, instanceKey(req.InstanceID), instanceRecord{Request: req}); err != nil {
		undo(func(ctx context.Context) error { return b.p.DeleteInstance(ctx, req.InstanceID) })
		return nil, err
	}
	return &broker.ProvisionResponse{}, nil
}

func (b *simple) Deprovision(ctx context.Context, req broker.DeprovisionRequest) (*broker.DeprovisionResponse, error) {
	if err := broker.CheckID("instance_id", req.InstanceID); err != nil {
		return nil, err
	}
	s, unlock, err := b.lock(ctx, req.InstanceID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if ok, err := get(ctx, s, instanceKey(req.InstanceID), &instanceRecord{}); err != nil {
		return nil, err
	} else if !ok {
		return nil, Gone("instance", req.InstanceID)
	}
	prefix := bindingKey(req.InstanceID, "")
	keys, err := s.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := b.p.DeleteBinding(ctx, req.InstanceID, strings.TrimPrefix(k, prefix)); err != nil {
			return nil, err
		}
		if err := s.Delete(ctx, k); err != nil {
			return nil, err
		}
	}
	if err := b.p.DeleteInstance(ctx, req.InstanceID); err != nil {
		return nil, err
	}
	if err := s.Delete(ctx, instanceKey(req.InstanceID)); err != nil {
		return nil, err
	}
	return &broker.DeprovisionResponse{}, nil
}

func (b *simple) Bind(ctx context.Context, req broker.BindRequest) (*broker.BindResponse, error) {
	if err := CheckBind(req.InstanceID, req.BindingID); err != nil {
		return nil, err
	}
	s, unlock, err := b.lock(ctx, req.InstanceID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if ok, err := get(ctx, s, instanceKey(req.InstanceID), &instanceRecord{}); err != nil {
		return nil, err
	} else if !ok {
		return nil, NotFound(req.InstanceID)
	}
	var rec bindingRecord
	if ok, err := get(ctx, s, bindingKey(req.InstanceID, req.BindingID), &rec); err != nil {
		return nil, err
	} else if ok {
		if rec.AppName != req.AppName || !broker.EqualParams(rec.Params, req.Params) {
			return nil, Conflict("binding", req.BindingID)
		}
		return &broker.BindResponse{Credentials: rec.Credentials, AlreadyExisted: true}, nil
	}
	creds, err := b.p.CreateBinding(ctx, req)
	if err == nil {
		rec = bindingRecord{AppName: req.AppName, Params: req.Params, Credentials: creds}
		err = put(ctx, s, bindingKey(req.InstanceID, req.BindingID), rec)
	}
	if err != nil {
		undo(func(ctx context.Context) error { return b.p.DeleteBinding(ctx, req.InstanceID, req.BindingID) })
		return nil, err
	}
	return &broker.BindResponse{Credentials: creds}, nil
}

func (b *simple) Unbind(ctx context.Context, req broker.UnbindRequest) error {
	if err := CheckBind(req.InstanceID, req.BindingID); err != nil {
		return err
	}
	s, unlock, err := b.lock(ctx, req.InstanceID)
	if err != nil {
		return err
	}
	defer unlock()
	key := bindingKey(req.InstanceID, req.BindingID)
	if ok, err := get(ctx, s, key, &bindingRecord{}); err != nil {
		return err
	} else if !ok {
		return Gone("binding", req.BindingID)
	}
	if err := b.p.DeleteBinding(ctx, req.InstanceID, req.BindingID); err != nil {
		return err
	}
	return s.Delete(ctx, key)
}

func (b *simple) LastOperation(ctx context.Context, req broker.LastOperationRequest) (*broker.LastOperationResponse, error) {
	if err := broker.CheckID("instance_id", req.InstanceID); err != nil {
		return nil, err
	}
	s, err := b.store()
	if err != nil {
		return nil, err
	}
	if ok, err := get(ctx, s, instanceKey(req.InstanceID), &instanceRecord{}); err != nil {
		return nil, err
	} else if !ok {
		return nil, Gone("instance", req.InstanceID)
	}
	return &broker.LastOperationResponse{State: broker.StateSucceeded}, nil
}
