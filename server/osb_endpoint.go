package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/berthpaas/berth/osbserver"
)

// mountOSB serves the Open Service Broker API (package osbserver) under
// /osb/ when the osb block of the configuration enables it. Like /ui/ it
// is not in the route table: its requests are the OSB API's (basic auth,
// X-Broker-API-Version), not Berth API operations, and they are not in
// the OpenAPI document.
func (s *Server) mountOSB(d Deps) error {
	o := s.cfg.OSB
	if o == nil || !o.Enabled {
		return nil
	}
	password := o.Password
	if o.PasswordSecret != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		sec, err := d.Secrets.Get(ctx, o.PasswordSecret, 0)
		cancel()
		if err != nil {
			return fmt.Errorf("osb: password_secret %s: %w", o.PasswordSecret, err)
		}
		if password = sec.Data["password"]; password == "" {
			return fmt.Errorf("osb: password_secret %s has no \"password\" key", o.PasswordSecret)
		}
	}
	s.osb = osbserver.New(s.eng, osbserver.Config{
		Username: o.Username, Password: password, Team: o.Team, Async: o.AsyncOn(),
		Logger: s.log.Named("osb"),
		Audit: func(actor, action, target string, status int) {
			s.audit(actor, action, target, status, "")
		},
	})
	h := s.osb.Handler()
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		s.router.Handle(m, osbserver.Prefix+"/*path", func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) { h.ServeHTTP(w, r) })
	}
	return nil
}
