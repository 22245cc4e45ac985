package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/berthpaas/berth/api"
	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/release"
	"github.com/berthpaas/berth/engine/state"
	"github.com/berthpaas/berth/names"
)

// Error is an error with its HTTP meaning. Handlers return it (or a
// sentinel mapped in errorStatus); the wrapper writes it as JSON.
type Error struct {
	Status int
	Msg    string
	Extra  map[string]any
}

func (e *Error) Error() string { return e.Msg }

func errStatus(status int, format string, a ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, a...)}
}
func badRequest(format string, a ...any) *Error {
	return errStatus(http.StatusBadRequest, format, a...)
}
func notFound(format string, a ...any) *Error  { return errStatus(http.StatusNotFound, format, a...) }
func forbidden(format string, a ...any) *Error { return errStatus(http.StatusForbidden, format, a...) }
func conflict(format string, a ...any) *Error  { return errStatus(http.StatusConflict, format, a...) }
func unauthorized(format string, a ...any) *Error {
	return errStatus(http.StatusUnauthorized, format, a...)
}

// errorStatus is the one place errors get their HTTP status and the
// message shown to the caller. Unknown errors are 500 with no detail.
func errorStatus(err error) (int, string) {
	var he *Error
	var ee *engine.Error
	var ne *names.Error
	var re *release.Error
	var mbe *http.MaxBytesError
	var ue *backends.UnavailableError
	switch {
	case errors.As(err, &he):
		return he.Status, he.Msg
	case errors.As(err, &ue):
		return http.StatusServiceUnavailable, fmt.Sprintf("the %s (%s) is unavailable: %s", ue.Role, ue.Backend, ue.Reason)
	case errors.As(err, &ee):
		return kindStatus[ee.Kind], ee.Msg
	case errors.As(err, &ne):
		return http.StatusBadRequest, ne.Error()
	case errors.As(err, &re):
		return http.StatusBadRequest, re.Error()
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)
	case errors.Is(err, state.ErrNotFound), errors.Is(err, backends.ErrNotFound):
		return http.StatusNotFound, "not found"
	case errors.Is(err, state.ErrExists):
		return http.StatusConflict, "already exists"
	case errors.Is(err, state.ErrConflict), errors.Is(err, backends.ErrCASConflict):
		return http.StatusConflict, "a concurrent change got there first; try again"
	case errors.Is(err, backends.ErrUnavailable):
		return http.StatusServiceUnavailable, "a backend is unavailable"
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "a backend did not answer in time"
	}
	return http.StatusInternalServerError, "internal error"
}

// kindStatus is the HTTP status of each kind of domain error.
var kindStatus = map[engine.Kind]int{
	engine.KindInvalid:         http.StatusBadRequest,
	engine.KindUnauthenticated: http.StatusUnauthorized,
	engine.KindForbidden:       http.StatusForbidden,
	engine.KindNotFound:        http.StatusNotFound,
	engine.KindConflict:        http.StatusConflict,
	engine.KindTooLarge:        http.StatusRequestEntityTooLarge,
	engine.KindTooMany:         http.StatusTooManyRequests,
	engine.KindUnavailable:     http.StatusServiceUnavailable,
	engine.KindUpstream:        http.StatusBadGateway,
	engine.KindTimeout:         http.StatusGatewayTimeout,
	engine.KindInternal:        http.StatusInternalServerError,
}

// retryAfterUnavailable is the Retry-After (seconds) of a 503 for a
// backend that is down: about a Consul leader election or a Vault unseal.
const retryAfterUnavailable = 5

// unavailableRetry is the Retry-After (seconds) of err's answer when it is
// a backend that is down or did not answer, else 0.
func unavailableRetry(err error) int {
	var he *Error
	if errors.As(err, &he) {
		return 0
	}
	if errors.Is(err, backends.ErrUnavailable) {
		return retryAfterUnavailable
	}
	if ee, ok := engine.AsError(err); ok && ee.Kind == engine.KindUnavailable && (ee.Backend != "" || ee.RetryAfter > 0) {
		if ee.RetryAfter > 0 {
			return ee.RetryAfter
		}
		return retryAfterUnavailable
	}
	return 0
}

// errorExtra is the fields an error answer carries besides its message:
// for a backend that is down, "backend" (its name) and "retry_after".
func errorExtra(err error) map[string]any {
	var he *Error
	if errors.As(err, &he) {
		return he.Extra
	}
	var ue *backends.UnavailableError
	if errors.As(err, &ue) {
		return map[string]any{"backend": ue.Backend, "retry_after": retryAfterUnavailable}
	}
	if errors.Is(err, backends.ErrUnavailable) {
		return map[string]any{"retry_after": retryAfterUnavailable}
	}
	ee, ok := engine.AsError(err)
	if !ok {
		return nil
	}
	extra := map[string]any{}
	for k, v := range ee.Extra {
		extra[k] = v
	}
	if ee.Holder != "" {
		extra["lock_holder"], extra["lock_operation"] = ee.Holder, ee.Operation
	}
	if ee.Field != "" {
		extra["field"] = ee.Field
	}
	if ee.Backend != "" {
		extra["backend"] = ee.Backend
	}
	if ra := unavailableRetry(err); ra > 0 {
		extra["retry_after"] = ra
	}
	if len(extra) == 0 {
		return nil
	}
	return extra
}

// reply lets a handler choose the status code (default 200) and body.
type reply struct {
	Status int
	Body   any
}

// textReply is written as text/plain.
type textReply string

// call is one request as handlers see it.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	ps     httprouter.Params
	id     *engine.Identity // nil when anonymous
	log    hclog.Logger
	reqID  string
	action string
	target string
	app    *state.App // the app the route's action was checked against, if any
}

func (c *call) param(name string) string { return c.ps.ByName(name) }
func (c *call) ctx() context.Context     { return c.r.Context() }

// handlerFunc is the shape of every endpoint: it returns a value to be
// written as JSON, or an error.
type handlerFunc func(c *call) (any, error)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	reg      *prometheus.Registry
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_http_requests_total", Help: "HTTP requests by route, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_http_request_duration_seconds", Help: "HTTP request latency by route and method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method"}),
	}
	m.reg.MustRegister(m.requests, m.latency)
	m.reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

func newRequestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 64 && isToken(id) {
		return id
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// startRequest gives a request its id (the caller's X-Request-Id if it is
// sane, else a new one) and sets it on the response. Every answer, the
// router's own included, goes through here.
func startRequest(w http.ResponseWriter, r *http.Request) string {
	reqID := newRequestID(r)
	w.Header().Set("X-Request-Id", reqID)
	return reqID
}

// writeError writes an error answer in its one shape: {"error", "status",
// "request_id"} plus any extra fields.
func writeError(w http.ResponseWriter, reqID string, status int, msg string, extra map[string]any) {
	body := map[string]any{"error": msg, "status": status, "request_id": reqID}
	for k, v := range extra {
		body[k] = v
	}
	writeJSON(w, status, body)
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}
func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// wrap is the one wrapper: request id, body limit, authentication, panic
// recovery, JSON encoding of the value or the error, logging, metrics and
// the audit record of state changes.
func (s *Server) wrap(rt *route) httprouter.Handle {
	method, routeName := rt.Method, rt.Path
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		start := time.Now()
		reqID := startRequest(w, r)
		r = r.WithContext(backends.WithReadScope(r.Context())) // the request's reads share one read index
		sw := &statusWriter{ResponseWriter: w}
		log := s.log.With("request_id", reqID)
		r.Body = http.MaxBytesReader(sw, r.Body, s.cfg.MaxBodyBytes)
		if r.ContentLength != 0 && r.Body != http.NoBody {
			// The body must arrive within http.read_timeout of the request's
			// start; the deadline is lifted once it has been read, so that a
			// long handler (or stream) is not cut off by it.
			r.Body = withReadDeadline(w, r.Body, start.Add(s.cfg.HTTP.ReadTimeoutDur))
		}
		c := &call{w: sw, r: r, ps: ps, log: log, reqID: reqID, action: string(rt.Action)}
		var val any
		var err error
		func() {
			defer func() {
				if p := recover(); p != nil {
					log.Error("panic in handler", "route", routeName, "panic", fmt.Sprint(p))
					err = errors.New("panic")
				}
			}()
			c.id, err = s.authenticate(r)
			if err == nil && c.id == nil && !rt.Public {
				err = unauthorized("authentication required: send a token as 'Authorization: bearer <token>' or in the 'access-token' header")
			}
			if err == nil && !rt.Public {
				err = s.authorize(c, rt)
			}
			if err == nil {
				val, err = rt.h(c)
			}
		}()
		if err != nil {
			status, msg := errorStatus(err)
			if status >= 500 {
				log.Error("request failed", "method", method, "route", routeName, "status", status, "error", err.Error())
			}
			if ra := unavailableRetry(err); ra > 0 && status == http.StatusServiceUnavailable {
				sw.Header().Set("Retry-After", strconv.Itoa(ra))
			}
			writeError(sw, reqID, status, msg, errorExtra(err))
		} else {
			s.checkAnswerType(rt, val, log)
			switch v := val.(type) {
			case streamed:
			case *reply:
				if v.Status == http.StatusNoContent || v.Body == nil {
					sw.WriteHeader(v.Status)
				} else {
					writeJSON(sw, v.Status, v.Body)
				}
			case textReply:
				sw.Header().Set("Content-Type", "text/plain; charset=utf-8")
				sw.WriteHeader(http.StatusOK)
				_, _ = io.WriteString(sw, string(v))
			case nil:
				writeJSON(sw, http.StatusOK, map[string]string{"status": "ok"})
			default:
				writeJSON(sw, http.StatusOK, v)
			}
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		elapsed := time.Since(start)
		s.metrics.requests.WithLabelValues(routeName, method, strconv.Itoa(status)).Inc()
		s.metrics.latency.WithLabelValues(routeName, method).Observe(elapsed.Seconds())
		log.Debug("request", "method", method, "path", r.URL.Path, "status", status, "duration", elapsed)
		// An anonymous request refused as unauthenticated changed nothing
		// and names no one: it is not recorded (it would let anyone fill
		// the log).
		if rt.Action != "" && rt.audited() && !(status == http.StatusUnauthorized && c.id == nil) {
			actor := "anonymous"
			if c.id != nil {
				actor = c.id.Name()
			}
			target := c.target
			if target == "" {
				target = paramsTarget(ps)
			}
			s.audit(actor, string(rt.Action), target, status, reqID)
		}
	}
}

// deadlineBody is a request body read under a connection read deadline,
// which it lifts at the end of the body. The
// http.Server's own ReadTimeout is not used: it stays on the connection
// while the handler runs, and its expiry cancels the request's context,
// which would cut the events stream and any long request short.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func withReadDeadline(w http.ResponseWriter, body io.ReadCloser, at time.Time) io.ReadCloser {
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(at); err != nil {
		return body // not supported by this ResponseWriter (e.g. in tests)
	}
	return &deadlineBody{ReadCloser: body, rc: rc}
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	// On a timeout the deadline stays: the server's own attempt to read
	// the rest of the body after the answer fails too, and the connection
	// is closed.
	var ne interface{ Timeout() bool }
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		return n, errBodyTimeout
	}
	return n, err
}

// errBodyTimeout is a request body that did not arrive in time.
var errBodyTimeout = errStatus(http.StatusRequestTimeout, "the request body did not arrive within the server's read timeout")

// streamed marks a handler that wrote its own response.
type streamed struct{}

func paramsTarget(ps httprouter.Params) string {
	parts := make([]string, 0, len(ps))
	for _, p := range ps {
		parts = append(parts, p.Value)
	}
	return strings.Join(parts, "/")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	// Encode to a buffer first (as Nomad's wrapper does): a value that
	// cannot be encoded becomes a 500 with a JSON body, not a 200 with a
	// truncated one.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		buf.Reset()
		status = http.StatusInternalServerError
		_ = json.NewEncoder(&buf).Encode(map[string]any{
			"error": "the answer could not be encoded", "status": status, "request_id": w.Header().Get("X-Request-Id"),
		})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// decode reads a JSON body into v strictly: one object, no unknown fields,
// fields of the right types. Errors are 400 (413 for an oversized body) with
// a message that says what was wrong.
func decode(c *call, v any) error {
	body, err := io.ReadAll(c.r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) || errors.Is(err, errBodyTimeout) {
			return err
		}
		return badRequest("could not read the request body")
	}
	return decodeBytes(body, v)
}

func decodeBytes(body []byte, v any) error {
	if len(strings.TrimSpace(string(body))) == 0 {
		return badRequest("request body is empty: a JSON object is expected")
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return badRequest("invalid JSON at byte %d: %v", se.Offset, se)
		case errors.As(err, &te):
			return badRequest("invalid JSON: field %q must be %s, not %s", te.Field, te.Type.String(), te.Value)
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return badRequest("invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
		}
		return badRequest("invalid JSON: %v", err)
	}
	// Only white space may follow the value: not a second value, and not
	// a stray ']' or '}' (which dec.More alone lets through).
	end := dec.InputOffset()
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("invalid JSON: data after the end of the value at byte %d", end)
	}
	return nil
}

// jsonStatusHandler answers the router's own errors (no such endpoint,
// method not allowed) in the same shape, with a request id, as every other
// error.
func jsonStatusHandler(status int, msg string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, startRequest(w, r), status, msg, nil)
	})
}

// answerTypeMismatch is logged when a handler answers a value of another
// type than its route declares (route.Out): the OpenAPI document and the
// api/ client are made from the declared types, so the two must not drift.
// The e2e suite fails on this line.
const answerTypeMismatch = "a handler answered a type its route does not declare"

func (s *Server) checkAnswerType(rt *route, val any, log hclog.Logger) {
	if rt.Text || rt.Stream {
		return
	}
	want := reflect.TypeOf(rt.Out)
	body := val
	if r, ok := val.(*reply); ok {
		body = r.Body
		if r.Status == http.StatusNoContent {
			return
		}
	}
	switch body.(type) {
	case streamed, textReply:
		return
	case nil:
		if want == nil || want == reflect.TypeOf(api.Status{}) {
			return
		}
		for _, v := range rt.AlsoOut {
			if reflect.TypeOf(v) == reflect.TypeOf(api.Status{}) {
				return
			}
		}
		log.Error(answerTypeMismatch, "route", rt.Method+" "+rt.Path, "answered", "nil (status ok)", "declared", fmt.Sprint(want))
		return
	}
	got := reflect.TypeOf(body)
	if got.Kind() == reflect.Pointer {
		got = got.Elem()
	}
	if got == want {
		return
	}
	for _, v := range rt.AlsoOut {
		if got == reflect.TypeOf(v) {
			return
		}
	}
	log.Error(answerTypeMismatch, "route", rt.Method+" "+rt.Path, "answered", got.String(), "declared", fmt.Sprint(want))
}
