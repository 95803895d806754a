package config

import (
	"maps"
	"math/bits"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/awakend/awakend/internal/suggest"
)

// A schema-driven decoder of YAML mappings: each resource kind (and each
// part of one) is a schema, a table from field name to a function that
// decodes that field; see schema.go for the tables.

// field is one entry of a schema: what the value of a field of a T is, for
// the JSON Schema, and the function that decodes it into the T.
type field[T any] struct {
	prop
	decode func(d *decoder, n *yaml.Node, t *T)
}

// schema describes a YAML mapping that decodes into a T: its fields, which
// of them are required, and which take null as a value rather than as
// "absent". Schemas are built once and never modified.
type schema[T any] struct {
	shape             // names, what they take, required and nullable
	keys   []fieldKey // of names, interned
	index  map[string]int
	byLen  [][]uint8 // indexes of names by their length, for find
	decode []func(d *decoder, n *yaml.Node, t *T)
}

// newSchema builds a schema from its fields; required names the fields
// that must be present.
func newSchema[T any](fields map[string]field[T], required ...string) *schema[T] {
	s := &schema[T]{index: make(map[string]int, len(fields))}
	if len(fields) > 64 {
		panic("config: schema with more than 64 fields")
	}
	for _, name := range slices.Sorted(maps.Keys(fields)) {
		s.index[name] = len(s.names)
		s.names = append(s.names, name)
		s.keys = append(s.keys, internName(name))
		s.props = append(s.props, fields[name].prop)
		s.decode = append(s.decode, fields[name].decode)
	}
	s.required = s.bits(required...)
	for i, name := range s.names {
		for len(s.byLen) <= len(name) {
			s.byLen = append(s.byLen, nil)
		}
		s.byLen[len(name)] = append(s.byLen[len(name)], uint8(i))
	}
	return s
}

// find returns the index of field name. Comparing the few names of the
// same length is cheaper than hashing, on the loader's hottest path.
func (s *schema[T]) find(name string) (int, bool) {
	if len(name) < len(s.byLen) {
		for _, i := range s.byLen[len(name)] {
			if s.names[i] == name {
				return int(i), true
			}
		}
	}
	return 0, false
}

// withOneOf marks fields of which at least one must be present (and not
// null); the decoder of the schema checks that itself.
func (s *schema[T]) withOneOf(names ...string) *schema[T] {
	s.oneOf = s.bits(names...)
	return s
}

// withExactlyOne marks fields of which exactly one must be present; the
// registry checks that (a client's key or key_sha256).
func (s *schema[T]) withExactlyOne(names ...string) *schema[T] {
	s.oneOf, s.exclusive = s.bits(names...), true
	return s
}

// withNullable marks fields whose decoder is called for an explicit null.
func (s *schema[T]) withNullable(names ...string) *schema[T] {
	s.nullable = s.bits(names...)
	return s
}

func (s *schema[T]) bits(names ...string) uint64 {
	var b uint64
	for _, name := range names {
		i, ok := s.index[name]
		if !ok {
			panic("config: schema has no field " + name)
		}
		b |= 1 << i
	}
	return b
}

// has reports whether field name is in a set returned by decodeMapping.
func (s *schema[T]) has(present uint64, name string) bool {
	return present&s.bits(name) != 0
}

// decodeMapping decodes mapping n into t field by field and returns the set
// of fields present. Unknown fields (with a did-you-mean), duplicate keys
// and missing required fields are reported; null counts as absent unless
// the field is nullable. Merge keys ("<<: *defaults") are honoured. ok is
// false when n is not a mapping.
func decodeMapping[T any](d *decoder, n *yaml.Node, s *schema[T], t *T) (present uint64, ok bool) {
	n = d.deref(n)
	if d.stopped {
		return 0, false
	}
	if n.Kind != yaml.MappingNode {
		d.typeErr(n, "a mapping", false)
		return 0, false
	}
	present = decodeFields(d, n, s, t, 0)
	if d.stopped {
		return present, true
	}
	if missing := s.required &^ present; missing != 0 {
		for missing != 0 {
			i := bits.TrailingZeros64(missing)
			missing &^= 1 << i
			d.missing(n, s.names[i], "")
		}
	}
	return present, true
}

// decodeFields decodes the fields of mapping n, except those in skip, and
// returns the set decoded. A merge key applies its sources' fields that are
// not set yet; fields after it override them.
func decodeFields[T any](d *decoder, n *yaml.Node, s *schema[T], t *T, skip uint64) (present uint64) {
	var seen uint64
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := d.deref(n.Content[i])
		if d.stopped {
			return present
		}
		if k.Tag == tagMerge {
			for _, src := range d.mergeSources(n.Content[i+1]) {
				d.follow(src, func(m *yaml.Node) { present |= decodeFields(d, m, s, t, skip|seen|present) })
			}
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, CodeType, "keys in %s must be strings, got %s", d.where(), kindName(k))
			continue
		}
		idx, known := s.find(k.Value)
		if !known {
			d.diag(k, CodeUnknownField, "unknown field "+strconv.Quote(truncate(k.Value))+" in "+d.where()+hint(k.Value, s.names))
			continue
		}
		bit := uint64(1) << idx
		if seen&bit != 0 {
			d.errorf(n.Content[i], CodeDuplicateKey, "duplicate key %q in %s%s", k.Value, d.where(), firstAt(n, i))
			continue
		}
		seen |= bit
		if skip&bit != 0 {
			continue
		}
		v := n.Content[i+1]
		dv := d.deref(v)
		if dv.Kind == yaml.ScalarNode && dv.Tag == tagNull && s.nullable&bit == 0 {
			if s.required&bit != 0 {
				present |= bit // reported here, not as missing
				d.taint(joinPath(d.pathKey(d.cur), k.Value))
				d.diag(v, CodeMissingField, "field "+strconv.Quote(k.Value)+" in "+d.where()+" must not be null")
			}
			continue
		}
		parent := d.enter(s.keys[idx], v)
		s.decode[idx](d, dv, t)
		d.leave(parent)
		present |= bit
	}
	return present
}

// hint returns ` (did you mean "x"?)` for the candidate s most likely
// stands for: the nearest by edit distance (suggest.Hint), or else the only
// one sharing the longest prefix of at least 3 bytes with s ("prot" for
// "provider_id"), or "".
func hint(s string, candidates []string) string {
	if len(s) > 64 { // no field name is that long; spare the edit distance
		return ""
	}
	if h := suggest.Hint(s, candidates); h != "" {
		return h
	}
	best, bestLen, tie := "", 2, false
	for _, c := range candidates {
		n := 0
		for n < len(s) && n < len(c) && s[n] == c[n] {
			n++
		}
		switch {
		case n > bestLen:
			best, bestLen, tie = c, n, false
		case n == bestLen && best != "":
			tie = true
		}
	}
	if best == "" || tie {
		return ""
	}
	return ` (did you mean "` + best + `"?)`
}

// missing reports that required field name is absent from mapping n; why
// may explain the requirement.
func (d *decoder) missing(n *yaml.Node, name, why string) {
	d.taint(joinPath(d.pathKey(d.cur), name))
	d.diag(n, CodeMissingField, "missing field "+strconv.Quote(name)+" in "+d.where()+why)
}

func joinPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "." + name
}
