package server

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/berthpaas/berth/audit"
	"github.com/berthpaas/berth/engine"
)

// GET /api/v1/events/?limit=N&before=<id> — audit events, newest first,
// for site admins. "next" is the cursor for the following page (pass it as
// before=), "" on the last page. A page reads only the hourly buckets it
// needs (see package audit), never the whole log.
func (s *Server) listEvents(c *call) (any, error) {
	if err := s.eng.Allowed(c.ctx(), c.id, engine.ActEventsRead, nil); err != nil {
		return nil, err
	}
	q := c.r.URL.Query()
	limit := 50
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return nil, badRequest("limit must be a number from 1 to 1000")
		}
		limit = n
	}
	// Records are written in the background: wait (briefly) for those
	// queued before this request, so a reader sees what it just did.
	sctx, cancel := context.WithTimeout(c.ctx(), 2*time.Second)
	_ = s.auditLog.Sync(sctx)
	cancel()
	evs, next, err := audit.List(c.ctx(), s.store, q.Get("before"), limit)
	if errors.Is(err, audit.ErrBadCursor) {
		return nil, badRequest("before must be an event id (the \"next\" of a previous page)")
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"events": evs, "next": next}, nil
}
