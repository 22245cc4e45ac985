package openapi

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"
)

// schemaGen derives JSON Schemas from Go types the way encoding/json
// encodes them. Named struct types become components (referenced by $ref);
// everything else is inlined.
//
//   - a field's name is its json tag's name, or the Go name; "-" skips it;
//     embedded structs without a tag name are flattened, as encoding/json does
//   - a field is required unless it is omitempty or omitzero (encoding/json
//     always writes the others, and the api/ client always sends them)
//   - a pointer is nullable: type [X, "null"], or anyOf [$ref, null]
//   - slices and arrays are arrays ([]byte is a base64 string); a nil slice
//     is encoded as null, so the server must answer [] where the document
//     says array
//   - maps are objects with additionalProperties
//   - time.Time is a date-time string, time.Duration an integer (ns)
//   - ",string" fields are strings; json.RawMessage and interfaces are any
//     value; other json.Marshalers are any value, encoding.TextMarshalers
//     strings
type schemaGen struct {
	defs  map[reflect.Type]map[string]any // component schema of each named struct
	names map[reflect.Type]string
	taken map[string]reflect.Type
	err   error
}

func newSchemaGen() *schemaGen {
	return &schemaGen{
		defs:  map[reflect.Type]map[string]any{},
		names: map[reflect.Type]string{},
		taken: map[string]reflect.Type{errorSchema: nil},
	}
}

var (
	timeType      = reflect.TypeFor[time.Time]()
	durationType  = reflect.TypeFor[time.Duration]()
	rawType       = reflect.TypeFor[json.RawMessage]()
	marshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshType = reflect.TypeFor[encoding.TextMarshaler]()
	badNameChars  = regexp.MustCompile(`[^A-Za-z0-9._-]+`)
)

func (g *schemaGen) components() map[string]any {
	out := make(map[string]any, len(g.defs)+1)
	for t, s := range g.defs {
		out[g.names[t]] = s
	}
	return out
}

// name gives a named struct type its component name: the type's name, or,
// when two packages use the same name, package_Name for the later one in
// sorted order of package paths. Generate walks operations in sorted
// order, so the names are stable for a given table.
func (g *schemaGen) name(t reflect.Type) string {
	if n, ok := g.names[t]; ok {
		return n
	}
	base := t.Name()
	if i := strings.IndexByte(base, '['); i >= 0 { // generic: Page[pkg.App] -> Page_App
		args := base[i+1 : len(base)-1]
		var parts []string
		for _, a := range strings.Split(args, ",") {
			a = a[strings.LastIndexAny(a, "./")+1:]
			parts = append(parts, a)
		}
		base = base[:i] + "_" + strings.Join(parts, "_")
	}
	base = badNameChars.ReplaceAllString(base, "_")
	n := base
	if _, clash := g.taken[n]; clash {
		pkg := t.PkgPath()
		pkg = pkg[strings.LastIndexByte(pkg, '/')+1:]
		n = badNameChars.ReplaceAllString(pkg, "_") + "_" + base
		for i := 2; ; i++ {
			if _, clash := g.taken[n]; !clash {
				break
			}
			n = fmt.Sprintf("%s_%s%d", pkg, base, i)
		}
	}
	g.taken[n] = t
	g.names[t] = n
	return n
}

// schema returns the schema of values of type t.
func (g *schemaGen) schema(t reflect.Type) map[string]any {
	if t.Kind() == reflect.Pointer {
		return nullable(g.schema(t.Elem()))
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == durationType:
		return map[string]any{"type": "integer", "format": "int64", "description": "A duration in nanoseconds."}
	case t == rawType:
		return map[string]any{}
	case t.Implements(marshalerType) || reflect.PointerTo(t).Implements(marshalerType):
		return map[string]any{}
	case t.Implements(textMarshType) || reflect.PointerTo(t).Implements(textMarshType):
		return map[string]any{"type": "string"}
	}
	switch t.Kind() {
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int8, reflect.Int16, reflect.Int32:
		return map[string]any{"type": "integer", "format": "int32"}
	case reflect.Int, reflect.Int64:
		return map[string]any{"type": "integer", "format": "int64"}
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint, reflect.Uint64, reflect.Uintptr:
		return map[string]any{"type": "integer", "minimum": 0}
	case reflect.Float32:
		return map[string]any{"type": "number", "format": "float"}
	case reflect.Float64:
		return map[string]any{"type": "number", "format": "double"}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && t.Kind() == reflect.Slice {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		s := map[string]any{"type": "array", "items": g.schema(t.Elem())}
		if t.Kind() == reflect.Array {
			s["minItems"], s["maxItems"] = t.Len(), t.Len()
		}
		return s
	case reflect.Map:
		switch t.Key().Kind() {
		case reflect.String, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		default:
			if !reflect.PointerTo(t.Key()).Implements(textMarshType) && !t.Key().Implements(textMarshType) {
				g.fail(fmt.Errorf("openapi: %v: map key type %v cannot be encoded as JSON", t, t.Key()))
			}
		}
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Struct:
		if t.Name() == "" {
			return g.object(t)
		}
		n := g.name(t)
		if _, ok := g.defs[t]; !ok {
			g.defs[t] = nil // placeholder: recursive types refer to themselves
			g.defs[t] = g.object(t)
		}
		return ref(n)
	default:
		g.fail(fmt.Errorf("openapi: type %v (%v) cannot be encoded as JSON", t, t.Kind()))
		return map[string]any{}
	}
}

func (g *schemaGen) fail(err error) {
	if g.err == nil {
		g.err = err
	}
}

// nullable allows null beside the values of s.
func nullable(s map[string]any) map[string]any {
	if len(s) == 0 { // any value already includes null
		return s
	}
	if _, isRef := s["$ref"]; isRef {
		return map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
	}
	switch typ := s["type"].(type) {
	case string:
		out := make(map[string]any, len(s))
		for k, v := range s {
			out[k] = v
		}
		out["type"] = []string{typ, "null"}
		return out
	case []string: // already nullable (pointer to pointer)
		return s
	}
	return map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
}

type field struct {
	name     string
	typ      reflect.Type
	optional bool
	asString bool
	depth    int
	tagged   bool
}

// object is the schema of a struct's JSON object.
func (g *schemaGen) object(t reflect.Type) map[string]any {
	fields := collect(t, 0, map[reflect.Type]bool{})
	props := map[string]any{}
	var required []string
	for _, f := range fields {
		s := g.schema(f.typ)
		if f.asString {
			s = map[string]any{"type": "string"}
			if f.typ.Kind() == reflect.Pointer {
				s = nullable(s)
			}
		}
		props[f.name] = s
		if !f.optional {
			required = append(required, f.name)
		}
	}
	s := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		sort.Strings(required)
		s["required"] = required
	}
	return s
}

// collect lists the JSON fields of struct t, following encoding/json's
// rules for embedded structs: an embedded struct without a tag name is
// flattened; of several fields with one name the shallowest wins, a tagged
// one among equals, and equals without a tag cancel each other.
func collect(t reflect.Type, depth int, visiting map[reflect.Type]bool) []field {
	if visiting[t] {
		return nil
	}
	visiting[t] = true
	defer delete(visiting, t)
	byName := map[string][]field{}
	var order []string
	add := func(f field) {
		if _, ok := byName[f.name]; !ok {
			order = append(order, f.name)
		}
		byName[f.name] = append(byName[f.name], f)
	}
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		ft := sf.Type
		if sf.Anonymous && name == "" {
			et := ft
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				for _, f := range collect(et, depth+1, visiting) {
					add(f)
				}
				continue
			}
			if !sf.IsExported() {
				continue
			}
		} else if !sf.IsExported() {
			continue
		}
		tagged := name != ""
		if name == "" {
			name = sf.Name
		}
		optional, asString := false, false
		for _, o := range strings.Split(opts, ",") {
			switch o {
			case "omitempty", "omitzero":
				optional = true
			case "string":
				switch ft.Kind() {
				case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
					reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
					reflect.Float32, reflect.Float64, reflect.String:
					asString = true
				case reflect.Pointer:
					switch ft.Elem().Kind() {
					case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
						reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
						reflect.Float32, reflect.Float64, reflect.String:
						asString = true
					}
				}
			}
		}
		add(field{name: name, typ: ft, optional: optional, asString: asString, depth: depth, tagged: tagged})
	}
	var out []field
	for _, n := range order {
		fs := byName[n]
		best := fs[0]
		for _, f := range fs[1:] {
			if f.depth < best.depth {
				best = f
			}
		}
		var dominant []field
		for _, f := range fs {
			if f.depth == best.depth {
				dominant = append(dominant, f)
			}
		}
		if len(dominant) > 1 {
			var tagged []field
			for _, f := range dominant {
				if f.tagged {
					tagged = append(tagged, f)
				}
			}
			if len(tagged) != 1 {
				continue // ambiguous: encoding/json drops the field
			}
			best = tagged[0]
		}
		out = append(out, best)
	}
	return out
}
