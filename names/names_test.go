package names

import (
	"strings"
	"testing"
)

func TestLabel(t *testing.T) {
	good := []string{"a", "hello", "hello-world", "a1", strings.Repeat("a", 63)}
	bad := []string{"", "Hello", "1abc", "-a", "a-", "a_b", "a/b", "../x", "a.b", strings.Repeat("a", 64), "héllo", "a b", "a\x00"}
	for _, s := range good {
		if err := App(s); err != nil {
			t.Errorf("App(%q) = %v", s, err)
		}
	}
	for _, s := range bad {
		if err := App(s); err == nil {
			t.Errorf("App(%q) accepted", s)
		}
	}
}

func TestEmail(t *testing.T) {
	good := map[string]string{"a@b.co": "a@b.co", "Wolverine@X-Men.org": "wolverine@x-men.org", "a.b+c@d.io": "a.b+c@d.io"}
	for in, want := range good {
		got, err := Email(in)
		if err != nil || got != want {
			t.Errorf("Email(%q) = %q, %v", in, got, err)
		}
	}
	bad := []string{"", "nope", "a@b", "@b.co", "a@", "A <a@b.co>", "a/b@c.io", "../a@b.co", "a@b..co", "é@b.co", strings.Repeat("a", 250) + "@b.co", "a b@c.io"}
	for _, s := range bad {
		if _, err := Email(s); err == nil {
			t.Errorf("Email(%q) accepted", s)
		}
	}
}

func TestMetaVersion(t *testing.T) {
	if err := MetaVersion("1435893486-ead17ccee6d904f8e01f339e9e96c00812c70756"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"", "../x", "a/b", ".hidden", "a b", strings.Repeat("1", 129)} {
		if MetaVersion(s) == nil {
			t.Errorf("MetaVersion(%q) accepted", s)
		}
	}
}

func FuzzLabel(f *testing.F) {
	for _, s := range []string{"hello", "../x", "a/b", "", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if App(s) != nil {
			return
		}
		if len(s) == 0 || len(s) > 63 || strings.ContainsAny(s, "/.\\ \x00") || strings.ToLower(s) != s {
			t.Fatalf("accepted %q", s)
		}
	})
}

func FuzzEmail(f *testing.F) {
	for _, s := range []string{"a@b.co", "../x@y.z", "a/b@c.d", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Email(s)
		if err != nil {
			return
		}
		if strings.ContainsAny(e, "/\\ ") || strings.Contains(e, "..") || !strings.Contains(e, "@") {
			t.Fatalf("accepted %q", s)
		}
	})
}
