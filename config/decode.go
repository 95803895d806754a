package config

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/awakend/awakend/registry"
)

// Limits on what YAML aliases may do, so that a small file cannot make the
// loader walk (and, in free-form values, allocate) without bound.
const (
	// maxAliasExpansion is how many nodes a file's aliases may expand to,
	// in total, counting nested expansions every time they are visited.
	maxAliasExpansion = 1_000_000
	// maxNesting is how deep a free-form value (sections, options,
	// stop_conditions) may nest.
	maxNesting = 1000
	// maxFileDiagnostics is how many problems one file may have before
	// the rest of it is not checked, like a compiler's "too many errors".
	maxFileDiagnostics = 500
)

// YAML tags the decoder tells apart (yaml.v3 resolves every scalar to one).
const (
	tagNull  = "!!null"
	tagBool  = "!!bool"
	tagInt   = "!!int"
	tagFloat = "!!float"
	tagStr   = "!!str"
	tagMerge = "!!merge"
)

// decoder walks the yaml.Node trees of one file into resource specs,
// recording the position of every field and reporting every problem. It
// never stops at the first problem: a bad value is reported and decoding
// goes on with the next field.
type decoder struct {
	l    *loader
	file string
	ix   int32 // index of file in Config.Files

	res *resource // the resource being decoded, nil between resources
	cur int32     // its field being decoded: an index into Config.fields, -1 at its root

	aliasSizes map[*yaml.Node]int // own sizes of alias targets, see charge
	expanded   int                // nodes visited through aliases so far
	expanding  []*yaml.Node       // the aliases being expanded, outermost first, to catch cycles
	stopped    bool               // a limit was hit: the rest of the file is not decoded
	lastDoc    *yaml.Node         // the document being decoded, or the last one
	problems   int                // diagnostics reported for the file
}

// Reporting.

func (d *decoder) diag(n *yaml.Node, code, msg string) {
	if d.stopped {
		return
	}
	if d.problems++; d.problems > maxFileDiagnostics {
		d.stop(n, "more than "+strconv.Itoa(maxFileDiagnostics)+" problems in this file: the rest of it is not checked")
		return
	}
	d.report(n, code, msg)
}

func (d *decoder) report(n *yaml.Node, code, msg string) {
	dg := Diagnostic{File: d.file, Line: n.Line, Column: n.Column, Code: code,
		Severity: string(registry.SeverityError), Message: msg}
	if d.res != nil {
		ref := d.res.ref
		dg.Resource = &ref
	}
	d.l.diags = append(d.l.diags, dg)
}

// errorf reports a problem with the field being decoded (or, between
// resources, with the file). The field is marked so that Build does not
// report the registry's view of the same mistake.
func (d *decoder) errorf(n *yaml.Node, code, format string, args ...any) {
	d.taint(d.pathKey(d.cur))
	d.diag(n, code, fmt.Sprintf(format, args...))
}

func (d *decoder) taint(path string) {
	if d.res != nil {
		d.res.taint = append(d.res.taint, path)
	}
}

// typeErr reports a value of the wrong kind. Only scalars given where a
// scalar type (number, boolean) was wanted are shown, as written in the
// file: strings where a list or mapping belongs are not, as they may be
// secrets.
func (d *decoder) typeErr(n *yaml.Node, want string, show bool) {
	d.errorf(n, CodeType, "%s must be %s, got %s", d.where(), want, got(n, show, false))
}

// got describes a value for a type error: its kind, or with show the
// scalar as written (the source text of an interpolated one).
func got(n *yaml.Node, show, interpolated bool) string {
	if !show || n.Kind != yaml.ScalarNode || n.Tag == tagNull {
		return kindName(n)
	}
	v := truncate(n.Value)
	switch {
	case interpolated:
		return "the value of " + strconv.Quote(v)
	case n.Tag == tagStr:
		return "the string " + strconv.Quote(v)
	}
	return v
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	switch n.Tag {
	case tagNull:
		return "null"
	case tagStr:
		return "a string"
	case tagInt:
		return "an integer"
	case tagFloat:
		return "a number"
	case tagBool:
		return "a boolean"
	case "!!timestamp":
		return "a date"
	}
	return "a scalar tagged " + n.Tag
}

// truncate shortens s for a message, at a rune boundary.
func truncate(s string) string {
	if len(s) <= 40 {
		return s
	}
	cut := 37
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// where names the field being decoded: `members[1].weight of model pool
// "p"`, `provider "p"` at a resource's root.
func (d *decoder) where() string {
	if d.res == nil {
		return "this file"
	}
	label := d.res.label()
	if d.cur < 0 {
		return label
	}
	return d.pathText(d.cur) + " of " + label
}

// Field positions.

// enter records the position of a field (or list element) of the resource
// and makes it the current one; leave(enter(…)) restores the parent.
func (d *decoder) enter(key fieldKey, n *yaml.Node) int32 {
	parent := d.cur
	var f *fieldPos
	d.cur, f = d.l.cfg.fields.add()
	*f = fieldPos{parent: parent, key: key, line: int32(n.Line), col: int32(n.Column)}
	return parent
}

func (d *decoder) leave(parent int32) { d.cur = parent }

// pathKey is the registry's dotted form of field i: "members.1.model_id".
func (d *decoder) pathKey(i int32) string {
	if i < 0 {
		return ""
	}
	var parts []string
	for ; i >= 0; i = d.l.cfg.fields.at(i).parent {
		parts = append(parts, d.l.cfg.fields.at(i).key.String())
	}
	slices.Reverse(parts)
	return strings.Join(parts, ".")
}

// pathText is the readable form of field i: "members[1].model_id".
func (d *decoder) pathText(i int32) string {
	var parts []string
	for ; i >= 0; i = d.l.cfg.fields.at(i).parent {
		parts = append(parts, d.l.cfg.fields.at(i).key.String())
	}
	var b strings.Builder
	for j := len(parts) - 1; j >= 0; j-- {
		switch p := parts[j]; {
		case isIndex(p):
			b.WriteString("[" + p + "]")
		case j < len(parts)-1:
			b.WriteString("." + p)
		default:
			b.WriteString(p)
		}
	}
	return b.String()
}

func isIndex(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// Aliases.

// deref returns the node an alias stands for, charging its size to the
// file's alias budget. Every decoder entry point calls it, so aliases work
// anywhere a value does.
func (d *decoder) deref(n *yaml.Node) *yaml.Node {
	if n.Kind != yaml.AliasNode || n.Alias == nil {
		return n
	}
	return d.derefAlias(n)
}

func (d *decoder) derefAlias(n *yaml.Node) *yaml.Node {
	d.charge(n)
	return n.Alias
}

// charge adds the own size of alias n's target (its nodes, nested aliases
// counted as one, as they are charged when visited) to the file's budget,
// and stops the file when the budget is spent.
func (d *decoder) charge(n *yaml.Node) {
	if d.stopped {
		return
	}
	size, ok := d.aliasSizes[n.Alias]
	if !ok {
		size = ownSize(n.Alias)
		if d.aliasSizes == nil {
			d.aliasSizes = make(map[*yaml.Node]int)
		}
		d.aliasSizes[n.Alias] = size
	}
	d.expanded += size
	if d.expanded > maxAliasExpansion {
		at := n
		if len(d.expanding) > 0 {
			at = d.expanding[0] // the alias that set it off
		}
		d.stop(at, "YAML aliases in this file expand to more than "+strconv.Itoa(maxAliasExpansion)+" nodes")
	}
}

func ownSize(n *yaml.Node) int {
	size := 1
	if n.Kind != yaml.AliasNode {
		for _, c := range n.Content {
			size += ownSize(c)
		}
	}
	return size
}

// stop reports a file-wide limit and ends decoding of the file.
func (d *decoder) stop(n *yaml.Node, msg string) {
	if d.stopped {
		return
	}
	d.stopped = true
	d.l.failed = true
	d.l.gaps.addNode(d.lastDoc)
	d.taint("")
	d.report(n, CodeTooLarge, msg)
}

// Scalars.

// text returns the value of scalar n with its ${…} references resolved.
// interpolated says whether the value differs from the file's text. When a
// reference fails, the problems are reported and ok is false.
func (d *decoder) text(n *yaml.Node) (s string, interpolated, ok bool) {
	if strings.IndexByte(n.Value, '$') < 0 {
		return n.Value, false, true
	}
	s, errs := d.l.exp.expand(n.Value)
	if errs != nil {
		where := d.where()
		for _, e := range errs {
			d.errorf(n, CodeInterpolation, "%s in %s%s", e.What, where, e.Tail)
		}
		return "", true, false
	}
	if s == n.Value { // a "$" that is not a reference
		return s, false, true
	}
	if d.res != nil {
		d.res.subst = append(d.res.subst, subst{value: s, source: n.Value})
	}
	return s, true, true
}

// scalar returns the text of a non-null scalar (and the scalar, aliases
// followed), reporting anything else as a type error that wants `want`.
// Scalars with tags other than YAML's own are refused: the loader does not
// know what "!vault x" should mean.
func (d *decoder) scalar(n *yaml.Node, want string) (_ *yaml.Node, s string, interpolated, ok bool) {
	n = d.deref(n)
	if d.stopped {
		return n, "", false, false
	}
	if n.Kind != yaml.ScalarNode || n.Tag == tagNull {
		d.typeErr(n, want, false)
		return n, "", false, false
	}
	if !standardTag(n.Tag) {
		d.errorf(n, CodeType, "%s must be %s, got a value with the unsupported YAML tag %s", d.where(), want, truncate(n.Tag))
		return n, "", false, false
	}
	s, interpolated, ok = d.text(n)
	return n, s, interpolated, ok
}

func standardTag(tag string) bool {
	switch tag {
	case tagStr, tagInt, tagFloat, tagBool, tagMerge, "!!timestamp":
		return true
	}
	return false
}

// str decodes a string. Any non-null scalar is one, as written: YAML's
// 2024-06-01 or 4 are the strings "2024-06-01" and "4" here.
func (d *decoder) str(n *yaml.Node) string {
	_, s, _, _ := d.scalar(n, "a string")
	return s
}

// uint decodes an unsigned integer of the given bit size: a YAML integer,
// or an interpolated value in decimal.
func (d *decoder) uint(n *yaml.Node, bitSize int) (uint64, bool) {
	const want = "a non-negative integer"
	n, s, interpolated, ok := d.scalar(n, want)
	if !ok {
		return 0, false
	}
	v, err := parseUint(s, !interpolated, bitSize)
	switch {
	case !interpolated && n.Tag != tagInt, err != nil && !isRange(err, s):
		d.errorf(n, CodeType, "%s must be %s, got %s", d.where(), want, got(n, true, interpolated))
	case err != nil:
		d.errorf(n, CodeType, "%s must be at most %d, got %s", d.where(), uint64(1)<<bitSize-1, got(n, true, interpolated))
	default:
		return v, true
	}
	return 0, false
}

func isRange(err error, s string) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange && !strings.HasPrefix(s, "-")
}

func parseUint(s string, yamlSyntax bool, bitSize int) (uint64, error) {
	if !yamlSyntax {
		return strconv.ParseUint(s, 10, bitSize)
	}
	// yaml.v3's integer syntax: an optional sign, 0x/0o/0b prefixes, "_"
	// separators.
	s = strings.ReplaceAll(strings.TrimPrefix(s, "+"), "_", "")
	if strings.HasPrefix(s, "0o") {
		s = "0" + s[2:]
	}
	return strconv.ParseUint(s, 0, bitSize)
}

func (d *decoder) u64(n *yaml.Node) uint64 {
	v, _ := d.uint(n, 64)
	return v
}

func (d *decoder) optU64(n *yaml.Node) *uint64 {
	if v, ok := d.uint(n, 64); ok {
		return &v
	}
	return nil
}

func (d *decoder) optU32(n *yaml.Node) *uint32 {
	if v, ok := d.uint(n, 32); ok {
		v32 := uint32(v)
		return &v32
	}
	return nil
}

// optFloat decodes a number: a YAML integer or float (.inf and .nan
// included), or an interpolated decimal.
func (d *decoder) optFloat(n *yaml.Node) *float64 {
	const want = "a number"
	n, s, interpolated, ok := d.scalar(n, want)
	if !ok {
		return nil
	}
	v, err := parseFloat(s)
	if !interpolated && n.Tag != tagInt && n.Tag != tagFloat || err != nil {
		d.errorf(n, CodeType, "%s must be %s, got %s", d.where(), want, got(n, true, interpolated))
		return nil
	}
	return &v
}

func parseFloat(s string) (float64, error) {
	switch strings.ToLower(strings.TrimPrefix(s, "+")) {
	case ".inf":
		return math.Inf(1), nil
	case "-.inf":
		return math.Inf(-1), nil
	case ".nan":
		return math.NaN(), nil
	}
	return strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
}

// boolean decodes true or false (YAML 1.2: not yes, no, on or off).
func (d *decoder) boolean(n *yaml.Node) bool {
	const want = "true or false"
	n, s, interpolated, ok := d.scalar(n, want)
	if !ok {
		return false
	}
	if interpolated || n.Tag == tagBool {
		switch s {
		case "true", "True", "TRUE":
			return true
		case "false", "False", "FALSE":
			return false
		}
	}
	d.errorf(n, CodeType, "%s must be %s, got %s", d.where(), want, got(n, true, interpolated))
	return false
}

// Lists and maps.

// list calls elem for each element of sequence n, recording the element's
// position under its index. It reports anything but a sequence.
func (d *decoder) list(n *yaml.Node, want string, elem func(i int, e *yaml.Node)) bool {
	n = d.deref(n)
	if d.stopped {
		return false
	}
	if n.Kind != yaml.SequenceNode {
		d.typeErr(n, want, false)
		return false
	}
	for i, e := range n.Content {
		parent := d.enter(indexKey|fieldKey(i), e)
		elem(i, e)
		d.leave(parent)
		if d.stopped {
			return false
		}
	}
	return true
}

// strs decodes a list of strings. The result is never nil, and keeps one
// entry per element (empty where an element was bad) so that the registry's
// "plugin_ids.3" still names the fourth element of the file.
func (d *decoder) strs(n *yaml.Node) []string {
	n = d.deref(n)
	out := make([]string, 0, len(n.Content))
	d.list(n, "a list of strings", func(_ int, e *yaml.Node) {
		out = append(out, d.str(e))
	})
	return out
}

// stringMap decodes a mapping of strings to strings.
func (d *decoder) stringMap(n *yaml.Node) map[string]string {
	n = d.deref(n)
	if d.stopped {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		d.typeErr(n, "a mapping of strings", false)
		return nil
	}
	m := make(map[string]string, len(n.Content)/2)
	d.pairs(n, func(key string, k, v *yaml.Node) bool {
		_, dup := m[key]
		if !dup {
			m[key] = d.str(v)
		}
		return !dup
	})
	return m
}

// pairs calls fn for each key and value of mapping n, reporting keys that
// are not scalars. fn returns false when the key is a duplicate.
func (d *decoder) pairs(n *yaml.Node, fn func(key string, k, v *yaml.Node) bool) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := d.deref(n.Content[i])
		if d.stopped {
			return
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, CodeType, "keys in %s must be strings, got %s", d.where(), kindName(k))
			continue
		}
		if !fn(k.Value, k, n.Content[i+1]) {
			d.errorf(n.Content[i], CodeDuplicateKey, "duplicate key %q in %s%s", truncate(k.Value), d.where(), firstAt(n, i))
		}
	}
}

// firstAt names where the key at Content[i] of mapping n first appears.
func firstAt(n *yaml.Node, i int) string {
	key := peek(n.Content[i])
	for j := 0; j < i; j += 2 {
		if k := peek(n.Content[j]); k.Value == key.Value && k.Kind == yaml.ScalarNode {
			return " (first at line " + strconv.Itoa(k.Line) + ", column " + strconv.Itoa(k.Column) + ")"
		}
	}
	return ""
}

// Free-form values.

// object decodes a free-form mapping (sections, endpoint options).
func (d *decoder) object(n *yaml.Node) map[string]any {
	if t := peek(n); t.Kind != yaml.MappingNode {
		d.typeErr(t, "a mapping", false)
		return nil
	}
	m, _ := d.value(n, 0).(map[string]any)
	return m
}

// value decodes any YAML value into map[string]any, []any, string, int64,
// float64, bool or nil. Integers beyond int64 become float64. Interpolated
// scalars are strings.
func (d *decoder) value(n *yaml.Node, depth int) any {
	if d.stopped {
		return nil
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		var v any
		d.follow(n, func(target *yaml.Node) { v = d.value(target, depth) })
		return v
	}
	if depth > maxNesting {
		d.stop(n, "value is nested more than "+strconv.Itoa(maxNesting)+" levels deep")
		return nil
	}
	switch n.Kind {
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, e := range n.Content {
			out = append(out, d.value(e, depth+1))
		}
		return out
	case yaml.MappingNode:
		out := make(map[string]any, len(n.Content)/2)
		var merged map[string]bool // keys set by merge keys, which n's own keys override
		d.pairs(n, func(key string, k, v *yaml.Node) bool {
			if k.Tag == tagMerge {
				for _, src := range d.mergeSources(v) {
					m, _ := d.value(src, depth+1).(map[string]any)
					for mk, mv := range m {
						if _, set := out[mk]; !set { // explicit keys and earlier sources win
							out[mk] = mv
							if merged == nil {
								merged = make(map[string]bool)
							}
							merged[mk] = true
						}
					}
				}
				return true
			}
			if _, dup := out[key]; dup && !merged[key] {
				return false
			}
			delete(merged, key)
			out[key] = d.value(v, depth+1)
			return true
		})
		return out
	}
	s, interpolated, ok := d.text(n)
	if !ok {
		return nil
	}
	if interpolated {
		return s
	}
	switch n.Tag {
	case tagNull:
		return nil
	case tagBool:
		return s == "true" || s == "True" || s == "TRUE"
	case tagInt:
		clean := strings.ReplaceAll(strings.TrimPrefix(s, "+"), "_", "")
		if strings.HasPrefix(clean, "0o") || strings.HasPrefix(clean, "-0o") {
			clean = strings.Replace(clean, "0o", "0", 1)
		}
		if i, err := strconv.ParseInt(clean, 0, 64); err == nil {
			return i
		}
		if f, err := parseFloat(s); err == nil {
			return f
		}
	case tagFloat:
		if f, err := parseFloat(s); err == nil {
			return f
		}
	}
	return s
}

// peek returns the node n stands for without charging the alias budget,
// for looking at its kind.
func peek(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// mergeSources returns the mappings that the value v of a merge key names
// ("<<: *a" or "<<: [*a, *b]"), in order of precedence: earlier sources
// win. They are returned as written (aliases not followed), so that the
// caller can guard against an alias that merges its own mapping.
func (d *decoder) mergeSources(v *yaml.Node) []*yaml.Node {
	group := []*yaml.Node{v}
	if peek(v).Kind == yaml.SequenceNode {
		group = d.deref(v).Content
	}
	srcs := group[:0:0]
	for _, src := range group {
		if peek(src).Kind != yaml.MappingNode {
			d.errorf(src, CodeType, "merge key in %s must name a mapping or a list of mappings, got %s", d.where(), kindName(peek(src)))
			continue
		}
		srcs = append(srcs, src)
	}
	return srcs
}

// follow calls fn with the node src stands for. When src is an alias, its
// target is charged to the budget and guarded against cycles (an alias
// inside the node it names).
func (d *decoder) follow(src *yaml.Node, fn func(*yaml.Node)) {
	if src.Kind != yaml.AliasNode || src.Alias == nil {
		fn(src)
		return
	}
	for _, a := range d.expanding {
		if a.Alias == src.Alias {
			d.stop(src, "YAML alias *"+truncate(src.Value)+" refers to a node that contains it")
			return
		}
	}
	d.charge(src)
	if d.stopped {
		return
	}
	d.expanding = append(d.expanding, src)
	fn(src.Alias)
	d.expanding = d.expanding[:len(d.expanding)-1]
}
