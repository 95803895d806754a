package config

import (
	"errors"
	"io/fs"
	"path"
	"path/filepath"
	"strings"

	"github.com/awakend/awakend/internal/interp"
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

// expand resolves every reference in s (the grammar is package interp's):
// variables through LookupEnv, files through the config directory or
// ReadFile. On any problem the result must not be used.
func (e *expander) expand(s string) (string, []interp.Problem) {
	return interp.Expand(s, interp.Resolver{LookupEnv: e.lookup, File: e.file, Credential: e.credential})
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
		f.err = errOutside
	case key.credential || strings.HasPrefix(key.name, "/"):
		f.data, f.err = e.readAbs(key.name)
	default:
		f.data, f.err = readFile(e.fsys, key.name, e.opts.MaxFileSize)
	}
	return f
}

// file resolves ${file:PATH}: relative paths through the config directory,
// absolute ones through Options.ReadFile.
func (e *expander) file(p string) (string, error) {
	if strings.HasPrefix(p, "/") {
		if e.opts.ReadFile == nil {
			return "", errOutside
		}
		key := refKey{name: filepath.Clean(p)}
		return e.read(key, func() ([]byte, error) { return e.readAbs(key.name) })
	}
	name := path.Clean(p)
	if !fs.ValidPath(name) {
		return "", errors.New("the path leaves the config directory")
	}
	return e.read(refKey{name: name}, func() ([]byte, error) { return readFile(e.fsys, name, e.opts.MaxFileSize) })
}

// errOutside is a reference to a file outside the config directory when
// the load may read none.
var errOutside = errors.New("reading files outside the config directory is disabled")

// credential resolves ${credential:NAME}, systemd's LoadCredential=.
func (e *expander) credential(name string) (string, error) {
	switch {
	case e.opts.CredentialsDir == "":
		return "", errors.New("credentials are unavailable ($CREDENTIALS_DIRECTORY is not set)")
	case e.opts.ReadFile == nil:
		return "", errOutside
	}
	key := refKey{credential: true, name: filepath.Join(e.opts.CredentialsDir, name)}
	return e.read(key, func() ([]byte, error) { return e.readAbs(key.name) })
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
func (e *expander) read(key refKey, load func() ([]byte, error)) (string, error) {
	f, ok := e.files[key]
	if !ok {
		f.data, f.err = load()
		if e.files == nil {
			e.files = make(map[refKey]refFile)
		}
		e.files[key] = f
	}
	if f.err != nil {
		return "", errors.New(errText(f.err))
	}
	return interp.TrimNewline(string(f.data)), nil
}
