package local

import (
	"context"
	"net"

	"github.com/berthpaas/berth/router"
)

// The built-in HTTP router (package router) serves the local scheduler's
// apps from its memory: a request whose Host (port stripped) is one of an
// app's Routes goes to one of that app's ready web instances, round robin,
// another one when connecting fails. Unknown host: 404; no ready instance
// or a failed upstream: 502; both with a JSON body {"error": "..."}.
type localRouter struct {
	ln    net.Listener
	proxy *router.Proxy
	srv   *router.Server
}

func newRouter(s *Scheduler, ln net.Listener) *localRouter {
	src := router.SourceFunc(func(host string) (router.Target, bool, error) {
		app, addrs, ok := s.routeTargets(host)
		return router.Target{App: app, Addrs: addrs}, ok, nil
	})
	p := router.NewProxy(src, router.Options{Logger: s.log.Named("router")})
	return &localRouter{ln: ln, proxy: p, srv: router.Serve(ln, p, s.log.Named("router"))}
}

func (r *localRouter) close(ctx context.Context) error {
	err := r.srv.Close(ctx)
	r.proxy.Close()
	return err
}
