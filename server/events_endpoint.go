package server

import (
	"sort"
	"strconv"

	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
)

// GET /api/v1/events/?limit=N&before=<id> — audit events, newest first,
// for site admins. "next" is the cursor for the following page.
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
	before := q.Get("before")
	evs, err := state.List[state.Event](c.ctx(), s.store, state.EventsPrefix)
	if err != nil {
		return nil, err
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].ID > evs[j].ID })
	out := make([]*state.Event, 0, limit)
	for _, e := range evs {
		if before != "" && e.ID >= before {
			continue
		}
		if len(out) == limit {
			break
		}
		out = append(out, e)
	}
	next := ""
	if len(out) == limit && len(out) > 0 && out[len(out)-1].ID != evs[len(evs)-1].ID {
		next = out[len(out)-1].ID
	}
	return map[string]any{"events": out, "next": next}, nil
}
