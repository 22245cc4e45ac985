package state

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// fill sets every field reachable from v to a non-zero value: maps and
// slices get one element, pointers a value.
func fill(t *testing.T, v reflect.Value, depth int) {
	if depth > 8 {
		return
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(3)
	case reflect.Uint64, reflect.Uint, reflect.Uint32:
		v.SetUint(3)
	case reflect.Float64:
		v.SetFloat(1.5)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fill(t, p.Elem(), depth+1)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fill(t, s.Index(0), depth+1)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		fill(t, k, depth+1)
		e := reflect.New(v.Type().Elem()).Elem()
		fill(t, e, depth+1)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Unix(1e9, 0).UTC()))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				fill(t, v.Field(i), depth+1)
			}
		}
	default:
		t.Fatalf("fill: add kind %s (field type %s) to this test and to App.Clone", v.Kind(), v.Type())
	}
}

// shared reports a map, slice or pointer of a that b shares.
func shared(a, b reflect.Value, path string) string {
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() {
			return ""
		}
		if a.Pointer() == b.Pointer() {
			return path
		}
		return shared(a.Elem(), b.Elem(), path)
	case reflect.Map:
		if a.IsNil() {
			return ""
		}
		if a.Pointer() == b.Pointer() {
			return path
		}
		it := a.MapRange()
		for it.Next() {
			if p := shared(it.Value(), b.MapIndex(it.Key()), path+"[]"); p != "" {
				return p
			}
		}
	case reflect.Slice:
		if a.Len() > 0 && a.Pointer() == b.Pointer() {
			return path
		}
		for i := 0; i < a.Len(); i++ {
			if p := shared(a.Index(i), b.Index(i), path+"[]"); p != "" {
				return p
			}
		}
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if a.Type().Field(i).IsExported() {
				if p := shared(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); p != "" {
					return p
				}
			}
		}
	}
	return ""
}

// App.Clone copies every field and shares nothing with the original: a
// field added to App (or ProcOverride) that Clone does not copy deeply
// fails here.
func TestAppCloneSharesNothing(t *testing.T) {
	var a App
	fill(t, reflect.ValueOf(&a).Elem(), 0)
	c := a.Clone()
	if !reflect.DeepEqual(&a, c) {
		t.Fatalf("the clone differs:\n%+v\n%+v", a, *c)
	}
	if p := shared(reflect.ValueOf(&a).Elem(), reflect.ValueOf(c).Elem(), "App"); p != "" {
		t.Fatalf("the clone shares %s with the original", p)
	}
}

// Decode of an app record hands every caller its own copy of the record
// decoded once: changing one changes neither the cache nor the next one.
func TestDecodeAppGivesCopies(t *testing.T) {
	n := 2
	raw, _ := json.Marshal(&App{Name: "hello", Teams: []string{"t"}, Procs: map[string]ProcOverride{"web": {NumInstances: &n}}})
	a, err := Decode[App]("apps/hello", raw)
	if err != nil {
		t.Fatal(err)
	}
	a.Teams[0] = "changed"
	*a.Procs["web"].NumInstances = 9
	a.Procs["worker"] = ProcOverride{}
	b, err := Decode[App]("apps/hello", raw)
	if err != nil {
		t.Fatal(err)
	}
	if b.Teams[0] != "t" || *b.Procs["web"].NumInstances != 2 || len(b.Procs) != 1 {
		t.Fatalf("a caller's change reached the next decode: %+v", b)
	}
	raw2, _ := json.Marshal(&App{Name: "hello", Teams: []string{"u"}})
	c, err := Decode[App]("apps/hello", raw2)
	if err != nil || c.Teams[0] != "u" {
		t.Fatalf("new bytes decoded as %+v, %v", c, err)
	}
	if _, err := Decode[App]("apps/bad", []byte("{")); err == nil {
		t.Fatal("a corrupt record decoded")
	}
}
