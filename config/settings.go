package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/v2"
	"go.yaml.in/yaml/v3"

	"github.com/awakend/awakend/internal/suggest"
)

// DefaultSettingsFile is the settings file LoadSettings reads when it is
// given no path and the file exists.
const DefaultSettingsFile = "/etc/awakend/awakend.yaml"

// SettingsEnvPrefix starts every environment variable that sets a daemon
// setting: AWAKEND_LISTEN sets listen, AWAKEND_RELOAD__DEBOUNCE sets
// reload.debounce ("__" nests, names are lower-cased).
const SettingsEnvPrefix = "AWAKEND_"

// Settings are the daemon's own settings, as opposed to the registry it
// serves: where the config directory is, where to listen, how to log,
// reload and shut down, and the secrets that guard the HTTP API. Each
// field's settings key is in its koanf tag.
type Settings struct {
	// ConfigDir (config_dir) is the directory of registry YAML files.
	ConfigDir string `koanf:"config_dir"`
	// Listen (listen) is the host:port the HTTP server listens on; an
	// empty host means every interface, port 0 a free port.
	Listen string `koanf:"listen"`
	// StateDir (state_dir) is where the daemon keeps what must outlive it:
	// the last configuration that went live, to serve when the config
	// directory does not validate at start-up, and the local copy of a
	// fleet's last applied pack; "" keeps nothing. It defaults to
	// $STATE_DIRECTORY (systemd's StateDirectory=), its first path if it
	// holds several.
	StateDir string `koanf:"state_dir"`
	// AllowEmpty (allow_empty) lets a config directory without resources
	// load as an empty registry.
	AllowEmpty bool `koanf:"allow_empty"`
	// Log configures the daemon's log.
	Log struct {
		// Level (log.level) is debug, info, warn or error.
		Level string `koanf:"level"`
		// Format (log.format) is auto (tint on a terminal, plain text
		// under journald), text or json.
		Format string `koanf:"format"`
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
		// route needs it. It may be ${file:PATH}, ${credential:NAME} or
		// ${NAME}, resolved by LoadSettings.
		Token string `koanf:"token"`
	} `koanf:"admin"`
	// Gateway configures the OpenAI-compatible gateway.
	Gateway struct {
		// APIKeys (gateway.api_keys) are the client keys that /v1/*
		// accepts; none means the gateway is open. Secrets, each may be a
		// reference like Admin.Token, and a reference that resolves to
		// several lines gives one key per non-empty line. In the
		// environment and in flags the keys are separated by commas.
		APIKeys []string `koanf:"api_keys"`
	} `koanf:"gateway"`
	// TLS configures HTTPS (with HTTP/2) on the listen address; with
	// neither file set the daemon serves plain HTTP. Both files are read
	// at start-up and again at every reload.
	TLS struct {
		// CertFile (tls.cert_file) is the PEM certificate chain, leaf
		// first; set with KeyFile or not at all. It is a path (relative
		// to the working directory), ${file:PATH} or ${credential:NAME};
		// LoadSettings resolves a reference to the file it names.
		CertFile string `koanf:"cert_file"`
		// KeyFile (tls.key_file) is the PEM private key of the leaf,
		// named as CertFile is.
		KeyFile string `koanf:"key_file"`
	} `koanf:"tls"`
	// Source names where the config comes from instead of ConfigDir.
	Source struct {
		// Etcd is a fleet's shared config, published by `awakend publish`.
		Etcd struct {
			// Endpoints (source.etcd.endpoints) are the etcd members'
			// client URLs; set, the daemon follows the fleet's current
			// pack instead of reading ConfigDir.
			Endpoints []string `koanf:"endpoints"`
			// Prefix (source.etcd.prefix) is the fleet's key prefix.
			Prefix string `koanf:"prefix"`
			// Host (source.etcd.host) names this daemon in the fleet;
			// the machine's host name if empty.
			Host string `koanf:"host"`
		} `koanf:"etcd"`
	} `koanf:"source"`
}

// DefaultSettings returns the settings used where neither the settings
// file, the environment nor a flag says otherwise.
func DefaultSettings() Settings {
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

// LoadSettings reads the daemon settings: defaults, then the settings
// file, then AWAKEND_* variables in env (os.Environ's form), then flags,
// each overriding the one before. path is the settings file; "" means
// DefaultSettingsFile if it exists. flags holds only the flags the user
// set, keyed by settings key ("listen", "log.level") with typed or string
// values. It returns the file it read ("" for none).
//
// Unknown keys, values of the wrong type and invalid values are errors,
// all of them reported, each naming its place (file:line:col, variable or
// --flag) and key. Secrets are never part of an error.
func LoadSettings(path string, env []string, flags map[string]any) (s Settings, file string, err error) {
	return loadSettings(path, DefaultSettingsFile, env, flags)
}

// loadSettings is LoadSettings with the default file as a parameter.
func loadSettings(path, defaultPath string, env []string, flags map[string]any) (Settings, string, error) {
	l := settingsLoader{k: koanf.New("."), origin: map[string]string{}}
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

	s := DefaultSettings()
	if dirs, ok := lookupEnv(env, "STATE_DIRECTORY"); ok {
		s.StateDir, _, _ = strings.Cut(dirs, ":")
	}
	dc := &mapstructure.DecoderConfig{ErrorUnused: true}
	if err := l.k.UnmarshalWithConf("", &s, koanf.UnmarshalConf{DecoderConfig: dc}); err != nil {
		// Values were checked against settingSpecs; this is a bug.
		return Settings{}, file, fmt.Errorf("settings: %w", err)
	}
	l.expandSecrets(&s, env)
	l.expandFiles(&s, env)
	l.validate(&s)
	if len(l.problems) > 0 {
		return Settings{}, file, errors.Join(l.problems...)
	}
	return s, file, nil
}

// settingKind is the type of a setting's value.
type settingKind int

const (
	settingString settingKind = iota
	settingBool
	settingDuration
	settingList
)

// settingSpec describes one settings key.
type settingSpec struct {
	kind   settingKind
	secret bool // never shown in an error
}

// settingSpecs lists every settings key; it must match Settings' tags.
var settingSpecs = map[string]settingSpec{
	"config_dir":             {kind: settingString},
	"listen":                 {kind: settingString},
	"state_dir":              {kind: settingString},
	"allow_empty":            {kind: settingBool},
	"log.level":              {kind: settingString},
	"log.format":             {kind: settingString},
	"reload.debounce":        {kind: settingDuration},
	"reload.max_wait":        {kind: settingDuration},
	"reload.rescan_interval": {kind: settingDuration},
	"shutdown.timeout":       {kind: settingDuration},
	"admin.token":            {kind: settingString, secret: true},
	"gateway.api_keys":       {kind: settingList, secret: true},
	"tls.cert_file":          {kind: settingString},
	"tls.key_file":           {kind: settingString},
	"source.etcd.endpoints":  {kind: settingList},
	"source.etcd.prefix":     {kind: settingString},
	"source.etcd.host":       {kind: settingString},
}

// settingKeys are the keys of settingSpecs, sorted.
var settingKeys = slices.Sorted(maps.Keys(settingSpecs))

// settingNames are the keys and sections, for did-you-mean hints.
var settingNames = append(slices.Clone(settingKeys), "admin", "gateway", "log", "reload", "shutdown", "tls", "source", "source.etcd")

// settingSection returns the keys below section key, or nil if key is not
// a section.
func settingSection(key string) []string {
	var keys []string
	for _, k := range settingKeys {
		if strings.HasPrefix(k, key+".") {
			keys = append(keys, k)
		}
	}
	return keys
}

// settingsLoader merges the layers into k, collecting every problem and
// remembering where each key was last set.
type settingsLoader struct {
	k        *koanf.Koanf
	origin   map[string]string // key → file:line:col, variable or --flag
	problems []error
}

func (l *settingsLoader) addf(where, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if where != "" {
		msg = where + ": " + msg
	}
	l.problems = append(l.problems, errors.New(msg))
}

// set checks v against key's spec and, if it fits, stages it in layer.
// text says that strings are to be parsed (environment, flags).
func (l *settingsLoader) set(layer map[string]any, where, key string, v any, text bool) {
	spec, ok := settingSpecs[key]
	if !ok {
		if sub := settingSection(key); sub != nil {
			if v == nil {
				return // an empty section, as in "log:" with all keys commented out
			}
			l.addf(where, "%s is a section (of %s), not a value", key, strings.Join(sub, ", "))
			return
		}
		hint := suggest.Hint(key, settingNames)
		for _, k := range settingKeys {
			if hint == "" && strings.HasSuffix(k, "."+key) { // in the wrong section
				hint = fmt.Sprintf(" (did you mean %q?)", k)
			}
		}
		l.addf(where, "unknown setting %q%s", key, hint)
		return
	}
	val, problem := spec.convert(v, text)
	if problem != "" {
		l.addf(where, "%s: %s", key, problem)
		return
	}
	layer[key] = val
	l.origin[key] = where
}

func (l *settingsLoader) merge(layer map[string]any) {
	if len(layer) > 0 {
		_ = l.k.Load(confmap.Provider(layer, "."), nil) // a map provider does not fail
	}
}

// loadFile parses a settings file. A file that is not YAML is an error
// returned at once; problems with keys and values are collected.
func (l *settingsLoader) loadFile(name string, b []byte) error {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil && err != io.EOF {
		return fmt.Errorf("%s: %w", name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return fmt.Errorf("%s: settings must be a single YAML document", name)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	at := func(n *yaml.Node) string { return fmt.Sprintf("%s:%d:%d", name, n.Line, n.Column) }
	switch {
	case root.Kind == 0 || root.Kind == yaml.DocumentNode || root.Tag == "!!null":
		return nil // empty, or only comments
	case root.Kind != yaml.MappingNode:
		return fmt.Errorf("%s: settings must be a mapping", at(root))
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
				l.addf(at(kn), "%s: set twice (first at line %d)", key, first.Line)
				continue
			}
			seen[key] = kn
			_, leaf := settingSpecs[key]
			section := !leaf && settingSection(key) != nil
			if section && vn.Kind == yaml.MappingNode {
				walk(key+".", vn)
				continue
			}
			where := at(vn)
			if !leaf && !section {
				where = at(kn) // an unknown key
			}
			var v any
			if err := vn.Decode(&v); err != nil {
				msg := "not a valid YAML value"
				if !settingSpecs[key].secret {
					msg = err.Error()
				}
				l.addf(where, "%s: %s", key, msg)
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
func (l *settingsLoader) loadEnv(env []string) {
	layer := map[string]any{}
	for _, kv := range env {
		name, v, _ := strings.Cut(kv, "=")
		rest, ok := strings.CutPrefix(name, SettingsEnvPrefix)
		if !ok || rest == "" {
			continue
		}
		key := strings.ReplaceAll(strings.ToLower(rest), "__", ".")
		l.set(layer, name, key, v, true)
	}
	l.merge(layer)
}

// loadFlags applies flags, named in errors as --config-dir, --log-level.
func (l *settingsLoader) loadFlags(flags map[string]any) {
	layer := map[string]any{}
	flagName := strings.NewReplacer(".", "-", "_", "-")
	for _, key := range slices.Sorted(maps.Keys(flags)) {
		l.set(layer, "--"+flagName.Replace(key), key, flags[key], true)
	}
	l.merge(layer)
}

// convert returns v as the Go value of the setting, or a problem that
// shows v unless the setting is secret.
func (spec settingSpec) convert(v any, text bool) (any, string) {
	shown := func(what string) string {
		if spec.secret {
			return "not " + what
		}
		return fmt.Sprintf("%s is not %s", describeSetting(v), what)
	}
	if v == nil {
		return nil, "missing value"
	}
	str, isString := v.(string)
	switch spec.kind {
	case settingString:
		if isString {
			return str, ""
		}
		return nil, shown("a string")
	case settingBool:
		if b, ok := v.(bool); ok {
			return b, ""
		}
		if isString && text {
			if b, err := strconv.ParseBool(str); err == nil {
				return b, ""
			}
		}
		return nil, shown("a boolean")
	case settingDuration:
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
	case settingList:
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
	panic("config: unknown setting kind")
}

// describeSetting shows a non-secret value in an error.
func describeSetting(v any) string {
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

// expandSecrets resolves references in the secrets that were set.
func (l *settingsLoader) expandSecrets(s *Settings, env []string) {
	if where, ok := l.origin["admin.token"]; ok {
		v, err := expandSecret(s.Admin.Token, env)
		switch {
		case err != nil:
			l.addf(where, "admin.token: %v", err)
		case v == "":
			l.addf(where, "admin.token: empty (remove the setting to turn the token off)")
		case strings.TrimSpace(v) != v:
			l.addf(where, "admin.token: leading or trailing white space")
		}
		s.Admin.Token = v
	}
	if where, ok := l.origin["gateway.api_keys"]; ok {
		var keys []string
		for i, raw := range s.Gateway.APIKeys {
			v, err := expandSecret(raw, env)
			if err != nil {
				l.addf(where, "gateway.api_keys[%d]: %v", i, err)
				continue
			}
			n := len(keys)
			for line := range strings.Lines(v) { // a file may hold one key a line
				line = strings.TrimRight(line, "\r\n")
				switch {
				case strings.TrimSpace(line) == "":
				case strings.TrimSpace(line) != line:
					l.addf(where, "gateway.api_keys[%d]: leading or trailing white space", i)
				default:
					keys = append(keys, line)
				}
			}
			if len(keys) == n && strings.TrimSpace(v) == "" {
				l.addf(where, "gateway.api_keys[%d]: empty", i)
			}
		}
		s.Gateway.APIKeys = keys
	}
}

// expandFiles resolves references in the settings that name a file: the
// TLS pair. Both or neither must be set.
func (l *settingsLoader) expandFiles(s *Settings, env []string) {
	for _, f := range []struct {
		key string
		v   *string
	}{{"tls.cert_file", &s.TLS.CertFile}, {"tls.key_file", &s.TLS.KeyFile}} {
		where, ok := l.origin[f.key]
		if !ok {
			continue
		}
		path, err := expandFile(*f.v, env)
		switch {
		case err != nil:
			l.addf(where, "%s: %v", f.key, err)
		case path == "":
			l.addf(where, "%s: empty (remove tls.cert_file and tls.key_file to serve plain HTTP)", f.key)
		}
		*f.v = path
	}
	_, cert := l.origin["tls.cert_file"]
	_, key := l.origin["tls.key_file"]
	switch {
	case cert && !key:
		l.addf(l.origin["tls.cert_file"], "tls.cert_file: set without tls.key_file (set both or neither)")
	case key && !cert:
		l.addf(l.origin["tls.key_file"], "tls.key_file: set without tls.cert_file (set both or neither)")
	}
}

// A settingRef is a value written as a reference: ${file:PATH},
// ${credential:NAME} (a file in $CREDENTIALS_DIRECTORY, systemd's
// LoadCredential=) or ${NAME} (a variable).
type settingRef struct {
	file  string // the file a file or credential reference names
	name  string // the variable a variable reference names
	value string // its value
	set   bool   // whether it is set
}

// errMalformedRef is a value with "${" that is not one whole reference.
var errMalformedRef = errors.New("malformed reference: the whole value must be ${file:PATH}, ${credential:NAME} or ${NAME}")

// resolveRef resolves the reference v, if it is one: ok is false for a value
// without "${". A file reference's path must be absolute; a variable is
// looked up in env. Errors show the reference, never a variable's value.
func resolveRef(v string, env []string) (ref settingRef, ok bool, err error) {
	if !strings.Contains(v, "${") {
		return settingRef{}, false, nil
	}
	inner, ok := strings.CutPrefix(v, "${")
	inner, ok2 := strings.CutSuffix(inner, "}")
	if !ok || !ok2 || strings.ContainsAny(inner, "${}") {
		return settingRef{}, true, errMalformedRef
	}
	kind, arg, hasArg := strings.Cut(inner, ":")
	switch {
	case kind == "file" && hasArg:
		if !filepath.IsAbs(arg) {
			return settingRef{}, true, fmt.Errorf("%s: the path must be absolute", v)
		}
		return settingRef{file: arg}, true, nil
	case kind == "credential" && hasArg:
		if arg == "" || arg == "." || arg == ".." || strings.Contains(arg, "/") {
			return settingRef{}, true, fmt.Errorf("%s: not a credential name", v)
		}
		dir, _ := lookupEnv(env, "CREDENTIALS_DIRECTORY")
		if dir == "" {
			return settingRef{}, true, fmt.Errorf("%s: CREDENTIALS_DIRECTORY is not set", v)
		}
		return settingRef{file: filepath.Join(dir, arg)}, true, nil
	case !hasArg && isEnvName(inner):
		s, set := lookupEnv(env, inner)
		return settingRef{name: inner, value: s, set: set}, true, nil
	}
	return settingRef{}, true, errMalformedRef
}

// expandSecret resolves a secret: the contents of the file a reference
// names, trailing newlines trimmed, or the variable's value. Any other
// value is the secret itself. Errors show the reference, never a secret.
func expandSecret(v string, env []string) (string, error) {
	ref, ok, err := resolveRef(v, env)
	switch {
	case err != nil:
		return "", err
	case !ok:
		return v, nil
	case ref.name != "" && !ref.set:
		return "", fmt.Errorf("%s: %s is not set", v, ref.name)
	case ref.name != "":
		return ref.value, nil
	}
	b, err := os.ReadFile(ref.file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", v, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// expandFile resolves a setting that names a file: a path, or a file or
// credential reference, which gives the path of the file it names. The
// file is not read here.
func expandFile(v string, env []string) (string, error) {
	ref, ok, err := resolveRef(v, env)
	switch {
	case errors.Is(err, errMalformedRef):
		return "", errors.New("malformed reference: the whole value must be a path, ${file:PATH} or ${credential:NAME}")
	case err != nil:
		return "", err
	case !ok:
		return v, nil
	case ref.name != "":
		return "", fmt.Errorf("%s: a variable does not name a file (write a path, ${file:PATH} or ${credential:NAME})", v)
	}
	return ref.file, nil
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

func isEnvName(s string) bool {
	for i, c := range s {
		if c != '_' && (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return s != ""
}

// validate checks the merged values; errors name the place that set them.
func (l *settingsLoader) validate(s *Settings) {
	bad := func(key, format string, args ...any) {
		l.addf(l.origin[key], key+": "+format, args...)
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
	l.validateEtcd(s)
}

// validateEtcd checks the etcd source: endpoints as URLs or host:port, a
// prefix, and not a config directory as well.
func (l *settingsLoader) validateEtcd(s *Settings) {
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
			l.addf(where, "source.etcd.endpoints[%d]: %q is not http://host:port, https://host:port or host:port", i, ep)
		}
	}
	if len(e.Endpoints) == 0 {
		return
	}
	if e.Prefix == "" {
		l.addf(l.origin["source.etcd.prefix"], "source.etcd.prefix: empty")
	}
	if where, ok := l.origin["config_dir"]; ok {
		l.addf(where, "config_dir: set together with source.etcd.endpoints (the config comes from one source: remove one)")
	}
}
