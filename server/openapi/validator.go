package openapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// kin-openapi decodes application/yaml and application/x-yaml bodies;
// text/yaml (which the push takes too) is the same YAML.
func init() {
	if openapi3filter.RegisteredBodyDecoder("text/yaml") == nil {
		openapi3filter.RegisterBodyDecoder("text/yaml", openapi3filter.YamlBodyDecoder)
	}
}

// Validator checks HTTP exchanges against an OpenAPI document with
// kin-openapi (which loads and validates OpenAPI 3.1 documents natively,
// with JSON Schema 2020-12 semantics; no version rewriting is needed).
type Validator struct {
	doc    *openapi3.T
	router routers.Router
}

// NewValidator loads and validates docJSON.
func NewValidator(docJSON []byte) (*Validator, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(docJSON)
	if err != nil {
		return nil, fmt.Errorf("openapi: load: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi: invalid document: %w", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, fmt.Errorf("openapi: router: %w", err)
	}
	return &Validator{doc: doc, router: router}, nil
}

// Transport returns an http.RoundTripper that sends each request through
// base (http.DefaultTransport when nil) and validates the exchange against
// the document, calling report once per mismatch with a message naming the
// method, the path and what is wrong. report may be called from several
// goroutines at once. Bodies reach the caller intact; an event stream is
// passed through unread (only its status and content type are checked).
//
// What is reported:
//   - a request to a path or method the document does not have, unless the
//     server too answered 404 or 405;
//   - a request the document says is invalid (body, query or path
//     parameters, missing credentials) that the server accepted with a
//     status below 400 (a refused invalid request is the two agreeing);
//   - an answer whose status the document does not list, or whose body or
//     content type does not match the document for that status.
//
// Paths are matched with a trailing slash removed: every route also
// answers with one.
func (v *Validator) Transport(base http.RoundTripper, report func(string)) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{v: v, base: base, report: report}
}

type transport struct {
	v      *Validator
	base   http.RoundTripper
	report func(string)
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var reqBody []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		// RoundTrip must not modify the request, but its body is consumed by
		// reading it: hand base a clone carrying the bytes.
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(b))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	where := req.Method + " " + req.URL.Path
	ct := resp.Header.Get("Content-Type")
	stream := isMedia(ct, streamType) || isMedia(ct, ndjsonType)
	var respBody []byte
	if !stream && resp.Body != nil {
		respBody, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(respBody))
		if err != nil {
			return nil, err
		}
	}
	for _, msg := range t.v.check(req, reqBody, resp.StatusCode, resp.Header, respBody, stream) {
		t.report(where + ": " + msg)
	}
	return resp, nil
}

// check validates one exchange and returns its mismatches.
func (v *Validator) check(req *http.Request, reqBody []byte, status int, header http.Header, respBody []byte, stream bool) []string {
	if strings.HasPrefix(req.URL.Path, "/osb/") {
		// The Open Service Broker API (package osbserver) is not part of
		// Berth's API or its document.
		return nil
	}
	ctx := context.Background()
	r := req.Clone(ctx)
	if p := r.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") {
		r.URL.Path = strings.TrimSuffix(p, "/")
		r.URL.RawPath = ""
	}
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := v.router.FindRoute(r)
	if err != nil {
		if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
			return nil
		}
		var re *routers.RouteError
		if errors.As(err, &re) && errors.Is(re, routers.ErrMethodNotAllowed) {
			return []string{fmt.Sprintf("method not in the document (the server answered %d)", status)}
		}
		return []string{fmt.Sprintf("path not in the document (the server answered %d)", status)}
	}
	var out []string
	in := &openapi3filter.RequestValidationInput{
		Request:    r,
		PathParams: params,
		Route:      route,
		Options: &openapi3filter.Options{
			MultiError:         true,
			AuthenticationFunc: hasCredentials,
		},
	}
	// A refused request is not held to the document (and is not decoded:
	// a refused body may be huge, e.g. 70k YAML keys).
	if status < 400 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			for _, e := range flatten(err) {
				out = append(out, fmt.Sprintf("request accepted with %d but the document refuses it: %s", status, e))
			}
		}
	}
	rin := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 header,
		Options: &openapi3filter.Options{
			MultiError:            true,
			IncludeResponseStatus: true,
			ExcludeResponseBody:   stream,
		},
	}
	rin.SetBodyBytes(respBody)
	if err := openapi3filter.ValidateResponse(ctx, rin); err != nil {
		for _, e := range flatten(err) {
			if e == "status is not supported" {
				codes := slices.Sorted(maps.Keys(route.Operation.Responses.Map()))
				e = "status not in the document (it lists " + strings.Join(codes, ", ") + ")"
			}
			out = append(out, fmt.Sprintf("response %d: %s", status, e))
		}
	}
	return out
}

// hasCredentials accepts a request that carries a token the way the
// document's security schemes say; whether the token is good is the
// server's business.
func hasCredentials(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	h := in.RequestValidationInput.Request.Header
	switch in.SecurityScheme.Type {
	case "http":
		scheme, tok, _ := strings.Cut(h.Get("Authorization"), " ")
		if strings.EqualFold(scheme, in.SecurityScheme.Scheme) && strings.TrimSpace(tok) != "" {
			return nil
		}
		return fmt.Errorf("no Authorization: %s <token> header", in.SecurityScheme.Scheme)
	case "apiKey":
		if in.SecurityScheme.In == "header" && h.Get(in.SecurityScheme.Name) != "" {
			return nil
		}
		return fmt.Errorf("no %s header", in.SecurityScheme.Name)
	}
	return fmt.Errorf("unsupported security scheme %q", in.SecurityScheme.Type)
}

// flatten splits kin-openapi's multi-errors into one line each, keeping
// what each part was about (request body, parameter, response body).
func flatten(err error) []string {
	prefixed := func(prefix string, inner error) []string {
		if inner == nil {
			return []string{prefix}
		}
		var out []string
		for _, s := range flatten(inner) {
			if prefix == "" || s == prefix {
				out = append(out, s)
			} else {
				out = append(out, prefix+": "+s)
			}
		}
		return out
	}
	switch e := err.(type) {
	case openapi3.MultiError:
		var out []string
		for _, sub := range e {
			out = append(out, flatten(sub)...)
		}
		return out
	case *openapi3filter.ResponseError:
		return prefixed(e.Reason, e.Err)
	case *openapi3filter.RequestError:
		prefix := e.Reason
		switch {
		case e.Parameter != nil:
			prefix = strings.TrimSuffix(fmt.Sprintf("parameter %q in %s: %s", e.Parameter.Name, e.Parameter.In, e.Reason), ": ")
		case e.RequestBody != nil:
			prefix = strings.TrimSuffix("request body: "+e.Reason, ": ")
		}
		return prefixed(prefix, e.Err)
	}
	return []string{oneLine(err.Error())}
}

func oneLine(s string) string {
	// kin-openapi's schema errors append the schema and the value on
	// following lines; the first line says what is wrong and where.
	s = strings.TrimSpace(s)
	if i := strings.Index(s, "\nSchema:"); i >= 0 {
		s = s[:i]
	}
	return strings.Join(strings.Fields(s), " ")
}

func isMedia(contentType, want string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && mt == want
}
