package server

import (
	"net/http"

	"github.com/julienschmidt/httprouter"

	"github.com/berthpaas/berth/ui"
)

// mountUI serves the web console (package ui) at /ui/ and redirects GET /
// to it. The console is not in the route table: its pages are HTML, not
// API operations, and it reaches the API through the same router (each
// page's data is an in-process API call with the session's token), so it
// has no permission or audit path of its own. Every other unknown path
// stays a JSON 404.
func (s *Server) mountUI() error {
	c, err := ui.New(s.router)
	if err != nil {
		return err
	}
	h := func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) { c.ServeHTTP(w, r) }
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost} {
		s.router.Handle(m, "/ui", h)
		s.router.Handle(m, "/ui/*path", h)
	}
	s.router.GET("/", func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		http.Redirect(w, r, "/ui/", http.StatusFound)
	})
	return nil
}
