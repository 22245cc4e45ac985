package openapi

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const (
	lainSeed  = "../../docs/seeds/000_c1f8ea49c4f4a0cb.txt"
	tsuruSeed = "../../docs/seeds/001_6fa4cd717c80f1ed.txt"
)

func keys(eps []Endpoint) []string {
	var out []string
	for _, e := range eps {
		out = append(out, e.Method+" "+e.Path)
	}
	return out
}

func TestSeedEndpointsLAIN(t *testing.T) {
	eps, err := SeedEndpoints(lainSeed)
	if err != nil {
		t.Fatal(err)
	}
	got := keys(eps)
	// The document has 25 curl lines, one per endpoint.
	if len(got) != 25 {
		t.Fatalf("%d endpoints, want 25:\n%s", len(got), strings.Join(got, "\n"))
	}
	for i, want := range map[int]string{
		0:  "POST /api/v1/repos",                             // curl with -d and no -X
		6:  "POST /api/v1/repos/{appName}/maintainers",       // "curl -x POST"
		10: "POST /api/v1/repos/{appName}/push",              // "-XPOST"
		14: "PUT /api/v1/apps/{appName}",                     // "-X PUT"
		18: "GET /api/v1/apps/{appName}/procs/{procName}",    // no trailing slash in the seed
		19: "PATCH /api/v1/apps/{appName}/procs/{procName}",  // trailing slash dropped
		21: "GET /api/v1/resources/{resourceName}/instances", //
		22: "GET /api/v1/notify/imagepush",                   // a concrete notify type
		24: "DELETE /api/v1/notify/imagepush",                // "-XDELETE", with -d: still DELETE
	} {
		if got[i] != want {
			t.Errorf("endpoint %d = %q, want %q", i, got[i], want)
		}
	}
	if eps[0].Source != lainSeed+":3" {
		t.Errorf("source = %q", eps[0].Source)
	}
	// The document states each endpoint's method two lines above its curl
	// line; the method read from the curl command must agree.
	b, err := os.ReadFile(lainSeed)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for _, e := range eps {
		n, _ := strconv.Atoi(e.Source[strings.LastIndexByte(e.Source, ':')+1:])
		if stated := strings.TrimSpace(lines[n-3]); stated != e.Method {
			t.Errorf("%s: curl says %s, the document %s", e.Source, e.Method, stated)
		}
	}
}

func TestSeedEndpointsTsuru(t *testing.T) {
	eps, err := SeedEndpoints(tsuruSeed)
	if err != nil {
		t.Fatal(err)
	}
	got := keys(eps)
	// 43 "Method:/URI:" pairs, and "Create an user", which has only its
	// example "POST /users HTTP/1.1". 9 apps, 9 services, 7 instances,
	// 1 quota, 2 healers, 1 platform, 8 users, 6 teams, 1 token.
	if len(got) != 44 {
		t.Fatalf("%d endpoints, want 44:\n%s", len(got), strings.Join(got, "\n"))
	}
	for _, want := range []string{
		"GET /apps",
		"GET /apps/{appname}",
		"PUT /swap", // "/swap?app1=appname&app2=anotherapp"
		"PUT /services/{servicename}/{teamname}",
		"GET /services/instances",
		"PUT /services/instances/{serviceinstancename}/{appname}",
		"GET /services/instances/{serviceinstancename}/status",
		"POST /users",
		"POST /users/{email}/password", // "?token=token"
		"DELETE /users/tokens",
		"PUT /teams/{teanmaname}/{username}", // the seed's spelling
		"POST /tokens",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("missing %q", want)
		}
	}
	if got[0] != "GET /apps" || got[43] != "POST /users" {
		t.Errorf("order: first %q, last %q", got[0], got[43])
	}
	for _, e := range eps {
		if e.Method == "DELELE" || strings.Contains(e.Path, "myteam") || strings.Contains(e.Path, "protected") {
			t.Errorf("an example was taken for an endpoint: %v", e)
		}
	}

	both, err := SeedEndpoints(lainSeed, tsuruSeed)
	if err != nil {
		t.Fatal(err)
	}
	if len(both) != 69 {
		t.Errorf("both seeds: %d endpoints, want 69", len(both))
	}
}

func TestParseCurl(t *testing.T) {
	for line, want := range map[string]string{
		`curl /a/b/`: "GET /a/b",
		`curl http://host:8080/api/v1/apps/hello/?apptype=app`: "GET /api/v1/apps/hello",
		`curl -d '{"a": "http://x/y"}' /a`:                     "POST /a",
		`curl --request patch /a/:x`:                           "PATCH /a/{x}",
		`curl -XDELETE -H 'A: b' "/a/<name>"`:                  "DELETE /a/{name}",
		`curl -H "X: \"q\"" --data-raw x /a/b`:                 "POST /a/b",
	} {
		ep, err := parseCurl(line)
		if err != nil {
			t.Errorf("%s: %v", line, err)
			continue
		}
		if got := ep.Method + " " + ep.Path; got != want {
			t.Errorf("%s: %q, want %q", line, got, want)
		}
	}
	for _, bad := range []string{`curl -X`, `curl -H 'x'`, `curl -X FETCH /a`, `curl '/a`} {
		if _, err := parseCurl(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestUncovered(t *testing.T) {
	eps, err := SeedEndpoints(lainSeed, tsuruSeed)
	if err != nil {
		t.Fatal(err)
	}
	// A table that serves every seed endpoint but three, with httprouter
	// names for the parameters and a parameter where the seed has a value.
	var ops []Operation
	skip := map[string]bool{
		"DELETE /api/v1/notify/imagepush": true,
		"GET /healers/{healer}":           true,
		"POST /users":                     true,
	}
	seen := map[string]bool{}
	for _, e := range eps {
		if skip[e.Method+" "+e.Path] {
			continue
		}
		p := strings.Replace(e.Path, "/notify/imagepush", "/notify/:type", 1)
		p = strings.NewReplacer("{", ":", "}", "").Replace(p)
		p = strings.Replace(p, ":teanmaname", ":teamname", 1) // one name per parameter position
		p = strings.Replace(p, "/services/:servicename/", "/services/:name/", 1)
		p = strings.Replace(p, "/services/:servicename", "/services/:name", 1)
		p = strings.Replace(p, "/instances/:serviceinstancename", "/instances/:instance", 1)
		p = strings.Replace(p, "/:appName", "/:app", 1)
		p = strings.Replace(p, "/apps/:appname", "/apps/:app", 1)
		p = strings.Replace(p, "/:procName", "/:proc", 1)
		p = strings.Replace(p, "/:username", "/:user", 1)
		if seen[e.Method+p] {
			continue
		}
		seen[e.Method+p] = true
		ops = append(ops, Operation{Method: e.Method, Path: p, Summary: "x"})
	}
	ops = append(ops, Operation{Method: "GET", Path: "/healers/run", Summary: "a literal does not cover a placeholder"})
	doc, err := Generate(Info{Title: "t", Version: "1"}, ops)
	if err != nil {
		t.Fatal(err)
	}
	got := keys(Uncovered(doc, eps))
	want := []string{"DELETE /api/v1/notify/imagepush", "GET /healers/{healer}", "POST /users"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("uncovered %q, want %q", got, want)
	}
	if got := keys(Uncovered([]byte("not json"), eps[:2])); len(got) != 2 {
		t.Errorf("a broken document covers %q", got)
	}
}

func TestSeedEndpointsErrors(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"uri-alone": "• URI: /apps\n",
		"bad-curl":  "curl -X FETCH /a\n",
	} {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := SeedEndpoints(f); err == nil || !strings.Contains(err.Error(), f+":1") {
			t.Errorf("%s: error %v does not name the line", name, err)
		}
	}
	if _, err := SeedEndpoints(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file: no error")
	}
}
