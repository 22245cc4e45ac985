package server

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/state"
)

func notifyType(c *call) (string, error) {
	t := c.param("type")
	if t != engine.NotifyImagePush {
		return "", notFound("unknown notify type %q (known: %s)", t, engine.NotifyImagePush)
	}
	return t, nil
}

func notifierID(u string) string {
	sum := sha256.Sum256([]byte(u))
	return hex.EncodeToString(sum[:16])
}

func notifyURLBody(c *call) (string, error) {
	var in struct {
		NotifyURL string `json:"notify_url"`
	}
	if err := decode(c, &in); err != nil {
		return "", err
	}
	u, err := url.Parse(in.NotifyURL)
	if in.NotifyURL == "" || len(in.NotifyURL) > 2048 || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || strings.ContainsAny(in.NotifyURL, " \t\n") {
		return "", badRequest("notify_url must be an absolute http or https URL without credentials")
	}
	return in.NotifyURL, nil
}

// GET /api/v1/notify/:type/
func (s *Server) listNotifiers(c *call) (any, error) {
	t, err := notifyType(c)
	if err != nil {
		return nil, err
	}
	ns, err := state.List[state.Notifier](c.ctx(), s.store, state.NotifierPrefix(t))
	if err != nil {
		return nil, err
	}
	if ns == nil {
		ns = []*state.Notifier{}
	}
	if !c.id.Admin {
		// Notifier URLs carry tokens (in their paths and queries): only
		// admins, who register them, see them whole.
		for i, n := range ns {
			m := *n
			m.URL = maskURL(n.URL)
			ns[i] = &m
		}
	}
	return ns, nil
}

// maskURL keeps a URL's scheme and host and masks the rest:
// https://hooks.example.com/… for https://hooks.example.com/x?token=y.
func maskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "…"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// POST /api/v1/notify/:type/ {"notify_url"}
func (s *Server) addNotifier(c *call) (any, error) {
	t, err := notifyType(c)
	if err != nil {
		return nil, err
	}
	if err := s.eng.Allowed(c.ctx(), c.id, engine.ActNotifyWrite, nil); err != nil {
		return nil, err
	}
	u, err := notifyURLBody(c)
	if err != nil {
		return nil, err
	}
	c.target = t + "/" + engine.HostOf(u)
	n := &state.Notifier{Type: t, URL: u, By: c.id.Name(), Created: time.Now().UTC()}
	if _, err := state.Create(c.ctx(), s.store, state.NotifierKey(t, notifierID(u)), n); errors.Is(err, state.ErrExists) {
		return nil, conflict("%s is already registered for %s", u, t)
	} else if err != nil {
		return nil, err
	}
	return &reply{Status: http.StatusCreated, Body: n}, nil
}

// DELETE /api/v1/notify/:type/ {"notify_url"}
func (s *Server) removeNotifier(c *call) (any, error) {
	t, err := notifyType(c)
	if err != nil {
		return nil, err
	}
	if err := s.eng.Allowed(c.ctx(), c.id, engine.ActNotifyWrite, nil); err != nil {
		return nil, err
	}
	u, err := notifyURLBody(c)
	if err != nil {
		return nil, err
	}
	c.target = t + "/" + engine.HostOf(u)
	if err := state.Delete(c.ctx(), s.store, state.NotifierKey(t, notifierID(u))); errors.Is(err, state.ErrNotFound) {
		return nil, notFound("%s is not registered for %s", u, t)
	} else if err != nil {
		return nil, err
	}
	return nil, nil
}
