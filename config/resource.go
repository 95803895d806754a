package config

import (
	"fmt"
	"iter"
	"strconv"
	"strings"

	"github.com/awakend/awakend/registry"
)

// kind is one of the resource kinds.
type kind uint8

const (
	kindProvider kind = iota
	kindModel
	kindPool
	kindAgent
	kindClient
)

var kinds = [...]struct{ list, name string }{
	kindProvider: {registry.NSProviders, "provider"},
	kindModel:    {registry.NSModels, "model"},
	kindPool:     {registry.NSModelPools, "model pool"},
	kindAgent:    {registry.NSAgents, "agent"},
	kindClient:   {registry.NSClients, "client"},
}

var topLevelKeys = []string{registry.NSProviders, registry.NSModels, registry.NSModelPools, registry.NSAgents, registry.NSClients}

// resource is one decoded resource and where it was written.
type resource struct {
	kind       kind
	spec       int32        // index in the Config slice of its kind
	index      int32        // index in its list in the file
	file       int32        // index in Config.Files
	line, col  int32        // where it is written: its mapping, or an alias of one
	start, end int32        // its span in its file's fields (its unit's)
	key        registry.Ref // its id as resolved
	ref        registry.Ref // its id as written, for diagnostics
	subst      []subst      // interpolated values, to keep them out of messages
	taint      []string     // field paths that have load diagnostics
	skip       bool         // not given to the registry: no id, a duplicate, or cut short
	dup        bool         // skipped as a duplicate of an earlier resource
}

// fieldPos is where a field (or list element) of a resource is written.
// Fields nest through parent, an index in its file's fields (-1: the
// resource).
// It holds no pointers, so that the garbage collector never scans the
// (large) table of them.
type fieldPos struct {
	parent    int32
	line, col int32
	key       fieldKey
}

// fieldKey is a field name (an index in fieldNames) or, with indexKey set,
// a list index.
type fieldKey uint32

const indexKey fieldKey = 1 << 31

// fieldNames interns the field names of every schema (see newSchema); it
// is filled while the package's schemas are initialized and only read
// afterwards.
var (
	fieldNames   []string
	fieldNameIDs = map[string]fieldKey{}
)

func internName(name string) fieldKey {
	k, ok := fieldNameIDs[name]
	if !ok {
		k = fieldKey(len(fieldNames))
		fieldNames = append(fieldNames, name)
		fieldNameIDs[name] = k
	}
	return k
}

// keyOf returns the key of one component of a field path.
func keyOf(s string) (fieldKey, bool) {
	if isIndex(s) {
		i, err := strconv.Atoi(s)
		return indexKey | fieldKey(i), err == nil && i < int(indexKey)
	}
	k, ok := fieldNameIDs[s]
	return k, ok
}

func (k fieldKey) String() string {
	if k&indexKey != 0 {
		return strconv.Itoa(int(k &^ indexKey))
	}
	return fieldNames[k]
}

// chunks is an append-only list stored in fixed-size chunks, so that
// growing a large one never copies it.
type chunks[T any] struct {
	list [][]T
	n    int32
}

const chunkSize = 1024

// add appends a zero T and returns its index and address. The address is
// valid until the next add.
func (c *chunks[T]) add() (int32, *T) {
	if c.n%chunkSize == 0 {
		size := chunkSize
		if c.n == 0 {
			size = 16 // the first chunk grows by appending, so small lists stay small
		}
		c.list = append(c.list, make([]T, 0, size))
	}
	last := &c.list[len(c.list)-1]
	*last = append(*last, *new(T))
	c.n++
	return c.n - 1, &(*last)[len(*last)-1]
}

// appendAll appends items, copying them in blocks, and returns the index
// of the first.
func (c *chunks[T]) appendAll(items []T) int32 {
	start := c.n
	for len(items) > 0 {
		if c.n%chunkSize == 0 {
			size := chunkSize
			if c.n == 0 {
				size = min(len(items), chunkSize)
			}
			c.list = append(c.list, make([]T, 0, size))
		}
		last := &c.list[len(c.list)-1] // holds c.n%chunkSize elements
		n := min(chunkSize-len(*last), len(items))
		*last = append(*last, items[:n]...)
		c.n += int32(n)
		items = items[n:]
	}
	return start
}

func (c *chunks[T]) at(i int32) *T { return &c.list[i/chunkSize][i%chunkSize] }

func (c *chunks[T]) len() int32 { return c.n }

// all yields every index and element address in order.
func (c *chunks[T]) all() iter.Seq2[int32, *T] {
	return func(yield func(int32, *T) bool) {
		for ci, l := range c.list {
			for j := range l {
				if !yield(int32(ci*chunkSize+j), &l[j]) {
					return
				}
			}
		}
	}
}

// flatten copies the list into one slice of exactly its length.
func (c *chunks[T]) flatten() []T {
	out := make([]T, 0, c.n)
	for _, l := range c.list {
		out = append(out, l...)
	}
	return out
}

// subst records an interpolated scalar: value was resolved from source.
type subst struct{ value, source string }

func (r *resource) label() string {
	if r.ref.ID == "" {
		return kinds[r.kind].list + "[" + strconv.Itoa(int(r.index)) + "]"
	}
	return kinds[r.kind].name + " " + strconv.Quote(r.ref.ID)
}

// tainted reports whether a load diagnostic covers field (or the whole
// resource), so that a registry diagnostic about it would repeat it.
func (r *resource) tainted(field string) bool {
	for _, t := range r.taint {
		if t == "" || t == field || strings.HasPrefix(field, t+".") {
			return true
		}
	}
	return false
}

// redact replaces, in a registry message about r, the quoted values that
// came from interpolation by their source text.
func (r *resource) redact(msg string) string {
	for _, s := range r.subst {
		if s.value == "" {
			continue
		}
		msg = strings.ReplaceAll(msg, "'"+s.value+"'", "'"+s.source+"'")
		msg = strings.ReplaceAll(msg, strconv.Quote(s.value), strconv.Quote(s.source))
	}
	return msg
}

// source returns id as written, if it is an interpolated value of r.
func (r *resource) source(id string) string {
	for _, s := range r.subst {
		if s.value == id {
			return s.source
		}
	}
	return id
}

// link checks ids across the directory: unique per kind, one namespace for
// models and pools, and no agent named like a model or pool. Each
// duplicate is reported at the later place and names the earlier one.
func (l *loader) link() {
	cfg := l.cfg
	for k := range cfg.index {
		cfg.index[k] = make(map[string]int32)
	}
	cfg.index[kindAgent] = make(map[string]int32, cfg.resources.len())
	for i, r := range cfg.resources.all() {
		if r.skip {
			continue
		}
		if j, dup := cfg.index[r.kind][r.key.ID]; dup {
			l.clash(r, cfg.resources.at(j), CodeDuplicateID, r.label()+" is already defined at %s")
			r.skip, r.dup = true, true
			continue
		}
		if other, shared := sharedKind(r.kind); shared {
			if j, dup := cfg.index[other][r.key.ID]; dup {
				first := cfg.resources.at(j)
				l.clash(r, first, CodeDuplicateID, r.label()+" has the same id as "+first.label()+
					" at %s (models and model pools share one namespace)")
				r.skip = true
				continue
			}
		}
		cfg.index[r.kind][r.key.ID] = i
	}
	for _, r := range cfg.resources.all() {
		if r.kind != kindAgent || r.skip {
			continue
		}
		for _, kd := range [...]kind{kindModel, kindPool} {
			if j, ok := cfg.index[kd][r.key.ID]; ok {
				other := cfg.resources.at(j)
				l.clash(r, other, CodeAmbiguousID, r.label()+" has the same id as "+other.label()+
					" at %s (the gateway addresses agents, models and model pools by one name)")
			}
		}
	}
}

func sharedKind(k kind) (kind, bool) {
	switch k {
	case kindModel:
		return kindPool, true
	case kindPool:
		return kindModel, true
	}
	return k, false
}

// lookup returns the first resource with ref's namespace and id.
func (c *Config) lookup(ref registry.Ref) (*resource, bool) {
	for k := range kinds {
		if kinds[k].list == ref.Namespace {
			if i, ok := c.index[k][ref.ID]; ok {
				return c.resources.at(i), true
			}
		}
	}
	return nil, false
}

// clash reports r, at its id, as clashing with first; format has one %s
// for first's place.
func (l *loader) clash(r, first *resource, code, format string) {
	at, there := l.cfg.idPosition(r), l.cfg.idPosition(first)
	if at == there { // the same node twice, through an alias: place r where it is written
		at = Position{File: l.cfg.Files[r.file], Line: int(r.line), Column: int(r.col)}
	}
	r.taint = append(r.taint, "id")
	dep := first.ref
	l.diags = append(l.diags, Diagnostic{File: at.File, Line: at.Line, Column: at.Column,
		Code: code, Severity: string(registry.SeverityError), Resource: &r.ref, DependsOn: &dep,
		Message: fmt.Sprintf(format, there)})
}
