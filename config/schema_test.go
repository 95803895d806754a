package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/awakend/awakend/registry"
)

// The tests of this file check that what the field tables say of each
// field (the JSON Schema's source) is what the loader does with it: every
// value the schema allows loads, every kind of value it refuses is
// refused, required fields are required and defaults are the loader's.
// e2e/lsp_test.go checks the generated schema itself, with a real editor.

// raw is a scalar written into YAML as is, unquoted (128_000).
type raw string

// flow writes v as flow-style YAML: JSON, but for raw scalars.
func flow(v any) string {
	switch v := v.(type) {
	case raw:
		return string(v)
	case map[string]any:
		var parts []string
		for _, k := range slices.Sorted(mapKeys(v)) {
			parts = append(parts, strconv.Quote(k)+": "+flow(v[k]))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case []any:
		var parts []string
		for _, e := range v {
			parts = append(parts, flow(e))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func mapKeys(m map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// patternSamples are values that match each pattern of the tables, and
// values that do not.
var patternSamples = map[string]struct{ good, bad []string }{
	httpURLPattern:          {[]string{"https://agents.example.com/a2a", "http://10.0.0.1:8080"}, []string{"ftp://x", "https://x/?q=1", "https://x#f", "https://", "x"}},
	baseURLPattern:          {[]string{"https://llm.example.com/v1", "http://127.0.0.1:11434/v1?tenant=a", ""}, []string{"ftp://x", "https://x#f", "https://", "x"}},
	keySHA256Pattern:        {[]string{strings.Repeat("0a", 32), strings.Repeat("F", 64)}, []string{"abc", strings.Repeat("g", 64), strings.Repeat("a", 65)}},
	anthropicVersionPattern: {[]string{"2023-06-01", "2026-10-21"}, []string{"2023-06", "v1", "2023-6-1"}},
	cutoffPattern:           {[]string{"2024-06", "2024-02-29", "2023-12-31", "2024-04-30"}, []string{"2024", "2024-13", "2024-04-31", "2024-02-30", "June 2024"}},
}

// sample returns values the prop allows, and values of kinds it refuses.
func sample(p prop) (good, bad []any) {
	switch p.kind {
	case kindString:
		switch {
		case len(p.enum) > 0:
			for _, e := range p.enum {
				good = append(good, e)
			}
			bad = append(bad, "no-such-value")
		case p.pattern != "":
			s, ok := patternSamples[p.pattern]
			if !ok {
				panic("no samples for pattern " + p.pattern)
			}
			for _, g := range s.good {
				good = append(good, g)
			}
			for _, b := range s.bad {
				bad = append(bad, b)
			}
		default:
			good = append(good, "x", raw("4"), raw("true"))
		}
		bad = append(bad, []any{"x"}, map[string]any{"a": "x"})
	case kindInteger:
		max := uint64(1)<<min(p.bits, 63) - 1
		if p.bits == 64 {
			max = 1<<64 - 1
		}
		good = append(good, raw(strconv.FormatUint(p.min, 10)), raw(strconv.FormatUint(max, 10)), raw("1_0"))
		bad = append(bad, "x", "5", raw("-1"), raw("1.5"), []any{raw("1")})
		if p.min > 0 {
			bad = append(bad, raw(strconv.FormatUint(p.min-1, 10)))
		}
		if p.bits < 64 {
			bad = append(bad, raw(strconv.FormatUint(max+1, 10)))
		}
	case kindNumber:
		good = append(good, raw("0"), raw("1.5"), raw("100"))
		bad = append(bad, "x", "1.5", raw("-1"), []any{raw("1")})
	case kindBool:
		good = append(good, true, false)
		bad = append(bad, "true", raw("yes"), raw("1"))
	case kindStrings:
		if len(p.enum) > 0 {
			good = append(good, []any{p.enum[0]}, anyList(p.enum))
			bad = append(bad, []any{"no-such-value"})
		} else {
			good = append(good, []any{"a", "b"}, []any{})
		}
		if p.unique {
			bad = append(bad, []any{p.enum[0], p.enum[0]})
		}
		bad = append(bad, "x", []any{[]any{"x"}}, map[string]any{"a": "x"})
	case kindStringMap:
		good = append(good, map[string]any{"X-A": "x"}, map[string]any{})
		bad = append(bad, []any{"x"}, "x", map[string]any{"X-A": []any{"x"}})
	case kindObject:
		good = append(good, minimal(p.obj))
		bad = append(bad, "x", []any{})
	case kindObjects:
		good = append(good, []any{minimal(p.obj)})
		bad = append(bad, "x", map[string]any{})
	case kindFreeMap:
		good = append(good, map[string]any{"a": []any{raw("1"), map[string]any{"b": nil}}})
		bad = append(bad, []any{"x"}, "x")
	case kindFreeList:
		good = append(good, []any{raw("1"), map[string]any{"b": "c"}})
		bad = append(bad, map[string]any{"a": "x"}, "x")
	case kindEffort:
		for _, e := range p.enum {
			good = append(good, e)
		}
		good = append(good, minimal(p.obj))
		bad = append(bad, "extreme", []any{"low"})
	}
	return good, bad
}

func anyList(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// minimal returns the smallest valid mapping of a shape: its required
// fields, and the first of its one-of fields that is a string.
func minimal(s *shape) map[string]any {
	m := map[string]any{}
	oneOf := false
	for i, name := range s.names {
		if s.required&(1<<i) != 0 || !oneOf && s.oneOf&(1<<i) != 0 && s.props[i].kind == kindString {
			good, _ := sample(s.props[i])
			m[name] = good[0]
			oneOf = oneOf || s.oneOf&(1<<i) != 0
		}
	}
	return m
}

// kindShapes are the resources, with the top-level key each is listed
// under.
var kindShapes = []struct {
	key string
	s   *shape
}{
	{registry.NSProviders, &providerSchema.shape},
	{registry.NSModels, &modelSchema.shape},
	{registry.NSModelPools, &poolSchema.shape},
	{registry.NSAgents, &agentSchema.shape},
	{registry.NSClients, &clientSchema.shape},
}

// problems loads one resource (under key) and returns the diagnostics
// that are not about references to other resources: the ones about the
// resource itself.
func problems(t *testing.T, key string, res map[string]any, env map[string]string) []string {
	t.Helper()
	doc := key + ":\n  - " + flow(res) + "\n"
	c, err := Load(mapDir(map[string]string{"a.yaml": doc}), Options{LookupEnv: envOf(env)})
	if err == nil {
		_, err = c.Build(nil, nil)
	}
	var out []string
	var e *Error
	if errors.As(err, &e) {
		for _, d := range e.Diagnostics {
			// A pool of failover_only members only breaks a rule between
			// the members, which the schema leaves to the loader.
			if d.DependsOn == nil && d.Code != registry.CodePoolNoMembers {
				out = append(out, d.String())
			}
		}
	} else if err != nil {
		t.Fatal(err)
	}
	return out
}

// set returns a deep copy of m with the field at path set to v (or
// removed, for remove). Missing objects on the way are made minimal; a
// list of objects on the way gets one.
func set(m map[string]any, s *shape, path []string, v any, remove bool) map[string]any {
	out := map[string]any{}
	for k, x := range m {
		out[k] = x
	}
	i := slices.Index(s.names, path[0])
	if len(path) == 1 {
		if remove {
			delete(out, path[0])
		} else {
			out[path[0]] = v
		}
		return out
	}
	p := s.props[i]
	switch p.kind {
	case kindObject:
		inner, _ := out[path[0]].(map[string]any)
		if inner == nil {
			inner = minimal(p.obj)
		}
		out[path[0]] = set(inner, p.obj, path[1:], v, remove)
	case kindObjects:
		out[path[0]] = []any{set(minimal(p.obj), p.obj, path[1:], v, remove)}
	case kindEffort:
		out[path[0]] = set(minimal(p.obj), p.obj, path[1:], v, remove)
	}
	return out
}

// walk calls fn for every field reachable from s, with its path.
func walk(s *shape, path []string, fn func(path []string, p prop, parent *shape, i int)) {
	for i, name := range s.names {
		p := s.props[i]
		fp := append(slices.Clone(path), name)
		fn(fp, p, s, i)
		if p.obj != nil {
			walk(p.obj, fp, fn)
		}
	}
}

func TestSchemaAgreesWithLoader(t *testing.T) {
	fields := 0
	for _, k := range kindShapes {
		base := minimal(k.s)
		if ps := problems(t, k.key, base, nil); len(ps) > 0 {
			t.Fatalf("minimal %s %s: %v", k.key, flow(base), ps)
		}
		walk(k.s, nil, func(path []string, p prop, parent *shape, i int) {
			fields++
			name := k.key + "." + strings.Join(path, ".")
			if p.desc == "" {
				t.Errorf("%s: no description", name)
			}
			good, bad := sample(p)
			base := base
			if parent == k.s && parent.exclusive && parent.oneOf&(1<<i) != 0 {
				// Exactly one of its group: the others go.
				base = maps.Clone(base)
				for j, other := range parent.names {
					if j != i && parent.oneOf&(1<<j) != 0 {
						delete(base, other)
					}
				}
			}
			for _, v := range good {
				if ps := problems(t, k.key, set(base, k.s, path, v, false), nil); len(ps) > 0 {
					t.Errorf("%s: the schema allows %s, the loader says %v", name, flow(v), ps)
				}
			}
			for _, v := range bad {
				if ps := problems(t, k.key, set(base, k.s, path, v, false), nil); len(ps) == 0 {
					t.Errorf("%s: the schema refuses %s, the loader takes it", name, flow(v))
				}
			}
			// A ${…} reference to a good value is good, where the value is
			// a scalar.
			if scalar := p.kind <= kindBool || p.kind == kindEffort; scalar {
				text := strings.Trim(flow(good[0]), `"`)
				if _, isMap := good[0].(map[string]any); !isMap {
					env := map[string]string{"V": text}
					if ps := problems(t, k.key, set(base, k.s, path, "${V}", false), env); len(ps) > 0 {
						t.Errorf("%s: ${V} with V=%q: the loader says %v", name, text, ps)
					}
				}
			}
			required := parent.required&(1<<i) != 0
			if ps := problems(t, k.key, set(base, k.s, path, nil, true), nil); required != (len(ps) > 0) && parent.oneOf&(1<<i) == 0 {
				t.Errorf("%s: required is %v, but without it the loader says %v", name, required, ps)
			}
			if ps := problems(t, k.key, set(base, k.s, path, nil, false), nil); !required && parent.oneOf&(1<<i) == 0 && len(ps) > 0 {
				t.Errorf("%s: null is as good as absent, but the loader says %v", name, ps)
			}
		})
		// Without any of the one-of fields, the resource is refused.
		if k.s.oneOf != 0 {
			res := base
			for i, name := range k.s.names {
				if k.s.oneOf&(1<<i) != 0 {
					res = set(res, k.s, []string{name}, nil, true)
				}
			}
			if ps := problems(t, k.key, res, nil); len(ps) == 0 {
				t.Errorf("%s %s: without any of its one-of fields, the loader takes it", k.key, flow(res))
			}
		}
	}
	if fields < 60 {
		t.Fatalf("%d fields checked, want all of them", fields)
	}
}

// TestSchemaDefaults checks that each default the schema states is the
// value the loader gives a field that is absent.
func TestSchemaDefaults(t *testing.T) {
	checked := 0
	for _, k := range kindShapes {
		walk(k.s, nil, func(path []string, p prop, _ *shape, _ int) {
			if p.def == nil {
				return
			}
			checked++
			name := k.key + "." + strings.Join(path, ".")
			// The resource with the field's parents present, the field not.
			res := minimal(k.s)
			if len(path) > 1 {
				res = set(res, k.s, path, nil, true)
			}
			c, err := Load(mapDir(map[string]string{"a.yaml": k.key + ":\n  - " + flow(res) + "\n"}), Options{})
			if err != nil && !strings.Contains(err.Error(), "missing") {
				t.Fatalf("%s: %v", name, err)
			}
			if c == nil {
				return // the minimal resource references nothing that exists: checked below
			}
			var spec any
			switch k.key {
			case registry.NSProviders:
				spec = c.Providers()[0]
			case registry.NSModels:
				spec = c.Models()[0]
			case registry.NSModelPools:
				spec = c.Pools()[0]
			default:
				spec = c.Agents()[0]
			}
			got, ok := jsonAt(t, spec, path)
			if !ok && slices.Equal(path, []string{"members", "weight"}) {
				got, ok = float64(c.Pools()[0].Members[0].EffectiveWeight()), true // applied where it is used
			}
			want := jsonValue(t, p.def)
			if !ok || !reflect.DeepEqual(got, want) {
				t.Errorf("%s: the schema's default is %v, the loader gives %v (present: %v)", name, want, got, ok)
			}
		})
	}
	if checked < 10 {
		t.Fatalf("%d defaults checked", checked)
	}
}

// jsonAt returns the value at path in the JSON form of v, through the
// first element of lists.
func jsonAt(t *testing.T, v any, path []string) (any, bool) {
	cur := jsonValue(t, v)
	for _, p := range path {
		if l, ok := cur.([]any); ok && len(l) > 0 {
			cur = l[0]
		}
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func isObject(typ any) bool {
	if l, ok := typ.([]any); ok {
		return slices.Contains(l, any("object"))
	}
	return typ == "object"
}

func jsonValue(t *testing.T, v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSchemaDocument checks the generated document: strict objects
// everywhere, every field of the tables there with its description, and
// the copy under examples/ up to date.
func TestSchemaDocument(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(Schema(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" || doc["additionalProperties"] != false {
		t.Fatalf("$schema %v, additionalProperties %v", doc["$schema"], doc["additionalProperties"])
	}
	var objects int
	var check func(where string, v any)
	check = func(where string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if props, ok := v["properties"].(map[string]any); ok && isObject(v["type"]) {
				objects++
				if v["additionalProperties"] != false && where != "" {
					t.Errorf("%s: not strict", where)
				}
				for name, p := range props {
					if pm, _ := p.(map[string]any); pm["description"] == nil && len(pm) > 1 {
						t.Errorf("%s.%s: no description", where, name)
					}
				}
			}
			for k, x := range v {
				check(where+"/"+k, x)
			}
		case []any:
			for i, x := range v {
				check(fmt.Sprintf("%s/%d", where, i), x)
			}
		}
	}
	check("", doc)
	defs := doc["$defs"].(map[string]any)
	for name, s := range map[string]*shape{"provider": &providerSchema.shape, "model": &modelSchema.shape, "model_pool": &poolSchema.shape, "agent": &agentSchema.shape, "client": &clientSchema.shape} {
		props := defs[name].(map[string]any)["properties"].(map[string]any)
		if got := slices.Sorted(mapKeys(props)); !slices.Equal(got, s.names) {
			t.Errorf("%s: properties %v, the table has %v", name, got, s.names)
		}
	}
	if objects < 15 {
		t.Errorf("%d objects in the schema", objects)
	}
	shipped, err := os.ReadFile("../examples/schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if string(shipped) != string(Schema()) {
		t.Error("examples/schema.json is stale: run `go run ./cmd/awakend schema > examples/schema.json`")
	}
}
