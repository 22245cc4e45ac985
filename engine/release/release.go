// Package release parses and validates a release spec: the lain.yaml shape
// (YAML, or the same as JSON) that a push records.
//
//	appname: hello
//	web:
//	  cmd: ./hello -port $PORT
//	  port: 8080
//	  memory: 64m
//	  num_instances: 2
//	  env: [GREETING=hi]
//	  healthcheck: /ping
//	worker.mailer:
//	  cmd: ./mailer
//
// A proc key is <type>[.<name>] with type web, worker, portal or oneshot;
// the proc's name is <name>, or the type when alone.
package release

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/names"
)

// Limits on what a release may ask for.
const (
	MaxInstances = 100
	MaxCPU       = 64
	MaxMemoryMB  = 256 * 1024
	DefaultMemMB = 256
	DefaultCPU   = 0.5
)

// Proc is one proc of a release.
type Proc struct {
	Name         string            `json:"name"`
	Type         string            `json:"type"`
	Cmd          string            `json:"cmd,omitempty"`
	Image        string            `json:"image,omitempty"`
	Port         int               `json:"port,omitempty"`
	NumInstances int               `json:"num_instances"`
	CPU          float64           `json:"cpu"`
	MemoryMB     int               `json:"memory_mb"`
	Env          map[string]string `json:"env,omitempty"`
	HealthCheck  string            `json:"healthcheck,omitempty"`
}

// Spec is a validated release spec.
type Spec struct {
	AppName   string   `json:"appname,omitempty"`
	Image     string   `json:"image,omitempty"`
	Procs     []Proc   `json:"procs"`
	Resources []string `json:"use_resources,omitempty"`
}

// Proc returns the named proc, or nil.
func (s *Spec) Proc(name string) *Proc {
	for i := range s.Procs {
		if s.Procs[i].Name == name {
			return &s.Procs[i]
		}
	}
	return nil
}

// Error is a validation failure; its message is safe to show to the caller.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func errf(format string, a ...any) error { return &Error{fmt.Sprintf(format, a...)} }

// Keys of lain.yaml that Berth accepts but does not act on (the build side of LAIN).
var ignoredKeys = map[string]bool{"build": true, "release": true, "test": true, "prepare": true, "notify": true, "meta_version": true}

var procTypes = map[string]bool{backends.ProcWeb: true, backends.ProcWorker: true, backends.ProcPortal: true, backends.ProcOneshot: true}

var procFields = map[string]bool{"cmd": true, "image": true, "port": true, "memory": true, "num_instances": true, "cpu": true, "env": true, "healthcheck": true}

// Parse reads a spec from YAML or JSON (JSON is YAML).
func Parse(data []byte) (*Spec, error) {
	if err := CheckYAML(data, ReleaseYAMLLimits); err != nil {
		return nil, errf("release spec: %v", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, errf("release spec is not valid YAML or JSON: %v", err)
	}
	return FromMap(raw)
}

// FromMap validates a spec already decoded into generic values.
func FromMap(raw map[string]any) (*Spec, error) {
	if raw == nil {
		return nil, errf("release spec is empty")
	}
	s := &Spec{}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := raw[k]
		switch {
		case k == "appname":
			str, ok := v.(string)
			if !ok {
				return nil, errf("appname must be a string")
			}
			s.AppName = str
		case k == "image":
			str, ok := v.(string)
			if !ok || strings.ContainsAny(str, " \t\n") || HasControl(str, false) {
				return nil, errf("image must be a Docker image reference")
			}
			s.Image = str
		case k == "use_resources" || k == "resources":
			res, err := resources(v)
			if err != nil {
				return nil, err
			}
			s.Resources = res
		case ignoredKeys[k]:
		default:
			typ, name, _ := strings.Cut(k, ".")
			if !procTypes[typ] {
				return nil, errf("unknown key %q: a proc key is <type>[.<name>] with type web, worker, portal or oneshot", k)
			}
			if name == "" {
				if strings.Contains(k, ".") {
					return nil, errf("proc key %q has an empty name", k)
				}
				name = typ
			}
			if err := names.Proc(name); err != nil {
				return nil, errf("proc key %q: %v", k, err)
			}
			p, err := proc(k, typ, name, v)
			if err != nil {
				return nil, err
			}
			if s.Proc(name) != nil {
				return nil, errf("proc %q is declared twice", name)
			}
			s.Procs = append(s.Procs, *p)
		}
	}
	if len(s.Procs) == 0 {
		return nil, errf("release declares no procs: add at least one of web, worker.<name>, portal.<name>, oneshot.<name>")
	}
	for i := range s.Procs {
		p := &s.Procs[i]
		if p.Cmd == "" && p.Image == "" {
			if s.Image == "" {
				return nil, errf("proc %q has neither cmd nor image", p.Name)
			}
			p.Image = s.Image
		}
	}
	sort.Slice(s.Procs, func(i, j int) bool { return s.Procs[i].Name < s.Procs[j].Name })
	return s, nil
}

func resources(v any) ([]string, error) {
	var out []string
	switch r := v.(type) {
	case []any:
		for _, x := range r {
			str, ok := x.(string)
			if !ok {
				return nil, errf("use_resources must be a list of resource app names")
			}
			out = append(out, str)
		}
	case map[string]any:
		for k := range r {
			out = append(out, k)
		}
	default:
		return nil, errf("use_resources must be a list of resource app names")
	}
	for _, n := range out {
		if err := names.App(n); err != nil {
			return nil, errf("use_resources: %v", err)
		}
	}
	sort.Strings(out)
	return out, nil
}

func proc(key, typ, name string, v any) (*Proc, error) {
	p := &Proc{Name: name, Type: typ, NumInstances: 1, CPU: DefaultCPU, MemoryMB: DefaultMemMB}
	if v == nil {
		return p, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errf("proc %q must be a mapping", key)
	}
	for f, fv := range m {
		if !procFields[f] {
			return nil, errf("proc %q: unknown field %q", key, f)
		}
		var err error
		switch f {
		case "cmd":
			p.Cmd, err = cmd(fv)
		case "image":
			str, ok := fv.(string)
			if !ok || str == "" || strings.ContainsAny(str, " \t\n") || HasControl(str, false) {
				err = errf("must be a Docker image reference")
			}
			p.Image = str
		case "port":
			var n int
			n, err = intValue(fv)
			if err == nil && (n < 1 || n > 65535) {
				err = errf("must be between 1 and 65535")
			}
			p.Port = n
		case "num_instances":
			var n int
			n, err = intValue(fv)
			if err == nil {
				err = CheckInstances(n)
			}
			p.NumInstances = n
		case "cpu":
			var c float64
			c, err = floatValue(fv)
			if err == nil {
				err = CheckCPU(c)
			}
			p.CPU = c
		case "memory":
			p.MemoryMB, err = MemoryValue(fv)
		case "env":
			p.Env, err = envList(fv)
		case "healthcheck":
			str, ok := fv.(string)
			if !ok || !strings.HasPrefix(str, "/") || strings.ContainsAny(str, " \t\n") || HasControl(str, false) {
				err = errf("must be an HTTP path starting with /")
			}
			p.HealthCheck = str
		}
		if err != nil {
			return nil, errf("proc %q: %s: %v", key, f, err)
		}
	}
	if p.Cmd != "" && p.Image != "" {
		// Both are allowed: the image runs with cmd as its command.
	}
	return p, nil
}

func cmd(v any) (string, error) {
	switch c := v.(type) {
	case string:
		if strings.TrimSpace(c) == "" {
			return "", errf("must not be empty")
		}
		if HasControl(c, true) {
			return "", errf("must not contain NUL or control characters (only tab, newline and carriage return are allowed)")
		}
		return c, nil
	case []any:
		parts := make([]string, 0, len(c))
		for _, x := range c {
			s, ok := x.(string)
			if !ok {
				return "", errf("must be a string or a list of strings")
			}
			if HasControl(s, true) {
				return "", errf("must not contain NUL or control characters (only tab, newline and carriage return are allowed)")
			}
			parts = append(parts, shellQuote(s))
		}
		if len(parts) == 0 {
			return "", errf("must not be empty")
		}
		return strings.Join(parts, " "), nil
	}
	return "", errf("must be a string or a list of strings")
}

func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`;&|<>(){}*?[]#~!") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func intValue(v any) (int, error) {
	switch n := v.(type) {
	case int:
		return n, nil
	case int64:
		return int(n), nil
	case float64:
		if n != math.Trunc(n) || math.Abs(n) > 1e9 {
			return 0, errf("must be a whole number")
		}
		return int(n), nil
	case string:
		i, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil {
			return 0, errf("must be a whole number")
		}
		return i, nil
	}
	return 0, errf("must be a whole number")
}

func floatValue(v any) (float64, error) {
	switch n := v.(type) {
	case int:
		return float64(n), nil
	case int64:
		return float64(n), nil
	case float64:
		return n, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
		if err != nil {
			return 0, errf("must be a number")
		}
		return f, nil
	}
	return 0, errf("must be a number")
}

// CheckInstances validates an instance count.
func CheckInstances(n int) error {
	if n < 0 || n > MaxInstances {
		return errf("num_instances must be between 0 and %d, not %d", MaxInstances, n)
	}
	return nil
}

// CheckCPU validates a CPU request in cores.
func CheckCPU(c float64) error {
	if !(c > 0) || c > MaxCPU || math.IsNaN(c) {
		return errf("cpu must be more than 0 and at most %d cores, not %v", MaxCPU, c)
	}
	return nil
}

// MemoryValue parses a memory size: a number of bytes, or a number with a
// k, m or g suffix (case-insensitive, an optional trailing b), into MiB.
func MemoryValue(v any) (int, error) {
	var s string
	switch m := v.(type) {
	case string:
		s = m
	case int:
		s = strconv.Itoa(m)
	case int64:
		s = strconv.FormatInt(m, 10)
	case float64:
		if m != math.Trunc(m) {
			return 0, errf("memory must be a size such as 64m or 1g")
		}
		s = strconv.FormatInt(int64(m), 10)
	default:
		return 0, errf("memory must be a size such as 64m or 1g")
	}
	orig := s
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimSuffix(s, "b")
	s = strings.TrimSuffix(s, "i")
	mult := float64(1)
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "m"):
		mult, s = 1<<20, s[:len(s)-1]
	case strings.HasSuffix(s, "g"):
		mult, s = 1<<30, s[:len(s)-1]
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || s == "" || strings.ContainsAny(s, "eE+-xXpP_") || math.IsNaN(n) || math.IsInf(n, 0) {
		return 0, errf("memory %q is not a size such as 64m, 512M or 1g", orig)
	}
	mb := int(math.Ceil(n * mult / (1 << 20)))
	if mb < 4 || mb > MaxMemoryMB {
		return 0, errf("memory %q must be between 4m and %dg", orig, MaxMemoryMB/1024)
	}
	return mb, nil
}

func envList(v any) (map[string]string, error) {
	env := map[string]string{}
	add := func(k, val string) error {
		if err := CheckEnv(k, val); err != nil {
			return err
		}
		env[k] = val
		return nil
	}
	switch e := v.(type) {
	case []any:
		for _, x := range e {
			s, ok := x.(string)
			if !ok {
				return nil, errf("must be a list of KEY=VALUE strings")
			}
			k, val, ok := strings.Cut(s, "=")
			if !ok {
				return nil, errf("%q is not KEY=VALUE", s)
			}
			if err := add(k, val); err != nil {
				return nil, err
			}
		}
	case map[string]any:
		for k, x := range e {
			if _, nested := x.(map[string]any); nested {
				return nil, errf("the value of %s must be a string, not a mapping", k)
			}
			if _, nested := x.([]any); nested {
				return nil, errf("the value of %s must be a string, not a list", k)
			}
			if x == nil {
				x = ""
			}
			if err := add(k, fmt.Sprint(x)); err != nil {
				return nil, err
			}
		}
	default:
		return nil, errf("must be a list of KEY=VALUE strings")
	}
	return env, nil
}

// MaxEnvValue is the largest environment variable value accepted.
const MaxEnvValue = 64 << 10

// ReservedEnvName reports whether name is set by Berth or the scheduler for
// every instance, so that an app (its release or its env endpoint) may not
// set it: PORT, BERTH_* and NOMAD_*.
func ReservedEnvName(name string) bool {
	return name == "PORT" || strings.HasPrefix(name, "BERTH_") || strings.HasPrefix(name, "NOMAD_")
}

// CheckEnv validates one environment variable as an app may set it, in a
// release's proc env and through the env endpoints alike: a POSIX name that
// is not reserved (ReservedEnvName), and a value of at most MaxEnvValue
// bytes without NUL or control characters other than tab, newline and
// carriage return (a multi-line value such as a PEM key is fine).
func CheckEnv(name, value string) error {
	if !ValidEnvName(name) {
		return errf("%q is not a valid environment variable name (letters, digits and _, not starting with a digit, at most 128)", name)
	}
	if ReservedEnvName(name) {
		return errf("%s is set by Berth and cannot be changed (PORT, BERTH_* and NOMAD_* are reserved)", name)
	}
	if len(value) > MaxEnvValue {
		return errf("the value of %s is too large (at most %d bytes)", name, MaxEnvValue)
	}
	if HasControl(value, true) {
		return errf("the value of %s contains NUL or a control character (only tab, newline and carriage return are allowed)", name)
	}
	return nil
}

// HasControl reports whether s contains NUL, a C0 control character, DEL
// or a C1 control character. With text, tab, newline and carriage return
// are allowed.
func HasControl(s string, text bool) bool {
	for _, r := range s {
		if text && (r == '\t' || r == '\n' || r == '\r') {
			continue
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return true
		}
	}
	return false
}

// ValidEnvName reports whether s is a POSIX environment variable name
// (names.EnvKey).
func ValidEnvName(s string) bool { return names.EnvKey(s) == nil }
