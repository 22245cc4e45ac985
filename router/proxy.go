// Package router is Berth's built-in HTTP router, the same on both
// schedulers: a request whose Host (port stripped, lower-cased) is one of an
// app's routes (<app>.<apps_domain> or a custom domain) goes to one of the
// app's healthy web instances, round robin.
//
// Where the instances come from is a Source: the local scheduler answers
// from its own memory (backends/local), the Nomad scheduler's apps are found
// in the Consul catalog by Consul, which keeps a copy of the catalog fed by
// blocking queries, so no request waits on Consul.
//
// Answers of the router itself carry a JSON body {"error": "..."}: 404 for a
// host no app is routed at, 502 when the app has no healthy instance (or
// every instance tried refused the connection, or the upstream failed), 503
// with Retry-After when the Source has not read its instances yet.
package router

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Target is where a host's requests go: the app and the addresses
// (host:port) of its healthy web instances.
type Target struct {
	App   string
	Addrs []string
}

// ErrNotReady is answered by a Source that has not read its instances yet
// (wrapped with the reason); the router answers 503 with Retry-After.
var ErrNotReady = errors.New("the router has not read the instances yet")

// A Source answers the Target of a host name (lower-case, no port, no
// trailing dot). ok is false when no app is routed at host. It is called on
// every request and must not block on the network.
type Source interface {
	Route(host string) (t Target, ok bool, err error)
}

// SourceFunc adapts a function to a Source.
type SourceFunc func(host string) (Target, bool, error)

// Route calls f.
func (f SourceFunc) Route(host string) (Target, bool, error) { return f(host) }

// Options tune a Proxy; zero values take the defaults.
type Options struct {
	Logger hclog.Logger
	// DialTimeout bounds one connection attempt to an instance (5s).
	DialTimeout time.Duration
	// Attempts is how many instances a request may try when connecting
	// fails (3); the request goes to the next instance only when the
	// connection could not be made, so nothing was sent.
	Attempts int
}

// Proxy is the router's http.Handler.
type Proxy struct {
	src       Source
	log       hclog.Logger
	attempts  int
	next      atomic.Uint64
	transport *http.Transport
	rp        *httputil.ReverseProxy
}

type ctxKey struct{}

// pick is a request's instances, in the order to try them.
type pick struct {
	app   string
	addrs []string
	start int
}

// NewProxy makes the router's handler for src.
func NewProxy(src Source, o Options) *Proxy {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	p := &Proxy{src: src, log: o.Logger, attempts: o.Attempts}
	p.transport = &http.Transport{
		DialContext:           (&net.Dialer{Timeout: o.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       30 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pk := pr.In.Context().Value(ctxKey{}).(*pick)
			pr.SetURL(&url.URL{Scheme: "http", Host: pk.addrs[pk.start]})
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport:  retrier{p},
		BufferPool: bufPool{},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			if req.Context().Err() != nil {
				return // the client went away
			}
			pk := req.Context().Value(ctxKey{}).(*pick)
			p.log.Warn("upstream failed", "host", req.Host, "app", pk.app, "error", err)
			WriteError(w, http.StatusBadGateway, "app "+pk.app+": upstream failed: "+err.Error())
		},
	}
	return p
}

// Host normalizes a request's Host header: lower case, without port and
// trailing dot.
func Host(r *http.Request) string {
	host := strings.ToLower(r.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.TrimSuffix(host, ".")
}

// ServeHTTP routes r by its Host.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host := Host(r)
	t, ok, err := p.src.Route(host)
	switch {
	case err != nil:
		w.Header().Set("Retry-After", "1")
		WriteError(w, http.StatusServiceUnavailable, err.Error())
		return
	case !ok:
		WriteError(w, http.StatusNotFound, "no app is routed at host "+host)
		return
	case len(t.Addrs) == 0:
		WriteError(w, http.StatusBadGateway, "app "+t.App+" has no healthy web instance")
		return
	}
	pk := &pick{app: t.App, addrs: t.Addrs, start: int(p.next.Add(1)-1) % len(t.Addrs)}
	p.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, pk)))
}

// Close closes the idle connections to instances.
func (p *Proxy) Close() { p.transport.CloseIdleConnections() }

// retrier sends a request to its picked instance and, when the connection
// cannot be made, to the next ones (up to Attempts in all).
type retrier struct{ p *Proxy }

func (rt retrier) RoundTrip(req *http.Request) (*http.Response, error) {
	pk, _ := req.Context().Value(ctxKey{}).(*pick)
	if pk == nil || len(pk.addrs) < 2 {
		return rt.p.transport.RoundTrip(req)
	}
	// The transport closes the body on a failed attempt; keep it open
	// until an attempt used it (a failed dial reads nothing of it).
	var body *holdBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &holdBody{rc: req.Body}
		defer body.release()
	}
	n := min(rt.p.attempts, len(pk.addrs))
	var err error
	for i := 0; i < n; i++ {
		addr := pk.addrs[(pk.start+i)%len(pk.addrs)]
		r := req
		if i > 0 {
			r = req.Clone(req.Context())
			r.URL.Host = addr
		}
		if body != nil {
			r.Body = body
		}
		var resp *http.Response
		resp, err = rt.p.transport.RoundTrip(r)
		if err == nil {
			return resp, nil
		}
		if !dialFailed(err) || (body != nil && body.read.Load()) || req.Context().Err() != nil {
			return nil, err
		}
		rt.p.log.Debug("instance refused the connection; trying another", "app", pk.app, "addr", addr, "error", err)
	}
	return nil, err
}

// dialFailed reports whether err is a failure to connect (nothing sent).
func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// holdBody is a request body whose Close is held back until release, and
// which records whether it was read.
type holdBody struct {
	rc   io.ReadCloser
	read atomic.Bool
	once sync.Once
}

func (b *holdBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.rc.Read(p)
}

func (b *holdBody) Close() error { return nil }

func (b *holdBody) release() { b.once.Do(func() { _ = b.rc.Close() }) }

// bufPool recycles the proxy's copy buffers.
type bufPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

func (bufPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufPool) Put(b []byte) { buffers.Put(&b) }

// WriteError writes the router's own answer: code with {"error": msg}.
func WriteError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// Server is a router serving on a listener.
type Server struct {
	ln   net.Listener
	srv  *http.Server
	done chan struct{}
	log  hclog.Logger
}

// Serve serves h on ln until Close.
func Serve(ln net.Listener, h http.Handler, log hclog.Logger) *Server {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s := &Server{ln: ln, done: make(chan struct{}), log: log,
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("router stopped", "error", err)
		}
	}()
	return s
}

// Addr is the address the router listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops serving, waiting for requests in flight until ctx is done
// (then closing them), and returns when the serving goroutine has ended.
func (s *Server) Close(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	<-s.done
	return err
}
