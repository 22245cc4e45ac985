package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthpaas/berth/server/openapi"
)

const (
	lain  = "../../docs/seeds/000_c1f8ea49c4f4a0cb.txt"
	tsuru = "../../docs/seeds/001_6fa4cd717c80f1ed.txt"
)

// writeDoc writes the document of a table serving every LAIN endpoint
// (with the server's parameter names) and reports its path.
func writeDoc(t *testing.T, skip string) string {
	t.Helper()
	eps, err := openapi.SeedEndpoints(lain)
	if err != nil {
		t.Fatal(err)
	}
	var ops []openapi.Operation
	for _, e := range eps {
		if e.Method+" "+e.Path == skip {
			continue
		}
		p := strings.NewReplacer("{appName}", ":app", "{procName}", ":proc", "{username}", ":username",
			"{resourceName}", ":resource", "imagepush", ":type").Replace(e.Path)
		ops = append(ops, openapi.Operation{Method: e.Method, Path: p, Summary: "x"})
	}
	doc, err := openapi.Generate(openapi.Info{Title: "t", Version: "1"}, ops)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "openapi.json")
	if err := os.WriteFile(f, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestSeedcheck(t *testing.T) {
	full := writeDoc(t, "")
	var out, errb bytes.Buffer
	if code := run([]string{"-doc", full, lain}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s%s", code, out.String(), errb.String())
	}
	if got := out.String(); got != "seedcheck: "+full+" covers all 25 endpoints of 1 seed documents\n" {
		t.Errorf("output %q", got)
	}

	out.Reset()
	partial := writeDoc(t, "PATCH /api/v1/apps/{appName}/procs/{procName}")
	if code := run([]string{"-doc", partial, lain}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	want := "seedcheck: " + partial + " does not cover 1 of 25 endpoints:\n" +
		"  PATCH /api/v1/apps/{appName}/procs/{procName}\t(" + lain + ":62)\n"
	if out.String() != want {
		t.Errorf("output\n%q\nwant\n%q", out.String(), want)
	}

	out.Reset()
	if code := run([]string{"-doc", full, lain, tsuru}, &out, &errb); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.HasPrefix(out.String(), "seedcheck: "+full+" does not cover 44 of 69 endpoints:\n  GET /apps\t") {
		t.Errorf("output %q", out.String())
	}

	bad := filepath.Join(t.TempDir(), "bad.json")
	_ = os.WriteFile(bad, []byte(`{"openapi":"3.1.0"}`), 0o644)
	for _, args := range [][]string{{"-doc", bad, lain}, {"-doc", full}, {"-doc", full, "missing.txt"}} {
		errb.Reset()
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
		if errb.Len() == 0 {
			t.Errorf("%q: nothing on stderr", args)
		}
	}
}

// The command as CI runs it: go run, exit status and listing.
func TestSeedcheckCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command")
	}
	doc := writeDoc(t, "GET /api/v1/repos/{appName}/roles")
	cmd := exec.Command("go", "run", ".", "-doc", doc, lain)
	out, err := cmd.Output()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("err %v, want exit status 1; output %s", err, out)
	}
	if !strings.Contains(string(out), "  GET /api/v1/repos/{appName}/roles\t("+lain+":12)\n") {
		t.Errorf("output %s", out)
	}
}
