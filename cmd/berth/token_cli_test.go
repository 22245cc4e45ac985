package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthpaas/berth/api"
)

// TestTokenCommands: a team token made with the CLI for CI (shown once),
// used as -token on the team's app and refused elsewhere, listed without
// its value, revoked; an app's tokens listed and revoked.
func TestTokenCommands(t *testing.T) {
	addr, dir := testServer(t)
	cliLogin(t, addr, dir, "dev@example.com", "s3cret-pw")
	t.Setenv("BERTH_ADDR", addr)
	ok(t, "team", "create", "devs")
	ok(t, "app", "create", "hello", "-team", "devs")
	ok(t, "app", "create", "mine")

	fails(t, 2, "-team is required", "token", "create", "-action", "app.read")
	fails(t, 2, "at least one -action", "token", "create", "-team", "devs")
	fails(t, 2, "-expires wants a duration", "token", "create", "-team", "devs", "-action", "app.read", "-expires", "soon")
	fails(t, 1, "cannot be given \"app.delete\"", "token", "create", "-team", "devs", "-action", "app.delete")

	out := ok(t, "token", "create", "-team", "devs", "-description", "CI", "-action", "app.read,app.push", "-action", "app.deploy", "-expires", "720h")
	var tok, id string
	for _, line := range strings.Split(out, "\n") {
		if v, found := strings.CutPrefix(line, "token: "); found {
			tok = v
		}
		if v, found := strings.CutPrefix(line, "created team token "); found {
			id = strings.Fields(v)[0]
		}
	}
	if len(tok) < 64 || id == "" || !strings.Contains(out, "only time the token is shown") {
		t.Fatalf("token create: %q", out)
	}

	// CI pushes and deploys the team's app with it, and nothing else.
	spec := filepath.Join(dir, "lain.yaml")
	writeFile(t, spec, "appname: hello\nweb:\n  cmd: python3 -m http.server $PORT --bind 127.0.0.1\n  memory: 64m\n")
	ok(t, "push", "hello", "1700000000-abc", spec, "-token", tok)
	if out := ok(t, "deploy", "hello", "-token", tok); !strings.Contains(out, "==> hello: running 1700000000-abc in ") {
		t.Fatalf("deploy with the team token:\n%s", out)
	}
	var dep api.DeployedApp
	okJSON(t, &dep, "status", "hello", "-token", tok)
	if dep.State != api.DeployRunning || dep.MetaVersion != "1700000000-abc" {
		t.Fatalf("status with the team token: %+v", dep)
	}
	fails(t, 1, "HTTP 403", "push", "mine", "1700000000-abc", spec, "-token", tok)
	fails(t, 1, "HTTP 403", "scale", "hello", "web", "2", "-token", tok)
	fails(t, 1, "HTTP 403", "token", "list", "-token", tok)

	var l []api.TeamToken
	okJSON(t, &l, "token", "list", "-team", "devs")
	if len(l) != 1 || l[0].ID != id || l[0].Description != "CI" || strings.Join(l[0].Actions, ",") != "app.deploy,app.push,app.read" || l[0].LastAccess == nil {
		t.Fatalf("token list: %+v", l)
	}
	text := ok(t, "token", "list")
	if strings.Contains(text, tok) || !strings.Contains(text, id) || !strings.Contains(text, "LAST USED") {
		t.Fatalf("token list (text): %q", text)
	}
	if out := ok(t, "token", "revoke", id); !strings.Contains(out, "revoked team token "+id) {
		t.Fatalf("token revoke: %q", out)
	}
	fails(t, 1, "HTTP 401", "status", "hello", "-token", tok)
	fails(t, 1, "HTTP 404", "token", "revoke", id)

	// App tokens.
	var created api.AppToken
	okJSON(t, &created, "app", "token", "create", "hello", "-expires", "1h")
	var al []api.AppTokenInfo
	okJSON(t, &al, "app", "token", "list", "hello")
	if len(al) != 1 || al[0].Creator != "dev@example.com" || al[0].App != "hello" {
		t.Fatalf("app token list: %+v", al)
	}
	if text := ok(t, "app", "token", "list", "hello"); strings.Contains(text, created.Token) || !strings.Contains(text, al[0].ID) {
		t.Fatalf("app token list (text): %q", text)
	}
	okJSON(t, &dep, "status", "hello", "-token", created.Token)
	ok(t, "app", "token", "revoke", "hello", al[0].ID)
	fails(t, 1, "HTTP 401", "status", "hello", "-token", created.Token)
	ok(t, "undeploy", "hello")
	fails(t, 1, "HTTP 404", "app", "token", "revoke", "hello", al[0].ID)
}
