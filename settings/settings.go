// Package settings owns the daemon's own settings, as opposed to the
// registry it serves: the layers (defaults, the settings file, AWAKEND_*
// variables, flags) merged and decoded by koanf, strict keys with their
// places, and the config's ${…} references resolved.
package settings

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/v2"
	"go.yaml.in/yaml/v3"

	"github.com/awakend/awakend/internal/interp"
	"github.com/awakend/awakend/internal/suggest"
)

// DefaultFile is the settings file Load reads when it is given no path and
// the file exists.
const DefaultFile = "/etc/awakend/awakend.yaml"

// EnvPrefix starts every environment variable that sets a daemon
// setting: AWAKEND_LISTEN sets listen, AWAKEND_RELOAD__DEBOUNCE sets
// reload.debounce ("__" nests, names are lower-cased).
const EnvPrefix = "AWAKEND_"

// Settings are the daemon's own settings, as opposed to the registry it
// serves: where the config directory is, where to listen, how to log,
// reload and shut down, and the secrets that guard the HTTP API. Each
// field's settings key is in its koanf tag; the tag setting:"secret" marks
// a value never shown, setting:"path" one that names a file, and
// reload:"restart" one that a running daemon cannot change (see Live).
type Settings struct {
	// ConfigDir (config_dir) is the directory of registry YAML files.
	ConfigDir string `koanf:"config_dir" reload:"restart"`
	// Listen (listen) is the host:port the HTTP server listens on; an
	// empty host means every interface, port 0 a free port.
	Listen string `koanf:"listen" reload:"restart"`
	// StateDir (state_dir) is where the daemon keeps what must outlive it:
	// the last configuration that went live, to serve when the config
	// directory does not validate at start-up, and the local copy of a
	// fleet's last applied pack; "" keeps nothing. It defaults to
	// $STATE_DIRECTORY (systemd's StateDirectory=), its first path if it
	// holds several.
	StateDir string `koanf:"state_dir" reload:"restart"`
	// AllowEmpty (allow_empty) lets a config directory without resources
	// load as an empty registry.
	AllowEmpty bool `koanf:"allow_empty"`
	// Log configures the daemon's log.
	Log struct {
		// Level (log.level) is debug, info, warn or error.
		Level string `koanf:"level"`
		// Format (log.format) is auto (tint on a terminal, plain text
		// under journald), text or json.
		Format string `koanf:"format" reload:"restart"`
	} `koanf:"log"`
	// Reload configures the reload loop.
	Reload struct {
		// Debounce (reload.debounce) is the quiet time after the last
		// change before a reload starts; more than 0.
		Debounce time.Duration `koanf:"debounce"`
		// MaxWait (reload.max_wait) caps how long constant changes can
		// delay a reload; at least Debounce.
		MaxWait time.Duration `koanf:"max_wait"`
		// RescanInterval (reload.rescan_interval) is the period of the
		// safety-net rescan; 0 turns it off.
		RescanInterval time.Duration `koanf:"rescan_interval"`
	} `koanf:"reload"`
	// Shutdown configures stopping.
	Shutdown struct {
		// Timeout (shutdown.timeout) is how long requests in flight may
		// take to finish on shutdown; more than 0.
		Timeout time.Duration `koanf:"timeout"`
	} `koanf:"shutdown"`
	// Admin configures the registry and admin API.
	Admin struct {
		// Token (admin.token) is a secret; when set, every /api/v1/*
		// route needs it. A ${file:PATH} or ${credential:NAME} in it
		// resolves to the file's contents.
		Token string `koanf:"token" setting:"secret"`
	} `koanf:"admin"`
	// Gateway configures the OpenAI-compatible gateway.
	Gateway struct {
		// APIKeys (gateway.api_keys) are the client keys that /v1/*
		// accepts; none means the gateway is open. Secrets, each may be a
		// reference like Admin.Token, and a reference that resolves to
		// several lines gives one key per non-empty line. In the
		// environment and in flags the keys are separated by commas.
		APIKeys []string `koanf:"api_keys" setting:"secret"`
	} `koanf:"gateway"`
	// TLS configures HTTPS (with HTTP/2) on the listen address; with
	// neither file set the daemon serves plain HTTP. The files are read
	// at start-up and again at every reload.
	TLS struct {
		// CertFile (tls.cert_file) is the PEM certificate chain, leaf
		// first; set with KeyFile or not at all. It is a path (relative
		// to the working directory); a ${file:PATH} or ${credential:NAME}
		// in it resolves to the path of the file it names.
		CertFile string `koanf:"cert_file" setting:"path"`
		// KeyFile (tls.key_file) is the PEM private key of the leaf,
		// named as CertFile is.
		KeyFile string `koanf:"key_file" setting:"path"`
		// ClientCAFile (tls.client_ca_file) is a PEM file of CA
		// certificates, named as CertFile is: a client certificate one
		// of them issued is the admin's credential, as the admin token
		// is. It needs CertFile and KeyFile.
		ClientCAFile string `koanf:"client_ca_file" setting:"path"`
		// ClientAllowedSANs (tls.client_allowed_sans), if set, admits
		// only the client certificates that carry one of these subject
		// alternative names (DNS names, email addresses, IP addresses,
		// URIs), as Prometheus's web configuration does: a CA that issues
		// certificates to many makes few of them admins. In the
		// environment and in flags the names are separated by commas.
		ClientAllowedSANs []string `koanf:"client_allowed_sans"`
	} `koanf:"tls"`
	// Source names where the config comes from instead of ConfigDir.
	Source struct {
		// Etcd is a fleet's shared config, published by `awakend publish`.
		Etcd struct {
			// Endpoints (source.etcd.endpoints) are the etcd members'
			// client URLs; set, the daemon follows the fleet's current
			// pack instead of reading ConfigDir.
			Endpoints []string `koanf:"endpoints" reload:"restart"`
			// Prefix (source.etcd.prefix) is the fleet's key prefix.
			Prefix string `koanf:"prefix" reload:"restart"`
			// Host (source.etcd.host) names this daemon in the fleet;
			// the machine's host name if empty.
			Host string `koanf:"host" reload:"restart"`
		} `koanf:"etcd"`
	} `koanf:"source"`
}

// Default returns the settings used where neither the settings
// file, the environment nor a flag says otherwise.
func Default() Settings {
	var s Settings
	s.ConfigDir = "/etc/awakend/conf.d"
	s.Listen = "127.0.0.1:8700"
	s.Log.Level = "info"
	s.Log.Format = "auto"
	s.Reload.Debounce = 250 * time.Millisecond
	s.Reload.MaxWait = 2 * time.Second
	s.Reload.RescanInterval = 30 * time.Second
	s.Shutdown.Timeout = 30 * time.Second
	s.Source.Etcd.Prefix = "/awakend/"
	return s
}

// Redacted returns a copy of s with every secret that is set replaced by
// "***", for printing.
func (s Settings) Redacted() Settings {
	if s.Admin.Token != "" {
		s.Admin.Token = "***"
	}
	if s.Gateway.APIKeys != nil {
		keys := make([]string, len(s.Gateway.APIKeys))
		for i := range keys {
			keys[i] = "***"
		}
		s.Gateway.APIKeys = keys
	}
	return s
}

// Fingerprint identifies s, secrets included, as a SHA-256 in hex: two
// loads that resolve to the same values have the same fingerprint.
func (s Settings) Fingerprint() string {
	b, _ := json.Marshal(s) // plain values: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// A Pending is a setting whose new value waits for a restart: the daemon
// keeps running with the old one.
type Pending struct {
	Key           string
	Running, Next string // the values, as text
}

// String reads "listen: 127.0.0.1:8700 → 0.0.0.0:8700".
func (p Pending) String() string { return p.Key + ": " + p.Running + " → " + p.Next }

// Live returns the settings a daemon running with running runs with once
// it has read next: next's value of every setting that can change at run
// time, running's of the others (which are still those it started with),
// and those others that differ as Pending. Turning TLS on or off takes a
// restart too (the listener serves one or the other); with TLS on both
// sides, new files apply live.
func Live(running, next Settings) (Settings, []Pending) {
	live := next
	lv, sv, nv := reflect.ValueOf(&live).Elem(), reflect.ValueOf(running), reflect.ValueOf(next)
	var pending []Pending
	for _, f := range fields {
		if !f.restart {
			continue
		}
		old, cur := sv.FieldByIndex(f.index), nv.FieldByIndex(f.index)
		lv.FieldByIndex(f.index).Set(old)
		if !reflect.DeepEqual(old.Interface(), cur.Interface()) {
			pending = append(pending, Pending{Key: f.key, Running: text(old), Next: text(cur)})
		}
	}
	if (running.TLS.CertFile == "") != (next.TLS.CertFile == "") {
		live.TLS = running.TLS
		pending = append(pending, Pending{Key: "tls", Running: onOff(running.TLS.CertFile), Next: onOff(next.TLS.CertFile)})
	}
	return live, pending
}

// Changed returns the keys whose values differ between a and b.
func Changed(a, b Settings) []string {
	av, bv := reflect.ValueOf(a), reflect.ValueOf(b)
	var keys []string
	for _, f := range fields {
		if !reflect.DeepEqual(av.FieldByIndex(f.index).Interface(), bv.FieldByIndex(f.index).Interface()) {
			keys = append(keys, f.key)
		}
	}
	return keys
}

// text shows a setting's value (never a secret's: no secret needs a
// restart).
func text(v reflect.Value) string {
	var s string
	switch x := v.Interface().(type) {
	case []string:
		s = strings.Join(x, ",")
	default:
		s = fmt.Sprint(x)
	}
	if s == "" {
		return `""`
	}
	return s
}

func onOff(certFile string) string {
	if certFile == "" {
		return "off"
	}
	return "on"
}

// Load reads the daemon settings: defaults, then the settings file, then
// AWAKEND_* variables in env (os.Environ's form), then flags, each layer
// overriding the one before. path is the settings file; "" means
// DefaultFile if it exists. flags holds only the flags the user set, keyed
// by settings key ("listen", "log.level") with typed or string values. It
// returns the file it read ("" for none).
//
// Unknown keys, values of the wrong type and invalid values are an *Error
// listing all of them, each at its place (file:line:col, variable or
// --flag). Secrets are never part of an error.
func Load(path string, env []string, flags map[string]any) (s Settings, file string, err error) {
	return load(path, DefaultFile, env, flags)
}

// load is Load with the default file as a parameter.
func load(path, defaultPath string, env []string, flags map[string]any) (Settings, string, error) {
	l := loader{k: koanf.New("."), origin: map[string]Problem{}}
	l.merge(flatten(Default()))
	if dirs, ok := lookupEnv(env, "STATE_DIRECTORY"); ok {
		dir, _, _ := strings.Cut(dirs, ":")
		l.merge(map[string]any{"state_dir": dir})
	}
	file := path
	if file == "" {
		file = defaultPath
	}
	b, err := os.ReadFile(file)
	switch {
	case err == nil:
		if err := l.loadFile(file, b); err != nil {
			return Settings{}, file, err
		}
	case path == "" && errors.Is(err, fs.ErrNotExist):
		file = ""
	default:
		return Settings{}, "", fmt.Errorf("settings: %w", err)
	}
	l.loadEnv(env)
	l.loadFlags(flags)

	var s Settings
	dc := &mapstructure.DecoderConfig{ErrorUnused: true}
	if err := l.k.UnmarshalWithConf("", &s, koanf.UnmarshalConf{DecoderConfig: dc}); err != nil {
		// Every value was checked against its field's type; this is a bug.
		return Settings{}, file, fmt.Errorf("settings: %w", err)
	}
	l.expand(&s, env)
	l.validate(&s)
	if len(l.problems) > 0 {
		return Settings{}, file, &Error{Problems: l.problems}
	}
	return s, file, nil
}

// A Problem is one thing wrong with the settings, at its place: a line and
// column of the settings file, or the variable or flag that set the value.
type Problem struct {
	File         string // the settings file, "" for a variable or a flag
	Line, Column int    // in File; 0 if unknown
	Source       string // the variable or --flag, when File is ""
	Message      string
}

// Where is the problem's place as text: file:line:col, the variable or the
// flag; "" for none.
func (p Problem) Where() string {
	switch {
	case p.File != "" && p.Line > 0:
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
	case p.File != "":
		return p.File
	}
	return p.Source
}

// Error is the problem at its place.
func (p Problem) Error() string {
	if w := p.Where(); w != "" {
		return w + ": " + p.Message
	}
	return p.Message
}

// Error is settings that did not load: every problem found.
type Error struct{ Problems []Problem }

// Error lists the problems, one a line.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// kind is the type of a setting's value, from its field's Go type.
type kind int

const (
	kindString kind = iota
	kindBool
	kindDuration
	kindList
)

// field is one settings key: a leaf of Settings.
type field struct {
	key    string
	kind   kind
	secret bool // never shown in an error
	path   bool // names a file: references resolve to paths
	// restart marks a setting a running daemon keeps until it restarts.
	restart bool
	index   []int
}

// fields are Settings' leaves in declaration order and sections the keys of
// its nested structs, both read from the struct itself.
var fields, sections = collect(reflect.TypeFor[Settings](), "", nil)

func collect(t reflect.Type, prefix string, index []int) (leaves []field, secs []string) {
	for f := range t.Fields() {
		key := prefix + f.Tag.Get("koanf")
		idx := append(slices.Clone(index), f.Index...)
		if f.Type.Kind() == reflect.Struct {
			l, s := collect(f.Type, key+".", idx)
			leaves, secs = append(leaves, l...), append(append(secs, key), s...)
			continue
		}
		fl := field{key: key, index: idx, secret: f.Tag.Get("setting") == "secret", path: f.Tag.Get("setting") == "path",
			restart: f.Tag.Get("reload") == "restart"}
		switch f.Type {
		case reflect.TypeFor[string]():
			fl.kind = kindString
		case reflect.TypeFor[bool]():
			fl.kind = kindBool
		case reflect.TypeFor[time.Duration]():
			fl.kind = kindDuration
		case reflect.TypeFor[[]string]():
			fl.kind = kindList
		default:
			panic("settings: no kind for the type of " + key)
		}
		leaves = append(leaves, fl)
	}
	return leaves, secs
}

// lookupField finds key's field.
func lookupField(key string) (field, bool) {
	for _, f := range fields {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

// sortedKeys are the keys of fields, sorted.
var sortedKeys = func() []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.key
	}
	slices.Sort(out)
	return out
}()

// Keys returns every settings key, sorted.
func Keys() []string { return slices.Clone(sortedKeys) }

// section returns the keys below section key, or nil if key is not a
// section.
func section(key string) []string {
	if !slices.Contains(sections, key) {
		return nil
	}
	var out []string
	for _, k := range sortedKeys {
		if strings.HasPrefix(k, key+".") {
			out = append(out, k)
		}
	}
	return out
}

// flatten is s as a layer: every key with its value.
func flatten(s Settings) map[string]any {
	v := reflect.ValueOf(s)
	layer := make(map[string]any, len(fields))
	for _, f := range fields {
		layer[f.key] = v.FieldByIndex(f.index).Interface()
	}
	return layer
}

// loader merges the layers into k, collecting every problem and
// remembering where each key was last set.
type loader struct {
	k        *koanf.Koanf
	origin   map[string]Problem // key → its place, with no message
	problems []Problem
}

func (l *loader) add(at Problem, format string, args ...any) {
	at.Message = fmt.Sprintf(format, args...)
	l.problems = append(l.problems, at)
}

// set checks v against key's field and, if it fits, stages it in layer.
// text says that strings are to be parsed (environment, flags).
func (l *loader) set(layer map[string]any, at Problem, key string, v any, text bool) {
	f, ok := lookupField(key)
	if !ok {
		if sub := section(key); sub != nil {
			if v == nil {
				return // an empty section, as in "log:" with all keys commented out
			}
			l.add(at, "%s is a section (of %s), not a value", key, strings.Join(sub, ", "))
			return
		}
		hint := suggest.Hint(key, append(Keys(), sections...))
		for _, k := range sortedKeys {
			if hint == "" && strings.HasSuffix(k, "."+key) { // in the wrong section
				hint = fmt.Sprintf(" (did you mean %q?)", k)
			}
		}
		l.add(at, "unknown setting %q%s", key, hint)
		return
	}
	val, problem := f.convert(v, text)
	if problem != "" {
		l.add(at, "%s: %s", key, problem)
		return
	}
	layer[key] = val
	l.origin[key] = at
}

func (l *loader) merge(layer map[string]any) {
	if len(layer) > 0 {
		_ = l.k.Load(confmap.Provider(layer, "."), nil) // a map provider does not fail
	}
}

// loadFile parses a settings file. A file that is not YAML is an error
// returned at once; problems with keys and values are collected.
func (l *loader) loadFile(name string, b []byte) error {
	fail := func(n *yaml.Node, msg string) error {
		p := Problem{File: name, Message: msg}
		if n != nil {
			p.Line, p.Column = n.Line, n.Column
		}
		return &Error{Problems: []Problem{p}}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil && err != io.EOF {
		return fail(nil, err.Error())
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return fail(nil, "settings must be a single YAML document")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	at := func(n *yaml.Node) Problem { return Problem{File: name, Line: n.Line, Column: n.Column} }
	switch {
	case root.Kind == 0 || root.Kind == yaml.DocumentNode || root.Tag == "!!null":
		return nil // empty, or only comments
	case root.Kind != yaml.MappingNode:
		return fail(root, "settings must be a mapping")
	}
	layer := map[string]any{}
	seen := map[string]*yaml.Node{}
	var walk func(prefix string, m *yaml.Node)
	walk = func(prefix string, m *yaml.Node) {
		for i := 0; i+1 < len(m.Content); i += 2 {
			kn, vn := m.Content[i], m.Content[i+1]
			if vn.Kind == yaml.AliasNode {
				vn = vn.Alias
			}
			key := prefix + kn.Value
			if first, dup := seen[key]; dup {
				l.add(at(kn), "%s: set twice (first at line %d)", key, first.Line)
				continue
			}
			seen[key] = kn
			f, leaf := lookupField(key)
			isSection := !leaf && section(key) != nil
			if isSection && vn.Kind == yaml.MappingNode {
				walk(key+".", vn)
				continue
			}
			where := at(vn)
			if !leaf && !isSection {
				where = at(kn) // an unknown key
			}
			var v any
			if err := vn.Decode(&v); err != nil {
				msg := "not a valid YAML value"
				if !f.secret {
					msg = err.Error()
				}
				l.add(where, "%s: %s", key, msg)
				continue
			}
			l.set(layer, where, key, v, false)
		}
	}
	walk("", root)
	l.merge(layer)
	return nil
}

// loadEnv applies the AWAKEND_* variables of env.
func (l *loader) loadEnv(env []string) {
	layer := map[string]any{}
	for _, kv := range env {
		name, v, _ := strings.Cut(kv, "=")
		rest, ok := strings.CutPrefix(name, EnvPrefix)
		if !ok || rest == "" {
			continue
		}
		key := strings.ReplaceAll(strings.ToLower(rest), "__", ".")
		l.set(layer, Problem{Source: name}, key, v, true)
	}
	l.merge(layer)
}

// loadFlags applies flags, named in errors as --config-dir, --log-level.
func (l *loader) loadFlags(flags map[string]any) {
	layer := map[string]any{}
	flagName := strings.NewReplacer(".", "-", "_", "-")
	keys := make([]string, 0, len(flags))
	for k := range flags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		l.set(layer, Problem{Source: "--" + flagName.Replace(key)}, key, flags[key], true)
	}
	l.merge(layer)
}

// convert returns v as the Go value of the setting, or a problem that
// shows v unless the setting is secret.
func (f field) convert(v any, text bool) (any, string) {
	shown := func(what string) string {
		if f.secret {
			return "not " + what
		}
		return fmt.Sprintf("%s is not %s", describe(v), what)
	}
	if v == nil {
		return nil, "missing value"
	}
	str, isString := v.(string)
	switch f.kind {
	case kindString:
		if isString {
			return str, ""
		}
		return nil, shown("a string")
	case kindBool:
		if b, ok := v.(bool); ok {
			return b, ""
		}
		if isString && text {
			if b, err := strconv.ParseBool(str); err == nil {
				return b, ""
			}
		}
		return nil, shown("a boolean")
	case kindDuration:
		switch d := v.(type) {
		case time.Duration:
			return d, ""
		case string:
			if d, err := time.ParseDuration(d); err == nil {
				return d, ""
			}
		case int, int64, uint64, float64:
			if fmt.Sprint(d) == "0" {
				return time.Duration(0), ""
			}
			return nil, shown(`a duration (missing unit, as in "250ms")`)
		}
		return nil, shown("a duration")
	case kindList:
		switch l := v.(type) {
		case []string:
			return slices.Clone(l), ""
		case []any:
			out := make([]string, len(l))
			for i, e := range l {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Sprintf("element %d is not a string", i)
				}
				out[i] = s
			}
			return out, ""
		case string:
			if text {
				if l == "" {
					return []string{}, ""
				}
				out := strings.Split(l, ",")
				for i := range out {
					out[i] = strings.TrimSpace(out[i])
				}
				return out, ""
			}
		}
		return nil, shown("a list of strings")
	}
	panic("settings: unknown kind")
}

// describe shows a non-secret value in an error.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return strconv.Quote(v)
	case map[string]any, map[any]any:
		return "a mapping"
	case []any, []string:
		return "a list"
	}
	return fmt.Sprint(v)
}

// maxSecretFile caps what a reference in a secret reads: a token or a file
// of keys is small, and a reference to a device must not stall a reload.
const maxSecretFile = 1 << 20

// expand resolves the ${…} references of every string and list value that
// was set (defaults have none), with the config's grammar: a secret's
// ${file:PATH} and ${credential:NAME} give the file's contents, a path
// setting's the file's path. Secrets are then checked for what would make
// them unusable; a file of keys gives one key a line.
func (l *loader) expand(s *Settings, env []string) {
	v := reflect.ValueOf(s).Elem()
	creds, _ := lookupEnv(env, "CREDENTIALS_DIRECTORY")
	for _, f := range fields {
		at, set := l.origin[f.key]
		if !set || (f.kind != kindString && f.kind != kindList) {
			continue
		}
		r := resolver(f, env, creds)
		fv := v.FieldByIndex(f.index)
		if f.kind == kindString {
			out, ok := l.expandOne(at, f, f.key, fv.String(), r)
			if ok && f.secret {
				l.checkSecret(at, f.key, out, "empty (remove the setting to turn the token off)")
			}
			fv.SetString(out)
			continue
		}
		var out []string
		for i, raw := range fv.Interface().([]string) {
			name := fmt.Sprintf("%s[%d]", f.key, i)
			e, ok := l.expandOne(at, f, name, raw, r)
			if !ok || !f.secret {
				out = append(out, e)
				continue
			}
			n := len(out)
			for line := range strings.Lines(e) { // a file may hold one key a line
				line = strings.TrimRight(line, "\r\n")
				if strings.TrimSpace(line) != "" {
					l.checkSecret(at, name, line, "")
					out = append(out, line)
				}
			}
			if len(out) == n {
				l.add(at, "%s: empty", name)
			}
		}
		fv.Set(reflect.ValueOf(out))
	}
}

// expandOne resolves the references in one value named name, reporting the
// problems; ok is false if there were any.
func (l *loader) expandOne(at Problem, f field, name, raw string, r interp.Resolver) (string, bool) {
	out, problems := interp.Expand(raw, r)
	for _, p := range problems {
		if f.secret && p.Malformed {
			// The text of a malformed reference may be the secret itself.
			l.add(at, "%s: malformed reference%s; write $$ for a literal $", name, interp.Forms)
			continue
		}
		l.add(at, "%s: %s%s", name, p.What, p.Tail)
	}
	return out, len(problems) == 0
}

// checkSecret reports a secret that cannot be what its writer meant.
func (l *loader) checkSecret(at Problem, name, v, empty string) {
	switch {
	case v == "" && empty != "":
		l.add(at, "%s: %s", name, empty)
	case strings.TrimSpace(v) != v:
		l.add(at, "%s: leading or trailing white space", name)
	}
}

// resolver resolves f's references: variables from env; files, named by
// absolute paths since settings have no directory of their own, and
// credentials (files in $CREDENTIALS_DIRECTORY, systemd's LoadCredential=)
// as their contents, or as their paths for a setting that names a file.
func resolver(f field, env []string, creds string) interp.Resolver {
	file := func(path string) (string, error) {
		if !filepath.IsAbs(path) {
			return "", errors.New("the path must be absolute")
		}
		if f.path {
			return path, nil
		}
		return readSecret(path)
	}
	return interp.Resolver{
		LookupEnv: func(name string) (string, bool) { return lookupEnv(env, name) },
		File:      file,
		Credential: func(name string) (string, error) {
			if creds == "" {
				return "", errors.New("credentials are unavailable ($CREDENTIALS_DIRECTORY is not set)")
			}
			return file(filepath.Join(creds, name))
		},
	}
}

// readSecret reads a file a secret references, with one trailing newline
// trimmed. Errors name the file, never its contents.
func readSecret(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	switch {
	case err != nil:
		return "", err
	case len(b) > maxSecretFile:
		return "", fmt.Errorf("%s: larger than %d KiB", path, maxSecretFile>>10)
	}
	return interp.TrimNewline(string(b)), nil
}

// lookupEnv finds name in env; the last assignment wins.
func lookupEnv(env []string, name string) (string, bool) {
	for _, kv := range slices.Backward(env) {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

// validate checks the merged values; errors name the place that set them.
func (l *loader) validate(s *Settings) {
	bad := func(key, format string, args ...any) {
		l.add(l.origin[key], key+": "+format, args...)
	}
	oneOf := func(key, v string, allowed ...string) {
		if !slices.Contains(allowed, v) {
			bad(key, "%q is not one of %s%s", v, strings.Join(allowed, ", "), suggest.Hint(v, allowed))
		}
	}
	if s.ConfigDir == "" {
		bad("config_dir", "empty")
	}
	if _, port, err := net.SplitHostPort(s.Listen); err != nil {
		bad("listen", "%q is not host:port", s.Listen)
	} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		bad("listen", "%q: port %q is not a number from 0 to 65535", s.Listen, port)
	}
	oneOf("log.level", s.Log.Level, "debug", "info", "warn", "error")
	oneOf("log.format", s.Log.Format, "auto", "text", "json")
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			bad(key, "%v is not positive", d)
		}
	}
	positive("reload.debounce", s.Reload.Debounce)
	positive("reload.max_wait", s.Reload.MaxWait)
	if s.Reload.MaxWait > 0 && s.Reload.MaxWait < s.Reload.Debounce {
		bad("reload.max_wait", "%v is shorter than reload.debounce (%v)", s.Reload.MaxWait, s.Reload.Debounce)
	}
	if s.Reload.RescanInterval < 0 {
		bad("reload.rescan_interval", "%v is negative (0 turns the rescan off)", s.Reload.RescanInterval)
	}
	positive("shutdown.timeout", s.Shutdown.Timeout)
	l.validateTLS(s)
	l.validateEtcd(s)
}

// validateEtcd checks the etcd source: endpoints as URLs or host:port, a
// prefix, and not a config directory as well.
func (l *loader) validateEtcd(s *Settings) {
	e := &s.Source.Etcd
	where := l.origin["source.etcd.endpoints"]
	for i, ep := range e.Endpoints {
		host := ep
		if rest, ok := strings.CutPrefix(ep, "http://"); ok {
			host = rest
		} else if rest, ok := strings.CutPrefix(ep, "https://"); ok {
			host = rest
		}
		if _, _, err := net.SplitHostPort(host); err != nil || strings.Contains(host, "/") {
			l.add(where, "source.etcd.endpoints[%d]: %q is not http://host:port, https://host:port or host:port", i, ep)
		}
	}
	if len(e.Endpoints) == 0 {
		return
	}
	if e.Prefix == "" {
		l.add(l.origin["source.etcd.prefix"], "source.etcd.prefix: empty")
	}
	if where, ok := l.origin["config_dir"]; ok {
		l.add(where, "config_dir: set together with source.etcd.endpoints (the config comes from one source: remove one)")
	}
}

// validateTLS checks the certificate pair's settings: both or neither, and
// neither empty; and client CAs only with a pair.
func (l *loader) validateTLS(s *Settings) {
	if at, ok := l.origin["tls.client_allowed_sans"]; ok {
		switch {
		case s.TLS.ClientCAFile == "":
			l.add(at, "tls.client_allowed_sans: set without tls.client_ca_file (it narrows the certificates those CAs issue)")
		case len(s.TLS.ClientAllowedSANs) == 0:
			l.add(at, "tls.client_allowed_sans: an empty list (remove it to admit every certificate the CAs issue)")
		case slices.Contains(s.TLS.ClientAllowedSANs, ""):
			l.add(at, "tls.client_allowed_sans: an empty name")
		}
	}
	if caAt, ca := l.origin["tls.client_ca_file"]; ca {
		switch {
		case s.TLS.ClientCAFile == "":
			l.add(caAt, "tls.client_ca_file: empty (remove it to take no client certificates)")
		case s.TLS.CertFile == "":
			l.add(caAt, "tls.client_ca_file: set without tls.cert_file and tls.key_file (client certificates need TLS)")
		}
	}
	certAt, cert := l.origin["tls.cert_file"]
	keyAt, key := l.origin["tls.key_file"]
	if cert && s.TLS.CertFile == "" {
		l.add(certAt, "tls.cert_file: empty (remove tls.cert_file and tls.key_file to serve plain HTTP)")
	}
	if key && s.TLS.KeyFile == "" {
		l.add(keyAt, "tls.key_file: empty (remove tls.cert_file and tls.key_file to serve plain HTTP)")
	}
	switch {
	case cert && !key:
		l.add(certAt, "tls.cert_file: set without tls.key_file (set both or neither)")
	case key && !cert:
		l.add(keyAt, "tls.key_file: set without tls.cert_file (set both or neither)")
	}
}
