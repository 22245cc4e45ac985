// Package engine holds Berth's domain operations: apps, releases, deploys,
// env, services and bindings, teams, users, tokens and the permission
// policy. Every operation takes a context and the caller's Identity and
// returns domain errors (see errors.go); nothing here knows HTTP. The HTTP
// layer (package server) maps the errors to statuses in one place.
package engine

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine/state"
)

// Deps are the backends an Engine runs on, built by the caller from config.
type Deps struct {
	Config        *config.Config
	Logger        hclog.Logger
	Store         backends.Store
	StoreName     string
	Secrets       backends.Secrets
	SecretsName   string
	Scheduler     backends.Scheduler // may be nil until the deploy engine is configured
	SchedulerName string
	Mailer        Mailer
	Brokers       Brokers // service-broker plugins; nil disables services
	// SecretReadPrefix turns a Secrets path into the path a scheduler reads
	// it from (for Vault KV v2: "<mount>/data/<prefix>"); "" for schedulers
	// that get private values directly.
	SecretReadPrefix string
}

// Engine is the domain of one Berth server.
type Engine struct {
	cfg      *config.Config
	log      hclog.Logger
	store    backends.Store
	secrets  backends.Secrets
	sched    backends.Scheduler
	names    map[string]string // backend role -> implementation name
	mailer   Mailer
	brokers  Brokers
	secretRd string
	notifier *notifier
	recMu    sync.RWMutex
	rec      Reconciler
	known    lastKnown                 // the scheduler's last answers, for reads when it does not answer
	users    *state.Shared[state.User] // token users, decoded once per change (read-only)
	tokens   tokenCache                // token records read from Secrets (tokencache.go)
}

// Reconciler is what the engine needs of the reconciler (package
// reconciler): to be told which apps changed, and which are gone. The
// engine works without one (a server with no scheduler); set it with
// SetReconciler.
type Reconciler interface {
	// Kick asks for a pass soon over the named apps (none: every app).
	Kick(apps ...string)
	// Changed asks for a pass soon over app a, whose record this engine
	// has just committed (a as written, with its ModifyIndex); rel, if
	// not nil, is the release a's desired state names. The pass may take
	// them as they are instead of reading them back from the Store.
	Changed(a *state.App, rel *state.Release)
	// Forget drops what the reconciler remembers of app (it was
	// undeployed and removed by the engine).
	Forget(app string)
	// Heal runs a pass now that resubmits every deployed app (the
	// scheduler may have lost state).
	Heal(ctx context.Context) (*PassResult, error)
}

// PassResult says what one reconciler pass did.
type PassResult struct {
	Checked   int      `json:"checked"`
	Submitted []string `json:"submitted"`
	Stopped   []string `json:"stopped"`
	Failed    []string `json:"failed"`
}

// New builds an engine; call Start to run its background work.
func New(d Deps) (*Engine, error) {
	if d.Config == nil || d.Store == nil || d.Secrets == nil {
		return nil, fmt.Errorf("engine: config, store and secrets are required")
	}
	if d.Logger == nil {
		d.Logger = hclog.NewNullLogger()
	}
	if d.Mailer == nil {
		d.Mailer = &OutboxMailer{Dir: d.Config.DataDir + "/outbox"}
	}
	s := &Engine{
		cfg: d.Config, log: d.Logger, store: d.Store, secrets: d.Secrets, sched: d.Scheduler,
		names:   map[string]string{"store": d.StoreName, "secrets": d.SecretsName, "scheduler": d.SchedulerName},
		mailer:  d.Mailer,
		brokers: d.Brokers, secretRd: d.SecretReadPrefix,
		users: state.NewShared[state.User](0),
	}
	s.notifier = newNotifier(s)
	return s, nil
}

// Config is the configuration the engine runs with.
func (s *Engine) Config() *config.Config { return s.cfg }

// Start runs the background work (notifier delivery). The reconciler is
// run by its owner (see SetReconciler).
func (s *Engine) Start() {
	s.notifier.start()
}

// Close stops background work and waits for it.
func (s *Engine) Close() {
	s.notifier.stop()
}

// SetReconciler connects the engine to the reconciler that converges the
// scheduler to the engine's desired state; call it after New, before
// serving. nil disconnects it.
func (s *Engine) SetReconciler(r Reconciler) {
	s.recMu.Lock()
	s.rec = r
	s.recMu.Unlock()
}

func (s *Engine) reconciler() Reconciler {
	s.recMu.RLock()
	defer s.recMu.RUnlock()
	return s.rec
}

// Kick asks the reconciler for a pass soon over the named apps (none:
// every app). Without a reconciler it does nothing.
func (s *Engine) Kick(apps ...string) {
	if r := s.reconciler(); r != nil {
		r.Kick(apps...)
	}
}

// changed asks the reconciler for a pass soon over a, just committed
// (rel: its desired release, if known). Without a reconciler it does
// nothing.
func (s *Engine) changed(a *state.App, rel *state.Release) {
	if r := s.reconciler(); r != nil {
		r.Changed(a, rel)
	}
}

// forget tells the reconciler that app is gone.
func (s *Engine) forget(app string) {
	if r := s.reconciler(); r != nil {
		r.Forget(app)
	}
}

// Notify queues a notification of typ to the registered notifiers.
func (s *Engine) Notify(ctx context.Context, typ string, payload any) {
	s.notifier.notify(ctx, typ, payload)
}

// heal runs a reconciler pass that resubmits every deployed app (the
// scheduler may have lost state); the "reconcile" healer runs it.
func (s *Engine) heal(ctx context.Context) (*PassResult, error) {
	if s.sched == nil {
		return nil, Unavailable("no scheduler is configured")
	}
	r := s.reconciler()
	if r == nil {
		return nil, Unavailable("no reconciler is connected to the engine")
	}
	return r.Heal(ctx)
}

// Mailer is the engine's mailer.
func (s *Engine) Mailer() Mailer { return s.mailer }

// ReplaceStore swaps the engine's Store and returns the previous one. Tests
// use it to interpose on Store calls and drive races deterministically.
func (s *Engine) ReplaceStore(st backends.Store) backends.Store {
	old := s.store
	s.store = st
	return old
}

// Store is the engine's Store (the reconciler watches apps/ in it and
// keeps its lease and the deploy records there).
func (s *Engine) Store() backends.Store { return s.store }

// Scheduler is the engine's Scheduler; nil when none is configured.
func (s *Engine) Scheduler() backends.Scheduler { return s.sched }

// Logger is the engine's logger.
func (s *Engine) Logger() hclog.Logger { return s.log }

// Sleep waits for d or until ctx ends, whichever is first.
func Sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
