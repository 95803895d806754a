package settings

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// writeSettingsFile writes content to name in dir and returns its path.
func writeSettingsFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// noDefaultSettingsFile is a default path that does not exist.
func noDefaultSettingsFile(t *testing.T) string {
	return filepath.Join(t.TempDir(), "absent.yaml")
}

func TestDefaultSettings(t *testing.T) {
	s, file, err := load("", noDefaultSettingsFile(t), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if file != "" {
		t.Errorf("file = %q, want none", file)
	}
	want := Settings{ConfigDir: "/etc/awakend/conf.d", Listen: "127.0.0.1:8700"}
	want.Log.Level, want.Log.Format = "info", "auto"
	want.Reload.Debounce, want.Reload.MaxWait, want.Reload.RescanInterval = 250*time.Millisecond, 2*time.Second, 30*time.Second
	want.Shutdown.Timeout = 30 * time.Second
	want.Source.Etcd.Prefix = "/awakend/"
	if !reflect.DeepEqual(s, want) || !reflect.DeepEqual(Default(), want) {
		t.Errorf("loaded %+v\ndefaults %+v\nwant %+v", s, Default(), want)
	}
}

func TestLoadSettings(t *testing.T) {
	tests := []struct {
		name  string
		file  string // settings file content; "" for no file
		env   []string
		flags map[string]any
		want  func(s *Settings) // applied to Default()
	}{
		{
			name: "file overrides defaults",
			file: "listen: 0.0.0.0:9000\nlog:\n  level: debug\nreload:\n  debounce: 1s\ngateway:\n  api_keys: [a, b]\nallow_empty: true\n",
			want: func(s *Settings) {
				s.Listen, s.Log.Level, s.Reload.Debounce = "0.0.0.0:9000", "debug", time.Second
				s.Gateway.APIKeys, s.AllowEmpty = []string{"a", "b"}, true
			},
		},
		{
			name: "env overrides file",
			file: "listen: 0.0.0.0:9000\nlog:\n  level: debug\n",
			env:  []string{"AWAKEND_LISTEN=:9100", "HOME=/root"},
			want: func(s *Settings) { s.Listen, s.Log.Level = ":9100", "debug" },
		},
		{
			name:  "flags override env",
			file:  "listen: 0.0.0.0:9000\n",
			env:   []string{"AWAKEND_LISTEN=:9100", "AWAKEND_LOG__LEVEL=warn"},
			flags: map[string]any{"listen": ":9200"},
			want:  func(s *Settings) { s.Listen, s.Log.Level = ":9200", "warn" },
		},
		{
			name: "double underscore nests, single underscore stays, names are lower-cased",
			env: []string{
				"AWAKEND_RELOAD__DEBOUNCE=500ms", "AWAKEND_RELOAD__MAX_WAIT=3s", "AWAKEND_CONFIG_DIR=/srv/conf",
				"AWAKEND_Log__Format=json", "AWAKEND_ALLOW_EMPTY=true", "AWAKEND_GATEWAY__API_KEYS=k1, k2",
				"AWAKEND_SHUTDOWN__TIMEOUT=5s", "AWAKEND_RELOAD__RESCAN_INTERVAL=0",
			},
			want: func(s *Settings) {
				s.Reload.Debounce, s.Reload.MaxWait, s.ConfigDir = 500*time.Millisecond, 3*time.Second, "/srv/conf"
				s.Log.Format, s.AllowEmpty, s.Gateway.APIKeys = "json", true, []string{"k1", "k2"}
				s.Shutdown.Timeout, s.Reload.RescanInterval = 5*time.Second, 0
			},
		},
		{
			name: "a key set in one section keeps its siblings",
			file: "log:\n  format: text\n",
			env:  []string{"AWAKEND_RELOAD__MAX_WAIT=10s"},
			want: func(s *Settings) { s.Log.Format, s.Reload.MaxWait = "text", 10*time.Second },
		},
		{
			name:  "typed and string flag values",
			flags: map[string]any{"config_dir": "/x", "reload.debounce": 2 * time.Second, "allow_empty": "true", "log.level": "error", "gateway.api_keys": []string{"f1"}},
			want: func(s *Settings) {
				s.ConfigDir, s.Reload.Debounce, s.AllowEmpty, s.Log.Level = "/x", 2*time.Second, true, "error"
				s.Gateway.APIKeys = []string{"f1"}
			},
		},
		{
			name: "empty sections and comments",
			file: "# nothing yet\nlog:\nreload: {}\n",
			want: func(*Settings) {},
		},
		{
			name: "empty file",
			file: "\n",
			want: func(*Settings) {},
		},
		{
			name: "state_dir defaults to systemd's STATE_DIRECTORY, its first path",
			env:  []string{"STATE_DIRECTORY=/var/lib/awakend:/var/lib/other"},
			want: func(s *Settings) { s.StateDir = "/var/lib/awakend" },
		},
		{
			name: "state_dir from the file overrides STATE_DIRECTORY",
			file: "state_dir: /srv/state\n",
			env:  []string{"STATE_DIRECTORY=/var/lib/awakend"},
			want: func(s *Settings) { s.StateDir = "/srv/state" },
		},
		{
			name: "an empty state_dir turns it off under StateDirectory=",
			env:  []string{"STATE_DIRECTORY=/var/lib/awakend", "AWAKEND_STATE_DIR="},
			want: func(*Settings) {},
		},
		{
			name: "an empty api_keys list from the environment clears the file's",
			file: "gateway:\n  api_keys: [a]\n",
			env:  []string{"AWAKEND_GATEWAY__API_KEYS="},
			want: func(*Settings) {},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.file != "" {
				path = writeSettingsFile(t, t.TempDir(), "awakend.yaml", tt.file)
			}
			got, file, err := load(path, noDefaultSettingsFile(t), tt.env, tt.flags)
			if err != nil {
				t.Fatal(err)
			}
			if file != path {
				t.Errorf("file = %q, want %q", file, path)
			}
			want := Default()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestLoadSettingsEveryKey(t *testing.T) {
	got, file, err := load("testdata/settings/good.yaml", noDefaultSettingsFile(t), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if file != "testdata/settings/good.yaml" {
		t.Errorf("file = %q", file)
	}
	var want Settings
	want.ConfigDir, want.Listen, want.AllowEmpty = "/srv/awakend/conf.d", "[::1]:9000", true
	want.StateDir = "/var/lib/awakend"
	want.Log.Level, want.Log.Format = "debug", "json"
	want.Reload.Debounce, want.Reload.MaxWait, want.Reload.RescanInterval = 100*time.Millisecond, 5*time.Second, 0
	want.Shutdown.Timeout = time.Minute
	want.Admin.Token = "admin-literal"
	want.Gateway.APIKeys = []string{"key-one", "key-two"}
	want.TLS.CertFile, want.TLS.KeyFile = "/etc/awakend/tls/cert.pem", "/etc/awakend/tls/key.pem"
	want.Source.Etcd.Prefix, want.Source.Etcd.Host = "/fleet/eu/", "web-1"
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// TestKeysComeFromTheStruct: the keys, and which are secret, are read from
// Settings itself.
func TestKeysComeFromTheStruct(t *testing.T) {
	want := []string{
		"admin.token", "allow_empty", "config_dir", "gateway.api_keys", "listen", "log.format", "log.level",
		"reload.debounce", "reload.max_wait", "reload.rescan_interval", "shutdown.timeout",
		"source.etcd.endpoints", "source.etcd.host", "source.etcd.prefix", "state_dir", "tls.cert_file", "tls.client_allowed_sans", "tls.client_ca_file", "tls.key_file",
	}
	if !slices.Equal(Keys(), want) {
		t.Errorf("Keys() = %q\nwant     %q", Keys(), want)
	}
	for _, f := range fields {
		if f.secret != (f.key == "admin.token" || f.key == "gateway.api_keys") {
			t.Errorf("%s: secret = %v", f.key, f.secret)
		}
	}
}

func TestFingerprint(t *testing.T) {
	a, b := Default(), Default()
	if a.Fingerprint() != b.Fingerprint() || len(a.Fingerprint()) != 64 {
		t.Fatalf("equal settings: %s and %s", a.Fingerprint(), b.Fingerprint())
	}
	b.Admin.Token = "s3cret"
	if a.Fingerprint() == b.Fingerprint() || strings.Contains(b.Fingerprint(), "s3cret") {
		t.Errorf("a token changes nothing: %s", b.Fingerprint())
	}
}

func TestLoadSettingsDefaultFile(t *testing.T) {
	dir := t.TempDir()
	def := writeSettingsFile(t, dir, "awakend.yaml", "listen: :9999\n")
	s, file, err := load("", def, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if file != def || s.Listen != ":9999" {
		t.Errorf("file %q listen %q, want %q and :9999", file, s.Listen, def)
	}

	// An explicit file replaces the default one, which is not read.
	other := writeSettingsFile(t, dir, "other.yaml", "log:\n  level: warn\n")
	s, file, err = load(other, def, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if file != other || s.Listen != Default().Listen || s.Log.Level != "warn" {
		t.Errorf("file %q listen %q level %q", file, s.Listen, s.Log.Level)
	}

	// An explicit file that is missing is an error.
	_, _, err = load(filepath.Join(dir, "missing.yaml"), def, nil, nil)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("err = %v, want a not-exist error naming the file", err)
	}

	// A default file that is there but unreadable is an error too.
	_, _, err = load("", dir, nil, nil)
	if err == nil {
		t.Error("a directory as the default file loaded")
	}
}

func TestLoadSettingsEtcd(t *testing.T) {
	env := []string{"AWAKEND_SOURCE__ETCD__ENDPOINTS=http://10.0.0.1:2379, 10.0.0.2:2379"}
	got, _, err := load("", noDefaultSettingsFile(t), env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"http://10.0.0.1:2379", "10.0.0.2:2379"}; !reflect.DeepEqual(got.Source.Etcd.Endpoints, want) || got.Source.Etcd.Prefix != "/awakend/" {
		t.Fatalf("etcd source %+v, want endpoints %q and the default prefix", got.Source.Etcd, want)
	}
}

func TestLoadSettingsErrors(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		env   []string
		flags map[string]any
		want  []string // each must appear in the error
	}{
		{
			name: "etcd endpoints that are not addresses",
			file: "source:\n  etcd:\n    endpoints: [\"http://10.0.0.1:2379\", \"10.0.0.2\", \"http://h:2379/v3\"]\n",
			want: []string{
				`awakend.yaml:3:16: source.etcd.endpoints[1]: "10.0.0.2" is not http://host:port, https://host:port or host:port`,
				`source.etcd.endpoints[2]: "http://h:2379/v3" is not`,
			},
		},
		{
			name: "a config directory and etcd both",
			file: "config_dir: /etc/awakend/conf.d\nsource:\n  etcd:\n    endpoints: [\"127.0.0.1:2379\"]\n",
			want: []string{"awakend.yaml:1:13: config_dir: set together with source.etcd.endpoints"},
		},
		{
			name: "an etcd source with an empty prefix",
			env:  []string{"AWAKEND_SOURCE__ETCD__ENDPOINTS=127.0.0.1:2379", "AWAKEND_SOURCE__ETCD__PREFIX="},
			want: []string{"AWAKEND_SOURCE__ETCD__PREFIX: source.etcd.prefix: empty"},
		},
		{
			name: "unknown key in the etcd section",
			file: "source:\n  etcd:\n    endpoint: [\"127.0.0.1:2379\"]\n",
			want: []string{`awakend.yaml:3:5: unknown setting "source.etcd.endpoint" (did you mean "source.etcd.endpoints"?)`},
		},
		{
			name: "unknown key in file",
			file: "lisen: :80\n",
			want: []string{`awakend.yaml:1:1: unknown setting "lisen" (did you mean "listen"?)`},
		},
		{
			name: "unknown nested key in file",
			file: "log:\n  levle: debug\n",
			want: []string{`awakend.yaml:2:3: unknown setting "log.levle" (did you mean "log.level"?)`},
		},
		{
			name: "unknown section in file",
			file: "rload:\n  debounce: 1s\n",
			want: []string{`awakend.yaml:1:1: unknown setting "rload" (did you mean "reload"?)`},
		},
		{
			name: "key in the wrong section",
			file: "debounce: 1s\n",
			want: []string{`awakend.yaml:1:1: unknown setting "debounce" (did you mean "reload.debounce"?)`},
		},
		{
			name: "keys are case-sensitive in the file",
			file: "Listen: :80\n",
			want: []string{`unknown setting "Listen" (did you mean "listen"?)`},
		},
		{
			name: "unknown key in env",
			env:  []string{"AWAKEND_LISTN=:80"},
			want: []string{`AWAKEND_LISTN: unknown setting "listn" (did you mean "listen"?)`},
		},
		{
			name: "single underscore does not nest",
			env:  []string{"AWAKEND_RELOAD_DEBOUNCE=1s"},
			want: []string{`AWAKEND_RELOAD_DEBOUNCE: unknown setting "reload_debounce" (did you mean "reload.debounce"?)`},
		},
		{
			name:  "unknown key in flags",
			flags: map[string]any{"lisen": ":80"},
			want:  []string{`--lisen: unknown setting "lisen" (did you mean "listen"?)`},
		},
		{
			name: "wrong type in file",
			file: "reload:\n  debounce: fast\n",
			want: []string{`awakend.yaml:2:13: reload.debounce: "fast" is not a duration`},
		},
		{
			name: "duration without unit",
			file: "reload:\n  max_wait: 250\n",
			want: []string{`reload.max_wait: 250 is not a duration (missing unit, as in "250ms")`},
		},
		{
			name: "wrong type in env",
			env:  []string{"AWAKEND_RELOAD__DEBOUNCE=fast", "AWAKEND_ALLOW_EMPTY=maybe"},
			want: []string{
				`AWAKEND_RELOAD__DEBOUNCE: reload.debounce: "fast" is not a duration`,
				`AWAKEND_ALLOW_EMPTY: allow_empty: "maybe" is not a boolean`,
			},
		},
		{
			name:  "wrong type in flags",
			flags: map[string]any{"log.level": 3, "reload.debounce": "soon"},
			want: []string{
				`--log-level: log.level: 3 is not a string`,
				`--reload-debounce: reload.debounce: "soon" is not a duration`,
			},
		},
		{
			name: "a string is not a boolean in the file",
			file: "allow_empty: \"yes\"\nlisten: 8700\n",
			want: []string{`allow_empty: "yes" is not a boolean`, `awakend.yaml:2:9: listen: 8700 is not a string`},
		},
		{
			name: "section given a value",
			file: "log: debug\n",
			want: []string{`awakend.yaml:1:6: log is a section (of log.format, log.level), not a value`},
		},
		{
			name: "missing value",
			file: "listen:\n",
			want: []string{`awakend.yaml:1:8: listen: missing value`},
		},
		{
			name: "invalid values name their place",
			file: "log:\n  level: inof\n",
			env:  []string{"AWAKEND_LOG__FORMAT=yaml", "AWAKEND_LISTEN=localhost"},
			want: []string{
				`awakend.yaml:2:10: log.level: "inof" is not one of debug, info, warn, error (did you mean "info"?)`,
				`AWAKEND_LOG__FORMAT: log.format: "yaml" is not one of auto, text, json`,
				`AWAKEND_LISTEN: listen: "localhost" is not host:port`,
			},
		},
		{
			name:  "port out of range",
			flags: map[string]any{"listen": "127.0.0.1:99999"},
			want:  []string{`--listen: listen: "127.0.0.1:99999": port "99999" is not a number from 0 to 65535`},
		},
		{
			name: "durations",
			file: "reload:\n  debounce: 0s\n  rescan_interval: -1s\nshutdown:\n  timeout: 0s\n",
			want: []string{
				`awakend.yaml:2:13: reload.debounce: 0s is not positive`,
				`awakend.yaml:3:20: reload.rescan_interval: -1s is negative (0 turns the rescan off)`,
				`awakend.yaml:5:12: shutdown.timeout: 0s is not positive`,
			},
		},
		{
			name: "max wait shorter than debounce",
			env:  []string{"AWAKEND_RELOAD__DEBOUNCE=3s"},
			want: []string{`reload.max_wait: 2s is shorter than reload.debounce (3s)`},
		},
		{
			name: "empty config dir",
			env:  []string{"AWAKEND_CONFIG_DIR="},
			want: []string{`AWAKEND_CONFIG_DIR: config_dir: empty`},
		},
		{
			name: "key set twice",
			file: "listen: :80\nlog:\n  level: info\nlisten: :81\n",
			want: []string{`awakend.yaml:4:1: listen: set twice (first at line 1)`},
		},
		{
			name: "not YAML",
			file: "listen: [\n",
			want: []string{`awakend.yaml: yaml:`},
		},
		{
			name: "two documents",
			file: "listen: :80\n---\nlisten: :81\n",
			want: []string{`awakend.yaml: settings must be a single YAML document`},
		},
		{
			name: "not a mapping",
			file: "- listen\n",
			want: []string{`awakend.yaml:1:1: settings must be a mapping`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.file != "" {
				path = writeSettingsFile(t, t.TempDir(), "awakend.yaml", tt.file)
			}
			_, _, err := load(path, noDefaultSettingsFile(t), tt.env, tt.flags)
			if err == nil {
				t.Fatal("loaded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
		})
	}
}

// TestLoadSettingsAllProblems checks the full report for a file with many
// problems: every one, in file order, with its place.
func TestLoadSettingsAllProblems(t *testing.T) {
	_, _, err := load("testdata/settings/bad.yaml", noDefaultSettingsFile(t), nil, nil)
	want := strings.Join([]string{
		`testdata/settings/bad.yaml:2:1: unknown setting "lisen" (did you mean "listen"?)`,
		`testdata/settings/bad.yaml:5:3: unknown setting "log.fromat" (did you mean "log.format"?)`,
		`testdata/settings/bad.yaml:7:13: reload.debounce: "fast" is not a duration`,
		`testdata/settings/bad.yaml:8:13: reload.max_wait: 250 is not a duration (missing unit, as in "250ms")`,
		`testdata/settings/bad.yaml:9:1: unknown setting "rescan_interval" (did you mean "reload.rescan_interval"?)`,
		`testdata/settings/bad.yaml:10:11: shutdown is a section (of shutdown.timeout), not a value`,
		`testdata/settings/bad.yaml:12:10: admin.token: not a string`,
		`testdata/settings/bad.yaml:4:10: log.level: "verbose" is not one of debug, info, warn, error`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("error\n%v\nwant\n%s", err, want)
	}
}

func TestLoadSettingsSecrets(t *testing.T) {
	dir := t.TempDir()
	tokenFile := writeSettingsFile(t, dir, "token", "s3cret-from-file\n")
	creds := filepath.Join(dir, "creds")
	if err := os.Mkdir(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	writeSettingsFile(t, creds, "admin", "s3cret-credential\r\n")
	writeSettingsFile(t, creds, "keys", "s3cret-k1\n\ns3cret-k2\n")
	credEnv := "CREDENTIALS_DIRECTORY=" + creds
	missing := filepath.Join(dir, "missing")
	big := writeSettingsFile(t, dir, "big", strings.Repeat("k", 1<<20+1))

	tests := []struct {
		name      string
		file      string
		env       []string
		wantToken string
		wantKeys  []string
		wantErr   []string // if set, loading fails with errors containing each
	}{
		{
			name:      "literal",
			file:      "admin:\n  token: s3cret-literal\ngateway:\n  api_keys: [s3cret-a]\n",
			wantToken: "s3cret-literal", wantKeys: []string{"s3cret-a"},
		},
		{
			name:      "file, trailing newline trimmed",
			env:       []string{"AWAKEND_ADMIN__TOKEN=${file:" + tokenFile + "}"},
			wantToken: "s3cret-from-file",
		},
		{
			name:      "credential",
			file:      "admin:\n  token: ${credential:admin}\n",
			env:       []string{credEnv},
			wantToken: "s3cret-credential",
		},
		{
			name:      "environment variable",
			file:      "admin:\n  token: ${ADMIN_TOKEN}\ngateway:\n  api_keys: [\"${GW_KEY}\", s3cret-b]\n",
			env:       []string{"ADMIN_TOKEN=s3cret-env", "GW_KEY=s3cret-gw"},
			wantToken: "s3cret-env", wantKeys: []string{"s3cret-gw", "s3cret-b"},
		},
		{
			name:     "a file of keys gives one key a line",
			env:      []string{credEnv, "AWAKEND_GATEWAY__API_KEYS=${credential:keys},s3cret-c"},
			wantKeys: []string{"s3cret-k1", "s3cret-k2", "s3cret-c"},
		},
		{
			name:    "missing file",
			file:    "admin:\n  token: ${file:" + missing + "}\ngateway:\n  api_keys: [s3cret-kept]\n",
			wantErr: []string{"awakend.yaml:2:10: admin.token: cannot read \"${file:" + missing + "}\": open " + missing + ": no such file or directory"},
		},
		{
			name:    "missing credential",
			env:     []string{credEnv, "AWAKEND_ADMIN__TOKEN=${credential:nope}"},
			wantErr: []string{"AWAKEND_ADMIN__TOKEN: admin.token: cannot read \"${credential:nope}\": open " + filepath.Join(creds, "nope") + ": no such file or directory"},
		},
		{
			name:    "no credentials directory",
			env:     []string{"AWAKEND_ADMIN__TOKEN=${credential:admin}"},
			wantErr: []string{"admin.token: cannot read \"${credential:admin}\": credentials are unavailable ($CREDENTIALS_DIRECTORY is not set)"},
		},
		{
			name:    "credential name with a slash",
			env:     []string{credEnv, "AWAKEND_ADMIN__TOKEN=${credential:../token}"},
			wantErr: []string{"admin.token: cannot read \"${credential:../token}\": a credential name is a plain file name"},
		},
		{
			name:    "unset variable",
			env:     []string{"AWAKEND_GATEWAY__API_KEYS=s3cret-x,${NOPE}"},
			wantErr: []string{"AWAKEND_GATEWAY__API_KEYS: gateway.api_keys[1]: undefined environment variable \"NOPE\""},
		},
		{
			name:    "relative file",
			env:     []string{"AWAKEND_ADMIN__TOKEN=${file:token}"},
			wantErr: []string{"admin.token: cannot read \"${file:token}\": the path must be absolute"},
		},
		{
			name:      "a reference inside a value, and $$ for a dollar",
			env:       []string{"AWAKEND_ADMIN__TOKEN=s3cret-${X}-$$", "X=x"},
			wantToken: "s3cret-x-$",
		},
		{
			name:    "a malformed reference is not quoted",
			env:     []string{"AWAKEND_ADMIN__TOKEN=s3cret-${bad ref}", "AWAKEND_GATEWAY__API_KEYS=s3cret-${vault:s3cret}"},
			wantErr: []string{"admin.token: malformed reference (want ${VAR}", "gateway.api_keys[0]: malformed reference", "write $$ for a literal $"},
		},
		{
			name:    "a secret file too large",
			env:     []string{"AWAKEND_ADMIN__TOKEN=${file:" + big + "}"},
			wantErr: []string{"larger than 1024 KiB"},
		},
		{
			name:    "empty token",
			file:    "admin:\n  token: \"\"\n",
			wantErr: []string{"awakend.yaml:2:10: admin.token: empty (remove the setting to turn the token off)"},
		},
		{
			name:    "token from an empty variable",
			env:     []string{"AWAKEND_ADMIN__TOKEN=${T}", "T="},
			wantErr: []string{"admin.token: empty"},
		},
		{
			name:    "white space around secrets",
			file:    "admin:\n  token: \" s3cret-padded\"\ngateway:\n  api_keys: [\"s3cret-d \", \"\"]\n",
			wantErr: []string{"admin.token: leading or trailing white space", "gateway.api_keys[0]: leading or trailing white space", "gateway.api_keys[1]: empty"},
		},
		{
			name:    "secrets of the wrong type",
			file:    "admin:\n  token: 12345\ngateway:\n  api_keys: s3cret-scalar\n",
			wantErr: []string{"awakend.yaml:2:10: admin.token: not a string", "awakend.yaml:4:13: gateway.api_keys: not a list of strings"},
		},
		{
			name:    "secret list element of the wrong type",
			file:    "gateway:\n  api_keys: [s3cret-e, 67890]\n",
			wantErr: []string{"gateway.api_keys: element 1 is not a string"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.file != "" {
				path = writeSettingsFile(t, t.TempDir(), "awakend.yaml", tt.file)
			}
			s, _, err := load(path, noDefaultSettingsFile(t), tt.env, nil)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatal("loaded, want an error")
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
					}
				}
				for _, secret := range []string{"s3cret", "12345", "67890"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error shows a secret (%s):\n%v", secret, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Admin.Token != tt.wantToken || !slices.Equal(s.Gateway.APIKeys, tt.wantKeys) {
				t.Errorf("token %q keys %q, want %q %q", s.Admin.Token, s.Gateway.APIKeys, tt.wantToken, tt.wantKeys)
			}
		})
	}
}

func TestLoadSettingsTLS(t *testing.T) {
	creds := t.TempDir()
	credEnv := "CREDENTIALS_DIRECTORY=" + creds
	tests := []struct {
		name     string
		file     string
		env      []string
		flags    map[string]any
		wantCert string
		wantKey  string
		wantCA   string
		wantSANs []string
		wantErr  []string // if set, loading fails with errors containing each
	}{
		{
			name:     "allowed SANs",
			file:     "tls:\n  cert_file: /c.pem\n  key_file: /k.pem\n  client_ca_file: /admins.pem\n  client_allowed_sans: [alice@example.com, spiffe://example.com/ops]\n",
			wantCert: "/c.pem", wantKey: "/k.pem", wantCA: "/admins.pem", wantSANs: []string{"alice@example.com", "spiffe://example.com/ops"},
		},
		{
			name:     "allowed SANs from the environment",
			file:     "tls:\n  cert_file: /c.pem\n  key_file: /k.pem\n  client_ca_file: /admins.pem\n",
			env:      []string{"AWAKEND_TLS__CLIENT_ALLOWED_SANS=alice@example.com,ops.example.com"},
			wantCert: "/c.pem", wantKey: "/k.pem", wantCA: "/admins.pem", wantSANs: []string{"alice@example.com", "ops.example.com"},
		},
		{
			name:    "allowed SANs without client CAs",
			file:    "tls:\n  cert_file: /c.pem\n  key_file: /k.pem\n  client_allowed_sans: [alice@example.com]\n",
			wantErr: []string{"awakend.yaml:4:24: tls.client_allowed_sans: set without tls.client_ca_file"},
		},
		{
			name:    "an empty list of allowed SANs",
			file:    "tls:\n  cert_file: /c.pem\n  key_file: /k.pem\n  client_ca_file: /a.pem\n  client_allowed_sans: []\n",
			wantErr: []string{"awakend.yaml:5:24: tls.client_allowed_sans: an empty list (remove it to admit every certificate the CAs issue)"},
		},
		{
			name:    "an empty allowed SAN",
			file:    "tls:\n  cert_file: /c.pem\n  key_file: /k.pem\n  client_ca_file: /a.pem\n  client_allowed_sans: [\"\"]\n",
			wantErr: []string{"tls.client_allowed_sans: an empty name"},
		},
		{
			name:     "client CAs",
			file:     "tls:\n  cert_file: /c.pem\n  key_file: /k.pem\n  client_ca_file: /admins.pem\n",
			wantCert: "/c.pem", wantKey: "/k.pem", wantCA: "/admins.pem",
		},
		{
			name:     "client CAs from a credential",
			env:      []string{credEnv, "AWAKEND_TLS__CLIENT_CA_FILE=${credential:admins.pem}"},
			file:     "tls:\n  cert_file: /c.pem\n  key_file: /k.pem\n",
			wantCert: "/c.pem", wantKey: "/k.pem", wantCA: filepath.Join(creds, "admins.pem"),
		},
		{
			name:    "client CAs without TLS",
			file:    "tls:\n  client_ca_file: /admins.pem\n",
			wantErr: []string{"awakend.yaml:2:19: tls.client_ca_file: set without tls.cert_file and tls.key_file (client certificates need TLS)"},
		},
		{
			name:    "empty client CAs",
			file:    "tls:\n  cert_file: /c.pem\n  key_file: /k.pem\n  client_ca_file: \"\"\n",
			wantErr: []string{"awakend.yaml:4:19: tls.client_ca_file: empty (remove it to take no client certificates)"},
		},
		{
			name:     "paths, not read",
			file:     "tls:\n  cert_file: /nonexistent/cert.pem\n  key_file: relative/key.pem\n",
			wantCert: "/nonexistent/cert.pem", wantKey: "relative/key.pem",
		},
		{
			name:     "credentials name files in the credentials directory",
			env:      []string{credEnv, "AWAKEND_TLS__CERT_FILE=${credential:tls.crt}", "AWAKEND_TLS__KEY_FILE=${credential:tls.key}"},
			wantCert: filepath.Join(creds, "tls.crt"), wantKey: filepath.Join(creds, "tls.key"),
		},
		{
			name:     "a file reference names its file",
			file:     "tls:\n  cert_file: ${file:/etc/ssl/a.pem}\n  key_file: /etc/ssl/a.key\n",
			wantCert: "/etc/ssl/a.pem", wantKey: "/etc/ssl/a.key",
		},
		{
			name:     "flags",
			flags:    map[string]any{"tls.cert_file": "/c.pem", "tls.key_file": "/k.pem"},
			wantCert: "/c.pem", wantKey: "/k.pem",
		},
		{
			name:    "cert without key",
			file:    "tls:\n  cert_file: /c.pem\n",
			wantErr: []string{"awakend.yaml:2:14: tls.cert_file: set without tls.key_file (set both or neither)"},
		},
		{
			name:    "key without cert",
			env:     []string{"AWAKEND_TLS__KEY_FILE=/k.pem"},
			wantErr: []string{"AWAKEND_TLS__KEY_FILE: tls.key_file: set without tls.cert_file (set both or neither)"},
		},
		{
			name:     "a key from the environment completes the file's cert",
			file:     "tls:\n  cert_file: /c.pem\n",
			env:      []string{"AWAKEND_TLS__KEY_FILE=/k.pem"},
			wantCert: "/c.pem", wantKey: "/k.pem",
		},
		{
			name:    "empty",
			file:    "tls:\n  cert_file: \"\"\n  key_file: /k.pem\n",
			wantErr: []string{"awakend.yaml:2:14: tls.cert_file: empty (remove tls.cert_file and tls.key_file to serve plain HTTP)"},
		},
		{
			name:    "no credentials directory",
			env:     []string{"AWAKEND_TLS__CERT_FILE=${credential:tls.crt}", "AWAKEND_TLS__KEY_FILE=/k.pem"},
			wantErr: []string{"AWAKEND_TLS__CERT_FILE: tls.cert_file: cannot read \"${credential:tls.crt}\": credentials are unavailable ($CREDENTIALS_DIRECTORY is not set)"},
		},
		{
			name:    "credential name with a slash",
			env:     []string{credEnv, "AWAKEND_TLS__CERT_FILE=/c.pem", "AWAKEND_TLS__KEY_FILE=${credential:../key}"},
			wantErr: []string{"tls.key_file: cannot read \"${credential:../key}\": a credential name is a plain file name"},
		},
		{
			name:     "variables inside a path",
			file:     "tls:\n  cert_file: /etc/${HOST}/c.pem\n  key_file: ${KEY:-/k.pem}\n",
			env:      []string{"HOST=web-1"},
			wantCert: "/etc/web-1/c.pem", wantKey: "/k.pem",
		},
		{
			name:    "an unset variable in a path",
			file:    "tls:\n  cert_file: /etc/${HOST}/c.pem\n  key_file: /k.pem\n",
			wantErr: []string{`awakend.yaml:2:14: tls.cert_file: undefined environment variable "HOST"`},
		},
		{
			name:    "relative file reference",
			file:    "tls:\n  cert_file: /c.pem\n  key_file: ${file:k.pem}\n",
			wantErr: []string{"tls.key_file: cannot read \"${file:k.pem}\": the path must be absolute"},
		},
		{
			name:    "unknown key in the tls section",
			file:    "tls:\n  cert_file: /c.pem\n  key_file: /k.pem\n  ca_file: /ca.pem\n",
			wantErr: []string{`awakend.yaml:4:3: unknown setting "tls.ca_file"`},
		},
		{
			name:    "misspelt key",
			file:    "tls:\n  cert_flie: /c.pem\n",
			wantErr: []string{`awakend.yaml:2:3: unknown setting "tls.cert_flie" (did you mean "tls.cert_file"?)`},
		},
		{
			name:    "tls key outside its section",
			env:     []string{"AWAKEND_CERT_FILE=/c.pem"},
			wantErr: []string{`AWAKEND_CERT_FILE: unknown setting "cert_file" (did you mean "tls.cert_file"?)`},
		},
		{
			name:    "section given a value",
			file:    "tls: on\n",
			wantErr: []string{`awakend.yaml:1:6: tls is a section (of tls.cert_file, tls.client_allowed_sans, tls.client_ca_file, tls.key_file), not a value`},
		},
		{
			name:    "not a string",
			file:    "tls:\n  cert_file: [a]\n  key_file: /k.pem\n",
			wantErr: []string{`awakend.yaml:2:14: tls.cert_file: a list is not a string`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.file != "" {
				path = writeSettingsFile(t, t.TempDir(), "awakend.yaml", tt.file)
			}
			s, _, err := load(path, noDefaultSettingsFile(t), tt.env, tt.flags)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("loaded %+v, want an error", s.TLS)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(s.TLS.ClientAllowedSANs, tt.wantSANs) {
				t.Errorf("allowed SANs %q, want %q", s.TLS.ClientAllowedSANs, tt.wantSANs)
			}
			if s.TLS.CertFile != tt.wantCert || s.TLS.KeyFile != tt.wantKey || s.TLS.ClientCAFile != tt.wantCA {
				t.Errorf("cert %q key %q client CAs %q, want %q %q %q", s.TLS.CertFile, s.TLS.KeyFile, s.TLS.ClientCAFile, tt.wantCert, tt.wantKey, tt.wantCA)
			}
		})
	}
}

func TestSettingsRedacted(t *testing.T) {
	s := Default()
	if r := s.Redacted(); !reflect.DeepEqual(r, s) {
		t.Errorf("redacting settings without secrets changed them: %+v", r)
	}

	s.Admin.Token = "s3cret-token"
	s.Gateway.APIKeys = []string{"s3cret-1", "s3cret-2"}
	r := s.Redacted()
	if r.Admin.Token != "***" || !slices.Equal(r.Gateway.APIKeys, []string{"***", "***"}) {
		t.Errorf("redacted token %q keys %q", r.Admin.Token, r.Gateway.APIKeys)
	}
	if s.Admin.Token != "s3cret-token" || s.Gateway.APIKeys[0] != "s3cret-1" {
		t.Errorf("Redacted changed the original: %+v", s)
	}
	r.Admin.Token, r.Gateway.APIKeys = s.Admin.Token, s.Gateway.APIKeys
	if !reflect.DeepEqual(r, s) {
		t.Errorf("Redacted changed more than the secrets:\n%+v\n%+v", r, s)
	}
}

func TestLive(t *testing.T) {
	running := Default()
	running.TLS.CertFile, running.TLS.KeyFile = "/c.pem", "/k.pem"
	next := running
	next.Listen, next.Log.Level, next.Log.Format = "0.0.0.0:9000", "debug", "json"
	next.Source.Etcd.Endpoints = []string{"10.0.0.1:2379"}
	next.Admin.Token = "s3cret"
	next.TLS.CertFile = "/c2.pem"
	live, pending := Live(running, next)
	var got []string
	for _, p := range pending {
		got = append(got, p.String())
	}
	want := []string{"listen: 127.0.0.1:8700 → 0.0.0.0:9000", "log.format: auto → json", `source.etcd.endpoints: "" → 10.0.0.1:2379`}
	if !slices.Equal(got, want) {
		t.Errorf("pending %q\nwant    %q", got, want)
	}
	if live.Listen != running.Listen || live.Log.Format != "auto" || live.Source.Etcd.Endpoints != nil {
		t.Errorf("live kept none of the running values: %+v", live)
	}
	if live.Log.Level != "debug" || live.Admin.Token != "s3cret" || live.TLS.CertFile != "/c2.pem" {
		t.Errorf("live took none of the new values: %+v", live)
	}
	if keys := Changed(running, live); !slices.Equal(keys, []string{"log.level", "admin.token", "tls.cert_file"}) {
		t.Errorf("Changed = %q", keys)
	}

	// TLS on or off waits for a restart; the running files stay.
	off := next
	off.TLS.CertFile, off.TLS.KeyFile = "", ""
	live, pending = Live(running, off)
	if len(pending) != 4 || pending[3].String() != "tls: on → off" || !reflect.DeepEqual(live.TLS, running.TLS) {
		t.Errorf("TLS off: pending %v, live TLS %+v", pending, live.TLS)
	}
	for _, f := range fields {
		if f.restart && f.secret {
			t.Errorf("%s needs a restart and is secret: a Pending would show it", f.key)
		}
	}
}
