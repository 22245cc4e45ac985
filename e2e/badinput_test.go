package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// oddNames are names that must never become a key, a job ID or a file name.
var oddNames = []string{
	"../x", "..", "a/b", "/abs", strings.Repeat("a", 300), "ünïcödé", "日本", "a b", "a\x00b", "a%2Fb", "a\\b", ".hidden", "-dash", "x\n",
}

// oddEmails are not acceptable user names.
var oddEmails = []string{
	"../x@e2e.test", "a/b@e2e.test", strings.Repeat("a", 300) + "@e2e.test", "ünï@e2e.test", "x@e2e.test/../y",
	"x@e2e.test\x00", "Mallory <m@e2e.test>", "m@e2e..test", "@e2e.test", "m@", "..@e2e.test",
}

// jsonEndpoint is an endpoint that decodes a JSON body.
type jsonEndpoint struct {
	method, path string
	as           *User
	valid        map[string]any // a body that would change something if accepted
	ok           int            // the status the valid body gets
}

func testBadInput(t *testing.T, b *Berth) {
	// max_body_bytes is 64 KiB in this scenario.
	u := b.newUser(t, "fuzzy")
	b.createApp(t, u, "target")
	b.do(t, "POST", "/teams", u, map[string]any{"name": "fuzzteam"}).want(t, http.StatusOK)
	key, _ := newSSHKey(t, "")
	b.do(t, "POST", "/users/keys", u, map[string]any{"key": key}).want(t, http.StatusOK)
	b.do(t, "POST", "/api/v1/notify/imagepush/", b.Admin, map[string]any{"notify_url": "http://127.0.0.1:9/kept"}).want(t, http.StatusCreated)
	mate := b.register(t, b.unique("mate")+"@e2e.test")
	key2, _ := newSSHKey(t, "")

	// snapshot is everything a user or admin can see; a refused request
	// must leave it as it was.
	snapshot := func() string {
		var s bytes.Buffer
		for _, q := range []struct {
			path string
			as   *User
		}{
			{"/apps", b.Admin}, {"/teams", b.Admin}, {"/api/v1/repos/", b.Admin}, {"/api/v1/notify/imagepush/", b.Admin},
			{"/users/keys", u}, {"/quota/" + u.Email, u}, {"/quota/" + mate.Email, b.Admin},
			{"/api/v1/repos/target/maintainers/", u}, {"/api/v1/repos/target/details/", u}, {"/teams/fuzzteam", u},
			{"/users/info", u},
		} {
			r := b.do(t, "GET", q.path, q.as, nil)
			fmt.Fprintf(&s, "%s %d %s\n", q.path, r.Code, r.Raw)
		}
		return s.String()
	}
	before := snapshot()
	// refused checks one answer; unchanged compares the state after a
	// group of refused requests (comparing after each would be slow on
	// Consul and Vault).
	refused := func(r *Resp) {
		t.Helper()
		if r.Code < 400 || r.Code >= 500 {
			t.Errorf("BAD INPUT accepted or crashed: %s", r)
			return
		}
		if msg, _ := r.Obj()["error"].(string); msg == "" {
			t.Errorf("BAD INPUT: %s: the refusal says nothing", r)
		}
	}
	unchanged := func(what string) {
		t.Helper()
		if after := snapshot(); after != before {
			t.Fatalf("BAD INPUT changed state (%s)\nbefore:\n%s\nafter:\n%s", what, before, after)
		}
	}

	endpoints := []jsonEndpoint{
		{"POST", "/users", nil, map[string]any{"email": "new@e2e.test", "password": "secret-123"}, 200},
		{"POST", "/users/" + u.Email + "/tokens", nil, map[string]any{"password": u.Password}, 200},
		{"PUT", "/users/password", u, map[string]any{"old": u.Password, "new": "changed-" + randHex(4)}, 200},
		{"POST", "/users/keys", u, map[string]any{"key": key2}, 200},
		{"DELETE", "/users/keys", u, map[string]any{"key": key}, 200},
		{"POST", "/teams", u, map[string]any{"name": "newteam"}, 200},
		{"PUT", "/quota/" + mate.Email, b.Admin, map[string]any{"limit": 7}, 200},
		{"POST", "/tokens", u, map[string]any{"appname": "target", "expires": 60}, 200},
		{"POST", "/apps", u, map[string]any{"name": "newapp", "platform": "go"}, 200},
		{"POST", "/api/v1/repos/", u, map[string]any{"appname": "newrepo"}, 201},
		{"POST", "/api/v1/repos/target/maintainers/", u, map[string]any{"username": mate.Email, "role": "developer"}, 201},
		{"POST", "/api/v1/notify/imagepush/", b.Admin, map[string]any{"notify_url": "http://127.0.0.1:9/new"}, 201},
		{"DELETE", "/api/v1/notify/imagepush/", b.Admin, map[string]any{"notify_url": "http://127.0.0.1:9/kept"}, 200},
		{"POST", "/api/v1/repos/target/push/", u, pushBody(metaVersion(), 1), 201},
	}
	for _, ep := range endpoints {
		valid, _ := json.Marshal(ep.valid)
		cases := map[string][]byte{
			"malformed":        valid[:len(valid)-1],
			"not json":         []byte("name=x&password=y"),
			"empty":            nil,
			"array":            []byte("[" + string(valid) + "]"),
			"string":           []byte(`"` + strings.ReplaceAll(string(valid), `"`, `\"`) + `"`),
			"trailing garbage": append(append([]byte{}, valid...), []byte(` {"x":1}`)...),
			"nested deep":      []byte(strings.Repeat("[", 5000) + strings.Repeat("]", 5000)),
		}
		// Unknown fields, including ones that would be dangerous if honoured.
		for _, extra := range []string{`"zzz":1`, `"admin":true`, `"Admin":true`, `"owner":"` + mate.Email + `"`, `"quota":1000`} {
			cases["unknown field "+extra] = []byte(strings.TrimSuffix(string(valid), "}") + "," + extra + "}")
		}
		// Wrong types, field by field.
		for field, v := range ep.valid {
			for i, wrong := range []any{12345, true, []any{v}, map[string]any{"v": v}} {
				if _, isNum := v.(int); isNum && i == 0 {
					wrong = "12345"
				}
				body := map[string]any{}
				for k, vv := range ep.valid {
					body[k] = vv
				}
				body[field] = wrong
				data, _ := json.Marshal(body)
				cases[fmt.Sprintf("wrong type %s=%T", field, wrong)] = data
			}
		}
		for name, body := range cases {
			r := b.do(t, ep.method, ep.path, ep.as, rawBody(body))
			refused(r)
			if strings.HasPrefix(name, "malformed") || strings.HasPrefix(name, "unknown field") || strings.HasPrefix(name, "wrong type") {
				if r.Code != http.StatusBadRequest {
					t.Errorf("%s %s (%s): want 400, got %s", ep.method, ep.path, name, r)
				}
			}
		}
		// Oversized: valid JSON padded past max_body_bytes is 413.
		big := append(append([]byte{}, valid...), bytes.Repeat([]byte(" "), 70<<10)...)
		r := b.do(t, ep.method, ep.path, ep.as, rawBody(big))
		if r.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("%s %s with a 70 KiB body: want 413, got %s", ep.method, ep.path, r)
		}
		refused(r)
		big = append([]byte(`{"pad":"`+strings.Repeat("x", 1<<20)), valid[1:]...)
		r = b.do(t, ep.method, ep.path, ep.as, rawBody(big))
		if r.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("%s %s with a 1 MiB body: want 413, got %s", ep.method, ep.path, r)
		}
		refused(r)
		unchanged(ep.method + " " + ep.path + " with bad bodies")
	}

	// Odd names in bodies.
	for _, n := range oddNames {
		refused(b.do(t, "POST", "/apps", u, map[string]any{"name": n}))
		refused(b.do(t, "POST", "/api/v1/repos/", u, map[string]any{"appname": n}))
		refused(b.do(t, "POST", "/teams", u, map[string]any{"name": n}))
		refused(b.do(t, "POST", "/apps", u, map[string]any{"name": "okname", "teamOwner": n}))
		if !strings.ContainsAny(n, "\x00\n") { // see TestBugAppTokenNameNotValidated
			refused(b.do(t, "POST", "/tokens", u, map[string]any{"appname": n}))
		}
		if n != "-dash" { // a valid meta_version ([A-Za-z0-9._-], no leading dot)
			refused(b.do(t, "POST", "/api/v1/repos/target/push/", u, pushBody(n, 1)))
		}
		refused(b.do(t, "POST", "/api/v1/repos/target/push/", u, map[string]any{"meta_version": metaVersion(), "worker." + n: map[string]any{"cmd": "x"}}))
	}
	unchanged("odd names in bodies")
	for _, e := range oddEmails {
		refused(b.do(t, "POST", "/users", nil, map[string]any{"email": e, "password": "secret-123"}))
		refused(b.do(t, "POST", "/api/v1/repos/target/maintainers/", u, map[string]any{"username": e, "role": "developer"}))
	}
	unchanged("odd emails in bodies")
	// Odd names in paths (escaped, so they arrive as path parameters).
	for _, n := range append(append([]string{}, oddNames...), oddEmails...) {
		p := url.PathEscape(n)
		for _, req := range []struct {
			method, path string
			as           *User
			body         any
		}{
			{"GET", "/apps/" + p, u, nil},
			{"DELETE", "/apps/" + p, u, nil},
			{"GET", "/api/v1/repos/" + p + "/", u, nil},
			{"GET", "/api/v1/repos/" + p + "/details/", u, nil},
			{"POST", "/api/v1/repos/" + p + "/push/", u, pushBody(metaVersion(), 1)},
			{"POST", "/api/v1/repos/" + p + "/maintainers/", u, map[string]any{"username": mate.Email}},
			{"GET", "/api/v1/repos/target/maintainers/" + p + "/", u, nil},
			{"DELETE", "/api/v1/repos/target/maintainers/" + p + "/", u, nil},
			{"GET", "/api/v1/repos/target/roles/" + p + "/", u, nil},
			{"GET", "/teams/" + p, u, nil},
			{"DELETE", "/teams/" + p, u, nil},
			{"PUT", "/teams/fuzzteam/" + p, u, nil},
			{"DELETE", "/teams/fuzzteam/" + p, u, nil},
			{"GET", "/quota/" + p, b.Admin, nil},
			{"PUT", "/quota/" + p, b.Admin, map[string]any{"limit": 3}},
			{"POST", "/users/" + p + "/tokens", nil, map[string]any{"password": "secret-123"}},
			{"POST", "/users/" + p + "/password", nil, nil},
			{"GET", "/api/v1/notify/" + p + "/", u, nil},
		} {
			// "a/b" is two segments: the router's 404 is a clear 4xx too.
			refused(b.do(t, req.method, req.path, req.as, req.body))
		}
	}
	unchanged("odd names in paths")
	// Push bodies that are not JSON objects or YAML maps.
	for _, body := range []any{yamlBody("just a string"), yamlBody("[1, 2]"), yamlBody("meta_version: [x]\nweb: {cmd: x}"), yamlBody("*unknown_alias"),
		typedBody{"application/json", []byte("null")}, typedBody{"text/plain", []byte{0xff, 0xfe, 0x00}}} {
		refused(b.do(t, "POST", "/api/v1/repos/target/push/", u, body))
	}
	// A YAML bomb (billion laughs) is refused without eating the server.
	bomb := "a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		bomb += n + ": &" + n + " [*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + "]\n"
		prev = n
	}
	refused(b.do(t, "POST", "/api/v1/repos/target/push/?meta_version="+metaVersion(), u, yamlBody(bomb)))
	b.do(t, "GET", "/healthz", nil, nil).want(t, http.StatusOK)
	unchanged("bad push bodies")
	// The valid bodies are accepted: the refusals above were about the input.
	b.do(t, "POST", "/apps", u, map[string]any{"name": "newapp", "platform": "go"}).want(t, http.StatusOK)
	b.do(t, "POST", "/users", nil, map[string]any{"email": "new@e2e.test", "password": "secret-123"}).want(t, http.StatusOK)
	b.login(t, u.Email, u.Password)
}
