package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOSBBlock(t *testing.T) {
	c, err := Parse([]byte(""), "empty.hcl")
	if err != nil || (c.OSB != nil && c.OSB.Enabled) {
		t.Fatalf("the OSB endpoint must be off by default: %+v, %v", c.OSB, err)
	}
	t.Setenv("TEST_OSB_PW", "pw-from-env")
	c, err = Parse([]byte("osb {\n enabled = true\n username = \"cf\"\n password_env = \"TEST_OSB_PW\"\n team = \"t1\"\n}\n"), "osb.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if c.OSB.Password != "pw-from-env" || !c.OSB.AsyncOn() || c.OSB.Team != "t1" {
		t.Errorf("osb = %+v", c.OSB)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("pw-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Parse([]byte("osb {\n enabled = true\n username = \"cf\"\n password_file = \""+pwFile+"\"\n team = \"t1\"\n async = false\n}\n"), "osb.hcl")
	if err != nil || c.OSB.Password != "pw-from-file" || c.OSB.AsyncOn() {
		t.Fatalf("password_file, async = false: %+v, %v", c.OSB, err)
	}
	for _, bad := range []struct{ body, want string }{
		{"enabled = true\n password_env = \"TEST_OSB_PW\"\n team = \"t\"", "username"},
		{"enabled = true\n username = \"u\"\n password_env = \"TEST_OSB_PW\"", "team"},
		{"enabled = true\n username = \"u\"\n team = \"t\"", "exactly one"},
		{"enabled = true\n username = \"u\"\n team = \"t\"\n password_env = \"TEST_OSB_PW\"\n password_secret = \"osb\"", "exactly one"},
		{"enabled = true\n username = \"u\"\n team = \"t\"\n password_env = \"TEST_OSB_UNSET_VAR\"", "not set"},
	} {
		_, err := Parse([]byte("osb {\n "+bad.body+"\n}\n"), "bad.hcl")
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("osb {%s}: err = %v, want one mentioning %q", bad.body, err, bad.want)
		}
	}
}
