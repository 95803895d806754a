package config

import (
	"errors"
	"io/fs"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// expander resolves the ${…} references of scalar values during one load.
// Each referenced file is read once; what was read (or the error) feeds the
// fingerprint.
type expander struct {
	fsys  fs.FS
	opts  *Options
	files map[refKey]refFile  // the files references read
	env   map[string]envValue // the variables references looked up
}

// envValue is what LookupEnv said of a variable.
type envValue struct {
	value string
	set   bool
}

// refKey names a referenced file: by its path in the config directory, by
// its absolute path, or as a credential (by its path in the credentials
// directory).
type refKey struct {
	credential bool
	name       string
}

type refFile struct {
	data []byte
	err  error
}

// expandErr is one problem with a scalar's references. The message is
// what + " in " + <field> + tail; both parts quote source text only, never a
// resolved value.
type expandErr struct {
	what, tail string
}

const referenceForms = " (want ${VAR}, ${VAR:-default}, ${file:PATH} or ${credential:NAME})"

// maxReferenceNesting bounds defaults inside defaults (${A:-${B:-…}}), so
// that expanding a scalar takes time linear in its length.
const maxReferenceNesting = 8

// expand resolves every reference in s. "$$" is a literal "$", and a "$"
// not followed by "{" or "$" stays as it is. Resolved values are not
// expanded again. On any problem the result must not be used.
func (e *expander) expand(s string) (string, []expandErr) {
	return e.expandAt(s, 0)
}

func (e *expander) expandAt(s string, depth int) (string, []expandErr) {
	if strings.IndexByte(s, '$') < 0 {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	var errs []expandErr
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
				return "", append(errs, expandErr{what: `unclosed "${"`})
			}
			if depth >= maxReferenceNesting {
				return "", append(errs, expandErr{what: "references nested more than " + strconv.Itoa(maxReferenceNesting) + " deep"})
			}
			v, more := e.reference(s[i+2:end], depth)
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
func (e *expander) reference(body string, depth int) (string, []expandErr) {
	name := identifier(body)
	rest := body[len(name):]
	switch {
	case name != "" && rest == "":
		if v, ok := e.lookup(name); ok {
			return v, nil
		}
		return "", []expandErr{{what: "undefined environment variable " + strconv.Quote(name)}}
	case name != "" && strings.HasPrefix(rest, ":-"):
		if v, ok := e.lookup(name); ok && v != "" {
			return v, nil
		}
		return e.expandAt(rest[2:], depth+1)
	case name == "file" && rest[0] == ':':
		return e.file(body, rest[1:])
	case name == "credential" && rest[0] == ':':
		return e.credential(body, rest[1:])
	case name != "" && rest[0] == ':':
		return "", []expandErr{{what: "unknown interpolation scheme " + strconv.Quote(name), tail: referenceForms}}
	}
	return "", []expandErr{{what: "invalid reference " + strconv.Quote("${"+body+"}"), tail: referenceForms}}
}

func (e *expander) lookup(name string) (string, bool) {
	v, ok := e.getenv(name)
	if e.env == nil {
		e.env = make(map[string]envValue)
	}
	e.env[name] = envValue{v, ok}
	return v, ok
}

func (e *expander) getenv(name string) (string, bool) {
	if e.opts.LookupEnv == nil {
		return "", false
	}
	return e.opts.LookupEnv(name)
}

// reread reads a referenced file again, as the reference that read it did.
func (e *expander) reread(key refKey) refFile {
	var f refFile
	switch {
	case (key.credential || strings.HasPrefix(key.name, "/")) && e.opts.ReadFile == nil:
		f.err = errors.New("reading files outside the config directory is disabled")
	case key.credential || strings.HasPrefix(key.name, "/"):
		f.data, f.err = e.readAbs(key.name)
	default:
		f.data, f.err = readFile(e.fsys, key.name, e.opts.MaxFileSize)
	}
	return f
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

// file resolves ${file:PATH}: relative paths through the config directory,
// absolute ones through Options.ReadFile.
func (e *expander) file(body, p string) (string, []expandErr) {
	fail := func(why string) (string, []expandErr) {
		return "", []expandErr{{what: "cannot read " + strconv.Quote("${"+body+"}"), tail: ": " + why}}
	}
	switch {
	case p == "":
		return fail("empty path")
	case strings.HasPrefix(p, "/"):
		if e.opts.ReadFile == nil {
			return fail("reading files outside the config directory is disabled")
		}
		key := refKey{name: filepath.Clean(p)}
		return e.read(key, fail, func() ([]byte, error) { return e.readAbs(key.name) })
	}
	name := path.Clean(p)
	if !fs.ValidPath(name) {
		return fail("the path leaves the config directory")
	}
	return e.read(refKey{name: name}, fail, func() ([]byte, error) { return readFile(e.fsys, name, e.opts.MaxFileSize) })
}

// credential resolves ${credential:NAME}, systemd's LoadCredential=.
func (e *expander) credential(body, name string) (string, []expandErr) {
	fail := func(why string) (string, []expandErr) {
		return "", []expandErr{{what: "cannot read " + strconv.Quote("${"+body+"}"), tail: ": " + why}}
	}
	switch {
	case name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`):
		return fail("a credential name is a plain file name")
	case e.opts.CredentialsDir == "":
		return fail("credentials are unavailable ($CREDENTIALS_DIRECTORY is not set)")
	case e.opts.ReadFile == nil:
		return fail("reading files outside the config directory is disabled")
	}
	key := refKey{credential: true, name: filepath.Join(e.opts.CredentialsDir, name)}
	return e.read(key, fail, func() ([]byte, error) { return e.readAbs(key.name) })
}

func (e *expander) readAbs(name string) ([]byte, error) {
	data, err := e.opts.ReadFile(name)
	if err == nil && int64(len(data)) > e.opts.MaxFileSize {
		return nil, &tooLargeError{size: int64(len(data)), limit: e.opts.MaxFileSize}
	}
	return data, err
}

// read returns a referenced file's contents with one trailing newline
// trimmed, reading it on first use.
func (e *expander) read(key refKey, fail func(string) (string, []expandErr), load func() ([]byte, error)) (string, []expandErr) {
	f, ok := e.files[key]
	if !ok {
		f.data, f.err = load()
		if e.files == nil {
			e.files = make(map[refKey]refFile)
		}
		e.files[key] = f
	}
	if f.err != nil {
		return fail(errText(f.err))
	}
	s := string(f.data)
	if strings.HasSuffix(s, "\n") {
		s = strings.TrimSuffix(s[:len(s)-1], "\r")
	}
	return s, nil
}
