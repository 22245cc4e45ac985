package openapi

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const goodApp = `{"name":"hello","created_by":"ann","meta_version":null,"units":[{"name":"web.1","state":"running","started":"2026-11-30T10:00:00Z"}],` +
	`"procs":{"web":null},"num_instances":2,"cpu":0.5,"owner":{"created_by":"bob"},"timeout":1000,"port":"8080","NoTag":true}`

type exchange struct {
	method, path, body string
	noToken            bool
	status             int
	contentType        string
	answer             string
}

// roundTrip sends one request through the validating transport to a server
// that answers as told, and returns what the caller read and the reports.
func roundTrip(t *testing.T, v *Validator, ex exchange) (got string, reports []string) {
	t.Helper()
	var mu sync.Mutex
	var sawBody string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		sawBody = string(b)
		mu.Unlock()
		ct := ex.contentType
		if ct == "" {
			ct = "application/json"
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(ex.status)
		_, _ = io.WriteString(w, ex.answer)
	}))
	defer srv.Close()
	client := &http.Client{Transport: v.Transport(nil, func(s string) {
		mu.Lock()
		defer mu.Unlock()
		reports = append(reports, s)
	})}
	var body io.Reader
	if ex.body != "" {
		body = strings.NewReader(ex.body)
	}
	req, err := http.NewRequest(ex.method, srv.URL+ex.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(ex.body, "{") {
		req.Header.Set("Content-Type", "application/json")
	} else if ex.body != "" {
		req.Header.Set("Content-Type", "text/plain")
	}
	if !ex.noToken {
		req.Header.Set("Authorization", "bearer tok")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != ex.status {
		t.Fatalf("status %d, want %d", resp.StatusCode, ex.status)
	}
	if string(b) != ex.answer {
		t.Fatalf("the caller read %q, the server sent %q", b, ex.answer)
	}
	mu.Lock()
	defer mu.Unlock()
	if sawBody != ex.body {
		t.Fatalf("the server read %q, the caller sent %q", sawBody, ex.body)
	}
	return string(b), reports
}

func testValidator(t *testing.T) *Validator {
	t.Helper()
	_, b := generate(t)
	v, err := NewValidator(b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestValidatorAcceptsRightAnswers(t *testing.T) {
	v := testValidator(t)
	for _, ex := range []exchange{
		{method: "GET", path: "/api/v1/apps/hello", status: 200, answer: goodApp},
		{method: "GET", path: "/api/v1/apps/hello/", status: 200, answer: goodApp}, // trailing slash
		{method: "GET", path: "/api/v1/apps?apptype=app", status: 200, answer: "[" + goodApp + "]"},
		{method: "GET", path: "/api/v1/apps?limit=10", status: 200, answer: "[]"},
		{method: "GET", path: "/api/v1/apps/hello", status: 200, // a nil pointer to a struct
			answer: strings.Replace(goodApp, `"owner":{"created_by":"bob"}`, `"owner":null`, 1)},
		{method: "PATCH", path: "/api/v1/apps/hello/procs/web", body: `{"num_instances":3}`, status: 202,
			answer: `{"name":"web.1","state":"running","started":"2026-11-30T10:00:00Z"}`},
		{method: "DELETE", path: "/api/v1/apps/hello", status: 204},
		{method: "DELETE", path: "/api/v1/apps/hello", status: 409, answer: `{"error":"a deploy is running","status":409,"request_id":"ab12"}`},
		{method: "GET", path: "/services/mysql/doc", status: 200, contentType: "text/plain; charset=utf-8", answer: "MySQL databases."},
		{method: "PUT", path: "/services/mysql/doc", body: "MySQL databases.", status: 204},
		{method: "PUT", path: "/services/mysql/doc", status: 204}, // the body is optional
		{method: "GET", path: "/healthz", noToken: true, status: 200, answer: `{"store":true}`},
		{method: "GET", path: "/files/a.txt", status: 200, contentType: "text/plain", answer: "a"},
		// Refused requests the document also refuses: the two agree.
		{method: "GET", path: "/api/v1/apps/hello", noToken: true, status: 401, answer: `{"error":"no token","status":401}`},
		{method: "PATCH", path: "/api/v1/apps/hello/procs/web", body: `{"num_instances":"three"}`, status: 400,
			answer: `{"error":"num_instances: not a number","status":400}`},
		{method: "GET", path: "/api/v1/nothing", status: 404, answer: `{"error":"no such endpoint","status":404}`},
		{method: "PUT", path: "/healthz", status: 405, answer: `{"error":"method not allowed","status":405}`},
	} {
		if _, reports := roundTrip(t, v, ex); len(reports) > 0 {
			t.Errorf("%s %s -> %d: reported %q", ex.method, ex.path, ex.status, reports)
		}
	}
}

func TestValidatorReportsWrongAnswers(t *testing.T) {
	v := testValidator(t)
	for _, c := range []struct {
		ex   exchange
		want []string // the reports, exactly
	}{
		{exchange{method: "GET", path: "/api/v1/apps/hello", status: 200,
			answer: strings.Replace(goodApp, `"num_instances":2`, `"num_instances":"two"`, 1)},
			[]string{`GET /api/v1/apps/hello: response 200: response body doesn't match schema #/components/schemas/App: Error at "/num_instances": value must be an integer`}},
		{exchange{method: "GET", path: "/api/v1/apps/hello", status: 200,
			answer: strings.Replace(goodApp, `"name":"hello",`, ``, 1)},
			[]string{`GET /api/v1/apps/hello: response 200: response body doesn't match schema #/components/schemas/App: Error at "/name": property "name" is missing`}},
		{exchange{method: "GET", path: "/api/v1/apps", status: 200, answer: `null`},
			[]string{`GET /api/v1/apps: response 200: response body doesn't match schema: Value is not nullable`}},
		{exchange{method: "GET", path: "/api/v1/apps/hello", status: 201, answer: goodApp},
			[]string{`GET /api/v1/apps/hello: response 201: status not in the document (it lists 200, 401, 4XX, 5XX)`}},
		{exchange{method: "DELETE", path: "/api/v1/apps/hello", status: 200, answer: `{}`},
			[]string{`DELETE /api/v1/apps/hello: response 200: status not in the document (it lists 204, 401, 403, 409, 4XX, 5XX)`}},
		{exchange{method: "GET", path: "/api/v1/apps/hello", status: 500, answer: `{"message":"boom"}`},
			[]string{`GET /api/v1/apps/hello: response 500: response body doesn't match schema #/components/schemas/Error: validation failed due to: at '': missing properties 'error', 'status'`}},
		{exchange{method: "GET", path: "/api/v1/apps/hello", status: 200, contentType: "text/plain", answer: goodApp},
			[]string{`GET /api/v1/apps/hello: response 200: response header Content-Type has unexpected value: "text/plain"`}},
		{exchange{method: "GET", path: "/api/v1/nothing", status: 200, answer: `{}`},
			[]string{`GET /api/v1/nothing: path not in the document (the server answered 200)`}},
		{exchange{method: "PUT", path: "/healthz", status: 200, answer: `{"store":true}`},
			[]string{`PUT /healthz: method not in the document (the server answered 200)`}},
		{exchange{method: "PATCH", path: "/api/v1/apps/hello/procs/web", body: `{"num_instances":"three"}`, status: 202,
			answer: `{"name":"web.1","state":"running","started":"2026-11-30T10:00:00Z"}`},
			[]string{`PATCH /api/v1/apps/hello/procs/web: request accepted with 202 but the document refuses it: request body: doesn't match schema #/components/schemas/ProcPatch: validation failed due to: error at "/num_instances": at '/num_instances': got string, want null or integer`}},
		{exchange{method: "GET", path: "/api/v1/apps?limit=ten", status: 200, answer: `[]`},
			[]string{`GET /api/v1/apps: request accepted with 200 but the document refuses it: parameter "limit" in query: value ten: an invalid integer: invalid syntax`}},
		{exchange{method: "GET", path: "/api/v1/apps/hello", noToken: true, status: 200, answer: goodApp},
			[]string{`GET /api/v1/apps/hello: request accepted with 200 but the document refuses it: security requirements failed: no Authorization: bearer <token> header | no access-token header`}},
		{exchange{method: "GET", path: "/api/v1/apps/hello/", status: 200, // trailing slash; one report per mistake
			answer: strings.Replace(strings.Replace(goodApp, `"name":"hello"`, `"name":1`, 1), `"units":[`, `"units":[{},`, 1)},
			[]string{
				`GET /api/v1/apps/hello/: response 200: response body doesn't match schema #/components/schemas/App: Error at "/name": value must be a string`,
				`GET /api/v1/apps/hello/: response 200: response body doesn't match schema #/components/schemas/App: Error at "/units/0/name": property "name" is missing`,
				`GET /api/v1/apps/hello/: response 200: response body doesn't match schema #/components/schemas/App: Error at "/units/0/started": property "started" is missing`,
				`GET /api/v1/apps/hello/: response 200: response body doesn't match schema #/components/schemas/App: Error at "/units/0/state": property "state" is missing`,
			}},
	} {
		_, reports := roundTrip(t, v, c.ex)
		if !slices.Equal(reports, c.want) {
			t.Errorf("%s %s -> %d: reported\n%q\nwant\n%q", c.ex.method, c.ex.path, c.ex.status, reports, c.want)
		}
	}
}

// An event stream reaches the caller as it is written: the transport does
// not wait for its end.
func TestValidatorPassesStreamsThrough(t *testing.T) {
	v := testValidator(t)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, "data: two\n\n")
	}))
	defer srv.Close()
	defer close(release)
	var reports []string
	var mu sync.Mutex
	client := &http.Client{Transport: v.Transport(nil, func(s string) { mu.Lock(); reports = append(reports, s); mu.Unlock() })}
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/apps/hello/events", nil)
	req.Header.Set("access-token", "tok")
	done := make(chan string, 1)
	go func() {
		resp, err := client.Do(req)
		if err != nil {
			done <- err.Error()
			return
		}
		defer resp.Body.Close()
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		done <- line
	}()
	select {
	case line := <-done:
		if line != "data: one\n" {
			t.Fatalf("first line %q", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first event did not reach the caller while the stream was open")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reports) > 0 {
		t.Fatalf("reported %q", reports)
	}
}

func TestNewValidatorRefusesBadDocuments(t *testing.T) {
	for name, doc := range map[string]string{
		"not json":   `{`,
		"no paths":   `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{"/a":{"get":{"responses":{"200":{"description":"ok","content":{"application/json":{"schema":{"$ref":"#/components/schemas/Missing"}}}}}}}}}`,
		"no version": `{"info":{"title":"t","version":"1"},"paths":{}}`,
	} {
		if _, err := NewValidator([]byte(doc)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// One validator serves a whole test suite's concurrent requests.
func TestValidatorConcurrent(t *testing.T) {
	v := testValidator(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("bad") != "" {
			_, _ = io.WriteString(w, `{"name":1}`)
			return
		}
		_, _ = io.WriteString(w, goodApp)
	}))
	defer srv.Close()
	var mu sync.Mutex
	reports := 0
	client := &http.Client{Transport: v.Transport(nil, func(string) { mu.Lock(); reports++; mu.Unlock() })}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := ""
			if i%4 == 0 {
				q = "?bad=1"
			}
			req, _ := http.NewRequest("GET", srv.URL+"/api/v1/apps/hello"+q, nil)
			req.Header.Set("access-token", "tok")
			resp, err := client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Each bad answer: name has the wrong type and 10 properties are missing.
	if reports != 10*11 {
		t.Fatalf("%d reports, want %d", reports, 10*11)
	}
}
