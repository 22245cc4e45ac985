package openapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
)

// Endpoint is one method and path a seed document names.
type Endpoint struct {
	Method string
	// Path is normalised: no scheme, host, query or trailing slash, and
	// placeholders (:name, <name>, {name}) written as {name}. Concrete
	// values (imagepush, myapp) are kept as they are.
	Path   string
	Source string // file:line where the seed names it
}

func (e Endpoint) String() string { return e.Method + " " + e.Path + " (" + e.Source + ")" }

var (
	// The tsuru reference: "• Method: GET" followed by "• URI: /apps/<appname>".
	methodLine = regexp.MustCompile(`^\W*Method:\s*([A-Za-z]+)\s*$`)
	uriLine    = regexp.MustCompile(`^\W*URI:\s*(\S+)\s*$`)
	// The tsuru reference's examples: "POST /users HTTP/1.1", "PUT /swap?app1=a".
	requestLine = regexp.MustCompile(`^\s*([A-Z]+)\s+(/\S*)(\s+HTTP/\d(\.\d)?)?\s*$`)
)

// SeedEndpoints extracts the endpoints that seed documents name, each once
// per file, in the order they appear (endpoints found only in an example
// come after the others of their file). It understands:
//
//   - curl lines (the LAIN console's reference): `curl [options] URL`, the
//     method from -X/--request (also written -XPOST, or -x as the LAIN
//     document does once), else POST when there is data (-d, --data...),
//     else GET;
//   - "Method: M" followed by "URI: /path" (the tsuru reference);
//   - example request lines "M /path [HTTP/1.1]" that no Method/URI pair
//     of the same file already names (the tsuru reference's "Create an
//     user" has only its example). Lines whose method is not an HTTP method
//     (the reference's "DELELE /teams/myteam") are skipped.
func SeedEndpoints(files ...string) ([]Endpoint, error) {
	var out []Endpoint
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		eps, err := parseSeed(f, b)
		if err != nil {
			return nil, err
		}
		out = append(out, eps...)
	}
	return out, nil
}

func parseSeed(file string, b []byte) ([]Endpoint, error) {
	var named, examples []Endpoint
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	pending, pendingLine := "", 0
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		src := fmt.Sprintf("%s:%d", file, n)
		switch {
		case strings.HasPrefix(line, "curl ") || line == "curl":
			ep, err := parseCurl(line)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", src, err)
			}
			ep.Source = src
			named = append(named, ep)
		case methodLine.MatchString(line):
			pending, pendingLine = strings.ToUpper(methodLine.FindStringSubmatch(line)[1]), n
		case uriLine.MatchString(line):
			if pending == "" || n-pendingLine > 2 {
				return nil, fmt.Errorf("%s: URI without a Method line before it", src)
			}
			named = append(named, Endpoint{Method: pending, Path: normSeedPath(uriLine.FindStringSubmatch(line)[1]), Source: src})
			pending = ""
		case requestLine.MatchString(line):
			m := requestLine.FindStringSubmatch(line)
			if methods[m[1]] {
				examples = append(examples, Endpoint{Method: m[1], Path: normSeedPath(m[2]), Source: src})
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, ex := range examples {
		if !slices.ContainsFunc(named, func(e Endpoint) bool { return e.Method == ex.Method && seedMatches(e.Path, ex.Path) }) {
			named = append(named, ex)
		}
	}
	var out []Endpoint
	seen := map[string]bool{}
	for _, e := range named {
		if k := e.Method + " " + e.Path; !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	return out, nil
}

// parseCurl finds the method and URL of a curl command line.
func parseCurl(line string) (Endpoint, error) {
	args, err := shellWords(line)
	if err != nil {
		return Endpoint{}, err
	}
	method, data, target := "", false, ""
	withValue := map[string]bool{ // options whose value is the next word
		"-H": true, "--header": true, "-d": true, "--data": true, "--data-raw": true, "--data-binary": true,
		"--data-urlencode": true, "-u": true, "--user": true, "-o": true, "--output": true, "-A": true,
		"--user-agent": true, "-b": true, "--cookie": true, "-e": true, "--referer": true, "-F": true, "--form": true,
	}
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-X" || a == "-x" || a == "--request":
			if i+1 >= len(args) {
				return Endpoint{}, fmt.Errorf("%s without a method", a)
			}
			i++
			method = strings.ToUpper(args[i])
		case strings.HasPrefix(a, "-X") || strings.HasPrefix(a, "-x"):
			method = strings.ToUpper(a[2:])
		case withValue[a]:
			if strings.HasPrefix(a, "-d") || strings.HasPrefix(a, "--data") || a == "-F" || a == "--form" {
				data = true
			}
			i++
		case strings.HasPrefix(a, "-"):
			if strings.HasPrefix(a, "-d") || strings.HasPrefix(a, "--data") {
				data = true // -d'...' attached
			}
		case target == "":
			target = a
		}
	}
	if target == "" {
		return Endpoint{}, fmt.Errorf("curl without a URL: %s", line)
	}
	if method == "" {
		method = "GET"
		if data {
			method = "POST"
		}
	}
	if !methods[method] {
		return Endpoint{}, fmt.Errorf("curl with method %q", method)
	}
	return Endpoint{Method: method, Path: normSeedPath(target)}, nil
}

// shellWords splits a command line as a POSIX shell would, for the quoting
// seed documents use ('...', "...", backslash).
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	in, quote := false, rune(0)
	esc := false
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '\\':
				esc = true
			default:
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == '\\':
			esc, in = true, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

var placeholder = regexp.MustCompile(`^(?::([^/]+)|<([^/>]+)>|\{([^/}]+)\})$`)

// normSeedPath drops scheme, host, query and trailing slash, and writes
// placeholders as {name}.
func normSeedPath(p string) string {
	if strings.Contains(p, "://") {
		if u, err := url.Parse(p); err == nil {
			p = u.Path
		}
	}
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	p = normPath(p)
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if m := placeholder.FindStringSubmatch(s); m != nil {
			segs[i] = "{" + m[1] + m[2] + m[3] + "}"
		}
	}
	return strings.Join(segs, "/")
}

func isParam(seg string) bool { return strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") }

// seedMatches says whether a request to concrete (a seed path) is one that
// pattern (a seed path or document path template) answers: segment by
// segment, a placeholder matches only a placeholder, and a concrete value
// matches itself or a placeholder, as a router would route it.
func seedMatches(pattern, concrete string) bool {
	ps, cs := strings.Split(pattern, "/"), strings.Split(concrete, "/")
	if len(ps) != len(cs) {
		return false
	}
	for i := range ps {
		switch {
		case isParam(ps[i]):
		case isParam(cs[i]):
			return false
		case ps[i] != cs[i]:
			return false
		}
	}
	return true
}

// Uncovered returns the endpoints of eps that no operation of the OpenAPI
// document docJSON answers (see seedMatches: /api/v1/notify/imagepush is
// covered by /api/v1/notify/{type}; /apps/{appname} is not covered by
// /apps/restart). A document that is not JSON covers nothing.
func Uncovered(docJSON []byte, eps []Endpoint) []Endpoint {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	_ = json.Unmarshal(docJSON, &doc)
	var out []Endpoint
	for _, e := range eps {
		covered := false
		for p, item := range doc.Paths {
			if _, ok := item[strings.ToLower(e.Method)]; ok && seedMatches(p, e.Path) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, e)
		}
	}
	return out
}
