// Package server is Berth's HTTP layer: the route tables of both API
// surfaces (the LAIN-style console API under /api/v1/ and the tsuru-style
// API at the root), authentication, authorisation by each route's action,
// the audit log, metrics, and the one place where the engine's domain
// errors become HTTP statuses.
package server

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/julienschmidt/httprouter"

	"github.com/berthpaas/berth/audit"
	"github.com/berthpaas/berth/config"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
	"github.com/berthpaas/berth/osbserver"
	"github.com/berthpaas/berth/reconciler"
)

// Deps are the backends a Server runs on, built by the caller from config.
type Deps = engine.Deps

// Mailer sends mail (password resets).
type Mailer = engine.Mailer

// OutboxMailer writes mails as files (the embedded default).
type OutboxMailer = engine.OutboxMailer

// SMTPMailer sends mails through an SMTP relay.
type SMTPMailer = engine.SMTPMailer

// Server is one Berth server's HTTP layer over its engine.
type Server struct {
	eng       *engine.Engine
	rec       *reconciler.Reconciler
	cfg       *config.Config
	log       hclog.Logger
	names     map[string]string // backend role -> implementation name
	router    *httprouter.Router
	metrics   *metrics
	startedAt time.Time
	limits    *accountLimits
	docOnce   sync.Once
	doc       []byte
	docErr    error
	auditLog  *audit.Writer
	osb       *osbserver.Server // nil unless the osb block enables it
	health    healthCache       // /healthz's answer, for a second
}

// New builds a server; call Start to run its background work.
func New(d Deps) (*Server, error) {
	eng, err := engine.New(d)
	if err != nil {
		return nil, err
	}
	if d.Logger == nil {
		d.Logger = hclog.NewNullLogger()
	}
	s := &Server{
		eng: eng, rec: reconciler.New(eng), cfg: d.Config, log: d.Logger,
		names:     map[string]string{"store": d.StoreName, "secrets": d.SecretsName, "scheduler": d.SchedulerName},
		metrics:   newMetrics(),
		startedAt: time.Now(),
		limits:    newAccountLimits(d.Config.Limits),
	}
	s.metrics.reg.MustRegister(reconcilerLeaderGauge(s.rec))
	if rc, ok := d.Store.(readCounter); ok {
		s.metrics.reg.MustRegister(storeReadMetrics(rc)...)
	}
	acfg := audit.Config{Registerer: s.metrics.reg}
	if a := d.Config.Audit; a != nil {
		acfg.Queue, acfg.Retention = a.Queue, a.RetentionDur
	}
	if s.auditLog, err = audit.New(d.Store, d.Logger.Named("audit"), acfg); err != nil {
		return nil, err
	}
	s.router = httprouter.New()
	s.router.RedirectTrailingSlash = false
	s.router.RedirectFixedPath = false
	s.router.HandleMethodNotAllowed = true
	s.router.NotFound = jsonStatusHandler(http.StatusNotFound, "no such endpoint")
	s.router.MethodNotAllowed = jsonStatusHandler(http.StatusMethodNotAllowed, "method not allowed on this endpoint")
	s.router.PanicHandler = func(w http.ResponseWriter, r *http.Request, _ any) {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "internal error", "status": 500})
	}
	s.register(s.routes())
	if err := s.mountUI(); err != nil {
		return nil, err
	}
	if err := s.mountOSB(d); err != nil {
		return nil, err
	}
	return s, nil
}

// Engine is the domain the server serves.
func (s *Server) Engine() *engine.Engine { return s.eng }

// Handler is the HTTP handler serving both API surfaces.
func (s *Server) Handler() http.Handler { return s.router }

// Start runs the background work (notifier delivery, reconciler).
func (s *Server) Start() {
	s.eng.Start()
	s.rec.Start()
	if s.osb != nil {
		s.osb.Start()
	}
}

// Close stops background work and waits for it. Call it after the HTTP
// server has stopped: it writes the audit records still queued.
func (s *Server) Close() {
	if s.osb != nil {
		s.osb.Close()
	}
	s.rec.Close()
	s.eng.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.auditLog.Close(ctx); err != nil {
		s.log.Warn("audit log closed with records unwritten", "error", err)
	}
}

// audit queues the record of one state change; it never waits for the
// Store (a full queue drops the record and counts it in
// berth_audit_dropped_total; write failures are logged).
func (s *Server) audit(actor, action, target string, status int, reqID string) {
	outcome := "success"
	if status >= 400 {
		outcome = fmt.Sprintf("failure (%d %s)", status, http.StatusText(status))
	}
	now := time.Now().UTC()
	s.auditLog.Record(&state.Event{
		ID:   audit.NewID(now, reqID),
		Time: now, Actor: actor, Action: action, Target: target, Outcome: outcome,
	})
}

// authorize checks the route's action before its handler runs: against
// the app the path names when the action is about an app (which it
// loads: an invalid name is 400, an unknown app 404), else for the caller
// alone. The handler finds the app in c.app.
func (s *Server) authorize(c *call, rt *route) error {
	if engine.OnApp(rt.Action) {
		if name := c.param(rt.appParam()); name != "" {
			if err := names.App(name); err != nil {
				return err
			}
			c.target = name
			a, err := s.eng.LoadApp(c.ctx(), c.id, name, rt.Action)
			if err != nil {
				return err
			}
			c.app = a
			// The handler's own load of this app takes the record read
			// here (once) instead of reading and decoding it again.
			c.r = c.r.WithContext(engine.WithCheckedApp(c.r.Context(), a))
			return nil
		}
	}
	return s.eng.Allowed(c.ctx(), c.id, rt.Action, nil)
}

// appParam is the app named by the path parameter param: the one the
// wrapper loaded and checked the route's action against, or (for a
// parameter the route's action is not checked on) loaded here and checked
// against act.
func (s *Server) appParam(c *call, param string, act engine.Action) (*state.App, error) {
	name := c.param(param)
	if c.app != nil && c.app.Name == name {
		return c.app, nil
	}
	if err := names.App(name); err != nil {
		return nil, err
	}
	c.target = name
	return s.eng.LoadApp(c.ctx(), c.id, name, act)
}
