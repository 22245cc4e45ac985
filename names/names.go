// Package names validates every name that becomes a key, a job ID, a
// database name or a file name, before anything is stored.
package names

import (
	"fmt"
	"net/mail"
	"strings"
)

// Error is a validation failure; its message is safe to show to the caller.
type Error struct {
	Kind, Value, Reason string
}

func (e *Error) Error() string {
	v := e.Value
	if len(v) > 80 {
		v = v[:80] + "..."
	}
	return fmt.Sprintf("invalid %s %q: %s", e.Kind, v, e.Reason)
}

// Label checks DNS-label rules: [a-z0-9-], 1 to 63 characters, starting
// with a letter and not ending with a hyphen. kind names what is checked
// ("app name", "team name", ...) for the error message.
func Label(kind, s string) error {
	switch {
	case s == "":
		return &Error{kind, s, "must not be empty"}
	case len(s) > 63:
		return &Error{kind, s, "must be at most 63 characters"}
	case s[0] < 'a' || s[0] > 'z':
		return &Error{kind, s, "must start with a lowercase letter"}
	case s[len(s)-1] == '-':
		return &Error{kind, s, "must not end with a hyphen"}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return &Error{kind, s, "may contain only lowercase letters, digits and hyphens"}
		}
	}
	return nil
}

// App validates an app name.
func App(s string) error { return Label("app name", s) }

// Team validates a team name.
func Team(s string) error { return Label("team name", s) }

// Proc validates a proc name.
func Proc(s string) error { return Label("proc name", s) }

// Service validates a service or service-instance name.
func Service(s string) error { return Label("service name", s) }

// Instance validates a service-instance name.
func Instance(s string) error { return Label("service instance name", s) }

// Email validates an email address used as a user name and returns it in
// canonical (lower-case) form. Only a bare address is accepted: no display
// name, no '/' and at most 254 characters.
func Email(s string) (string, error) {
	if s == "" {
		return "", &Error{"email", s, "must not be empty"}
	}
	if len(s) > 254 {
		return "", &Error{"email", s, "must be at most 254 characters"}
	}
	if strings.ContainsAny(s, "/\\ <>\"'%?#&") || strings.Contains(s, "..") {
		return "", &Error{"email", s, "contains a character that is not allowed"}
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return "", &Error{"email", s, "is not an email address"}
	}
	at := strings.LastIndexByte(s, '@')
	if at < 1 || at == len(s)-1 || !strings.Contains(s[at+1:], ".") {
		return "", &Error{"email", s, "is not an email address"}
	}
	for _, r := range s {
		if r > 127 || r < 33 {
			return "", &Error{"email", s, "must be plain ASCII"}
		}
	}
	return strings.ToLower(s), nil
}

// MetaVersion validates a release name: "<unix time>-<git sha>" as LAIN
// writes it, or any [A-Za-z0-9._-] string of 1 to 128 characters that does
// not start with a dot.
func MetaVersion(s string) error {
	if s == "" {
		return &Error{"meta_version", s, "must not be empty"}
	}
	if len(s) > 128 {
		return &Error{"meta_version", s, "must be at most 128 characters"}
	}
	if s[0] == '.' || strings.Contains(s, "..") {
		return &Error{"meta_version", s, "must not start with a dot or contain '..'"}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return &Error{"meta_version", s, "may contain only letters, digits, '.', '_' and '-'"}
		}
	}
	return nil
}
