package server

import (
	"context"
	"strconv"
	"time"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/engine"
)

// GET /api/v1/events/?limit=N&before=<id> — audit events, newest first,
// for site admins. "next" is the cursor for the following page (pass it as
// before=), "" on the last page.
func (s *Server) listEvents(c *call) (any, error) {
	q := c.r.URL.Query()
	limit := 0
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return nil, engine.Invalid("limit must be a number from 1 to 1000")
		}
		limit = n
	}
	// Records are written in the background: wait (briefly) for those
	// queued before this request, so a reader sees what it just did.
	sctx, cancel := context.WithTimeout(c.ctx(), 2*time.Second)
	_ = s.auditLog.Sync(sctx)
	cancel()
	evs, next, err := s.eng.AuditEvents(c.ctx(), c.id, q.Get("before"), limit)
	if err != nil {
		return nil, err
	}
	out := api.EventsPage{Events: make([]api.AuditEvent, 0, len(evs)), Next: next}
	for _, e := range evs {
		out.Events = append(out.Events, api.AuditEvent{ID: e.ID, Time: e.Time, Actor: e.Actor, Action: e.Action, Target: e.Target, Outcome: e.Outcome, Detail: e.Detail})
	}
	return out, nil
}
