package server

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthpaas/berth/server/openapi"
)

// TestOpenAPIDocument: GET /openapi.json is a valid OpenAPI 3.1 document
// (it loads and validates with kin-openapi, which NewValidator does) with
// one operation per route of the table.
func TestOpenAPIDocument(t *testing.T) {
	s, _ := newTestServer(t, nil)
	w := serve(s, "GET", "/openapi.json", "", nil)
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("GET /openapi.json: %d %s", w.Code, w.Header())
	}
	if _, err := openapi.NewValidator(w.Body.Bytes()); err != nil {
		t.Fatalf("the document does not validate: %v", err)
	}
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	n := 0
	for _, ops := range doc.Paths {
		n += len(ops)
	}
	if want := len(s.routes()); n != want {
		t.Errorf("the document has %d operations, the route table %d routes", n, want)
	}
	op := doc.Paths["/services/{name}/doc"]["put"]
	if op["x-berth-action"] != "service.doc.set" {
		t.Errorf("PUT /services/{name}/doc has action %v, want service.doc.set", op["x-berth-action"])
	}
}

// TestOpenAPICoversSeeds: every endpoint the two seed documents name is in
// the document (the check tools/seedcheck makes from the command line).
func TestOpenAPICoversSeeds(t *testing.T) {
	s, _ := newTestServer(t, nil)
	doc, err := s.openapiDocument()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("../docs/seeds/*.txt")
	if err != nil || len(files) != 2 {
		t.Fatalf("seed documents: %v %v", files, err)
	}
	eps, err := openapi.SeedEndpoints(files...)
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) < 60 {
		t.Fatalf("only %d endpoints found in the seeds", len(eps))
	}
	for _, ep := range openapi.Uncovered(doc, eps) {
		t.Errorf("the seeds name %s, which the OpenAPI document lacks", ep)
	}
}
