package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"path"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/berthpaas/berth/engine"
	"github.com/berthpaas/berth/engine/release"
	"github.com/berthpaas/berth/names"
)

// Fuzz targets for the JSON decoders and name validation. Run one with
//
//	go test -run '^$' -fuzz FuzzDecodeBytes -fuzztime 30s ./server/
//
// As plain tests (go test ./server/) they run their seed corpus.

var decodeSeeds = []string{
	`{"email":"a@b.co","password":"123456"}`,
	`{"email":5}`,
	`{"email":"a@b.co","admin":true}`,
	`{"email":"a@b.co"} {}`,
	`[]`, `null`, `""`, `{}`, ``, `   `, `{"password":null}`,
	`{"old":"x","new":"y"}`, `{"name":"../x"}`, `{"limit":1e309}`, `{"limit":-1}`,
	`{"appname":"a","expires":"soon"}`, `{"notify_url":"http://x/"}`,
	"{\"email\":\"\xff\xfe\"}", `{"email":"\ud800"}`, strings.Repeat("[", 10000),
	`{"key":"ssh-ed25519 AAAA","name":""}`, `{"username":"a@b.co","role":"owner"}`,
}

// The request bodies of every JSON endpoint, as the handlers declare them.
type (
	fzUser     struct{ Email, Password string }
	fzLogin    struct{ Password *string }
	fzPassword struct{ Old, New *string }
	fzKey      struct{ Key, Name string }
	fzName     struct {
		Name string `json:"name"`
	}
	fzQuota struct {
		Limit *int `json:"limit"`
	}
	fzToken struct {
		AppName string `json:"appname"`
		App     string `json:"app"`
		Expires int64  `json:"expires"`
	}
	fzApp struct {
		Name, Platform, TeamOwner, Plan, Pool string
	}
	fzRepo struct {
		AppName   string `json:"appname"`
		AppType   string `json:"apptype"`
		TeamOwner string `json:"team"`
	}
	fzMaint struct {
		Username string `json:"username"`
		Role     string `json:"role"`
	}
	fzNotify struct {
		NotifyURL string `json:"notify_url"`
	}
)

// FuzzDecodeBytes: the strict decoder never panics, refuses with a 400
// *Error that has a message, and accepts only one valid JSON value with no
// fields beyond the target's.
func FuzzDecodeBytes(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		targets := []any{&fzUser{}, &fzLogin{}, &fzPassword{}, &fzKey{}, &fzName{}, &fzQuota{}, &fzToken{}, &fzApp{}, &fzRepo{}, &fzMaint{}, &fzNotify{}}
		for _, v := range targets {
			err := decodeBytes(body, v)
			if err != nil {
				var he *Error
				if !errors.As(err, &he) || he.Status != http.StatusBadRequest || he.Msg == "" {
					t.Fatalf("decodeBytes(%q) into %T: %v is not a 400 with a message", body, v, err)
				}
				continue
			}
			if !json.Valid(bytes.TrimSpace(body)) {
				t.Fatalf("decodeBytes accepted %q into %T, which is not one JSON value", body, v)
			}
			// No unknown field got through: what was decoded, encoded again
			// and decoded strictly, is the same.
			again, _ := json.Marshal(v)
			fresh := newLike(v)
			if err := decodeBytes(again, fresh); err != nil {
				t.Fatalf("re-decoding %s into %T: %v", again, v, err)
			}
		}
	})
}

func newLike(v any) any {
	switch v.(type) {
	case *fzUser:
		return &fzUser{}
	case *fzLogin:
		return &fzLogin{}
	case *fzPassword:
		return &fzPassword{}
	case *fzKey:
		return &fzKey{}
	case *fzName:
		return &fzName{}
	case *fzQuota:
		return &fzQuota{}
	case *fzToken:
		return &fzToken{}
	case *fzApp:
		return &fzApp{}
	case *fzRepo:
		return &fzRepo{}
	case *fzMaint:
		return &fzMaint{}
	}
	return &fzNotify{}
}

var nameSeeds = []string{
	"hello", "a", "hello-world", "a1", strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 300),
	"", "../x", "..", "a/b", "/abs", "a\\b", "ünïcödé", "日本", "a b", "a\x00b", "x\n", "-x", "x-", "Hello", "1abc", ".hidden",
	"a%2Fb", "a.b", "a_b", "\xff",
}

// FuzzNames: a name accepted as a DNS label is safe as a key segment, a job
// ID, a database name and a file name.
func FuzzNames(f *testing.F) {
	for _, s := range nameSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for kind, check := range map[string]func(string) error{
			"app": names.App, "team": names.Team, "proc": names.Proc, "service": names.Service, "instance": names.Instance,
		} {
			err := check(s)
			if err != nil {
				var ne *names.Error
				if !errors.As(err, &ne) || ne.Error() == "" {
					t.Fatalf("%s(%q): %v is not a *names.Error", kind, s, err)
				}
				if len(ne.Error()) > 600 {
					t.Fatalf("%s(%q): the message is %d bytes long: the echoed value must be cut", kind, s, len(ne.Error()))
				}
				continue
			}
			if len(s) < 1 || len(s) > 63 || s[0] < 'a' || s[0] > 'z' || strings.HasSuffix(s, "-") {
				t.Fatalf("%s(%q) accepted a name outside DNS-label rules", kind, s)
			}
			for _, r := range s {
				if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
					t.Fatalf("%s(%q) accepted %q", kind, s, r)
				}
			}
			if path.Clean("/x/"+s) != "/x/"+s || url.PathEscape(s) != s || strings.Contains(s, "..") {
				t.Fatalf("%s(%q) accepted a name that is not a plain path segment", kind, s)
			}
		}
	})
}

// FuzzEmail: an accepted email is a bare, canonical (lower-case) ASCII
// address that cannot climb out of a key prefix.
func FuzzEmail(f *testing.F) {
	for _, s := range []string{
		"a@b.co", "Wolverine@X-Men.org", "a.b+c@d.io", "", "nope", "a@b", "@b.co", "a@", "A <a@b.co>", "a/b@c.io",
		"../a@b.co", "a@b..co", "é@b.co", strings.Repeat("a", 250) + "@b.co", "a b@c.io", "a@b.co\x00", "\"q\"@b.co",
		"a@[127.0.0.1]", "a@b.co.", "(c)a@b.co", "a@b.co/../x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := names.Email(s)
		if err != nil {
			var ne *names.Error
			if !errors.As(err, &ne) {
				t.Fatalf("Email(%q): %v is not a *names.Error", s, err)
			}
			return
		}
		if got != strings.ToLower(s) || len(got) > 254 || !utf8.ValidString(got) {
			t.Fatalf("Email(%q) = %q", s, got)
		}
		if strings.ContainsAny(got, "/\\ <>\"'%?#&\x00") || strings.Contains(got, "..") || path.Clean("/u/"+got) != "/u/"+got {
			t.Fatalf("Email(%q) accepted an address that is not a plain path segment", s)
		}
		for _, r := range got {
			if r < 33 || r > 126 {
				t.Fatalf("Email(%q) accepted %q", s, r)
			}
		}
		if a, err := mail.ParseAddress(got); err != nil || a.Name != "" {
			t.Fatalf("Email(%q) accepted %q, which is not a bare address: %v", s, got, err)
		}
		if again, err := names.Email(got); err != nil || again != got {
			t.Fatalf("Email is not idempotent: %q -> %q -> %q, %v", s, got, again, err)
		}
	})
}

// FuzzMetaVersion: an accepted release name is a plain path segment.
func FuzzMetaVersion(f *testing.F) {
	for _, s := range []string{"1435893486-ead17ccee6d904f8e01f339e9e96c00812c70756", "v1.2.3", "", ".", "..", "../x", "a/b", ".hidden",
		strings.Repeat("9", 129), "a b", "ü", "-dash", "a..b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if err := names.MetaVersion(s); err != nil {
			return
		}
		if s == "" || len(s) > 128 || s[0] == '.' || strings.Contains(s, "..") || path.Clean("/r/"+s) != "/r/"+s || url.PathEscape(s) != s {
			t.Fatalf("MetaVersion(%q) accepted a name that is not a plain path segment", s)
		}
	})
}

// FuzzPush: the push decoder (JSON or YAML, lain.yaml shape) never panics,
// refuses with a 400-class error, and accepts only releases within limits
// whose names are valid.
func FuzzPush(f *testing.F) {
	seeds := []struct {
		ct, body, query string
	}{
		{"application/json", `{"meta_version":"1435893486-ead17ccee6d904f8e01f339e9e96c00812c70756","web":{"cmd":"./hello","port":8080,"memory":"64m","num_instances":2}}`, ""},
		{"text/yaml", "appname: hello\nweb:\n  cmd: ./hello -port $PORT\n  memory: 64M\n  num_instances: 2\n  env:\n    - GREETING=hi\nworker.mailer:\n  cmd: ./mailer\n", "1-abc"},
		{"application/json", `{"meta_version":"1-a","spec":{"web":{"image":"nginx"}}}`, ""},
		{"application/json", `{"meta_version":"1-a","lain_yaml":"web:\n  cmd: x\n"}`, ""},
		{"text/yaml", "a: &a [x,x]\nb: &b [*a,*a]\nc: [*b,*b]\n", "1-a"},
		{"text/yaml", "web: {cmd: x, num_instances: 1000000}\n", "1-a"},
		{"text/yaml", "web: {cmd: x, memory: 99999999g}\n", "1-a"},
		{"text/yaml", "web: {cmd: x, cpu: -1}\n", "1-a"},
		{"text/yaml", "worker.../x: {cmd: x}\n", "1-a"},
		{"", "", ""},
		{"application/json", `[1,2]`, ""},
		{"text/yaml", "*x", "1-a"},
	}
	for _, s := range seeds {
		f.Add(s.ct, []byte(s.body), s.query)
	}
	f.Fuzz(func(t *testing.T, ct string, body []byte, mv string) {
		target := "/api/v1/repos/hello/push/"
		if mv != "" {
			target += "?meta_version=" + url.QueryEscape(mv)
		}
		req := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		w := httptest.NewRecorder()
		req.Body = http.MaxBytesReader(w, req.Body, 1<<20)
		gotMV, spec, err := parsePush(&call{w: w, r: req})
		if err != nil {
			status, msg := errorStatus(err)
			if status != http.StatusBadRequest && status != http.StatusRequestEntityTooLarge || msg == "" {
				t.Fatalf("parsePush(%q, %q): %v answers %d %q", ct, body, err, status, msg)
			}
			return
		}
		if err := names.MetaVersion(gotMV); err != nil {
			t.Fatalf("parsePush accepted meta_version %q: %v", gotMV, err)
		}
		if len(spec.Procs) == 0 {
			t.Fatalf("parsePush accepted a release without procs: %q", body)
		}
		for _, p := range spec.Procs {
			if err := names.Proc(p.Name); err != nil {
				t.Fatalf("parsePush accepted proc name %q", p.Name)
			}
			if p.NumInstances < 0 || p.NumInstances > release.MaxInstances || p.CPU < 0 || p.CPU > release.MaxCPU ||
				p.MemoryMB < 0 || p.MemoryMB > release.MaxMemoryMB || (p.Cmd == "" && p.Image == "") {
				t.Fatalf("parsePush accepted proc %+v out of limits", p)
			}
			for k := range p.Env {
				if !release.ValidEnvName(k) {
					t.Fatalf("parsePush accepted env name %q", k)
				}
			}
		}
		// What was recorded survives a JSON round trip unchanged (the
		// same-version check compares these bytes).
		b1, _ := json.Marshal(spec)
		var back release.Spec
		if err := json.Unmarshal(b1, &back); err != nil {
			t.Fatalf("the recorded spec does not decode: %v", err)
		}
		if b2, _ := json.Marshal(&back); !bytes.Equal(b1, b2) {
			t.Fatalf("the recorded spec changes in a round trip:\n%s\n%s", b1, b2)
		}
	})
}

// FuzzHandlers sends fuzzed bodies and path names to the real handlers (on
// a bbolt store and sealed secrets): nothing answers 5xx, and every error
// is the documented JSON shape.
func FuzzHandlers(f *testing.F) {
	type ep struct{ method, path string }
	eps := []ep{
		{"POST", "/users"}, {"POST", "/users/%s/tokens"}, {"PUT", "/users/password"}, {"POST", "/users/keys"},
		{"DELETE", "/users/keys"}, {"POST", "/teams"}, {"PUT", "/teams/%s/%s"}, {"GET", "/quota/%s"}, {"PUT", "/quota/%s"},
		{"POST", "/tokens"}, {"POST", "/apps"}, {"GET", "/apps/%s"}, {"DELETE", "/apps/%s"}, {"POST", "/api/v1/repos/"},
		{"GET", "/api/v1/repos/%s/"}, {"POST", "/api/v1/repos/%s/maintainers/"}, {"GET", "/api/v1/repos/%s/maintainers/%s/"},
		{"DELETE", "/api/v1/repos/%s/maintainers/%s/"}, {"POST", "/api/v1/repos/%s/push/"}, {"POST", "/api/v1/notify/%s/"},
		{"DELETE", "/api/v1/notify/%s/"}, {"GET", "/api/v1/events/?limit=%s&before=%s"}, {"POST", "/users/%s/password?token=%s"},
	}
	for i := range eps {
		for _, s := range decodeSeeds[:8] {
			f.Add(uint8(i), []byte(s), "hello", "a@b.co")
		}
	}
	f.Add(uint8(0), []byte(`{"email":"x@y.io","password":"123456"}`), "a\x00b", "x\n")
	f.Add(uint8(13), []byte(`{"appname":"hello"}`), "../x", "日本")

	s, _ := newTestServer(f, nil)
	ctx := f.Context()
	if _, err := engine.CreateUser(ctx, s.eng.Store(), "fuzz-admin@b.co", "fuzz-password", true); err != nil {
		f.Fatal(err)
	}
	tok, _, err := s.eng.IssueToken(ctx, "fuzz-admin@b.co", engine.TokenUser, "", s.cfg.Users.TokenTTLDur)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte, p1, p2 string) {
		e := eps[int(which)%len(eps)]
		target := e.path
		for _, p := range []string{p1, p2} {
			target = strings.Replace(target, "%s", url.PathEscape(p), 1)
		}
		if strings.Contains(target, "?") {
			base, q, _ := strings.Cut(target, "?")
			target = base + "?" + strings.NewReplacer(url.PathEscape(p1), url.QueryEscape(p1), url.PathEscape(p2), url.QueryEscape(p2)).Replace(q)
		}
		if _, err := url.ParseRequestURI(target); err != nil {
			return
		}
		for _, auth := range []string{"", "bearer " + tok} {
			req := httptest.NewRequest(e.method, "http://berth.test"+target, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			w := httptest.NewRecorder()
			s.Handler().ServeHTTP(w, req)
			if w.Code >= 500 {
				t.Fatalf("%s %s %q -> %d %s", e.method, target, body, w.Code, w.Body)
			}
			if w.Code >= 400 {
				var m map[string]any
				if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil || m["error"] == "" || m["error"] == nil {
					t.Fatalf("%s %s %q -> %d with a body that is not a JSON error: %s", e.method, target, body, w.Code, w.Body)
				}
			}
		}
	})
}
