package config

import (
	"encoding/json"
	"slices"
	"strconv"

	"github.com/awakend/awakend/registry"
)

// The JSON Schema of a config file, generated from the loader's own field
// tables (schema.go): each field's entry holds, beside the function that
// decodes it, a prop that says what JSON Schema describes the value.

// valueKind is the kind of value a field takes.
type valueKind uint8

const (
	kindString    valueKind = iota // any scalar, taken as text
	kindInteger                    // a non-negative integer
	kindNumber                     // a number, at least min
	kindBool                       // true or false
	kindStrings                    // a list of strings
	kindStringMap                  // a mapping of strings to strings
	kindObject                     // a mapping with its own fields (obj)
	kindObjects                    // a list of such mappings (obj)
	kindFreeMap                    // a mapping of anything
	kindFreeList                   // a list of anything
	kindEffort                     // a reasoning effort: a level or {budget: N}
)

// prop describes the value of one field for the JSON Schema.
type prop struct {
	kind    valueKind
	desc    string
	def     any      // the default, nil for none
	enum    []string // allowed strings (kindString, kindEffort), or list items (kindStrings)
	pattern string   // a regular expression strings must match
	bits    int      // kindInteger: the largest value is 2^bits-1
	min     uint64   // kindInteger, kindNumber: the smallest value
	unique  bool     // kindStrings: no item twice
	obj     *shape   // kindObject, kindObjects, kindEffort (its mapping form)
}

// shape is the untyped part of a schema: its fields and what they take.
type shape struct {
	names    []string
	props    []prop
	required uint64
	nullable uint64
	oneOf    uint64 // at least one of these must be present
	// exclusive: exactly one of the oneOf fields, not several.
	exclusive bool
}

// Constructors of props, for the tables.

func str(desc string) prop { return prop{kind: kindString, desc: desc} }

func enumOf(desc string, values ...string) prop {
	return prop{kind: kindString, desc: desc, enum: values}
}

func integer(desc string, bits int) prop { return prop{kind: kindInteger, desc: desc, bits: bits} }

func number(desc string) prop { return prop{kind: kindNumber, desc: desc} }

func boolean(desc string) prop { return prop{kind: kindBool, desc: desc} }

func strList(desc string) prop { return prop{kind: kindStrings, desc: desc} }

func strMap(desc string) prop { return prop{kind: kindStringMap, desc: desc} }

func object[T any](desc string, s *schema[T]) prop {
	return prop{kind: kindObject, desc: desc, obj: &s.shape}
}

func objects[T any](desc string, s *schema[T]) prop {
	return prop{kind: kindObjects, desc: desc, obj: &s.shape}
}

func freeMap(desc string) prop  { return prop{kind: kindFreeMap, desc: desc} }
func freeList(desc string) prop { return prop{kind: kindFreeList, desc: desc} }

func (p prop) withDefault(v any) prop     { p.def = v; return p }
func (p prop) withPattern(re string) prop { p.pattern = re; return p }
func (p prop) withMin(min uint64) prop    { p.min = min; return p }
func (p prop) withItems(v ...string) prop { p.enum = v; return p }
func (p prop) withUniqueItems() prop      { p.unique = true; return p }

// interpolationPattern matches a scalar with a ${…} reference, which the
// loader resolves before it looks at the type: "${TIMEOUT:-30}" is a fine
// timeout_secs.
const interpolationPattern = `\$\{[^}]*\}`

// Schema returns the JSON Schema (draft 2020-12) of a config file: one YAML
// document (or JSON file) with any of providers, models, model_pools and
// agents. It is strict like the loader: unknown fields are errors
// everywhere but in free-form values. Every scalar field also takes a
// string with a ${…} reference. Rules across resources (references, unique
// ids) and between fields are the loader's alone.
func Schema() []byte {
	defs := map[string]any{}
	for _, r := range [...]struct {
		name, desc string
		s          *shape
	}{
		{"provider", "An upstream LLM service: its adapter (wire protocol), endpoint and key.", &providerSchema.shape},
		{"model", "A model of a provider, with its published limits and prices.", &modelSchema.shape},
		{"model_pool", "A set of models that behaves like one model: a home member per session, failover between them.", &poolSchema.shape},
		{"agent", "An agent: a model or pool with a system prompt and awaken's agent settings, or a remote agent (endpoint).", &agentSchema.shape},
		{"client", "A client of the gateway: its key and the models, pools and agents it may call.", &clientSchema.shape},
	} {
		o := objectSchema(r.s)
		o["description"] = r.desc
		defs[r.name] = o
	}
	list := func(def, desc string) map[string]any {
		return map[string]any{
			"description": desc,
			"type":        []string{"array", "null"},
			"items":       map[string]any{"$ref": "#/$defs/" + def},
		}
	}
	doc := map[string]any{
		"$schema":     "https://json-schema.org/draft/2020-12/schema",
		"title":       "awakend config file",
		"description": "One file (or YAML document) of an awakend config directory. Ids are unique per kind across the whole directory; references between resources are checked by awakend, not by this schema.",
		"type":        []string{"object", "null"},
		"properties": map[string]any{
			registry.NSProviders:  list("provider", "Providers: upstream LLM services."),
			registry.NSModels:     list("model", "Models, each bound to a provider."),
			registry.NSModelPools: list("model_pool", "Model pools: sets of models that behave like one."),
			registry.NSAgents:     list("agent", "Agents."),
			registry.NSClients:    list("client", "Clients: the keys that may call the gateway."),
		},
		"additionalProperties": false,
		"$defs":                defs,
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic("config: schema: " + err.Error()) // not reached: plain maps and slices
	}
	return append(b, '\n')
}

// objectSchema is the JSON Schema of a mapping with the fields of s.
func objectSchema(s *shape) map[string]any {
	props := make(map[string]any, len(s.names))
	var required []string
	for i, name := range s.names {
		v := valueSchema(s.props[i])
		// null is as good as absent, but not for a required field; on
		// nullable ones it has a meaning of its own.
		if s.required&(1<<i) == 0 {
			v = orNull(v)
		} else {
			required = append(required, name)
		}
		props[name] = v
	}
	o := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		o["required"] = required
	}
	var alts []any
	for i, name := range s.names {
		if s.oneOf&(1<<i) != 0 {
			alts = append(alts, map[string]any{
				"required":   []string{name},
				"properties": map[string]any{name: map[string]any{"not": map[string]any{"type": "null"}}},
			})
		}
	}
	switch {
	case len(alts) > 0 && s.exclusive:
		o["oneOf"] = alts
	case len(alts) > 0:
		o["anyOf"] = alts
	}
	return o
}

// valueSchema is the JSON Schema of a field's value.
func valueSchema(p prop) map[string]any {
	v := map[string]any{}
	switch p.kind {
	case kindString:
		v = scalarSchema(p)
	case kindInteger:
		v = map[string]any{"anyOf": []any{scalarSchema(p), separated(), interpolated()}}
	case kindNumber, kindBool:
		v = map[string]any{"anyOf": []any{scalarSchema(p), interpolated()}}
	case kindStrings:
		item := map[string]any{"type": anyScalar}
		if len(p.enum) > 0 {
			item = map[string]any{"anyOf": []any{map[string]any{"enum": p.enum}, interpolated()}}
		}
		v = map[string]any{"type": "array", "items": item}
		if p.unique {
			v["uniqueItems"] = true
		}
	case kindStringMap:
		v = map[string]any{"type": "object", "additionalProperties": map[string]any{"type": anyScalar}}
	case kindObject:
		v = objectSchema(p.obj)
	case kindObjects:
		v = map[string]any{"type": "array", "items": objectSchema(p.obj)}
	case kindFreeMap:
		v = map[string]any{"type": "object"}
	case kindFreeList:
		v = map[string]any{"type": "array"}
	case kindEffort:
		v = map[string]any{"anyOf": []any{
			map[string]any{"enum": p.enum},
			objectSchema(p.obj),
			interpolated(),
		}}
	}
	v["description"] = p.desc
	if p.def != nil {
		v["default"] = p.def
	}
	return v
}

// scalarSchema is the JSON Schema of a scalar field without interpolation
// (a string field takes it anyway).
func scalarSchema(p prop) map[string]any {
	switch p.kind {
	case kindInteger:
		v := map[string]any{"type": "integer", "minimum": p.min}
		if p.bits < 64 {
			v["maximum"] = uint64(1)<<p.bits - 1
		} else {
			v["maximum"] = json.Number(strconv.FormatUint(1<<64-1, 10))
		}
		return v
	case kindNumber:
		return map[string]any{"type": "number", "minimum": p.min}
	case kindBool:
		return map[string]any{"type": "boolean"}
	}
	s := map[string]any{"type": anyScalar}
	switch {
	case len(p.enum) > 0:
		s = map[string]any{"anyOf": []any{map[string]any{"enum": p.enum}, interpolated()}}
	case p.pattern != "":
		s = map[string]any{"type": "string", "anyOf": []any{map[string]any{"pattern": p.pattern}, interpolated()}}
	}
	return s
}

// anyScalar is the JSON type of a string field: any scalar is a string to
// the loader, as written (4 is "4").
var anyScalar = []string{"string", "number", "boolean"}

// separated is the schema of an integer written with "_" separators
// (128_000), which the loader reads as YAML 1.1 does, and YAML 1.2 (an
// editor) as a string.
func separated() map[string]any {
	return map[string]any{"type": "string", "pattern": `^[0-9][0-9_]*_[0-9_]*$`}
}

// orNull returns v that also takes null.
func orNull(v map[string]any) map[string]any {
	switch t := v["type"].(type) {
	case string:
		v["type"] = []string{t, "null"}
	case []string:
		v["type"] = append(slices.Clone(t), "null")
	default:
		if alts, ok := v["anyOf"].([]any); ok {
			v["anyOf"] = append(alts, map[string]any{"type": "null"})
		} else {
			v = map[string]any{"description": v["description"], "anyOf": []any{v, map[string]any{"type": "null"}}}
		}
	}
	return v
}

func interpolated() map[string]any {
	return map[string]any{"type": "string", "pattern": interpolationPattern}
}
