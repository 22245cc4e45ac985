// Package openapi turns the HTTP layer's route table into an OpenAPI 3.1
// document, validates live traffic against such a document (for tests), and
// checks that a document covers every endpoint the seed documents name.
//
// The route table is data owned by the server; this package does not import
// it. The server converts each of its routes into an Operation, calls
// Generate once at start-up (an error there is a mistake in the table) and
// serves the bytes as GET /openapi.json. Tests wrap their client's transport
// with NewValidator(doc).Transport(nil, report) so that every exchange is
// checked against the same document; tools/seedcheck checks the document
// against the seed documents in docs/seeds/ (SeedEndpoints, Uncovered). The document is plain JSON built from Go maps, so its output is
// deterministic (encoding/json sorts map keys; operations are sorted by path
// and method) and it carries only constructs that kin-openapi's OpenAPI 3.1
// loader and validator accept: nullable values are written as a type array
// with "null" (`type: ["string", "null"]`), a nullable reference as
// `anyOf: [{$ref}, {type: "null"}]`, never the 3.0 `nullable` keyword.
//
// kin-openapi v0.153.0 loads and validates OpenAPI 3.1 documents as they
// are (openapi3filter switches to JSON Schema 2020-12 for them), so the
// document is served and validated as 3.1.0: no version rewriting.
// Generate checks its output with kin-openapi's loader and validator.
package openapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// Version is the OpenAPI version of generated documents.
const Version = "3.1.0"

// Info is the document's info object.
type Info struct {
	Title       string
	Version     string
	Description string
}

// Param is a query parameter.
type Param struct {
	Name        string
	Type        string // JSON Schema type: "string" (when empty), "integer", "number" or "boolean"
	Description string
	Required    bool
}

// Operation is one route of the table: one method on one path.
type Operation struct {
	Method string
	// Path is an httprouter pattern: /api/v1/apps/:app, /files/*path. A
	// trailing slash is ignored; every route also answers with one. A
	// catch-all becomes a {path} parameter: OpenAPI has no multi-segment
	// parameter, so the validator routes only one-segment values to it.
	Path        string
	Summary     string // one line
	Description string
	// Action is the permission and audit name; "" for plain authenticated
	// reads. It is written as the x-berth-action extension.
	Action string
	Public bool // no authentication
	Tags   []string
	// ID is the operationId; when empty it is derived from Method and Path
	// (GET /api/v1/apps/:app/procs -> getApiV1AppsAppProcs).
	ID string
	// Request is the type of the request body, nil for none. The body is
	// RequestContentType, application/json when that is empty.
	Request            reflect.Type
	RequestContentType string
	RequestOptional    bool // the body may be left out
	// Response is the type of the success answer (a struct, slice, map, ...);
	// nil for an answer without a body (Status then defaults to 204).
	Response reflect.Type
	Status   int // success status; 200 when 0 (204 when Response is nil and not Text or Stream)
	Query    []Param
	Text     bool // the answer is text/plain (Response is ignored)
	Stream   bool // the answer is a stream (Response is ignored): text/event-stream, or StreamType
	// StreamType is the content type of a stream answer when it is not
	// text/event-stream (e.g. application/x-ndjson: one JSON value a line).
	StreamType string
	// Errors are error statuses worth naming with their meaning (e.g.
	// 409: "the version exists with a different spec"). Every operation
	// also has 4XX and 5XX answers of the Error shape, and 401 (and 403 for
	// an operation with an Action) unless it is public.
	Errors map[int]string
	// AlsoStatus are further success statuses with the same answer (e.g.
	// 200 for a push of a version already recorded, beside 201).
	AlsoStatus []int
	// AlsoResponse are further statuses with an answer of another type
	// (e.g. 200 {"status":"ok"} where nothing had to be redeployed, beside
	// 202 and the operation started; /healthz's 503 with its report).
	AlsoResponse map[int]reflect.Type
	// AlsoContentTypes are further content types the request body may be
	// sent in, with the same schema (e.g. YAML beside JSON).
	AlsoContentTypes []string
}

const (
	errorSchema   = "Error"
	bearerScheme  = "bearer"
	headerScheme  = "accessToken"
	jsonType      = "application/json"
	textType      = "text/plain"
	streamType    = "text/event-stream"
	ndjsonType    = "application/x-ndjson"
	actionExtName = "x-berth-action"
)

var methods = map[string]bool{
	http.MethodGet: true, http.MethodPut: true, http.MethodPost: true, http.MethodDelete: true,
	http.MethodOptions: true, http.MethodHead: true, http.MethodPatch: true, http.MethodTrace: true,
}

// Generate returns the OpenAPI 3.1.0 document of ops as indented JSON.
func Generate(info Info, ops []Operation) ([]byte, error) {
	if len(ops) == 0 {
		return nil, errors.New("openapi: no operations")
	}
	if info.Title == "" || info.Version == "" {
		return nil, errors.New("openapi: the info's title and version are required")
	}
	ops = slices.Clone(ops)
	for i := range ops {
		ops[i].Method = strings.ToUpper(ops[i].Method)
		ops[i].Path = normPath(ops[i].Path)
	}
	slices.SortStableFunc(ops, func(a, b Operation) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		return strings.Compare(a.Method, b.Method)
	})

	sg := newSchemaGen()
	paths := map[string]any{}
	seen := map[string]bool{}
	ids := map[string]string{}
	shapes := map[string]string{} // /a/{} -> /a/{x}: one path, one name per parameter
	for _, op := range ops {
		where := op.Method + " " + op.Path
		if !methods[op.Method] {
			return nil, fmt.Errorf("openapi: %s: unknown method", where)
		}
		if !strings.HasPrefix(op.Path, "/") {
			return nil, fmt.Errorf("openapi: %s: path must start with /", where)
		}
		tmpl, params, err := template(op.Path)
		if err != nil {
			return nil, fmt.Errorf("openapi: %s: %w", where, err)
		}
		shape := paramRE.ReplaceAllString(tmpl, "{}")
		if other, ok := shapes[shape]; ok && other != tmpl {
			return nil, fmt.Errorf("openapi: %s: same path as %s with other parameter names", where, other)
		}
		shapes[shape] = tmpl
		key := op.Method + " " + tmpl
		if seen[key] {
			return nil, fmt.Errorf("openapi: %s: declared twice", where)
		}
		seen[key] = true
		id := op.ID
		if id == "" {
			id = operationID(op.Method, op.Path)
		}
		if other, ok := ids[id]; ok {
			return nil, fmt.Errorf("openapi: %s: operationId %q already used by %s", where, id, other)
		}
		ids[id] = where

		o, err := operation(sg, op, id, params)
		if err != nil {
			return nil, fmt.Errorf("openapi: %s: %w", where, err)
		}
		item, _ := paths[tmpl].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[tmpl] = item
		}
		item[strings.ToLower(op.Method)] = o
	}
	if sg.err != nil {
		return nil, sg.err
	}

	schemas := sg.components()
	schemas[errorSchema] = map[string]any{
		"type":        "object",
		"description": "The body of every error answer.",
		"required":    []string{"error", "status"},
		"properties": map[string]any{
			"error":      map[string]any{"type": "string", "description": "What went wrong."},
			"status":     map[string]any{"type": "integer", "description": "The HTTP status, repeated."},
			"request_id": map[string]any{"type": "string", "description": "The X-Request-Id of the request."},
			"backend": map[string]any{"type": "string", "description": "On a 503 for a backend that is down or does not answer in time: " +
				"its name (consul, vault, nomad, ...)."},
			"retry_after": map[string]any{"type": "integer", "description": "On a 429, or a 503 for a backend that is down: the seconds to wait " +
				"before trying again (also the Retry-After header)."},
		},
	}
	desc := info.Description
	if desc != "" {
		desc += "\n\n"
	}
	desc += "Every path also answers with a trailing slash. Authenticate with `Authorization: bearer <token>` " +
		"or the `access-token` header."
	doc := map[string]any{
		"openapi": Version,
		"info": map[string]any{
			"title":       info.Title,
			"version":     info.Version,
			"description": desc,
		},
		"paths": paths,
		"components": map[string]any{
			"schemas": schemas,
			"securitySchemes": map[string]any{
				bearerScheme: map[string]any{
					"type": "http", "scheme": "bearer",
					"description": "`Authorization: bearer <token>`",
				},
				headerScheme: map[string]any{
					"type": "apiKey", "in": "header", "name": "access-token",
					"description": "The token in the `access-token` header.",
				},
			},
		},
		"security": []any{
			map[string]any{bearerScheme: []string{}},
			map[string]any{headerScheme: []string{}},
		},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	// What is served must load and validate; check it here rather than
	// find out from a client.
	loader := openapi3.NewLoader()
	t, err := loader.LoadFromData(b)
	if err == nil {
		err = t.Validate(loader.Context)
	}
	if err != nil {
		return nil, fmt.Errorf("openapi: the generated document is invalid: %w", err)
	}
	return b, nil
}

func operation(sg *schemaGen, op Operation, id string, pathParams []string) (map[string]any, error) {
	o := map[string]any{"operationId": id}
	if op.Summary != "" {
		o["summary"] = op.Summary
	}
	if op.Description != "" {
		o["description"] = op.Description
	}
	if len(op.Tags) > 0 {
		o["tags"] = op.Tags
	}
	if op.Action != "" {
		o[actionExtName] = op.Action
	}
	if op.Public {
		o["security"] = []any{}
	}

	var params []any
	for _, p := range pathParams {
		params = append(params, map[string]any{
			"name": p, "in": "path", "required": true,
			"schema": map[string]any{"type": "string"},
		})
	}
	qs := slices.Clone(op.Query)
	slices.SortFunc(qs, func(a, b Param) int { return strings.Compare(a.Name, b.Name) })
	for i, q := range qs {
		if q.Name == "" {
			return nil, errors.New("query parameter without a name")
		}
		if i > 0 && qs[i-1].Name == q.Name {
			return nil, fmt.Errorf("query parameter %q declared twice", q.Name)
		}
		typ := q.Type
		if typ == "" {
			typ = "string"
		}
		switch typ {
		case "string", "integer", "number", "boolean":
		default:
			return nil, fmt.Errorf("query parameter %q: type %q is not string, integer, number or boolean", q.Name, typ)
		}
		p := map[string]any{"name": q.Name, "in": "query", "schema": map[string]any{"type": typ}}
		if q.Required {
			p["required"] = true
		}
		if q.Description != "" {
			p["description"] = q.Description
		}
		params = append(params, p)
	}
	if len(params) > 0 {
		o["parameters"] = params
	}

	if op.Request != nil {
		ct := op.RequestContentType
		if ct == "" {
			ct = jsonType
		}
		schema := sg.schema(op.Request)
		content := map[string]any{ct: map[string]any{"schema": schema}}
		for _, more := range op.AlsoContentTypes {
			content[more] = map[string]any{"schema": schema}
		}
		o["requestBody"] = map[string]any{
			"required": !op.RequestOptional,
			"content":  content,
		}
	}

	responses := map[string]any{}
	status := op.Status
	var content map[string]any
	switch {
	case op.Stream:
		st := streamType
		if op.StreamType != "" {
			st = op.StreamType
		}
		content = map[string]any{st: map[string]any{"schema": map[string]any{"type": "string"}}}
	case op.Text:
		content = map[string]any{textType: map[string]any{"schema": map[string]any{"type": "string"}}}
	case op.Response != nil:
		content = map[string]any{jsonType: map[string]any{"schema": sg.schema(op.Response)}}
	}
	if status == 0 {
		status = http.StatusOK
		if content == nil {
			status = http.StatusNoContent
		}
	}
	if status < 100 || status > 399 {
		return nil, fmt.Errorf("success status %d is not 1xx-3xx", status)
	}
	if status == http.StatusNoContent && content != nil {
		return nil, errors.New("a 204 answer has no body, but a response type is declared")
	}
	ok := map[string]any{"description": statusText(status, op.Summary)}
	if content != nil {
		ok["content"] = content
	}
	responses[strconv.Itoa(status)] = ok
	for _, also := range op.AlsoStatus {
		if also < 100 || also > 399 {
			return nil, fmt.Errorf("success status %d is not 1xx-3xx", also)
		}
		more := map[string]any{"description": statusText(also, op.Summary)}
		if content != nil && also != http.StatusNoContent {
			more["content"] = content
		}
		responses[strconv.Itoa(also)] = more
	}
	for also, t := range op.AlsoResponse {
		// An error status may have an answer of its own type too (e.g.
		// /healthz's 503 is its report, not an Error).
		if also < 100 || also > 599 {
			return nil, fmt.Errorf("status %d is not 1xx-5xx", also)
		}
		responses[strconv.Itoa(also)] = map[string]any{
			"description": statusText(also, op.Summary),
			"content":     map[string]any{jsonType: map[string]any{"schema": sg.schema(t)}},
		}
	}

	errs := map[int]string{}
	if !op.Public {
		errs[http.StatusUnauthorized] = "No valid token was given."
		if op.Action != "" {
			errs[http.StatusForbidden] = "The token's user may not " + op.Action + "."
		}
	}
	for code, d := range op.Errors {
		if code < 400 || code > 599 {
			return nil, fmt.Errorf("error status %d is not 4xx-5xx", code)
		}
		errs[code] = d
	}
	errRef := map[string]any{jsonType: map[string]any{"schema": ref(errorSchema)}}
	for code, d := range errs {
		if d == "" {
			d = http.StatusText(code)
		}
		responses[strconv.Itoa(code)] = map[string]any{"description": d, "content": errRef}
	}
	responses["4XX"] = map[string]any{"description": "The request was refused.", "content": errRef}
	responses["5XX"] = map[string]any{"description": "The server or a backend failed.", "content": errRef}
	o["responses"] = responses
	return o, nil
}

func statusText(status int, summary string) string {
	if t := http.StatusText(status); t != "" {
		return t
	}
	if summary != "" {
		return summary
	}
	return "Success"
}

// normPath drops a trailing slash (every route answers with and without).
func normPath(p string) string {
	if len(p) > 1 {
		p = strings.TrimSuffix(p, "/")
	}
	return p
}

// template converts an httprouter pattern to an OpenAPI path template:
// :name and *name become {name}. It returns the parameter names in order.
func template(p string) (string, []string, error) {
	segs := strings.Split(p, "/")
	var names []string
	seen := map[string]bool{}
	for i, s := range segs {
		if s == "" {
			if i != 0 && i != len(segs)-1 {
				return "", nil, errors.New("empty path segment")
			}
			continue
		}
		if s[0] != ':' && s[0] != '*' {
			if strings.ContainsAny(s, ":*{}") {
				return "", nil, fmt.Errorf("segment %q mixes text and a parameter", s)
			}
			continue
		}
		name := s[1:]
		if name == "" || strings.ContainsAny(name, ":*{}") {
			return "", nil, fmt.Errorf("bad parameter %q", s)
		}
		if s[0] == '*' && i != len(segs)-1 {
			return "", nil, fmt.Errorf("catch-all %q is not the last segment", s)
		}
		if seen[name] {
			return "", nil, fmt.Errorf("parameter %q appears twice", name)
		}
		seen[name] = true
		names = append(names, name)
		segs[i] = "{" + name + "}"
	}
	return strings.Join(segs, "/"), names, nil
}

// operationID derives a stable camelCase id from the method and path:
// GET /api/v1/apps/:app/procs -> getApiV1AppsAppProcs.
func operationID(method, path string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	upper := true
	for _, r := range path {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !ok {
			upper = true
			continue
		}
		if upper && r >= 'a' && r <= 'z' {
			r -= 'a' - 'A'
		}
		upper = false
		b.WriteRune(r)
	}
	return b.String()
}

var paramRE = regexp.MustCompile(`\{[^}]*\}`)

func ref(name string) map[string]any {
	return map[string]any{"$ref": "#/components/schemas/" + name}
}
