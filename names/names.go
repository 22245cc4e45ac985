// Package names is the one place where Berth's names are validated: every
// name that becomes a Store key, a Nomad job or group ID, a directory, a
// database name, an environment variable or a host name is checked here,
// once per kind, before anything is stored or submitted.
//
// Each validator returns nil or an *Error whose message is safe to show to
// the caller. The rule of each kind is in its doc comment:
//
//	App, Proc, Team, Service, Instance  Label's rule (a DNS label starting with a letter)
//	BrokerID                            broker instance and binding IDs, broker plugin names: Label's rule
//	Email                               user names (returns the canonical, lower-case form)
//	MetaVersion                         release names
//	EnvKey                              environment variable names (POSIX)
//	Host                                route host names (RFC 1123)
//	SettingKey                          keys of a service's broker settings
//	KeyName                             names of users' SSH keys (free text)
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

// MaxLabel is the longest DNS label (RFC 1035): the limit of every name
// checked by Label.
const MaxLabel = 63

// Label checks the rule shared by most of Berth's names: 1 to 63
// characters from [a-z0-9-], starting with a lowercase letter and not
// ending with a hyphen (a DNS label that is also a valid Nomad job and
// group ID, a directory name and a Consul service name). No '.', '/', '_',
// upper case, space or non-ASCII character. kind names what is checked
// ("app name", "team name", ...) for the error message.
func Label(kind, s string) error {
	switch {
	case s == "":
		return &Error{kind, s, "must not be empty"}
	case len(s) > MaxLabel:
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

// App validates an app name (Label's rule). It is the Nomad job ID, the
// local scheduler's working directory and the first label of the app's
// route.
func App(s string) error { return Label("app name", s) }

// Proc validates a proc name (Label's rule): the <name> of a lain.yaml proc
// key <type>[.<name>], the Nomad task group, and a directory locally.
func Proc(s string) error { return Label("proc name", s) }

// Team validates a team name (Label's rule).
func Team(s string) error { return Label("team name", s) }

// Service validates a service name, the id of a service definition
// (Label's rule).
func Service(s string) error { return Label("service name", s) }

// Instance validates a service-instance name (Label's rule). The name is
// also the instance ID the broker gets, so it passes BrokerID too.
func Instance(s string) error { return Label("service instance name", s) }

// BrokerID validates an instance or binding ID of the broker protocol (the
// Open Service Broker API's instance_id and binding_id), and the name of a
// broker plugin. The OSB API allows any unreserved URI characters; Berth's
// brokers accept only Label's rule, because the IDs become database names,
// user names and key prefixes on the backing servers. Berth sends service
// instance names (Instance) and binding IDs "b-<24 hex digits>", both of
// which pass.
func BrokerID(s string) error { return Label("broker ID", s) }

// MaxEnvKey is the longest environment variable name accepted.
const MaxEnvKey = 128

// EnvKey validates the name of an environment variable (an app's env and a
// proc's env in a release): a POSIX name, 1 to 128 characters from
// [A-Za-z0-9_] not starting with a digit. Upper and lower case are both
// allowed and distinct. Whether Berth reserves the name (PORT, BERTH_*,
// NOMAD_*) is not a question of its spelling and is checked by the caller.
func EnvKey(s string) error {
	const kind = "environment variable name"
	switch {
	case s == "":
		return &Error{kind, s, "must not be empty"}
	case len(s) > MaxEnvKey:
		return &Error{kind, s, "must be at most 128 characters"}
	case s[0] >= '0' && s[0] <= '9':
		return &Error{kind, s, "must not start with a digit"}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return &Error{kind, s, "may contain only letters, digits and '_'"}
		}
	}
	return nil
}

// MaxHost is the longest host name (RFC 1035).
const MaxHost = 253

// Host validates a host name an app is routed at (AppSpec.Routes, such as
// "hello.apps.localhost"): 1 to 253 characters of dot-separated labels,
// each 1 to 63 characters from [A-Za-z0-9-] that neither starts nor ends
// with a hyphen (RFC 1123, so a label may start with a digit, as in
// "127.0.0.1.nip.io"); no trailing dot, port, '/', '_' or non-ASCII
// character (a name in IDNA form, "xn--...", passes). Case does not
// matter, as in DNS: the routers compare host names in lower case, so an
// operator's apps domain written in capitals keeps working.
func Host(s string) error {
	const kind = "host name"
	switch {
	case s == "":
		return &Error{kind, s, "must not be empty"}
	case len(s) > MaxHost:
		return &Error{kind, s, "must be at most 253 characters"}
	}
	for label := range strings.SplitSeq(s, ".") {
		switch {
		case label == "":
			return &Error{kind, s, "must not have an empty label (leading, trailing or double dot)"}
		case len(label) > MaxLabel:
			return &Error{kind, s, "must not have a label longer than 63 characters"}
		case label[0] == '-' || label[len(label)-1] == '-':
			return &Error{kind, s, "must not have a label that starts or ends with a hyphen"}
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return &Error{kind, s, "may contain only letters, digits, hyphens and dots"}
			}
		}
	}
	return nil
}

// MaxSettingKey is the longest key of a service's broker settings.
const MaxSettingKey = 64

// SettingKey validates a key of a service definition's settings (the
// broker's configuration: "host", "admin_user", ...), which names a secret:
// 1 to 64 bytes without a space, '/' or newline. Brokers choose their own
// keys, so case, digits and punctuation are free.
func SettingKey(s string) error {
	const kind = "settings key"
	switch {
	case s == "":
		return &Error{kind, s, "must not be empty"}
	case len(s) > MaxSettingKey:
		return &Error{kind, s, "must be at most 64 characters"}
	case strings.ContainsAny(s, " /\n"):
		return &Error{kind, s, "must not contain a space, '/' or a newline"}
	}
	return nil
}

// MaxKeyName is the longest name of a user's SSH key.
const MaxKeyName = 256

// KeyName validates the name of a user's SSH key (its comment when none is
// given): at most 256 bytes without NUL or control characters (C0, DEL,
// C1). It is free text shown back to its owner, never a key or a path;
// empty means unnamed.
func KeyName(s string) error {
	const kind = "key name"
	if len(s) > MaxKeyName {
		return &Error{kind, s, "must be at most 256 characters"}
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return &Error{kind, s, "must not contain control characters"}
		}
	}
	return nil
}

// MaxEmail is the longest email address accepted (RFC 5321's path limit).
const MaxEmail = 254

// Email validates an email address used as a user name and returns it in
// canonical (lower-case) form. Only a bare ASCII address is accepted, at
// most 254 characters, with a dot in its domain: no display name, no
// '/', '\', space, '<', '>', quote, '%', '?', '#', '&' and no "..".
func Email(s string) (string, error) {
	if s == "" {
		return "", &Error{"email", s, "must not be empty"}
	}
	if len(s) > MaxEmail {
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

// MaxMetaVersion is the longest meta_version accepted.
const MaxMetaVersion = 128

// MetaVersion validates a release name: "<unix time>-<git sha>" as LAIN
// writes it, or any [A-Za-z0-9._-] string of 1 to 128 characters that does
// not start with a dot or contain "..". It is the last segment of the
// release's Store key.
func MetaVersion(s string) error {
	if s == "" {
		return &Error{"meta_version", s, "must not be empty"}
	}
	if len(s) > MaxMetaVersion {
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
