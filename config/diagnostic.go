package config

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/awakend/awakend/registry"
)

// Codes of the problems the loader finds itself. The registry's codes
// (registry.Code*) come through Build unchanged.
const (
	CodeSyntax        = "syntax"             // the YAML does not parse
	CodeUnknownField  = "unknown_field"      // a field the resource does not have
	CodeUnknownKey    = "unknown_key"        // a top-level key other than providers, models, model_pools, agents
	CodeType          = "type"               // a value of the wrong YAML kind or type
	CodeMissingField  = "missing_field"      // a required field is absent or null
	CodeDuplicateKey  = "duplicate_key"      // the same key twice in one mapping
	CodeConflict      = "conflicting_fields" // fields that exclude each other, such as an alias and its field
	CodeInterpolation = "interpolation"      // a ${…} reference that cannot be resolved
	CodeTooLarge      = "too_large"          // a file over the size limit, or aliases that expand too far
	CodeEmpty         = "empty"              // no resources at all
	CodeRead          = "read"               // a file or directory that cannot be read
	CodeExecutor      = "executor"           // the executor factory refused a provider

	// CodeDuplicateID and CodeAmbiguousID are the registry's codes; the
	// loader reports them itself so that the message can name both places.
	CodeDuplicateID = registry.CodeDuplicateID
	CodeAmbiguousID = registry.CodeAmbiguousID
)

// Diagnostic is one problem with a config directory, at a place in a file.
//
// File is relative to the config directory and slash-separated; it is empty
// for problems of the directory as a whole (such as CodeEmpty). Line and
// Column are 1-based, Column in characters; 0 means unknown (the syntax
// errors of a file over 1 MiB carry only the line yaml.v3 names). Resource is nil for problems outside any resource, such as syntax
// errors. Values that came from ${…} interpolation appear in Message and in
// the resource references as their source text, never resolved.
type Diagnostic struct {
	File      string        `json:"file"`
	Line      int           `json:"line"`
	Column    int           `json:"column"`
	Code      string        `json:"code"`
	Severity  string        `json:"severity"`
	Resource  *registry.Ref `json:"resource,omitempty"`
	DependsOn *registry.Ref `json:"depends_on,omitempty"`
	Message   string        `json:"message"`
}

// String formats d like go/scanner: "path:line:col: error: message [code]".
// Unknown parts of the place are left out ("path:line: …", "path: …"), and a
// diagnostic without a file is just "error: message [code]"; one without a
// code (an error that is not about the files, such as a vanished
// directory) has no " [code]".
func (d Diagnostic) String() string {
	var b strings.Builder
	if d.File != "" {
		b.WriteString(d.File)
		if d.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(d.Line))
			if d.Column > 0 {
				b.WriteByte(':')
				b.WriteString(strconv.Itoa(d.Column))
			}
		}
		b.WriteString(": ")
	}
	b.WriteString(d.Severity)
	b.WriteString(": ")
	b.WriteString(d.Message)
	if d.Code != "" {
		b.WriteString(" [")
		b.WriteString(d.Code)
		b.WriteByte(']')
	}
	return b.String()
}

// Error reports every problem that kept a config directory from loading or
// building, sorted by file, line, column and code.
type Error struct {
	Diagnostics []Diagnostic
	// Fingerprint identifies the inputs that produced the diagnostics, as
	// Config.Fingerprint does for a good directory, so that a reload loop
	// can tell a directory it already rejected from a changed one. It is
	// empty when the diagnostics did not come from reading a directory
	// (Build).
	Fingerprint string
}

// Error returns one line per diagnostic.
func (e *Error) Error() string {
	var b strings.Builder
	for i, d := range e.Diagnostics {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(d.String())
	}
	return b.String()
}

func sortDiagnostics(ds []Diagnostic) {
	slices.SortStableFunc(ds, func(a, b Diagnostic) int {
		return cmp.Or(
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Line, b.Line),
			cmp.Compare(a.Column, b.Column),
			cmp.Compare(a.Code, b.Code),
			cmp.Compare(a.Message, b.Message),
		)
	})
}

func newError(ds []Diagnostic, fingerprint string) *Error {
	sortDiagnostics(ds)
	return &Error{Diagnostics: ds, Fingerprint: fingerprint}
}

// Position is a place in a config file: File relative to the config
// directory, slash-separated; Line and Column 1-based, 0 when unknown.
type Position struct {
	File   string
	Line   int
	Column int
}

// String returns "file:line:col".
func (p Position) String() string {
	return p.File + ":" + strconv.Itoa(p.Line) + ":" + strconv.Itoa(p.Column)
}
