package release

import (
	"bytes"
	"errors"
	"io"

	"gopkg.in/yaml.v3"
)

// YAMLLimits bound what a YAML document may cost to decode. gopkg.in/yaml.v3
// checks a mapping's keys for duplicates pairwise (O(n²) in the keys of one
// mapping) whenever it decodes it, into a struct or a map alike: an 80,000-key
// mapping in under 1 MB takes minutes of CPU. Parsing into a yaml.Node is
// linear, so a document is parsed into nodes first and checked against these
// limits before anything decodes it.
type YAMLLimits struct {
	MaxNodes       int  // nodes in the whole document
	MaxMappingKeys int  // keys in any one mapping
	MaxDepth       int  // nesting of mappings and sequences
	NoControl      bool // refuse NUL and control characters (tab, newline and CR aside) in every scalar
}

// ReleaseYAMLLimits are the limits on a pushed lain.yaml.
var ReleaseYAMLLimits = YAMLLimits{MaxNodes: 20000, MaxMappingKeys: 1000, MaxDepth: 32}

// CheckYAML parses data into nodes and checks it against l. Aliases are
// refused (a release or service definition has no use for them, and they
// multiply what a decoder walks). An empty document passes (its decoding
// reports it).
func CheckYAML(data []byte, l YAMLLimits) error {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return errf("not valid YAML: %v", err)
	}
	nodes := 0
	var walk func(n *yaml.Node, depth int) error
	walk = func(n *yaml.Node, depth int) error {
		nodes++
		if nodes > l.MaxNodes {
			return errf("the YAML document is too large: more than %d nodes", l.MaxNodes)
		}
		if depth > l.MaxDepth {
			return errf("the YAML document is nested more than %d levels deep", l.MaxDepth)
		}
		switch n.Kind {
		case yaml.AliasNode:
			return errf("line %d: YAML aliases (*name) are not accepted", n.Line)
		case yaml.MappingNode:
			if len(n.Content)/2 > l.MaxMappingKeys {
				return errf("line %d: a mapping has more than %d keys", n.Line, l.MaxMappingKeys)
			}
		case yaml.ScalarNode:
			if l.NoControl && HasControl(n.Value, true) {
				return errf("line %d: a value contains NUL or a control character (only tab, newline and carriage return are allowed)", n.Line)
			}
		}
		for _, c := range n.Content {
			if err := walk(c, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	// Only the first document is checked: it is the only one decoded.
	return walk(&doc, 0)
}
