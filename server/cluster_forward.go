package server

import (
	"encoding/json"
	"net/http"
	"net/http/httputil"
	"net/url"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/reconciler"
)

// forwardedHeader marks a request one server of a cluster passed to
// another: it is served where it arrives, never passed on again.
const forwardedHeader = "X-Berth-Forwarded"

// forwardToHolder passes the request to the server of the cluster that
// holds the reconciler lock, when only that server's scheduler can answer
// it: with the local scheduler each server runs its own processes, and
// the apps run on the holder. It reports whether it answered. With a
// scheduler the servers share (Nomad), a bolt Store (one server), on the
// holder itself, or when no holder is known, the request is served here.
func (s *Server) forwardToHolder(c *call) bool {
	if s.names["scheduler"] != "local" || s.rec.Leader() || c.r.Header.Get(forwardedHeader) != "" {
		return false
	}
	if _, ok := s.eng.Store().(backends.Elector); !ok {
		return false
	}
	p, _, err := s.eng.Store().Get(c.ctx(), reconciler.LeaderKey, nil)
	if err != nil || p == nil || len(p.Value) == 0 {
		return false
	}
	var li reconciler.LeaderInfo
	if err := json.Unmarshal(p.Value, &li); err != nil || li.Addr == "" || li.Holder == s.rec.ID() {
		return false
	}
	target := &url.URL{Scheme: "http", Host: li.Addr}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Set(forwardedHeader, s.rec.ID())
			pr.Out.Header.Set("X-Request-Id", c.reqID)
		},
		FlushInterval: -1, // streams: every write at once
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			s.log.Warn("passing a request to the reconciler's holder failed", "holder", li.Addr, "path", r.URL.Path, "error", err)
			writeError(w, c.reqID, http.StatusServiceUnavailable, "the server that runs this app's instances ("+li.Addr+") did not answer; try again", nil)
		},
	}
	rp.ServeHTTP(c.w, c.r)
	return true
}
