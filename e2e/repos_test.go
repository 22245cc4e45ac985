package e2e

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// testReposSeed sends the LAIN seed's curl lines, as written (with a token).
func testReposSeed(t *testing.T, b *Berth) {
	u := b.newUser(t, "lain")
	dev := b.newUser(t, "dev")
	u.AccessTokenHeader = true // "根据 header 中传入的 access-token"

	// curl /api/v1/repos/ -H "Content-Type: application/json" -d '{"appname":"hello"}'
	r := b.do(t, "POST", "/api/v1/repos/", u, typedBody{"application/json", []byte(`{"appname":"hello"}`)}).want(t, http.StatusCreated)
	if r.Str("appname") != "hello" || r.Str("apptype") != "app" || r.Str("giturl") == "" || r.Str("owner") != u.Email {
		t.Errorf("registering hello: %s", r)
	}
	b.do(t, "POST", "/api/v1/repos/", u, typedBody{"application/json", []byte(`{"appname":"hello"}`)}).want(t, http.StatusConflict)
	// curl /api/v1/repos/
	r = b.do(t, "GET", "/api/v1/repos/", u, nil).want(t, http.StatusOK)
	if l := r.List(); len(l) != 1 || l[0].(map[string]any)["appname"] != "hello" {
		t.Errorf("GET /api/v1/repos/: %s", r)
	}
	// curl /api/v1/repos/:appName/
	r = b.do(t, "GET", "/api/v1/repos/hello/", u, nil).want(t, http.StatusOK)
	if r.Str("appname") != "hello" {
		t.Errorf("GET /api/v1/repos/hello/: %s", r)
	}
	b.do(t, "GET", "/api/v1/repos/nohello/", u, nil).want(t, http.StatusNotFound)
	// curl /api/v1/repos/:appName/roles/ (the caller's role, from access-token)
	r = b.do(t, "GET", "/api/v1/repos/hello/roles/", u, nil).want(t, http.StatusOK)
	if r.Str("role") != "owner" || r.Str("username") != u.Email || r.Str("appname") != "hello" {
		t.Errorf("my role: %s", r)
	}
	// curl /api/v1/repos/:appName/roles/:username/
	r = b.do(t, "GET", "/api/v1/repos/hello/roles/"+u.Email+"/", u, nil).want(t, http.StatusOK)
	if r.Str("role") != "owner" {
		t.Errorf("owner's role: %s", r)
	}
	b.do(t, "GET", "/api/v1/repos/hello/roles/"+dev.Email+"/", u, nil).want(t, http.StatusNotFound)
	// curl /api/v1/repos/:appName/maintainers/
	r = b.do(t, "GET", "/api/v1/repos/hello/maintainers/", u, nil).want(t, http.StatusOK)
	if l := r.List(); len(l) != 1 || l[0].(map[string]any)["username"] != u.Email || l[0].(map[string]any)["role"] != "owner" {
		t.Errorf("maintainers: %s", r)
	}
	// curl -x POST .../maintainers/ -d '{"username": "username", "role": "role"}'
	// literally: "username" is not a user and "role" is not a role.
	b.do(t, "POST", "/api/v1/repos/hello/maintainers/", u, typedBody{"application/json", []byte(`{"username": "username", "role": "role"}`)}).want(t, http.StatusBadRequest)
	r = b.do(t, "POST", "/api/v1/repos/hello/maintainers/", u, typedBody{"application/json", []byte(`{"username": "` + dev.Email + `", "role": "developer"}`)}).want(t, http.StatusCreated)
	if r.Str("username") != dev.Email || r.Str("role") != "developer" {
		t.Errorf("adding a maintainer: %s", r)
	}
	// curl /api/v1/repos/:appName/maintainers/:username/
	r = b.do(t, "GET", "/api/v1/repos/hello/maintainers/"+dev.Email+"/", u, nil).want(t, http.StatusOK)
	if r.Str("username") != dev.Email || r.Str("role") != "developer" {
		t.Errorf("one maintainer: %s", r)
	}
	// curl -X DELETE /api/v1/repos/:appName/maintainers/:username/
	b.do(t, "DELETE", "/api/v1/repos/hello/maintainers/"+dev.Email+"/", u, nil).want(t, http.StatusOK)
	b.do(t, "GET", "/api/v1/repos/hello/maintainers/"+dev.Email+"/", u, nil).want(t, http.StatusNotFound)
	b.do(t, "GET", "/api/v1/repos/hello/", dev, nil).want(t, http.StatusForbidden)
	// curl /api/v1/repos/:appName/details/
	r = b.do(t, "GET", "/api/v1/repos/hello/details/", u, nil).want(t, http.StatusOK)
	if r.Str("appname") != "hello" || r.Str("giturl") != "git@git.berth.local:hello.git" || r.Str("meta_version") != "" || r.Obj()["deployed"] != false {
		t.Errorf("details of a new app: %s", r)
	}
	// curl -XPOST /api/v1/repos/:appName/push/ — the bare line has no release
	// to record: a clear 400 that says what is missing.
	r = b.do(t, "POST", "/api/v1/repos/hello/push/", u, nil).want(t, http.StatusBadRequest)
	if !strings.Contains(r.Str("error"), "meta_version") {
		t.Errorf("a bodiless push does not say what it needs: %s", r)
	}
	mv := "1435893486-ead17ccee6d904f8e01f339e9e96c00812c70756" // the seed's meta_version
	r = b.do(t, "POST", "/api/v1/repos/hello/push/", u, pushBody(mv, 2)).want(t, http.StatusCreated)
	if r.Str("status") != "pushed" || r.Str("meta_version") != mv {
		t.Errorf("push: %s", r)
	}
	r = b.do(t, "GET", "/api/v1/repos/hello/details/", u, nil).want(t, http.StatusOK)
	if r.Str("latest_meta_version") != mv {
		t.Errorf("details after a push: %s", r)
	}
	// curl /api/v1/notify/imagepush (no trailing slash), then register and
	// unregister the seed's notifier (admins only).
	r = b.do(t, "GET", "/api/v1/notify/imagepush", u, nil).want(t, http.StatusOK)
	if r.List() == nil || len(r.List()) != 0 {
		t.Errorf("notifiers at first: %s", r)
	}
	seedURL := []byte(`{"notify_url": "http://lxcmond.lain:3001/api/v1/imagepush"}`)
	b.do(t, "POST", "/api/v1/notify/imagepush/", u, typedBody{"application/json", seedURL}).want(t, http.StatusForbidden)
	r = b.do(t, "POST", "/api/v1/notify/imagepush/", b.Admin, typedBody{"application/json", seedURL}).want(t, http.StatusCreated)
	if r.Str("notify_url") != "http://lxcmond.lain:3001/api/v1/imagepush" {
		t.Errorf("registering the seed's notifier: %s", r)
	}
	// A non-admin sees the notifier with its URL masked past the host (a
	// notifier URL may carry a token); the admin sees it whole.
	r = b.do(t, "GET", "/api/v1/notify/imagepush", u, nil).want(t, http.StatusOK)
	if l := r.List(); len(l) != 1 || l[0].(map[string]any)["notify_url"] != "http://lxcmond.lain:3001/…" {
		t.Errorf("notifiers after registering, as a user: %s", r)
	}
	r = b.do(t, "GET", "/api/v1/notify/imagepush", b.Admin, nil).want(t, http.StatusOK)
	if l := r.List(); len(l) != 1 || l[0].(map[string]any)["notify_url"] != "http://lxcmond.lain:3001/api/v1/imagepush" {
		t.Errorf("notifiers after registering, as the admin: %s", r)
	}
	b.do(t, "DELETE", "/api/v1/notify/imagepush/", b.Admin, typedBody{"application/json", seedURL}).want(t, http.StatusOK)
	b.do(t, "DELETE", "/api/v1/notify/imagepush/", b.Admin, typedBody{"application/json", seedURL}).want(t, http.StatusNotFound)
	if r := b.do(t, "GET", "/api/v1/notify/imagepush/", u, nil).want(t, http.StatusOK); len(r.List()) != 0 {
		t.Errorf("notifiers after unregistering: %s", r)
	}
}

func testMaintainers(t *testing.T, b *Berth) {
	owner := b.newUser(t, "owner")
	madmin := b.newUser(t, "madmin")
	dev := b.newUser(t, "dev")
	other := b.newUser(t, "other")
	b.createApp(t, owner, "crew")
	b.addMaintainer(t, owner, "crew", madmin.Email, "admin")
	b.addMaintainer(t, madmin, "crew", dev.Email, "") // the default role is developer

	r := b.do(t, "GET", "/api/v1/repos/crew/maintainers/", dev, nil).want(t, http.StatusOK)
	got := map[string]string{}
	for _, m := range r.List() {
		mm := m.(map[string]any)
		got[mm["username"].(string)] = mm["role"].(string)
	}
	if len(got) != 3 || got[owner.Email] != "owner" || got[madmin.Email] != "admin" || got[dev.Email] != "developer" {
		t.Errorf("maintainers: %s", r)
	}
	for who, want := range map[*User]string{owner: "owner", madmin: "admin", dev: "developer"} {
		if r := b.do(t, "GET", "/api/v1/repos/crew/roles/", who, nil).want(t, http.StatusOK); r.Str("role") != want {
			t.Errorf("%s's own role: %s", who, r)
		}
		if r := b.do(t, "GET", "/api/v1/repos/crew/roles/"+who.Email, owner, nil).want(t, http.StatusOK); r.Str("role") != want {
			t.Errorf("%s's role seen by the owner: %s", who, r)
		}
	}
	// Errors: duplicate 409, unknown user 404, bad role 400, bad email 400.
	b.do(t, "POST", "/api/v1/repos/crew/maintainers/", owner, map[string]any{"username": dev.Email, "role": "admin"}).want(t, http.StatusConflict)
	b.do(t, "POST", "/api/v1/repos/crew/maintainers/", owner, map[string]any{"username": "ghost@e2e.test", "role": "developer"}).want(t, http.StatusNotFound)
	b.do(t, "POST", "/api/v1/repos/crew/maintainers/", owner, map[string]any{"username": other.Email, "role": "emperor"}).want(t, http.StatusBadRequest)
	b.do(t, "POST", "/api/v1/repos/crew/maintainers/", owner, map[string]any{"username": "../etc/passwd", "role": "developer"}).want(t, http.StatusBadRequest)
	b.do(t, "POST", "/api/v1/repos/nocrew/maintainers/", owner, map[string]any{"username": other.Email, "role": "developer"}).want(t, http.StatusNotFound)
	// Nobody grants above their own role; developers grant nothing.
	b.do(t, "POST", "/api/v1/repos/crew/maintainers/", madmin, map[string]any{"username": other.Email, "role": "owner"}).want(t, http.StatusForbidden)
	b.do(t, "POST", "/api/v1/repos/crew/maintainers/", dev, map[string]any{"username": other.Email, "role": "developer"}).want(t, http.StatusForbidden)
	b.do(t, "GET", "/api/v1/repos/crew/", other, nil).want(t, http.StatusForbidden)
	// An app admin may not remove the owner; the last owner cannot go.
	b.do(t, "DELETE", "/api/v1/repos/crew/maintainers/"+owner.Email+"/", madmin, nil).want(t, http.StatusForbidden)
	b.do(t, "DELETE", "/api/v1/repos/crew/maintainers/"+owner.Email+"/", owner, nil).want(t, http.StatusForbidden)
	b.do(t, "DELETE", "/api/v1/repos/crew/maintainers/"+madmin.Email+"/", dev, nil).want(t, http.StatusForbidden)
	b.do(t, "DELETE", "/api/v1/repos/crew/maintainers/"+other.Email+"/", owner, nil).want(t, http.StatusNotFound)
	// A second owner makes the first removable.
	b.addMaintainer(t, owner, "crew", other.Email, "owner")
	b.do(t, "DELETE", "/api/v1/repos/crew/maintainers/"+owner.Email+"/", other, nil).want(t, http.StatusOK)
	b.do(t, "GET", "/api/v1/repos/crew/", owner, nil).want(t, http.StatusForbidden)
	if r := b.do(t, "GET", "/api/v1/repos/crew/maintainers/"+other.Email, madmin, nil).want(t, http.StatusOK); r.Str("role") != "owner" {
		t.Errorf("the new owner: %s", r)
	}
	// The admin removes the developer; the developer loses access at once.
	b.do(t, "DELETE", "/api/v1/repos/crew/maintainers/"+dev.Email, madmin, nil).want(t, http.StatusOK)
	b.do(t, "GET", "/api/v1/repos/crew/", dev, nil).want(t, http.StatusForbidden)
	b.do(t, "GET", "/api/v1/repos/crew/roles/"+dev.Email+"/", madmin, nil).want(t, http.StatusNotFound)
}

const lainYAML = `appname: yamlapp
build:
  base: golang
web:
  cmd: ./hello -port $PORT
  port: 8080
  memory: 64M
  num_instances: 2
  env:
    - GREETING=hi
  healthcheck: /ping
worker.mailer:
  cmd: ./mailer
`

func testPush(t *testing.T, b *Berth) {
	u := b.newUser(t, "pusher")
	b.createApp(t, u, "hello")
	b.createApp(t, u, "yamlapp")
	mv := "1435893486-ead17ccee6d904f8e01f339e9e96c00812c70756"
	body := map[string]any{"meta_version": mv, "web": map[string]any{"cmd": "./hello -port $PORT", "port": 8080, "memory": "64m", "num_instances": 2}}
	r := b.do(t, "POST", "/api/v1/repos/hello/push/", u, body).want(t, http.StatusCreated)
	procs, _ := r.Obj()["procs"].([]any)
	if r.Str("status") != "pushed" || len(procs) != 1 {
		t.Fatalf("push: %s", r)
	}
	web := procs[0].(map[string]any)
	if web["name"] != "web" || web["memory_mb"] != 64.0 || web["num_instances"] != 2.0 || web["port"] != 8080.0 {
		t.Errorf("the recorded web proc: %v", web)
	}
	// Same version and spec: 200 unchanged. Different spec: 409.
	r = b.do(t, "POST", "/api/v1/repos/hello/push", u, body).want(t, http.StatusOK)
	if r.Str("status") != "unchanged" {
		t.Errorf("pushing the same release again: %s", r)
	}
	r = b.do(t, "POST", "/api/v1/repos/hello/push/", u, pushBody(mv, 3)).want(t, http.StatusConflict)
	if !strings.Contains(r.Str("error"), mv) {
		t.Errorf("the conflict does not name the version: %s", r)
	}
	// lain.yaml as YAML, meta_version in the query.
	mv2 := metaVersion()
	r = b.do(t, "POST", "/api/v1/repos/yamlapp/push/?meta_version="+mv2, u, yamlBody(lainYAML)).want(t, http.StatusCreated)
	procs, _ = r.Obj()["procs"].([]any)
	if len(procs) != 2 {
		t.Errorf("the YAML release's procs: %s", r)
	}
	b.do(t, "POST", "/api/v1/repos/yamlapp/push/?meta_version="+mv2, u, yamlBody(lainYAML)).want(t, http.StatusOK)
	// The spec is for another app: 400.
	b.do(t, "POST", "/api/v1/repos/hello/push/?meta_version="+metaVersion(), u, yamlBody(lainYAML)).want(t, http.StatusBadRequest)
	// Bad releases: 400, nothing recorded.
	for _, bad := range []any{
		map[string]any{"web": map[string]any{"cmd": "x"}},
		map[string]any{"meta_version": "../../etc", "web": map[string]any{"cmd": "x"}},
		map[string]any{"meta_version": strings.Repeat("9", 300), "web": map[string]any{"cmd": "x"}},
		map[string]any{"meta_version": metaVersion()},
		map[string]any{"meta_version": metaVersion(), "web": map[string]any{"cmd": "x", "num_instances": "two"}},
		map[string]any{"meta_version": metaVersion(), "web": map[string]any{"cmd": "x", "memory": "lots"}},
		map[string]any{"meta_version": metaVersion(), "web": map[string]any{"cmd": "x", "bogus": 1}},
		map[string]any{"meta_version": metaVersion(), "daemon": map[string]any{"cmd": "x"}},
		map[string]any{"meta_version": metaVersion(), "worker.../x": map[string]any{"cmd": "x"}},
		map[string]any{"meta_version": metaVersion(), "web": map[string]any{}},
	} {
		b.do(t, "POST", "/api/v1/repos/hello/push/", u, bad).want(t, http.StatusBadRequest)
	}
	b.do(t, "POST", "/api/v1/repos/hello/push/", u, rawBody(`{"meta_version": "1-a", "web": `)).want(t, http.StatusBadRequest)
	b.do(t, "POST", "/api/v1/repos/hello/push/", u, yamlBody("web: [unclosed")).want(t, http.StatusBadRequest)
	b.do(t, "POST", "/api/v1/repos/hello/push/", u, yamlBody("- a\n- b\n")).want(t, http.StatusBadRequest)
	r = b.do(t, "GET", "/api/v1/repos/hello/details/", u, nil).want(t, http.StatusOK)
	if r.Str("latest_meta_version") != mv {
		t.Errorf("bad pushes changed the latest release: %s", r)
	}
	b.do(t, "POST", "/api/v1/repos/nosuchapp/push/", u, pushBody(metaVersion(), 1)).want(t, http.StatusNotFound)
}

// hook is a webhook receiver on loopback that fails its first failFirst calls.
type hook struct {
	srv       *httptest.Server
	mu        sync.Mutex
	failFirst int
	calls     []hookCall
}

type hookCall struct {
	header http.Header
	body   []byte
	status int
}

func newHook(t *testing.T, failFirst int) *hook {
	h := &hook{failFirst: failFirst}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		status := http.StatusOK
		if len(h.calls) < h.failFirst {
			status = http.StatusInternalServerError
		}
		h.calls = append(h.calls, hookCall{header: r.Header.Clone(), body: body, status: status})
		h.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) snapshot() []hookCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookCall(nil), h.calls...)
}

func (h *hook) succeeded() bool {
	for _, c := range h.snapshot() {
		if c.status == http.StatusOK {
			return true
		}
	}
	return false
}

func testNotify(t *testing.T, b *Berth) {
	secret := b.Opts.NotifySecret
	b.remember(secret, "the notify HMAC secret")
	u := b.newUser(t, "pusher")
	b.createApp(t, u, "hooked")

	flaky := newHook(t, 2)     // fails twice, then succeeds
	broken := newHook(t, 1000) // always fails
	for _, h := range []*hook{flaky, broken} {
		b.do(t, "POST", "/api/v1/notify/imagepush/", b.Admin, map[string]any{"notify_url": h.srv.URL + "/api/v1/imagepush"}).want(t, http.StatusCreated)
	}
	b.do(t, "POST", "/api/v1/notify/imagepush/", b.Admin, map[string]any{"notify_url": flaky.srv.URL + "/api/v1/imagepush"}).want(t, http.StatusConflict)
	for _, bad := range []string{"", "ftp://x.example/", "http://user:pw@x.example/", "not a url", "/relative", "http://", strings.Repeat("h", 3000)} {
		b.do(t, "POST", "/api/v1/notify/imagepush/", b.Admin, map[string]any{"notify_url": bad}).want(t, http.StatusBadRequest)
	}
	b.do(t, "POST", "/api/v1/notify/otherpush/", b.Admin, map[string]any{"notify_url": flaky.srv.URL}).want(t, http.StatusNotFound)
	b.do(t, "GET", "/api/v1/notify/otherpush/", b.Admin, nil).want(t, http.StatusNotFound)
	b.do(t, "POST", "/api/v1/notify/imagepush/", u, map[string]any{"notify_url": "http://127.0.0.1:1/x"}).want(t, http.StatusForbidden)
	b.do(t, "DELETE", "/api/v1/notify/imagepush/", u, map[string]any{"notify_url": flaky.srv.URL + "/api/v1/imagepush"}).want(t, http.StatusForbidden)
	if r := b.do(t, "GET", "/api/v1/notify/imagepush/", u, nil).want(t, http.StatusOK); len(r.List()) != 2 {
		t.Errorf("notifiers: %s", r)
	}

	// The push answers at once, whatever the notifiers do.
	mv := metaVersion()
	start := time.Now()
	b.do(t, "POST", "/api/v1/repos/hooked/push/", u, pushBody(mv, 1)).want(t, http.StatusCreated)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the push took %v: notifiers must not hold it up", d)
	}
	eventually(t, 15*time.Second, "the flaky notifier to get a delivery through", flaky.succeeded)
	calls := flaky.snapshot()
	if len(calls) != 3 {
		t.Errorf("the flaky notifier (2 failures, then OK) was called %d times, want 3", len(calls))
	}
	for i, c := range calls {
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(c.body)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		if got := c.header.Get("X-Berth-Signature"); !hmac.Equal([]byte(got), []byte(want)) {
			t.Errorf("delivery %d: X-Berth-Signature %q, want %q", i+1, got, want)
		}
		if c.header.Get("X-Berth-Event") != "imagepush" || c.header.Get("X-Berth-Attempt") != strconv.Itoa(i+1) {
			t.Errorf("delivery %d headers: event %q attempt %q", i+1, c.header.Get("X-Berth-Event"), c.header.Get("X-Berth-Attempt"))
		}
		var p map[string]any
		if err := json.Unmarshal(c.body, &p); err != nil {
			t.Errorf("delivery %d body is not JSON: %q", i+1, c.body)
		}
		if p["appname"] != "hooked" || p["meta_version"] != mv || p["pushed_by"] != u.Email {
			t.Errorf("delivery %d payload: %s", i+1, c.body)
		}
		if strings.Contains(string(c.body), secret) {
			t.Errorf("the payload carries the HMAC secret")
		}
	}
	// The broken one was retried up to max_attempts (5) and then given up.
	eventually(t, 15*time.Second, "the broken notifier to be retried 5 times", func() bool { return len(broken.snapshot()) >= 5 })
	time.Sleep(500 * time.Millisecond)
	if n := len(broken.snapshot()); n != 5 {
		t.Errorf("the broken notifier was called %d times, want 5 (max_attempts)", n)
	}
	// Pushing the same release again is not news.
	b.do(t, "POST", "/api/v1/repos/hooked/push/", u, pushBody(mv, 1)).want(t, http.StatusOK)
	time.Sleep(300 * time.Millisecond)
	if n := len(flaky.snapshot()); n != 3 {
		t.Errorf("an unchanged push was notified (%d calls)", n)
	}
	// Unregistered notifiers hear nothing more.
	b.do(t, "DELETE", "/api/v1/notify/imagepush", b.Admin, map[string]any{"notify_url": flaky.srv.URL + "/api/v1/imagepush"}).want(t, http.StatusOK)
	b.do(t, "POST", "/api/v1/repos/hooked/push/", u, pushBody(metaVersion(), 1)).want(t, http.StatusCreated)
	time.Sleep(500 * time.Millisecond)
	if n := len(flaky.snapshot()); n != 3 {
		t.Errorf("an unregistered notifier was called (%d calls)", n)
	}
}

func testEvents(t *testing.T, b *Berth) {
	u := b.newUser(t, "actor")
	for i := 0; i < 7; i++ {
		b.createApp(t, u, "ev-"+strconv.Itoa(i))
	}
	b.do(t, "POST", "/api/v1/repos/", u, map[string]any{"appname": "ev-0"}).want(t, http.StatusConflict)
	b.do(t, "GET", "/api/v1/events/", u, nil).want(t, http.StatusForbidden)
	b.do(t, "GET", "/api/v1/events/", nil, nil).want(t, http.StatusUnauthorized)

	all := b.do(t, "GET", "/api/v1/events/?limit=1000", b.Admin, nil).want(t, http.StatusOK)
	events, _ := all.Obj()["events"].([]any)
	if all.Str("next") != "" || len(events) < 10 {
		t.Fatalf("all events: %s", all)
	}
	var ids []string
	created := 0
	for _, e := range events {
		m := e.(map[string]any)
		ids = append(ids, m["id"].(string))
		if m["action"] == "repo.create" && m["actor"] == u.Email && m["outcome"] == "success" {
			created++
		}
		if m["action"] == "repo.create" && m["target"] == "ev-0" && strings.HasPrefix(m["outcome"].(string), "failure (409") {
			created += 100
		}
	}
	if created != 107 {
		t.Errorf("want 7 successful repo.create events by %s and one 409 failure: %s", u.Email, all)
	}
	if !sort.SliceIsSorted(ids, func(i, j int) bool { return ids[i] > ids[j] }) {
		t.Errorf("events are not newest first: %v", ids)
	}
	// Pages of 3 by the "next" cursor give the same events, in order.
	var paged []string
	path := "/api/v1/events?limit=3"
	for page := 0; page < 100; page++ {
		r := b.do(t, "GET", path, b.Admin, nil).want(t, http.StatusOK)
		evs, _ := r.Obj()["events"].([]any)
		if len(evs) > 3 {
			t.Fatalf("limit=3 gave %d events", len(evs))
		}
		for _, e := range evs {
			paged = append(paged, e.(map[string]any)["id"].(string))
		}
		next := r.Str("next")
		if next == "" {
			break
		}
		path = "/api/v1/events/?limit=3&before=" + next
	}
	// Requests made while paging add events, newer than the first page: the
	// pages hold exactly the events that existed before.
	if strings.Join(paged, ",") != strings.Join(ids, ",") {
		t.Errorf("paging gave\n%v\nwant\n%v", paged, ids)
	}
	for _, bad := range []string{"0", "-1", "x", "1001"} {
		b.do(t, "GET", "/api/v1/events/?limit="+bad, b.Admin, nil).want(t, http.StatusBadRequest)
	}
}

// testTrailingSlash checks that every path answers the same with and
// without a trailing slash, directly (do fails on any redirect), and that a
// POST body is not lost.
func testTrailingSlash(t *testing.T, b *Berth) {
	u := b.newUser(t, "slash")
	b.createApp(t, u, "slashed")
	key, _ := newSSHKey(t, "")
	paths := []struct {
		method, path string
		body         func(slash bool) any
		code         int
	}{
		{"GET", "/healthz", nil, 200},
		{"GET", "/users/info", nil, 200},
		{"GET", "/users/keys", nil, 200},
		{"GET", "/teams", nil, 200},
		{"GET", "/apps", nil, 200},
		{"GET", "/apps/slashed", nil, 200},
		{"GET", "/platforms", nil, 200},
		{"GET", "/quota/" + u.Email, nil, 200},
		{"GET", "/api/v1/repos", nil, 200},
		{"GET", "/api/v1/repos/slashed", nil, 200},
		{"GET", "/api/v1/repos/slashed/details", nil, 200},
		{"GET", "/api/v1/repos/slashed/roles", nil, 200},
		{"GET", "/api/v1/repos/slashed/roles/" + u.Email, nil, 200},
		{"GET", "/api/v1/repos/slashed/maintainers", nil, 200},
		{"GET", "/api/v1/repos/slashed/maintainers/" + u.Email, nil, 200},
		{"GET", "/api/v1/notify/imagepush", nil, 200},
		{"POST", "/api/v1/repos", func(s bool) any { return map[string]any{"appname": "slash-" + strconv.FormatBool(s)} }, 201},
		{"POST", "/apps", func(s bool) any { return map[string]any{"name": "tsuru-" + strconv.FormatBool(s)} }, 200},
		{"POST", "/teams", func(s bool) any { return map[string]any{"name": "team-" + strconv.FormatBool(s)} }, 200},
		{"POST", "/api/v1/repos/slashed/push", func(s bool) any { return pushBody(metaVersion(), 1) }, 201},
		{"POST", "/tokens", func(bool) any { return map[string]any{"appname": "slashed"} }, 200},
		{"POST", "/users/keys", func(s bool) any {
			if s {
				k, _ := newSSHKey(t, "")
				return map[string]any{"key": k}
			}
			return map[string]any{"key": key}
		}, 200},
		{"GET", "/teams/team-true", nil, 200},
	}
	for _, p := range paths {
		for _, slash := range []bool{false, true} {
			path := p.path
			if slash {
				path += "/"
			}
			var body any
			if p.body != nil {
				body = p.body(slash)
			}
			b.do(t, p.method, path, u, body).check(t, p.code)
		}
	}
	b.do(t, "PUT", "/teams/team-false/"+b.Admin.Email, u, nil).check(t, 200)
	b.do(t, "PUT", "/teams/team-true/"+b.Admin.Email+"/", u, nil).check(t, 200)
	b.do(t, "DELETE", "/teams/team-false/"+b.Admin.Email, u, nil).check(t, 200)
	b.do(t, "DELETE", "/teams/team-true/"+b.Admin.Email+"/", u, nil).check(t, 200)
	// The events endpoint (admins) and the app's removal.
	b.do(t, "GET", "/api/v1/events", b.Admin, nil).check(t, 200)
	b.do(t, "GET", "/api/v1/events/", b.Admin, nil).check(t, 200)
	b.do(t, "DELETE", "/apps/slash-false", u, nil).check(t, 200)
	b.do(t, "DELETE", "/apps/slash-true/", u, nil).check(t, 200)
	b.do(t, "DELETE", "/teams/team-false", u, nil).check(t, 200)
	b.do(t, "DELETE", "/teams/team-true/", u, nil).check(t, 200)
}
