package server

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/berthpaas/berth/api"
)

// GET /healthz — each backend's health; 503 when any is down.
func (s *Server) healthz(c *call) (any, error) {
	hs := s.eng.Health(c.ctx())
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
