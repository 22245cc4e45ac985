// Package server is Berth's core: the model's operations, the reconciler,
// and the HTTP layer serving both API surfaces (the LAIN-style console API
// under /api/v1/ and the tsuru-style API at the root) over one model.
package server

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/julienschmidt/httprouter"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine/state"
)

// Deps are the backends a Server runs on, built by the caller from config.
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

// Server is one Berth server.
type Server struct {
	cfg       *config.Config
	log       hclog.Logger
	store     backends.Store
	secrets   backends.Secrets
	sched     backends.Scheduler
	names     map[string]string // backend role -> implementation name
	mailer    Mailer
	brokers   Brokers
	secretRd  string
	router    *httprouter.Router
	metrics   *metrics
	notifier  *notifier
	rec       *reconciler
	bgCtx     context.Context
	bgCancel  context.CancelFunc
	bg        sync.WaitGroup
	startedAt time.Time
	limits    *accountLimits
}

// New builds a server; call Start to run its background work.
func New(d Deps) (*Server, error) {
	if d.Config == nil || d.Store == nil || d.Secrets == nil {
		return nil, fmt.Errorf("server: config, store and secrets are required")
	}
	if d.Logger == nil {
		d.Logger = hclog.NewNullLogger()
	}
	if d.Mailer == nil {
		d.Mailer = &OutboxMailer{Dir: d.Config.DataDir + "/outbox"}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg: d.Config, log: d.Logger, store: d.Store, secrets: d.Secrets, sched: d.Scheduler,
		names:   map[string]string{"store": d.StoreName, "secrets": d.SecretsName, "scheduler": d.SchedulerName},
		mailer:  d.Mailer,
		brokers: d.Brokers, secretRd: d.SecretReadPrefix,
		metrics: newMetrics(),
		bgCtx:   ctx, bgCancel: cancel,
		startedAt: time.Now(),
		limits:    newAccountLimits(d.Config.Limits),
	}
	s.notifier = newNotifier(s)
	s.rec = newReconciler(s)
	s.router = httprouter.New()
	s.router.RedirectTrailingSlash = false
	s.router.RedirectFixedPath = false
	s.router.HandleMethodNotAllowed = true
	s.router.NotFound = jsonStatusHandler(http.StatusNotFound, "no such endpoint")
	s.router.MethodNotAllowed = jsonStatusHandler(http.StatusMethodNotAllowed, "method not allowed on this endpoint")
	s.router.PanicHandler = func(w http.ResponseWriter, r *http.Request, _ any) {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "internal error", "status": 500})
	}
	s.routes()
	return s, nil
}

// Handler is the HTTP handler serving both API surfaces.
func (s *Server) Handler() http.Handler { return s.router }

// Start runs the background work (notifier delivery, reconciler).
func (s *Server) Start() {
	s.notifier.start()
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		s.rec.run(s.bgCtx)
	}()
}

// Close stops background work and waits for it.
func (s *Server) Close() {
	s.bgCancel()
	s.notifier.stop()
	s.bg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.rec.release(ctx)
}

// audit records one state change. Failures to record are logged, not fatal.
func (s *Server) audit(actor, action, target string, status int, reqID string) {
	outcome := "success"
	if status >= 400 {
		outcome = fmt.Sprintf("failure (%d %s)", status, http.StatusText(status))
	}
	now := time.Now().UTC()
	ev := &state.Event{
		ID:   fmt.Sprintf("%020d-%s", now.UnixNano(), reqID),
		Time: now, Actor: actor, Action: action, Target: target, Outcome: outcome,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := state.Create(ctx, s.store, state.EventsPrefix+ev.ID, ev); err != nil {
		s.log.Warn("could not record audit event", "action", action, "error", err)
	}
}
