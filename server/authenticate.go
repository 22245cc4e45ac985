package server

import (
	"net/http"
	"strings"

	"github.com/berthpaas/berth/engine"
)

// bearer extracts the token from "Authorization: bearer <t>" (or "token
// <t>") or the access-token header.
func bearer(r *http.Request) string {
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, tok, ok := strings.Cut(a, " ")
		if ok && (strings.EqualFold(scheme, "bearer") || strings.EqualFold(scheme, "token")) {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	return strings.TrimSpace(r.Header.Get("access-token"))
}

// authenticate resolves the request's token (engine.Authenticate). No
// token is (nil, nil); an Authorization header that is not a bearer token
// is refused (401).
func (s *Server) authenticate(r *http.Request) (*engine.Identity, error) {
	tok := bearer(r)
	if tok == "" && (r.Header.Get("Authorization") != "" || r.Header.Get("access-token") != "") {
		return nil, engine.Unauthenticated("the Authorization header must be 'bearer <token>'")
	}
	return s.eng.Authenticate(r.Context(), tok)
}
