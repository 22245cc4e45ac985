package local

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// router is the built-in HTTP router: a request whose Host (port stripped)
// is one of an app's Routes goes to one of that app's ready web instances,
// round robin. Unknown host: 404; no ready instance or a failed upstream:
// 502; both with a JSON body {"error": "..."}.
type router struct {
	s     *Scheduler
	ln    net.Listener
	srv   *http.Server
	proxy *httputil.ReverseProxy
	next  atomic.Uint64
	done  chan struct{}
}

type targetKey struct{}

func newRouter(s *Scheduler, ln net.Listener) *router {
	r := &router{s: s, ln: ln, done: make(chan struct{})}
	r.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			target := pr.In.Context().Value(targetKey{}).(*url.URL)
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			s.log.Warn("router: upstream failed", "host", req.Host, "error", err)
			writeJSONError(w, http.StatusBadGateway, "upstream failed: "+err.Error())
		},
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
		},
	}
	r.srv = &http.Server{
		Handler:           r,
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() {
		defer close(r.done)
		if err := r.srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			s.log.Error("router stopped", "error", err)
		}
	}()
	return r
}

func (r *router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	host := strings.ToLower(req.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(host, ".")
	app, addrs, ok := r.s.routeTargets(host)
	if !ok {
		writeJSONError(w, http.StatusNotFound, "no app is routed at host "+host)
		return
	}
	if len(addrs) == 0 {
		writeJSONError(w, http.StatusBadGateway, "app "+app+" has no running web instance")
		return
	}
	addr := addrs[int(r.next.Add(1)-1)%len(addrs)]
	ctx := context.WithValue(req.Context(), targetKey{}, &url.URL{Scheme: "http", Host: addr})
	r.proxy.ServeHTTP(w, req.WithContext(ctx))
}

func (r *router) close(ctx context.Context) error {
	err := r.srv.Shutdown(ctx)
	<-r.done
	if t, ok := r.proxy.Transport.(*http.Transport); ok {
		t.CloseIdleConnections()
	}
	return err
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
