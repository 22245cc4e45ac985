// Package api is the typed client of Berth's HTTP API, in the manner of
// Consul's api package: one request and response type per resource of both
// API surfaces (the tsuru-style /users, /teams, /apps, /services, ... and the
// LAIN-style /api/v1/...), and a Client with one accessor per resource:
//
//	c, err := api.NewClient(api.DefaultConfig())
//	apps, meta, err := c.Apps().List(nil)
//
// The types mirror the server's wire format exactly: field names, omitted
// fields and time formats (RFC 3339). Reads return (T, *QueryMeta, error),
// writes (T, *WriteMeta, error). A non-2xx answer is an *Error carrying the
// status, the server's message and the request id.
//
// Authentication: every endpoint except POST /users (when registration is
// open), POST /users/:email/tokens, POST /users/:email/password and GET
// /healthz needs a token, sent as "Authorization: bearer <token>" (Config.Token).
// Beyond that, each endpoint's documentation says which permission it needs.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Environment variables DefaultConfig reads.
const (
	// AddrEnv names the server's address, e.g. "http://127.0.0.1:8080".
	AddrEnv = "BERTH_ADDR"
	// TokenEnv holds the token to authenticate with.
	TokenEnv = "BERTH_TOKEN"
)

// DefaultAddress is the address used when neither Config.Address nor
// BERTH_ADDR says otherwise.
const DefaultAddress = "http://127.0.0.1:8080"

// Config configures a Client.
type Config struct {
	// Address is the server's base URL ("http://host:port"); a bare
	// "host:port" gets "http://".
	Address string
	// Token authenticates the calls: a user token (from Users().Login) or
	// an app token (from Tokens().Create). Empty: anonymous.
	Token string
	// HTTPClient makes the requests; nil: a client with a 60-second timeout.
	// Streams (Deploys().Events) are bounded by their context, not by it,
	// when Timeout is 0.
	HTTPClient *http.Client
	// UserAgent is sent with every request; empty: "berth-api".
	UserAgent string
}

// DefaultConfig returns a Config from the environment: BERTH_ADDR (else
// DefaultAddress) and BERTH_TOKEN.
func DefaultConfig() *Config {
	c := &Config{Address: DefaultAddress}
	if a := os.Getenv(AddrEnv); a != "" {
		c.Address = a
	}
	c.Token = os.Getenv(TokenEnv)
	return c
}

// Client is a Berth API client. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
	ua    string
}

// NewClient returns a client for cfg (nil: DefaultConfig()).
func NewClient(cfg *Config) (*Client, error) {
	if cfg == nil {
		cfg = DefaultConfig()
	}
	addr := cfg.Address
	if addr == "" {
		addr = DefaultAddress
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(strings.TrimRight(addr, "/"))
	if err != nil {
		return nil, fmt.Errorf("api: invalid address %q: %w", cfg.Address, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("api: invalid address %q: want http(s)://host:port", cfg.Address)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = "berth-api"
	}
	return &Client{base: u, token: cfg.Token, http: hc, ua: ua}, nil
}

// Address is the server's base URL the client talks to.
func (c *Client) Address() string { return c.base.String() }

// Token is the token the client authenticates with.
func (c *Client) Token() string { return c.token }

// SetToken changes the token of later calls (e.g. after Users().Login).
func (c *Client) SetToken(t string) { c.token = t }

// QueryOptions are the options of a read.
type QueryOptions struct {
	// RequestID is sent as X-Request-Id (the server takes it when it is at
	// most 64 characters of [A-Za-z0-9._-]; else it makes one up). It
	// appears in the server's log and audit records.
	RequestID string
	// Params are extra query parameters (e.g. "apptype" of Deploys().List).
	Params url.Values
	// Limit asks a list for one page of at most Limit items (the server
	// takes 1 to 1000); 0 asks for the whole list. QueryMeta.Next is then
	// the cursor of the next page, "" after the last one; AllPages follows
	// them.
	Limit int
	// Next is the cursor of the page to read: the QueryMeta.Next of the
	// page before; "" is the first page.
	Next string

	ctx context.Context
}

// WithContext returns a copy of q whose requests are bound to ctx.
func (q *QueryOptions) WithContext(ctx context.Context) *QueryOptions {
	var o QueryOptions
	if q != nil {
		o = *q
	}
	o.ctx = ctx
	return &o
}

// Context is the context of the requests (context.Background if none).
func (q *QueryOptions) Context() context.Context {
	if q == nil || q.ctx == nil {
		return context.Background()
	}
	return q.ctx
}

// QueryMeta is what the server says about a read besides its answer.
type QueryMeta struct {
	// RequestID is the server's X-Request-Id of the request.
	RequestID string
	// LastIndex is the blocking index of the answer where the server
	// gives one: the "id:" of each event of Deploys().Events (the modify
	// index of the app's deploy record). Plain reads carry none (0).
	LastIndex uint64
	// RequestTime is how long the request took.
	RequestTime time.Duration
	// Next is, on a page of a list (QueryOptions.Limit), the cursor of
	// the next page (the X-Next header); "" on the last page.
	Next string
}

// AllPages reads a whole list page by page: it calls list with q (Limit
// and Next as q sets them; a Limit of 0 reads the list in one answer),
// then again with each answer's Next until the last page. The QueryMeta
// is that of the last page.
//
//	apps, _, err := api.AllPages(&api.QueryOptions{Limit: 500}, c.Apps().List)
func AllPages[T any](q *QueryOptions, list func(*QueryOptions) ([]T, *QueryMeta, error)) ([]T, *QueryMeta, error) {
	var o QueryOptions
	if q != nil {
		o = *q
	}
	var (
		all  []T
		seen = map[string]bool{}
	)
	for {
		page, qm, err := list(&o)
		if err != nil {
			return nil, nil, err
		}
		all = append(all, page...)
		if qm == nil || qm.Next == "" || o.Limit == 0 {
			return all, qm, nil
		}
		if seen[qm.Next] {
			return nil, nil, fmt.Errorf("api: the server gave the cursor %q twice", qm.Next)
		}
		seen[qm.Next] = true
		o.Next = qm.Next
		if err := o.Context().Err(); err != nil {
			return nil, nil, err
		}
	}
}

// WriteOptions are the options of a write.
type WriteOptions struct {
	// RequestID is sent as X-Request-Id (see QueryOptions.RequestID).
	RequestID string

	ctx context.Context
}

// WithContext returns a copy of w whose requests are bound to ctx.
func (w *WriteOptions) WithContext(ctx context.Context) *WriteOptions {
	var o WriteOptions
	if w != nil {
		o = *w
	}
	o.ctx = ctx
	return &o
}

// Context is the context of the requests (context.Background if none).
func (w *WriteOptions) Context() context.Context {
	if w == nil || w.ctx == nil {
		return context.Background()
	}
	return w.ctx
}

// WriteMeta is what the server says about a write besides its answer.
type WriteMeta struct {
	// RequestID is the server's X-Request-Id of the request.
	RequestID string
	// StatusCode is the HTTP status of the answer: 202 when the write
	// started an operation of a deployed app (follow it with
	// Deploys().Get or Deploys().Events), 200 or 201 otherwise.
	StatusCode int
	// RequestTime is how long the request took.
	RequestTime time.Duration
}

// Status is the answer of an endpoint that has nothing else to say:
// {"status": "ok"}, or a sentence (password resets).
type Status struct {
	Status string `json:"status"` // "ok", or a sentence
}

// Error is a non-2xx answer of the server. The server's error body is
// {"error": message, "status": code, "request_id": id} plus, for some
// errors, more fields (kept in Extra and, for the known ones, in their
// own fields).
type Error struct {
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Message is the server's explanation ("error").
	Message string `json:"error"`
	// RequestID is the request's id ("request_id"; also X-Request-Id).
	RequestID string `json:"request_id"`
	// RetryAfter is, on a 429 or a 503, the seconds to wait before trying
	// again ("retry_after"; also the Retry-After header).
	RetryAfter int `json:"retry_after,omitempty"`
	// Backend is, on a 503 for a backend that is down or does not answer,
	// the backend's name ("consul", "vault", "nomad", ...).
	Backend string `json:"backend,omitempty"`
	// LockHolder is, on a 409 for a busy app, who holds the app's
	// operation lease ("lock_holder").
	LockHolder string `json:"lock_holder,omitempty"`
	// LockOperation is, on a 409 for a busy app, the operation that holds
	// the lease ("lock_operation").
	LockOperation string `json:"lock_operation,omitempty"`
	// Extra holds every field of the body other than error, status and
	// request_id (the known ones above included).
	Extra map[string]any `json:"-"`

	body []byte // the answer as it came
}

// Error formats the error as "<message> (HTTP <status>)".
func (e *Error) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status) }

// StatusOf is the HTTP status of err when it is (or wraps) an *Error, else 0.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// IsNotFound reports whether err is a 404 answer.
func IsNotFound(err error) bool { return StatusOf(err) == http.StatusNotFound }

// IsConflict reports whether err is a 409 answer.
func IsConflict(err error) bool { return StatusOf(err) == http.StatusConflict }

func decodeError(resp *http.Response, body []byte) *Error {
	e := &Error{Status: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id"), body: body}
	var raw map[string]any
	if json.Unmarshal(body, &raw) == nil {
		var known Error
		_ = json.Unmarshal(body, &known)
		if known.Message != "" {
			e.Message = known.Message
		}
		if known.RequestID != "" {
			e.RequestID = known.RequestID
		}
		e.RetryAfter, e.LockHolder, e.LockOperation, e.Backend = known.RetryAfter, known.LockHolder, known.LockOperation, known.Backend
		for k, v := range raw {
			switch k {
			case "error", "status", "request_id":
			default:
				if e.Extra == nil {
					e.Extra = map[string]any{}
				}
				e.Extra[k] = v
			}
		}
	}
	if e.Message == "" {
		e.Message = strings.TrimSpace(string(body))
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	if e.RetryAfter == 0 {
		e.RetryAfter, _ = strconv.Atoi(resp.Header.Get("Retry-After"))
	}
	return e
}

// request is one API call.
type request struct {
	method string
	path   string // escaped
	params url.Values
	body   io.Reader
	ctype  string
	reqID  string
	ctx    context.Context
}

func (c *Client) newRequest(method, path string) *request {
	return &request{method: method, path: path, params: url.Values{}, ctx: context.Background()}
}

func (r *request) setQuery(q *QueryOptions) {
	if q == nil {
		return
	}
	r.reqID = q.RequestID
	r.ctx = q.Context()
	for k, vs := range q.Params {
		for _, v := range vs {
			r.params.Add(k, v)
		}
	}
	if q.Limit > 0 {
		r.params.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Next != "" {
		r.params.Set("next", q.Next)
	}
}

func (r *request) setWrite(w *WriteOptions) {
	if w == nil {
		return
	}
	r.reqID = w.RequestID
	r.ctx = w.Context()
}

func (r *request) jsonBody(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	r.body, r.ctype = bytes.NewReader(b), "application/json"
	return nil
}

// maxAnswer bounds the answers read into memory.
const maxAnswer = 32 << 20

// do sends r; a non-2xx answer is an *Error. The caller closes the body of
// the response it gets.
func (c *Client) do(r *request) (*http.Response, time.Duration, error) {
	full := c.base.String() + r.path
	if q := r.params.Encode(); q != "" {
		full += "?" + q
	}
	req, err := http.NewRequestWithContext(r.ctx, r.method, full, r.body)
	if err != nil {
		return nil, 0, err
	}
	if r.body != nil {
		req.Header.Set("Content-Type", r.ctype)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "bearer "+c.token)
	}
	if r.reqID != "" {
		req.Header.Set("X-Request-Id", r.reqID)
	}
	req.Header.Set("User-Agent", c.ua)
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		return nil, 0, decodeError(resp, body)
	}
	return resp, time.Since(start), nil
}

// call sends r and decodes a JSON answer into out (if out is not nil and
// the answer has a body).
func (c *Client) call(r *request, out any) (*http.Response, time.Duration, error) {
	resp, rtt, err := c.do(r)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, 0, err
	}
	if out != nil && len(bytes.TrimSpace(body)) > 0 {
		if err := json.Unmarshal(body, out); err != nil {
			return nil, 0, fmt.Errorf("api: decoding the answer of %s %s: %w", r.method, r.path, err)
		}
	}
	return resp, rtt, nil
}

// query is a GET decoded into out.
func (c *Client) query(path string, out any, q *QueryOptions) (*QueryMeta, error) {
	r := c.newRequest(http.MethodGet, path)
	r.setQuery(q)
	resp, rtt, err := c.call(r, out)
	if err != nil {
		return nil, err
	}
	return queryMeta(resp, rtt), nil
}

// write sends method path with body (JSON, unless it is a *rawBody) and
// decodes the answer into out.
func (c *Client) write(method, path string, params url.Values, body, out any, w *WriteOptions) (*WriteMeta, error) {
	r := c.newRequest(method, path)
	r.setWrite(w)
	for k, vs := range params {
		r.params[k] = vs
	}
	switch b := body.(type) {
	case nil:
	case *rawBody:
		r.body, r.ctype = bytes.NewReader(b.data), b.ctype
	default:
		if err := r.jsonBody(b); err != nil {
			return nil, err
		}
	}
	resp, rtt, err := c.call(r, out)
	if err != nil {
		return nil, err
	}
	return &WriteMeta{RequestID: resp.Header.Get("X-Request-Id"), StatusCode: resp.StatusCode, RequestTime: rtt}, nil
}

// rawBody is a request body sent as it is.
type rawBody struct {
	data  []byte
	ctype string
}

func queryMeta(resp *http.Response, rtt time.Duration) *QueryMeta {
	return &QueryMeta{RequestID: resp.Header.Get("X-Request-Id"), RequestTime: rtt, Next: resp.Header.Get("X-Next")}
}

// esc escapes one path segment.
func esc(s string) string { return url.PathEscape(s) }
