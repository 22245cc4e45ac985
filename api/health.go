package api

import (
	"encoding/json"
	"errors"
	"net/http"
)

// Health is the answer of GET /healthz (200 "ok"; 503 "degraded", with the
// same body).
type Health struct {
	// Status is "ok" or "degraded".
	Status string `json:"status"`
	// Backends maps each role (store, secrets, scheduler) to its health.
	Backends      map[string]BackendHealth `json:"backends"`
	UptimeSeconds int                      `json:"uptime_seconds"` // how long the server has run
}

// BackendHealth is one backend's health.
type BackendHealth struct {
	// Backend is the implementation, e.g. "bolt", "consul".
	Backend string `json:"backend"`
	OK      bool   `json:"ok"`              // whether its health check passed
	Error   string `json:"error,omitempty"` // why the health check failed
}

// HealthAPI is the server's health (/healthz).
type HealthAPI struct{ c *Client }

// Health returns the health resource.
func (c *Client) Health() *HealthAPI { return &HealthAPI{c} }

// Get returns the backends' health: GET /healthz (public). When a backend
// is down the answer is 503 with the same body: Get returns it along with
// an *Error of status 503.
func (h *HealthAPI) Get(q *QueryOptions) (*Health, *QueryMeta, error) {
	var out Health
	qm, err := h.c.query("/healthz", &out, q)
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusServiceUnavailable {
		if json.Unmarshal(e.body, &out) == nil && out.Status != "" {
			e.Message = "degraded"
			return &out, &QueryMeta{RequestID: e.RequestID}, err
		}
	}
	if err != nil {
		return nil, nil, err
	}
	return &out, qm, nil
}
