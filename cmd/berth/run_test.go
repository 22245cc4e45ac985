package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRunCommand: `berth run` against a real server prints the command's
// stdout and stderr where they belong, with the app's env (a private
// variable set with the CLI), and exits with the command's status; usage
// errors are exit 2.
func TestRunCommand(t *testing.T) {
	addr, dir := testServer(t)
	cliLogin(t, addr, dir, "dev@example.com", "s3cret-pw")
	t.Setenv("BERTH_ADDR", addr)
	ok(t, "app", "create", "hello")

	fails(t, 2, "not enough arguments", "run", "hello")
	fails(t, 1, "has no pushed release", "run", "hello", "--", "env")

	spec := filepath.Join(dir, "lain.yaml")
	writeFile(t, spec, "appname: hello\nworker:\n  cmd: exec sleep 3600\n  memory: 16m\n")
	ok(t, "push", "hello", "1700000000-abc", spec)
	ok(t, "env", "set", "hello", "-private", "-no-restart", "DB_PASSWORD=pw-for-the-run")

	r := berth("", "run", "hello", "--", "sh", "-c", `echo "db=$DB_PASSWORD"; echo warn >&2; exit 7`)
	if r.code != 7 || r.out != "db=pw-for-the-run\n" || r.err != "warn\n" {
		t.Fatalf("berth run: %+v; want exit 7, the private value on stdout, warn on stderr", r)
	}
	// Flags before "--"; what follows it is the command's, flags included.
	r = berth("", "run", "-proc", "worker", "hello", "--", "sh", "-c", "echo $BERTH_PROC", "-x")
	if r.code != 0 || r.out != "worker\n" {
		t.Fatalf("berth run -proc worker: %+v", r)
	}
	r = berth("", "run", "-proc", "nosuch", "hello", "--", "true")
	if r.code != 1 || !strings.Contains(r.err, "no proc \"nosuch\"") {
		t.Fatalf("berth run -proc nosuch: %+v", r)
	}
}
