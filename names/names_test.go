package names

import (
	"errors"
	"strings"
	"testing"
)

// cases is one kind's table: names it accepts and names it refuses.
type cases struct {
	kind string // the Kind of the *Error
	fn   func(string) error
	good []string
	bad  []string
}

// labelBad are refused by every kind that follows Label's rule.
var labelBad = []string{
	"", "..", "../x", "a/b", "/", "a.b", "Hello", "hellO", "1abc", "-a", "a-", "a_b", "a b", "a\x00",
	"héllo", "приложение", "ａｐｐ", strings.Repeat("a", 64),
}

var labelGood = []string{"a", "hello", "hello-world", "a1", "a--b", strings.Repeat("a", 63)}

func TestKinds(t *testing.T) {
	mv := "1435893486-ead17ccee6d904f8e01f339e9e96c00812c70756" // the seed's meta_version
	email := func(s string) error { _, err := Email(s); return err }
	for _, c := range []cases{
		{"app name", App, append(labelGood, "hello", "myapp", "app1", "anotherapp"), labelBad},
		{"proc name", Proc, append(labelGood, "web", "worker", "mailer"), labelBad},
		{"team name", Team, append(labelGood, "teamname", "myteam", "cobrateam", "tsuruteam"), labelBad},
		{"service name", Service, append(labelGood, "mongodb", "mysql", "redis"), labelBad},
		{"service instance name", Instance, append(labelGood, "mymysql", "my-mongo", "mongo-1", "redis-globo", "other-instance"), labelBad},
		{"broker ID", BrokerID, append(labelGood, "my-db-1", "b-0123456789abcdef01234567", "mysql", "test-redis-1f2e3d4c"),
			append(labelBad, "6c4f0c4e-1f2e-4d3c-9b8a-7f6e5d4c3b2a", "A")},
		{"environment variable name", EnvKey,
			[]string{"A", "a", "_", "PATH", "DATABASE_HOST", "greeting", "Mixed_Case9", "_X1", strings.Repeat("A", 128)},
			[]string{"", "..", "A.B", "A/B", "/", "1A", "9", "A-B", "A B", "A=B", "A\x00", "ÄPFEL", "ПУТЬ", strings.Repeat("A", 129)}},
		{"host name", Host,
			[]string{"a", "localhost", "hello.apps.localhost", "shop.apps.example.com", "www.shop.example", "127.0.0.1.nip.io",
				"xn--bcher-kva.example", "a-b.c-d", "Hello.Apps.Example.COM", strings.Repeat("a", 63) + ".b", strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("a", 61)},
			[]string{"", "..", "a..b", ".a", "a.", "/", "a/b", "hello.apps.localhost:8080", "hello.apps.localhost.",
				"a_b.example", "-a.example", "a-.example", "a b", "bücher.example", "例え.jp", strings.Repeat("a", 64) + ".b",
				strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("a", 62)}},
		{"settings key", SettingKey,
			[]string{"host", "admin_user", "MYSQL_HOST", "tls.ca", "a-b", "..", "é", strings.Repeat("k", 64)},
			[]string{"", "/", "a/b", "../x", "a b", "a\nb", strings.Repeat("k", 65)}},
		{"key name", KeyName,
			[]string{"", "laptop", "me@host", "Work Laptop (2024)", "..", "a/b", "clé ✓", strings.Repeat("k", 256)},
			[]string{"a\x00", "a\nb", "tab\there", "del\x7f", "c1\u0085", strings.Repeat("k", 257)}},
		{"email", email,
			[]string{"a@b.co", "Wolverine@X-Men.org", "a.b+c@d.io", "wolverine@xmen.com", strings.Repeat("a", 247) + "@b.co"},
			[]string{"", "..", "/", "nope", "a@b", "@b.co", "a@", "A <a@b.co>", "a/b@c.io", "../a@b.co", "a..b@c.io", "a@b..co",
				"é@b.co", "a@bücher.de", strings.Repeat("a", 250) + "@b.co", "a b@c.io", "a@b.co\n"}},
		{"meta_version", MetaVersion,
			[]string{mv, "v1", "1.2.3", "Release_2", strings.Repeat("1", 128)},
			[]string{"", "..", "../x", "a..b", "/", "a/b", ".hidden", "a b", "é", "v1\n", strings.Repeat("1", 129)}},
	} {
		for _, s := range c.good {
			if err := c.fn(s); err != nil {
				t.Errorf("%s: %q refused: %v", c.kind, s, err)
			}
		}
		for _, s := range c.bad {
			err := c.fn(s)
			var ne *Error
			switch {
			case err == nil:
				t.Errorf("%s: %q accepted", c.kind, s)
			case !errors.As(err, &ne):
				t.Errorf("%s: %q: %v is not a *names.Error", c.kind, s, err)
			case ne.Kind != c.kind || ne.Value != s || ne.Reason == "":
				t.Errorf("%s: %q: error %+v", c.kind, s, ne)
			case !strings.HasPrefix(err.Error(), "invalid "+c.kind+" "):
				t.Errorf("%s: %q: message %q", c.kind, s, err)
			}
		}
	}
}

func TestEmailCanonical(t *testing.T) {
	for in, want := range map[string]string{"a@b.co": "a@b.co", "Wolverine@X-Men.org": "wolverine@x-men.org", "a.b+c@d.io": "a.b+c@d.io"} {
		got, err := Email(in)
		if err != nil || got != want {
			t.Errorf("Email(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
}

// TestLabelReasons: the first broken rule is the one the message names.
func TestLabelReasons(t *testing.T) {
	for s, want := range map[string]string{
		"":                      "must not be empty",
		strings.Repeat("a", 64): "at most 63",
		"1a":                    "start with a lowercase letter",
		"Ab":                    "start with a lowercase letter",
		"a-":                    "end with a hyphen",
		"a.b":                   "only lowercase letters, digits and hyphens",
		"aé":                    "only lowercase letters, digits and hyphens",
	} {
		if err := App(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("App(%q) = %v, want %q", s, err, want)
		}
	}
}

func TestErrorTruncatesLongValues(t *testing.T) {
	err := App(strings.Repeat("x", 1000))
	if err == nil || len(err.Error()) > 200 || !strings.Contains(err.Error(), "...") {
		t.Fatalf("App(1000 x) = %v", err)
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
		// What App accepts every other Label kind and a host accepts.
		if BrokerID(s) != nil || Host(s) != nil || Instance(s) != nil {
			t.Fatalf("%q: an app name that another label kind refuses", s)
		}
	})
}

func FuzzHost(f *testing.F) {
	for _, s := range []string{"hello.apps.localhost", "a..b", "../x", "é.com", "a.b:80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if Host(s) != nil {
			return
		}
		if len(s) == 0 || len(s) > 253 || strings.ContainsAny(s, "/\\ :_\x00") || strings.Contains(s, "..") ||
			s[0] == '.' || s[len(s)-1] == '.' || s[0] == '-' || strings.IndexFunc(s, func(r rune) bool { return r > 127 }) >= 0 {
			t.Fatalf("accepted %q", s)
		}
	})
}

func FuzzEnvKey(f *testing.F) {
	for _, s := range []string{"PATH", "A=B", "1A", "", "É"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if EnvKey(s) != nil {
			return
		}
		if len(s) == 0 || len(s) > 128 || strings.ContainsAny(s, "=/.\\ \x00-") || s[0] >= '0' && s[0] <= '9' {
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
