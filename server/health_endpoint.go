package server

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/engine"
)

// healthTTL is how long a /healthz answer is reused: a load balancer or
// monitor polling it often does not make every backend probed each time,
// and a backend that goes down shows within a second.
const healthTTL = time.Second

// healthCache keeps the last probe of the backends for healthTTL. One
// probe runs at a time; callers meanwhile wait for its result.
type healthCache struct {
	mu  sync.Mutex
	at  time.Time
	val map[string]engine.BackendHealth
	now func() time.Time // time.Now; tests set it
}

func (s *Server) backendHealth(ctx context.Context) map[string]engine.BackendHealth {
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now
	if h.now != nil {
		now = h.now
	}
	if h.val != nil && now().Sub(h.at) < healthTTL {
		return h.val
	}
	// The probe is the cache's, not this caller's: it is not cut short
	// when this caller goes away (engine.Health bounds it).
	h.val = s.eng.Health(context.WithoutCancel(ctx))
	h.at = now()
	return h.val
}

// GET /healthz — each backend's health; 503 when any is down. The answer
// is cached for healthTTL.
func (s *Server) healthz(c *call) (any, error) {
	hs := s.backendHealth(c.ctx())
	out := api.Health{Status: "ok", Backends: map[string]api.BackendHealth{}, UptimeSeconds: int(time.Since(s.startedAt).Seconds())}
	code := http.StatusOK
	for role, h := range hs {
		out.Backends[role] = api.BackendHealth{Backend: h.Backend, OK: h.OK, Error: h.Err}
		if !h.OK {
			out.Status, code = "degraded", http.StatusServiceUnavailable
		}
	}
	return &reply{Status: code, Body: out}, nil
}

// metricsHandler serves Prometheus metrics. With metrics.token_required
// only a site admin's token may read them (401 without a token, 403 with
// another); otherwise they are public, like /healthz: they hold request
// counts by route and process figures, no names of apps or users.
func (s *Server) metricsHandler() http.Handler {
	h := promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
	if !s.cfg.Metrics.TokenRequired {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqID := startRequest(w, r)
		id, err := s.authenticate(r)
		if err == nil && id == nil {
			err = unauthorized("metrics.token_required is set: send an admin's token")
		}
		if err == nil && !id.Admin {
			err = forbidden("only site admins may read /metrics")
		}
		if err != nil {
			status, msg := errorStatus(err)
			writeError(w, reqID, status, msg, nil)
			return
		}
		h.ServeHTTP(w, r)
	})
}
