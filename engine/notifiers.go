package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/berthpaas/berth/engine/state"
)

// checkNotifyType refuses a notify type other than imagepush.
func checkNotifyType(typ string) error {
	if typ != NotifyImagePush {
		return notFound("unknown notify type %q (known: %s)", typ, NotifyImagePush)
	}
	return nil
}

func notifierID(u string) string {
	sum := sha256.Sum256([]byte(u))
	return hex.EncodeToString(sum[:16])
}

// checkNotifyURL accepts an absolute http or https URL without credentials.
func checkNotifyURL(raw string) error {
	u, err := url.Parse(raw)
	if raw == "" || len(raw) > 2048 || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || strings.ContainsAny(raw, " \t\n") {
		return badRequest("notify_url must be an absolute http or https URL without credentials")
	}
	return nil
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

// ListNotifiers lists the notifiers of typ. Notifier URLs carry tokens (in
// their paths and queries): only site admins, who register them, see them
// whole; others see their scheme and host. Each comes with the outcome of
// its deliveries.
func (s *Engine) ListNotifiers(ctx context.Context, id *Identity, typ string) ([]*Notifier, error) {
	if err := checkNotifyType(typ); err != nil {
		return nil, err
	}
	ns, err := state.List[state.Notifier](ctx, s.store, state.NotifierPrefix(typ))
	if err != nil {
		return nil, err
	}
	sts, pending, err := s.notifyStatus(ctx, typ)
	if err != nil {
		return nil, err
	}
	out := make([]*Notifier, 0, len(ns))
	for _, n := range ns {
		v := &Notifier{Notifier: *n}
		nid := notifierID(n.URL)
		v.Pending = pending[nid]
		if st := sts[nid]; st != nil {
			v.NotifyStatus = *st
		}
		if id == nil || !id.Admin {
			v.URL = maskURL(n.URL)
		}
		out = append(out, v)
	}
	return out, nil
}

// AddNotifier registers notifyURL for typ (site admins); a URL registered
// already is ErrConflict.
func (s *Engine) AddNotifier(ctx context.Context, id *Identity, typ, notifyURL string) (*state.Notifier, error) {
	if err := checkNotifyType(typ); err != nil {
		return nil, err
	}
	if err := s.Allowed(ctx, id, ActNotifyWrite, nil); err != nil {
		return nil, err
	}
	if err := checkNotifyURL(notifyURL); err != nil {
		return nil, err
	}
	n := &state.Notifier{Type: typ, URL: notifyURL, By: id.Name(), Created: time.Now().UTC()}
	if _, err := state.Create(ctx, s.store, state.NotifierKey(typ, notifierID(notifyURL)), n); errors.Is(err, state.ErrExists) {
		return nil, conflict("%s is already registered for %s", notifyURL, typ)
	} else if err != nil {
		return nil, err
	}
	return n, nil
}

// RemoveNotifier unregisters notifyURL for typ (site admins); a URL not
// registered is ErrNotFound.
func (s *Engine) RemoveNotifier(ctx context.Context, id *Identity, typ, notifyURL string) error {
	if err := checkNotifyType(typ); err != nil {
		return err
	}
	if err := s.Allowed(ctx, id, ActNotifyWrite, nil); err != nil {
		return err
	}
	if err := checkNotifyURL(notifyURL); err != nil {
		return err
	}
	nid := notifierID(notifyURL)
	if err := state.Delete(ctx, s.store, state.NotifierKey(typ, nid)); errors.Is(err, state.ErrNotFound) {
		return notFound("%s is not registered for %s", notifyURL, typ)
	} else if err != nil {
		return err
	}
	s.notifier.forget(ctx, typ, nid)
	return nil
}
