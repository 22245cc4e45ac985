package server

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type backendHealth struct {
	Backend string `json:"backend"`
	OK      bool   `json:"ok"`
	Error   string `json:"error,omitempty"`
}

// GET /healthz — each backend's health; 503 when any is down.
func (s *Server) healthz(c *call) (any, error) {
	ctx, cancel := context.WithTimeout(c.ctx(), 5*time.Second)
	defer cancel()
	checks := map[string]func(context.Context) error{
		"store":   s.store.Health,
		"secrets": s.secrets.Health,
	}
	if s.sched != nil {
		checks["scheduler"] = s.sched.Health
	}
	out := map[string]backendHealth{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for role, check := range checks {
		wg.Add(1)
		go func(role string, check func(context.Context) error) {
			defer wg.Done()
			h := backendHealth{Backend: s.names[role], OK: true}
			if err := check(ctx); err != nil {
				h.OK, h.Error = false, err.Error()
			}
			mu.Lock()
			out[role] = h
			mu.Unlock()
		}(role, check)
	}
	wg.Wait()
	status, code := "ok", http.StatusOK
	for _, h := range out {
		if !h.OK {
			status, code = "degraded", http.StatusServiceUnavailable
		}
	}
	return &reply{Status: code, Body: map[string]any{"status": status, "backends": out, "uptime_seconds": int(time.Since(s.startedAt).Seconds())}}, nil
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
		id, err := s.eng.Authenticate(r)
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
