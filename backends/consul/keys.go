package consul

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Consul KV keys travel as URL paths (/v1/kv/<key>), and the agent's HTTP
// mux cleans those paths: a leading '/' is dropped by the client, "//", "."
// and ".." segments are redirected, and non-printable characters are
// refused. So a Store key is escaped before it reaches Consul:
//
//   - '%' becomes %25 (the escape character itself),
//   - a '/' that would start the key or follow another '/' becomes %2F,
//   - a '.' that would start a segment becomes %2E,
//   - bytes of non-printable or invalid UTF-8 runes become %XX.
//
// Every other character is kept, so ordinary keys ("apps/hello") read the
// same in the Consul UI. Each character's escape depends only on what comes
// before it, so escape(prefix) is a prefix of escape(key) whenever prefix is
// a prefix of key: Consul's prefix queries (List, DeleteTree) stay exact.
func escapeKey(key string) string {
	var b strings.Builder
	b.Grow(len(key))
	atSegmentStart := func() bool {
		n := b.Len()
		return n == 0 || b.String()[n-1] == '/'
	}
	for i := 0; i < len(key); {
		r, size := utf8.DecodeRuneInString(key[i:])
		switch {
		case r == '%':
			b.WriteString("%25")
		case (r == '/' || r == '.') && atSegmentStart():
			writeHex(&b, byte(r))
		case r == utf8.RuneError && size <= 1, !unicode.IsPrint(r):
			for j := 0; j < size; j++ {
				writeHex(&b, key[i+j])
			}
		default:
			b.WriteString(key[i : i+size])
		}
		i += size
	}
	return b.String()
}

// escapePrefix escapes a prefix for a prefix query. A prefix may end inside
// a multi-byte rune (a byte slice of a key); those trailing bytes are kept
// raw, as escapeKey keeps them in the complete, printable rune.
func escapePrefix(prefix string) string {
	cut := len(prefix)
	for i := len(prefix) - 1; i >= 0 && i >= len(prefix)-utf8.UTFMax; i-- {
		if utf8.RuneStart(prefix[i]) {
			if prefix[i] >= utf8.RuneSelf && !utf8.FullRuneInString(prefix[i:]) {
				cut = i
			}
			break
		}
	}
	return escapeKey(prefix[:cut]) + prefix[cut:]
}

func writeHex(b *strings.Builder, c byte) {
	const hex = "0123456789ABCDEF"
	b.WriteByte('%')
	b.WriteByte(hex[c>>4])
	b.WriteByte(hex[c&15])
}

// unescapeKey reverses escapeKey. ok is false for a key escapeKey cannot
// have written (one stored in Consul by something else).
func unescapeKey(s string) (string, bool) {
	if !strings.Contains(s, "%") {
		return s, true
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), true
}
