package e2e

// Input limits (issue 8): passwords within bcrypt's 72 bytes, no NUL or
// control characters in what reaches a process or a key, reserved env
// names refused in releases and the env endpoint alike, strict JSON, bounded
// token lifetimes, bounded service YAML checked after the permission check,
// and a request body that stalls cut off.

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestInputLimits(t *testing.T) {
	b := startBerth(t, Options{})
	u := b.newUser(t, "limits")
	b.createApp(t, u, "lim-app")

	t.Run("password over 72 bytes", func(t *testing.T) {
		// 20 characters (within the 6..50 character rule), 80 bytes in UTF-8:
		// bcrypt refuses more than 72 bytes, which was a 500.
		long := strings.Repeat("😀", 20)
		r := b.do(t, "POST", "/users", nil, map[string]any{"email": b.unique("longpw") + "@e2e.test", "password": long}).want(t, http.StatusBadRequest)
		if !strings.Contains(r.Str("error"), "72 bytes") {
			t.Errorf("the 400 does not name the 72-byte limit: %s", r)
		}
		r = b.do(t, "PUT", "/users/password", u, map[string]any{"old": u.Password, "new": long}).want(t, http.StatusBadRequest)
		if !strings.Contains(r.Str("error"), "72 bytes") {
			t.Errorf("the 400 does not name the 72-byte limit: %s", r)
		}
		// 18 such characters are 72 bytes: fine.
		b.do(t, "POST", "/users", nil, map[string]any{"email": b.unique("pw72") + "@e2e.test", "password": strings.Repeat("😀", 18)}).want(t, http.StatusOK)
		b.login(t, u.Email, u.Password) // unchanged
	})

	t.Run("control characters", func(t *testing.T) {
		for _, v := range []string{"a\x00b", "a\x1bb", "a\x7fb", "\x00"} {
			b.do(t, "POST", "/apps/lim-app/env", u, map[string]any{"envs": []any{map[string]any{"name": "GREETING", "value": v}}}).want(t, http.StatusBadRequest)
			b.do(t, "POST", "/apps/lim-app/env", u, map[string]any{"GREETING": v}).want(t, http.StatusBadRequest)
			push := pushBody(metaVersion(), 1)
			push["web"].(map[string]any)["env"] = []any{"GREETING=" + v}
			b.do(t, "POST", "/api/v1/repos/lim-app/push/", u, push).want(t, http.StatusBadRequest)
			push = pushBody(metaVersion(), 1)
			push["web"].(map[string]any)["cmd"] = "./hello " + v
			b.do(t, "POST", "/api/v1/repos/lim-app/push/", u, push).want(t, http.StatusBadRequest)
			push = pushBody(metaVersion(), 1)
			push["web"].(map[string]any)["cmd"] = []any{"./hello", v}
			b.do(t, "POST", "/api/v1/repos/lim-app/push/", u, push).want(t, http.StatusBadRequest)
			push = pushBody(metaVersion(), 1)
			push["web"].(map[string]any)["healthcheck"] = "/ping" + v
			b.do(t, "POST", "/api/v1/repos/lim-app/push/", u, push).want(t, http.StatusBadRequest)
			// A lain.yaml sent as YAML.
			y := fmt.Sprintf("meta_version: %s\nweb:\n  cmd: \"./hello %s\"\n", metaVersion(), strings.NewReplacer("\x00", `\0`, "\x1b", `\e`, "\x7f", `\x7f`).Replace(v))
			b.do(t, "POST", "/api/v1/repos/lim-app/push/", u, yamlBody(y)).want(t, http.StatusBadRequest)
			// Names.
			key, _ := newSSHKey(t, "")
			b.do(t, "POST", "/users/keys", u, map[string]any{"key": key, "name": "laptop" + v}).want(t, http.StatusBadRequest)
			b.do(t, "POST", "/api/v1/repos/", u, map[string]any{"appname": "ctl" + v}).want(t, http.StatusBadRequest)
		}
		// Tab, newline and carriage return are allowed in env values (a PEM
		// key is multi-line) and in cmd (a shell script).
		b.do(t, "POST", "/apps/lim-app/env", u, map[string]any{"envs": []any{map[string]any{"name": "PEM", "value": "-----BEGIN X-----\r\n\tabc\n-----END X-----\n"}}}).want(t, http.StatusOK)
		push := pushBody(metaVersion(), 1)
		push["web"].(map[string]any)["cmd"] = "set -e\n\t./hello -port $PORT"
		b.do(t, "POST", "/api/v1/repos/lim-app/push/", u, push).want(t, http.StatusCreated)
		// Nothing refused was stored.
		for _, e := range b.do(t, "GET", "/apps/lim-app/env", u, nil).want(t, http.StatusOK).List() {
			if m, _ := e.(map[string]any); m["name"] == "GREETING" {
				t.Errorf("a refused value was stored: %v", m)
			}
		}
	})

	t.Run("reserved env names", func(t *testing.T) {
		for _, name := range []string{"PORT", "BERTH_X", "BERTH_APP", "NOMAD_ADDR"} {
			push := pushBody(metaVersion(), 1)
			push["web"].(map[string]any)["env"] = []any{name + "=1"}
			r := b.do(t, "POST", "/api/v1/repos/lim-app/push/", u, push).want(t, http.StatusBadRequest)
			if !strings.Contains(r.Str("error"), name) {
				t.Errorf("the 400 does not name %s: %s", name, r)
			}
			push = pushBody(metaVersion(), 1)
			push["web"].(map[string]any)["env"] = map[string]any{name: "1"}
			b.do(t, "POST", "/api/v1/repos/lim-app/push/", u, push).want(t, http.StatusBadRequest)
			b.do(t, "POST", "/apps/lim-app/env", u, map[string]any{name: "1"}).want(t, http.StatusBadRequest)
		}
	})

	t.Run("trailing JSON", func(t *testing.T) {
		for _, body := range []string{`{"appname":"trail-a"}]`, `{"appname":"trail-a"} }`, `{"appname":"trail-a"} {}`, `{"appname":"trail-a"} x`} {
			r := b.do(t, "POST", "/api/v1/repos/", u, rawBody(body)).want(t, http.StatusBadRequest)
			if !strings.Contains(r.Str("error"), "JSON") {
				t.Errorf("%s: %s", body, r)
			}
		}
		b.do(t, "GET", "/api/v1/repos/trail-a/", u, nil).want(t, http.StatusNotFound)
		b.do(t, "POST", "/api/v1/repos/", u, rawBody("{\"appname\":\"trail-a\"}\n \t")).want(t, http.StatusCreated)
	})

	t.Run("token lifetime bound", func(t *testing.T) {
		for _, exp := range []int64{1e10, 9.2e18, 8760*3600 + 1} {
			r := b.do(t, "POST", "/tokens", u, map[string]any{"appname": "lim-app", "expires": exp}).want(t, http.StatusBadRequest)
			if !strings.Contains(r.Str("error"), "max_token_ttl") || r.Str("Token") != "" {
				t.Errorf("expires %v: %s", exp, r)
			}
		}
		r := b.do(t, "POST", "/tokens", u, map[string]any{"appname": "lim-app", "expires": 8760 * 3600}).want(t, http.StatusOK)
		if n := r.Num("Expires"); n < 8760*3600-60 {
			t.Errorf("a token asked for 8760h expires in %vs", n)
		}
		tok := &User{Email: u.Email, Token: r.Str("Token"), App: "lim-app"}
		b.do(t, "GET", "/api/v1/repos/lim-app/", tok, nil).want(t, http.StatusOK)
	})

	t.Run("service YAML", func(t *testing.T) {
		// 80,000 settings keys in about 1 MB: yaml.v3 checks a mapping's
		// keys pairwise when it decodes it (minutes of CPU here).
		var big strings.Builder
		big.WriteString("id: bigsvc\nbroker: mysql\nsettings:\n")
		for i := 0; big.Len() < 949<<10; i++ {
			fmt.Fprintf(&big, "  k%06d: v\n", i)
		}
		body := big.String()
		if len(body) > 1<<20 {
			t.Fatalf("the body is %d bytes, over max_body_bytes", len(body))
		}
		// A user in no team may not create or change services: 403 before
		// the body is parsed.
		loner := b.newUser(t, "loner")
		for _, m := range []string{"POST", "PUT"} {
			start := time.Now()
			b.do(t, m, "/services", loner, yamlBody(body)).want(t, http.StatusForbidden)
			took := time.Since(start)
			t.Logf("%s /services, %d bytes, %d keys, no permission: 403 in %v", m, len(body), strings.Count(body, "\n")-3, took)
			if took > 3*time.Second {
				t.Errorf("%s /services with a big body took %v to refuse", m, took)
			}
		}
		// A team member: refused as too large (413), at once.
		b.do(t, "POST", "/teams", u, map[string]any{"name": "limteam"}).want(t, http.StatusOK)
		for _, m := range []string{"POST", "PUT"} {
			start := time.Now()
			b.do(t, m, "/services", u, yamlBody(body)).want(t, http.StatusRequestEntityTooLarge)
			took := time.Since(start)
			t.Logf("%s /services, %d bytes, team member: 413 in %v", m, len(body), took)
			if took > 3*time.Second {
				t.Errorf("%s /services with a big body took %v to refuse", m, took)
			}
		}
		// Within the size limit, too many keys in one mapping: 400, at once.
		var many strings.Builder
		many.WriteString("id: manysvc\nbroker: mysql\nsettings:\n")
		for i := 0; many.Len() < 60<<10; i++ {
			fmt.Fprintf(&many, "  k%06d: v\n", i)
		}
		start := time.Now()
		r := b.do(t, "POST", "/services", u, yamlBody(many.String())).want(t, http.StatusBadRequest)
		if !strings.Contains(r.Str("error"), "keys") {
			t.Errorf("the 400 does not say what is wrong: %s", r)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("a 60 KiB service YAML took %v to refuse", took)
		}
		// Control characters in a setting.
		b.do(t, "POST", "/services", u, yamlBody("id: ctlsvc\nbroker: mysql\nsettings:\n  password: \"a\\0b\"\n")).want(t, http.StatusBadRequest)
		// A big lain.yaml push is bounded too.
		var push strings.Builder
		fmt.Fprintf(&push, "meta_version: %s\nweb:\n  cmd: ./hello\n  env:\n", metaVersion())
		for i := 0; push.Len() < 900<<10; i++ {
			fmt.Fprintf(&push, "    K%06d: v\n", i)
		}
		start = time.Now()
		b.do(t, "POST", "/api/v1/repos/lim-app/push/", u, yamlBody(push.String())).want(t, http.StatusBadRequest)
		// (Parsing 900 KB into nodes is linear, about half a second; the
		// old code decoded it for minutes. The bound is loose for -race.)
		took := time.Since(start)
		t.Logf("a 900 KB lain.yaml with 70k env keys: 400 in %v", took)
		if took > 10*time.Second {
			t.Errorf("a 900 KB lain.yaml with 70k env keys took %v to refuse", took)
		}
	})
}

// TestStalledBody: a request whose body stalls is answered 408 and cut off
// within http.read_timeout; the events stream outlives it.
func TestStalledBody(t *testing.T) {
	b := startBerth(t, Options{ExtraHCL: "http {\n  read_timeout = \"2s\"\n}\n"})
	u := b.newUser(t, "staller")
	b.createApp(t, u, "stall-app")

	conn, err := net.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST /api/v1/repos/ HTTP/1.1\r\nHost: %s\r\nAuthorization: bearer %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"appname\":", b.Addr, u.Token)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("a stalled body was not answered within 10s (read_timeout is 2s): %v", err)
	}
	resp.Body.Close()
	t.Logf("a stalled body: %d after %v", resp.StatusCode, took)
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("a stalled body got %d, want 408", resp.StatusCode)
	}
	if took > 5*time.Second {
		t.Errorf("a stalled body was cut off after %v (read_timeout is 2s)", took)
	}

	// The events stream (no body) stays open past read_timeout.
	sc, err := net.Dial("tcp", b.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	fmt.Fprintf(sc, "GET /api/v1/apps/stall-app/events/ HTTP/1.1\r\nHost: %s\r\nAuthorization: bearer %s\r\n\r\n", b.Addr, u.Token)
	_ = sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(sc)
	sresp, err := http.ReadResponse(br, nil)
	if err != nil || sresp.StatusCode != http.StatusOK {
		t.Fatalf("the events stream: %v %v", sresp, err)
	}
	line, err := bufio.NewReader(sresp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, ": events") {
		t.Fatalf("the events stream's first line: %q %v", line, err)
	}
	// Read (keepalives, events) for 4s: the stream must not end.
	_ = sc.SetReadDeadline(time.Now().Add(4 * time.Second))
	buf := make([]byte, 256)
	for {
		n, err := sresp.Body.Read(buf)
		if err == nil {
			continue
		}
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
			t.Errorf("the events stream ended within 4s (read_timeout is 2s): read %q, %v", buf[:n], err)
		}
		break
	}
}
