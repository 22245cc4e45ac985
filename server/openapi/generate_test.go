package openapi

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

// api-like types, in the shape the api/ package gives them.

type Unit struct {
	Name    string    `json:"name"`
	State   string    `json:"state"`
	Started time.Time `json:"started"`
}

type Meta struct {
	CreatedBy string `json:"created_by"`
	Note      string `json:"note,omitempty"`
}

type App struct {
	Meta                        // flattened, as encoding/json does
	Name      string            `json:"name"`
	Version   *string           `json:"meta_version"`
	Units     []Unit            `json:"units"`
	Env       map[string]string `json:"env,omitempty"`
	Procs     map[string]*Unit  `json:"procs"`
	Deployed  *time.Time        `json:"deployed,omitempty"`
	Instances int               `json:"num_instances"`
	CPU       float64           `json:"cpu"`
	Owner     *Meta             `json:"owner"`
	Labels    [][]string        `json:"labels,omitzero"`
	Timeout   time.Duration     `json:"timeout"`
	Extra     json.RawMessage   `json:"extra,omitempty"`
	Port      int64             `json:"port,string"`
	internal  string            //nolint:unused // unexported: not in the schema
	Skipped   string            `json:"-"`
	NoTag     bool
}

type ProcPatch struct {
	NumInstances *int    `json:"num_instances,omitempty"`
	Memory       *string `json:"memory,omitempty"`
}

func testOps() []Operation {
	return []Operation{
		{Method: "GET", Path: "/api/v1/apps/", Summary: "List deployed apps", Response: reflect.TypeFor[[]App](),
			Query: []Param{{Name: "apptype", Description: "app, service, resource or resource-instance"}, {Name: "limit", Type: "integer"}}},
		{Method: "GET", Path: "/api/v1/apps/:app", Summary: "One deployed app", Response: reflect.TypeFor[App]()},
		{Method: "PATCH", Path: "/api/v1/apps/:app/procs/:proc/", Summary: "Scale a proc", Action: "proc.patch",
			Request: reflect.TypeFor[ProcPatch](), Response: reflect.TypeFor[Unit](), Status: 202},
		{Method: "DELETE", Path: "/api/v1/apps/:app", Summary: "Undeploy", Action: "app.undeploy",
			Errors: map[int]string{409: "A deploy is running."}},
		{Method: "GET", Path: "/services/:name/doc", Summary: "Service documentation", Text: true},
		{Method: "PUT", Path: "/services/:name/doc", Summary: "Set the documentation", Action: "service.doc",
			Request: reflect.TypeFor[string](), RequestContentType: "text/plain", RequestOptional: true},
		{Method: "GET", Path: "/api/v1/apps/:app/events", Summary: "Watch events", Stream: true},
		{Method: "GET", Path: "/healthz", Summary: "Health", Public: true, Response: reflect.TypeFor[map[string]bool]()},
		{Method: "GET", Path: "/files/*path", Summary: "A file", Text: true},
	}
}

func generate(t *testing.T) (map[string]any, []byte) {
	t.Helper()
	b, err := Generate(Info{Title: "Berth", Version: "test"}, testOps())
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc, b
}

// at walks a decoded JSON document: at(doc, "paths", "/x", "get").
func at(t *testing.T, v any, keys ...string) any {
	t.Helper()
	for i, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%v: not an object at %q", keys[:i], k)
		}
		if v, ok = m[k]; !ok {
			t.Fatalf("%v: no key %q (have %v)", keys[:i], k, reflect.ValueOf(m).MapKeys())
		}
	}
	return v
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestGenerateLoadsAndValidatesAsOpenAPI31(t *testing.T) {
	_, b := generate(t)
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(b)
	if err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi = %q", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestGenerateSchemas(t *testing.T) {
	doc, _ := generate(t)
	schemas := at(t, doc, "components", "schemas").(map[string]any)
	app := schemas["App"]
	for name, want := range map[string]string{
		"name":          `{"type":"string"}`,
		"created_by":    `{"type":"string"}`, // from the embedded Meta, flattened
		"note":          `{"type":"string"}`,
		"meta_version":  `{"type":["string","null"]}`,
		"units":         `{"items":{"$ref":"#/components/schemas/Unit"},"type":"array"}`,
		"env":           `{"additionalProperties":{"type":"string"},"type":"object"}`,
		"procs":         `{"additionalProperties":{"anyOf":[{"$ref":"#/components/schemas/Unit"},{"type":"null"}]},"type":"object"}`,
		"deployed":      `{"format":"date-time","type":["string","null"]}`,
		"num_instances": `{"format":"int64","type":"integer"}`,
		"cpu":           `{"format":"double","type":"number"}`,
		"owner":         `{"anyOf":[{"$ref":"#/components/schemas/Meta"},{"type":"null"}]}`,
		"labels":        `{"items":{"items":{"type":"string"},"type":"array"},"type":"array"}`,
		"timeout":       `{"description":"A duration in nanoseconds.","format":"int64","type":"integer"}`,
		"extra":         `{}`,
		"port":          `{"type":"string"}`,
		"NoTag":         `{"type":"boolean"}`,
	} {
		if got := asJSON(t, at(t, app, "properties", name)); got != want {
			t.Errorf("App.%s = %s, want %s", name, got, want)
		}
	}
	props := at(t, app, "properties").(map[string]any)
	for _, absent := range []string{"internal", "Skipped", "Meta"} {
		if _, ok := props[absent]; ok {
			t.Errorf("App has property %q", absent)
		}
	}
	if len(props) != 16 {
		t.Errorf("App has %d properties, want 16", len(props))
	}
	wantReq := `["NoTag","cpu","created_by","meta_version","name","num_instances","owner","port","procs","timeout","units"]`
	if got := asJSON(t, at(t, app, "required")); got != wantReq {
		t.Errorf("App.required = %s, want %s", got, wantReq)
	}
	if got := asJSON(t, schemas["Unit"]); got != `{"properties":{"name":{"type":"string"},"started":{"format":"date-time","type":"string"},"state":{"type":"string"}},"required":["name","started","state"],"type":"object"}` {
		t.Errorf("Unit = %s", got)
	}
	if got := asJSON(t, schemas["ProcPatch"]); got != `{"properties":{"memory":{"type":["string","null"]},"num_instances":{"format":"int64","type":["integer","null"]}},"type":"object"}` {
		t.Errorf("ProcPatch = %s (omitempty pointers: optional, nullable)", got)
	}
	if got := asJSON(t, schemas["Error"]); got != `{"description":"The body of every error answer.","properties":{"backend":{"description":"On a 503 for a backend that is down or does not answer in time: its name (consul, vault, nomad, ...).","type":"string"},"error":{"description":"What went wrong.","type":"string"},"request_id":{"description":"The X-Request-Id of the request.","type":"string"},"retry_after":{"description":"On a 429, or a 503 for a backend that is down: the seconds to wait before trying again (also the Retry-After header).","type":"integer"},"status":{"description":"The HTTP status, repeated.","type":"integer"}},"required":["error","status"],"type":"object"}` {
		t.Errorf("Error = %s", got)
	}
	if len(schemas) != 5 {
		t.Errorf("components: %d schemas, want App, Meta, ProcPatch, Unit, Error", len(schemas))
	}
}

func TestGeneratePaths(t *testing.T) {
	doc, _ := generate(t)
	paths := at(t, doc, "paths").(map[string]any)
	var got []string
	for p, item := range paths {
		for m := range item.(map[string]any) {
			got = append(got, m+" "+p)
		}
	}
	slices.Sort(got)
	want := []string{
		"delete /api/v1/apps/{app}",
		"get /api/v1/apps",
		"get /api/v1/apps/{app}",
		"get /api/v1/apps/{app}/events",
		"get /files/{path}",
		"get /healthz",
		"get /services/{name}/doc",
		"patch /api/v1/apps/{app}/procs/{proc}",
		"put /services/{name}/doc",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("operations:\n%v\nwant\n%v", got, want)
	}

	patch := at(t, paths, "/api/v1/apps/{app}/procs/{proc}", "patch")
	if got := asJSON(t, at(t, patch, "parameters")); got != `[{"in":"path","name":"app","required":true,"schema":{"type":"string"}},{"in":"path","name":"proc","required":true,"schema":{"type":"string"}}]` {
		t.Errorf("patch parameters = %s", got)
	}
	if got := at(t, patch, "operationId"); got != "patchApiV1AppsAppProcsProc" {
		t.Errorf("operationId = %v", got)
	}
	if got := at(t, patch, "x-berth-action"); got != "proc.patch" {
		t.Errorf("x-berth-action = %v", got)
	}
	if got := asJSON(t, at(t, patch, "requestBody")); got != `{"content":{"application/json":{"schema":{"$ref":"#/components/schemas/ProcPatch"}}},"required":true}` {
		t.Errorf("requestBody = %s", got)
	}
	codes := func(op any) []string {
		var cs []string
		for c := range at(t, op, "responses").(map[string]any) {
			cs = append(cs, c)
		}
		slices.Sort(cs)
		return cs
	}
	if got := codes(patch); !slices.Equal(got, []string{"202", "401", "403", "4XX", "5XX"}) {
		t.Errorf("patch responses = %v", got)
	}
	if got := asJSON(t, at(t, patch, "responses", "202", "content")); got != `{"application/json":{"schema":{"$ref":"#/components/schemas/Unit"}}}` {
		t.Errorf("202 = %s", got)
	}
	// Every error answer has the Error shape.
	for p, item := range paths {
		for m, op := range item.(map[string]any) {
			for code, r := range at(t, op, "responses").(map[string]any) {
				if code[0] != '4' && code[0] != '5' {
					continue
				}
				if got := asJSON(t, at(t, r, "content")); got != `{"application/json":{"schema":{"$ref":"#/components/schemas/Error"}}}` {
					t.Errorf("%s %s %s: %s", m, p, code, got)
				}
			}
		}
	}

	del := at(t, paths, "/api/v1/apps/{app}", "delete")
	if got := codes(del); !slices.Equal(got, []string{"204", "401", "403", "409", "4XX", "5XX"}) {
		t.Errorf("delete responses = %v", got)
	}
	if got := at(t, del, "responses", "409", "description"); got != "A deploy is running." {
		t.Errorf("409 = %v", got)
	}
	if _, ok := at(t, del, "responses", "204").(map[string]any)["content"]; ok {
		t.Errorf("204 has content")
	}

	list := at(t, paths, "/api/v1/apps", "get")
	if got := asJSON(t, at(t, list, "responses", "200", "content")); got != `{"application/json":{"schema":{"items":{"$ref":"#/components/schemas/App"},"type":"array"}}}` {
		t.Errorf("list 200 = %s", got)
	}
	if got := asJSON(t, at(t, list, "parameters")); got != `[{"description":"app, service, resource or resource-instance","in":"query","name":"apptype","schema":{"type":"string"}},{"in":"query","name":"limit","schema":{"type":"integer"}}]` {
		t.Errorf("list parameters = %s", got)
	}
	if got := codes(list); !slices.Equal(got, []string{"200", "401", "4XX", "5XX"}) {
		t.Errorf("list responses = %v (a read has no action, hence no 403)", got)
	}

	health := at(t, paths, "/healthz", "get")
	if got := asJSON(t, at(t, health, "security")); got != `[]` {
		t.Errorf("public security = %s", got)
	}
	if got := codes(health); !slices.Equal(got, []string{"200", "4XX", "5XX"}) {
		t.Errorf("health responses = %v", got)
	}
	if got := asJSON(t, at(t, health, "responses", "200", "content")); got != `{"application/json":{"schema":{"additionalProperties":{"type":"boolean"},"type":"object"}}}` {
		t.Errorf("health 200 = %s", got)
	}
	if _, ok := list.(map[string]any)["security"]; ok {
		t.Errorf("an authenticated operation overrides the document's security")
	}
	if got := asJSON(t, at(t, doc, "security")); got != `[{"bearer":[]},{"accessToken":[]}]` {
		t.Errorf("security = %s", got)
	}
	if got := asJSON(t, at(t, doc, "components", "securitySchemes", "accessToken")); got != `{"description":"The token in the `+"`access-token`"+` header.","in":"header","name":"access-token","type":"apiKey"}` {
		t.Errorf("accessToken = %s", got)
	}

	if got := asJSON(t, at(t, paths, "/services/{name}/doc", "put", "requestBody")); got != `{"content":{"text/plain":{"schema":{"type":"string"}}},"required":false}` {
		t.Errorf("text request = %s", got)
	}
	if got := asJSON(t, at(t, paths, "/services/{name}/doc", "get", "responses", "200", "content")); got != `{"text/plain":{"schema":{"type":"string"}}}` {
		t.Errorf("text = %s", got)
	}
	if got := asJSON(t, at(t, paths, "/api/v1/apps/{app}/events", "get", "responses", "200", "content")); got != `{"text/event-stream":{"schema":{"type":"string"}}}` {
		t.Errorf("stream = %s", got)
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	_, a := generate(t)
	ops := testOps()
	slices.Reverse(ops)
	b, err := Generate(Info{Title: "Berth", Version: "test"}, ops)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Fatal("the document depends on the order of the operations")
	}
}

func TestGenerateRefusesBadTables(t *testing.T) {
	for name, ops := range map[string][]Operation{
		"twice":          {{Method: "GET", Path: "/a/:x"}, {Method: "GET", Path: "/a/:y/"}},
		"method":         {{Method: "FETCH", Path: "/a"}},
		"relative":       {{Method: "GET", Path: "a"}},
		"catch-all":      {{Method: "GET", Path: "/a/*rest/b"}},
		"mixed segment":  {{Method: "GET", Path: "/a/x:y"}},
		"same id":        {{Method: "GET", Path: "/a-b"}, {Method: "GET", Path: "/a/b"}},
		"204 with body":  {{Method: "GET", Path: "/a", Status: 204, Response: reflect.TypeFor[Unit]()}},
		"error status":   {{Method: "GET", Path: "/a", Errors: map[int]string{200: "no"}}},
		"query type":     {{Method: "GET", Path: "/a", Query: []Param{{Name: "q", Type: "object"}}}},
		"chan":           {{Method: "GET", Path: "/a", Response: reflect.TypeFor[chan int]()}},
		"struct map key": {{Method: "GET", Path: "/a", Response: reflect.TypeFor[map[Unit]int]()}},
		"no operations":  {},
	} {
		if _, err := Generate(Info{Title: "t", Version: "1"}, ops); err == nil {
			t.Errorf("%s: no error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if _, err := Generate(Info{Version: "1"}, testOps()); err == nil {
		t.Error("no title: no error")
	}
}

type Node struct {
	Name     string  `json:"name"`
	Children []*Node `json:"children"`
}

func TestGenerateRecursiveAndClashingNames(t *testing.T) {
	type Unit struct { // same name as the package-level Unit, another type
		ID int `json:"id"`
	}
	b, err := Generate(Info{Title: "t", Version: "1"}, []Operation{
		{Method: "GET", Path: "/a", Response: reflect.TypeFor[Node]()},
		{Method: "GET", Path: "/b", Response: reflect.TypeFor[App]()},
		{Method: "GET", Path: "/c", Response: reflect.TypeFor[Unit]()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewValidator(b); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	_ = json.Unmarshal(b, &doc)
	if got := asJSON(t, at(t, doc, "components", "schemas", "Node", "properties", "children", "items")); got != `{"anyOf":[{"$ref":"#/components/schemas/Node"},{"type":"null"}]}` {
		t.Errorf("Node.children = %s", got)
	}
	if got := asJSON(t, at(t, doc, "paths", "/c", "get", "responses", "200", "content", "application/json", "schema")); got != `{"$ref":"#/components/schemas/openapi_Unit"}` {
		t.Errorf("second Unit = %s", got)
	}
	if got := asJSON(t, at(t, doc, "components", "schemas", "openapi_Unit", "properties")); got != `{"id":{"format":"int64","type":"integer"}}` {
		t.Errorf("openapi_Unit = %s", got)
	}
}
