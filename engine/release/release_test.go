package release

import (
	"fmt"
	"strings"
	"testing"
)

const lainYAML = `
appname: hello
web:
  cmd: ./hello -port $PORT
  port: 8080
  memory: 64m
  num_instances: 2
  env:
    - GREETING=hi
  healthcheck: /ping
worker.mailer:
  cmd: ./mailer
build:
  base: golang
`

func TestParseLainYAML(t *testing.T) {
	s, err := Parse([]byte(lainYAML))
	if err != nil {
		t.Fatal(err)
	}
	if s.AppName != "hello" || len(s.Procs) != 2 {
		t.Fatalf("%+v", s)
	}
	mailer, web := s.Procs[0], s.Procs[1]
	if mailer.Name != "mailer" || mailer.Type != "worker" || mailer.NumInstances != 1 {
		t.Errorf("mailer: %+v", mailer)
	}
	if web.Name != "web" || web.Port != 8080 || web.MemoryMB != 64 || web.NumInstances != 2 || web.Env["GREETING"] != "hi" || web.HealthCheck != "/ping" {
		t.Errorf("web: %+v", web)
	}
}

func TestParseJSON(t *testing.T) {
	s, err := Parse([]byte(`{"web":{"cmd":["python3","-m","http.server"],"cpu":1.5,"memory":"1G"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if p := s.Proc("web"); p == nil || p.CPU != 1.5 || p.MemoryMB != 1024 || p.Cmd != "python3 -m http.server" {
		t.Fatalf("%+v", s.Procs)
	}
}

func TestBadSpecs(t *testing.T) {
	cases := map[string]string{
		"no procs":       "appname: x\n",
		"negative count": "web:\n  cmd: x\n  num_instances: -1\n",
		"absurd memory":  "web:\n  cmd: x\n  memory: 64Q\n",
		"cpu zero":       "web:\n  cmd: x\n  cpu: 0\n",
		"unknown key":    "webby:\n  cmd: x\n",
		"unknown field":  "web:\n  cmd: x\n  replicas: 3\n",
		"bad proc name":  "worker.Bad_Name:\n  cmd: x\n",
		"no cmd":         "web:\n  port: 80\n",
		"bad env":        "web:\n  cmd: x\n  env: [\"1BAD=x\"]\n",
		"not yaml":       "web: [\n",
		"dup proc":       "web:\n  cmd: x\nweb.web:\n  cmd: y\n",
		"bad port":       "web:\n  cmd: x\n  port: 70000\n",
	}
	for name, src := range cases {
		if _, err := Parse([]byte(src)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestMemoryValue(t *testing.T) {
	good := map[any]int{"64m": 64, "64M": 64, "1g": 1024, "512Mi": 512, "4096k": 4, "128mb": 128, 268435456: 256}
	for in, want := range good {
		got, err := MemoryValue(in)
		if err != nil || got != want {
			t.Errorf("MemoryValue(%v) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []any{"64Q", "", "m", "-1m", "1e9", "0", "1000g", true, "0x10m"} {
		if _, err := MemoryValue(in); err == nil {
			t.Errorf("MemoryValue(%v) accepted", in)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(lainYAML))
	f.Add([]byte(`{"web":{"cmd":"x"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		if err != nil {
			return
		}
		if len(s.Procs) == 0 {
			t.Fatal("accepted a spec with no procs")
		}
		for _, p := range s.Procs {
			if p.NumInstances < 0 || p.CPU <= 0 || p.MemoryMB <= 0 || strings.ContainsAny(p.Name, "/. ") {
				t.Fatalf("accepted bad proc %+v", p)
			}
		}
	})
}

func TestCheckEnv(t *testing.T) {
	for _, ok := range [][2]string{{"GREETING", "hi"}, {"PEM", "-----BEGIN-----\r\n\tx\n"}, {"PORTAL", "1"}, {"X_BERTH_Y", "1"}, {"E", ""}} {
		if err := CheckEnv(ok[0], ok[1]); err != nil {
			t.Errorf("CheckEnv(%q, %q): %v", ok[0], ok[1], err)
		}
	}
	for _, bad := range [][2]string{{"PORT", "1"}, {"BERTH_APP", "x"}, {"BERTH_", "x"}, {"NOMAD_ADDR", "x"}, {"A", "a\x00b"}, {"A", "\x1b[31m"}, {"A", "\x7f"}, {"A", "\u0085"}, {"A B", "x"}, {"1A", "x"}, {"A", strings.Repeat("x", MaxEnvValue+1)}} {
		if err := CheckEnv(bad[0], bad[1]); err == nil {
			t.Errorf("CheckEnv(%q, %q) passed", bad[0], bad[1])
		}
	}
}

func TestCheckYAMLLimits(t *testing.T) {
	l := YAMLLimits{MaxNodes: 100, MaxMappingKeys: 10, MaxDepth: 4, NoControl: true}
	if err := CheckYAML([]byte("a: 1\nb: [1, 2]\nc: {d: x}\n"), l); err != nil {
		t.Fatal(err)
	}
	var many strings.Builder
	for i := 0; i < 11; i++ {
		fmt.Fprintf(&many, "k%d: v\n", i)
	}
	for name, doc := range map[string]string{
		"keys":    many.String(),
		"depth":   "a: {b: {c: {d: {e: 1}}}}\n",
		"nodes":   "a: [" + strings.Repeat("1, ", 120) + "1]\n",
		"alias":   "a: &x 1\nb: *x\n",
		"control": "a: \"x\\0y\"\n",
		"invalid": "a: [\n",
	} {
		if err := CheckYAML([]byte(doc), l); err == nil {
			t.Errorf("%s: passed", name)
		}
	}
}
