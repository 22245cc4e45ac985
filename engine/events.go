package engine

import (
	"context"
	"errors"

	"github.com/berthpaas/berth/audit"
	"github.com/berthpaas/berth/engine/state"
)

// DefaultEventsPage is the number of audit events a page holds when the
// caller names no limit.
const DefaultEventsPage = 50

// AuditEvents is a page of the audit log, newest first, for site admins:
// at most limit events (0: DefaultEventsPage; at most 1000) older than the
// cursor before ("": the newest). next is the cursor of the following page
// ("" on the last). A page reads only the hourly buckets it needs (see
// package audit), never the whole log.
func (s *Engine) AuditEvents(ctx context.Context, id *Identity, before string, limit int) (events []*state.Event, next string, err error) {
	if err := s.Allowed(ctx, id, ActEventsRead, nil); err != nil {
		return nil, "", err
	}
	if limit == 0 {
		limit = DefaultEventsPage
	}
	if limit < 1 || limit > 1000 {
		return nil, "", badRequest("limit must be a number from 1 to 1000")
	}
	events, next, err = audit.List(ctx, s.store, before, limit)
	if errors.Is(err, audit.ErrBadCursor) {
		return nil, "", badRequest("before must be an event id (the \"next\" of a previous page)")
	}
	if err != nil {
		return nil, "", err
	}
	return events, next, nil
}
