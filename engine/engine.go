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
	rec      *reconciler
	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup
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
	ctx, cancel := context.WithCancel(context.Background())
	s := &Engine{
		cfg: d.Config, log: d.Logger, store: d.Store, secrets: d.Secrets, sched: d.Scheduler,
		names:   map[string]string{"store": d.StoreName, "secrets": d.SecretsName, "scheduler": d.SchedulerName},
		mailer:  d.Mailer,
		brokers: d.Brokers, secretRd: d.SecretReadPrefix,
		bgCtx: ctx, bgCancel: cancel,
	}
	s.notifier = newNotifier(s)
	s.rec = newReconciler(s)
	return s, nil
}

// Config is the configuration the engine runs with.
func (s *Engine) Config() *config.Config { return s.cfg }

// Start runs the background work (notifier delivery, reconciler).
func (s *Engine) Start() {
	s.notifier.start()
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.rec.run(s.bgCtx)
	}()
}

// Close stops background work and waits for it.
func (s *Engine) Close() {
	s.bgCancel()
	s.notifier.stop()
	s.bg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.rec.release(ctx)
}

// Kick asks the reconciler for a pass soon over the named apps (none:
// every app).
func (s *Engine) Kick(apps ...string) { s.rec.kick(apps...) }

// Notify queues a notification of typ to the registered notifiers.
func (s *Engine) Notify(ctx context.Context, typ string, payload any) {
	s.notifier.notify(ctx, typ, payload)
}

// Heal runs a reconciler pass that resubmits every deployed app (the
// scheduler may have lost state) and repairs service bindings.
func (s *Engine) Heal(ctx context.Context) (*PassResult, error) {
	s.rec.mu.Lock()
	s.rec.applied = map[string]string{}
	s.rec.mu.Unlock()
	return s.rec.Pass(ctx)
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

// PinIdentities records the ids of the users and teams that older records
// name, as the service sweep does.
func (s *Engine) PinIdentities(ctx context.Context) { s.pinIdentities(ctx) }

// SameIncarnation reports whether an app token (its recorded data) was
// issued for app as it is now.
func SameIncarnation(tok map[string]string, app *state.App) bool { return sameIncarnation(tok, app) }

// Pass runs one reconciler pass over every app now.
func (s *Engine) Pass(ctx context.Context) (*PassResult, error) { return s.rec.Pass(ctx) }
