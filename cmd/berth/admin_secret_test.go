package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthpaas/berth/backends/sealed"
)

// berth admin put-secret writes one key of a sealed secret from stdin
// (one trailing newline dropped), keeps the secret's other keys, and
// refuses Berth's own paths and an empty value.
func TestAdminPutSecret(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.hcl")
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(cfgPath, []byte("data_dir = \""+data+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := runPutSecret([]string{"-config", cfgPath, "brokers/partner"}, strings.NewReader("pw-one-1234\n")); err != nil {
		t.Fatal(err)
	}
	if err := runPutSecret([]string{"-config", cfgPath, "-key", "username", "brokers/partner"}, strings.NewReader("platform")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"-config", cfgPath, "tokens/abc"}, "x", "tokens/"},
		{[]string{"-config", cfgPath, "apps/a/env"}, "x", "apps/"},
		{[]string{"-config", cfgPath, "a/../b"}, "x", ".."},
		{[]string{"-config", cfgPath, "brokers/partner"}, "\n", "no value"},
		{[]string{"-config", cfgPath}, "x", "usage"},
	} {
		if err := runPutSecret(c.args, strings.NewReader(c.stdin)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("put-secret %v: %v; want an error mentioning %q", c.args, err, c.want)
		}
	}
	sec, err := sealed.Open(filepath.Join(data, "secrets"), sealed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sec.Close()
	s, err := sec.Get(context.Background(), "brokers/partner", 0)
	if err != nil {
		t.Fatal(err)
	}
	if s.Data["password"] != "pw-one-1234" || s.Data["username"] != "platform" || len(s.Data) != 2 || s.Version != 2 {
		t.Errorf("the secret: %d keys, version %d; want password and username at version 2", len(s.Data), s.Version)
	}
	if paths, _ := sec.List(context.Background(), ""); len(paths) != 1 {
		t.Errorf("secrets written: %v; want only brokers/partner", paths)
	}
}
