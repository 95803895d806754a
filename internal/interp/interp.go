// Package interp is the one ${…} grammar of awakend's config files and
// daemon settings: ${VAR}, ${VAR:-default}, ${file:PATH}, ${credential:NAME}
// and "$$" for a literal "$". It parses; what a reference resolves to is the
// caller's Resolver, so the config loader can read files through its
// directory and record them, and a setting that names a file can resolve a
// reference to the file's path instead of its contents.
package interp

import (
	"strconv"
	"strings"
)

// A Resolver gives references their values. A nil func resolves nothing:
// its references are errors.
type Resolver struct {
	// LookupEnv resolves ${VAR} and ${VAR:-default}.
	LookupEnv func(name string) (string, bool)
	// File resolves ${file:PATH}; path is as written, never empty.
	File func(path string) (string, error)
	// Credential resolves ${credential:NAME}; name is a plain file name
	// (no separator, not "." or "..").
	Credential func(name string) (string, error)
}

// A Problem is one reference that did not resolve. Its message reads
// What + " in " + <where the caller found the value> + Tail; both parts
// quote the source text only, never a resolved value.
type Problem struct {
	What, Tail string
	// Malformed marks text that is not a reference of a known form, as
	// opposed to a reference that did not resolve. Its What quotes the
	// text, which a caller may have to withhold (a secret).
	Malformed bool
}

// Forms lists the reference forms, for a message about a malformed one.
const Forms = " (want ${VAR}, ${VAR:-default}, ${file:PATH} or ${credential:NAME})"

// maxNesting bounds defaults inside defaults (${A:-${B:-…}}), so that
// expanding a value takes time linear in its length.
const maxNesting = 8

// Expand resolves every reference in s. "$$" is a literal "$", and a "$"
// not followed by "{" or "$" stays as it is. Resolved values are not
// expanded again. On any problem the result must not be used.
func Expand(s string, r Resolver) (string, []Problem) {
	if strings.IndexByte(s, '$') < 0 {
		return s, nil
	}
	return r.expand(s, 0)
}

func (r Resolver) expand(s string, depth int) (string, []Problem) {
	var b strings.Builder
	b.Grow(len(s))
	var errs []Problem
	for i := 0; i < len(s); {
		j := strings.IndexByte(s[i:], '$')
		if j < 0 {
			b.WriteString(s[i:])
			break
		}
		b.WriteString(s[i : i+j])
		i += j
		switch {
		case strings.HasPrefix(s[i:], "$$"):
			b.WriteByte('$')
			i += 2
		case strings.HasPrefix(s[i:], "${"):
			end := closingBrace(s, i+2)
			if end < 0 {
				return "", append(errs, Problem{What: `unclosed "${"`, Malformed: true})
			}
			if depth >= maxNesting {
				return "", append(errs, Problem{What: "references nested more than " + strconv.Itoa(maxNesting) + " deep", Malformed: true})
			}
			v, more := r.reference(s[i+2:end], depth)
			errs = append(errs, more...)
			b.WriteString(v)
			i = end + 1
		default:
			b.WriteByte('$')
			i++
		}
	}
	return b.String(), errs
}

// closingBrace returns the index of the "}" that closes a "${" whose body
// starts at start, counting nested references, or -1.
func closingBrace(s string, start int) int {
	depth := 1
	for i := start; i < len(s); i++ {
		switch {
		case s[i] == '$' && i+1 < len(s) && (s[i+1] == '$' || s[i+1] == '{'):
			if s[i+1] == '{' {
				depth++
			}
			i++
		case s[i] == '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// reference resolves the body of one ${…}.
func (r Resolver) reference(body string, depth int) (string, []Problem) {
	name := identifier(body)
	rest := body[len(name):]
	switch {
	case name != "" && rest == "":
		if v, ok := r.lookup(name); ok {
			return v, nil
		}
		return "", []Problem{{What: "undefined environment variable " + strconv.Quote(name)}}
	case name != "" && strings.HasPrefix(rest, ":-"):
		if v, ok := r.lookup(name); ok && v != "" {
			return v, nil
		}
		return r.expand(rest[2:], depth+1)
	case name == "file" && rest[0] == ':':
		return r.read(body, rest[1:], false)
	case name == "credential" && rest[0] == ':':
		return r.read(body, rest[1:], true)
	case name != "" && rest[0] == ':':
		return "", []Problem{{What: "unknown interpolation scheme " + strconv.Quote(name), Tail: Forms, Malformed: true}}
	}
	return "", []Problem{{What: "invalid reference " + strconv.Quote("${"+body+"}"), Tail: Forms, Malformed: true}}
}

func (r Resolver) lookup(name string) (string, bool) {
	if r.LookupEnv == nil {
		return "", false
	}
	return r.LookupEnv(name)
}

// read resolves ${file:arg} or ${credential:arg}.
func (r Resolver) read(body, arg string, credential bool) (string, []Problem) {
	fail := func(why string) (string, []Problem) {
		return "", []Problem{{What: "cannot read " + strconv.Quote("${"+body+"}"), Tail: ": " + why}}
	}
	resolve := r.File
	switch {
	case credential && (arg == "" || arg == "." || arg == ".." || strings.ContainsAny(arg, `/\`)):
		return fail("a credential name is a plain file name")
	case credential:
		resolve = r.Credential
	case arg == "":
		return fail("empty path")
	}
	if resolve == nil {
		return fail("not available here")
	}
	v, err := resolve(arg)
	if err != nil {
		return fail(err.Error())
	}
	return v, nil
}

// identifier returns the longest prefix of s that is a variable name.
func identifier(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9' {
			continue
		}
		return s[:i]
	}
	return s
}

// TrimNewline removes one trailing newline ("\n" or "\r\n") from a file's
// contents: what a reference to a file holding one value resolves to.
func TrimNewline(s string) string {
	if strings.HasSuffix(s, "\n") {
		s = strings.TrimSuffix(s[:len(s)-1], "\r")
	}
	return s
}
