package server

import (
	"errors"
	"net/http"
	"time"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
)

func notifierOut(n *state.Notifier) api.Notifier {
	return api.Notifier{Type: n.Type, URL: n.URL, By: n.By, Created: n.Created}
}

// notifyTarget names type/host in the audit record of a notifier change
// that got past the checks of its type, of the caller and of the URL.
func notifyTarget(c *call, typ, u string, err error) {
	if typ == engine.NotifyImagePush && (err == nil || errors.Is(err, engine.ErrConflict) || errors.Is(err, engine.ErrNotFound)) {
		c.target = typ + "/" + engine.HostOf(u)
	}
}

// GET /api/v1/notify/:type/
func (s *Server) listNotifiers(c *call) (any, error) {
	ns, err := s.eng.ListNotifiers(c.ctx(), c.id, c.param("type"))
	if err != nil {
		return nil, err
	}
	out := make([]api.Notifier, 0, len(ns))
	for _, n := range ns {
		o := notifierOut(&n.Notifier)
		o.Deliveries = &api.NotifierDeliveries{Pending: n.Pending, Delivered: n.Delivered, GaveUp: n.GaveUp,
			LastEvent: n.LastEvent, LastOutcome: n.LastOutcome, LastAttempts: n.LastAttempts, LastError: n.LastError}
		if !n.LastAt.IsZero() {
			at := n.LastAt
			o.Deliveries.LastAt = &at
		}
		out = append(out, o)
	}
	return pageSlice(c, out, func(n api.Notifier) string { return n.Created.UTC().Format(time.RFC3339Nano) + " " + n.URL })
}

// POST /api/v1/notify/:type/ {"notify_url"}
func (s *Server) addNotifier(c *call) (any, error) {
	t := c.param("type")
	var in api.NotifierRequest
	if t == engine.NotifyImagePush {
		if err := decode(c, &in); err != nil {
			return nil, err
		}
	}
	n, err := s.eng.AddNotifier(c.ctx(), c.id, t, in.NotifyURL)
	notifyTarget(c, t, in.NotifyURL, err)
	if err != nil {
		return nil, err
	}
	return &reply{Status: http.StatusCreated, Body: notifierOut(n)}, nil
}

// DELETE /api/v1/notify/:type/ {"notify_url"}
func (s *Server) removeNotifier(c *call) (any, error) {
	t := c.param("type")
	var in api.NotifierRequest
	if t == engine.NotifyImagePush {
		if err := decode(c, &in); err != nil {
			return nil, err
		}
	}
	err := s.eng.RemoveNotifier(c.ctx(), c.id, t, in.NotifyURL)
	notifyTarget(c, t, in.NotifyURL, err)
	if err != nil {
		return nil, err
	}
	return api.Status{Status: "ok"}, nil
}
