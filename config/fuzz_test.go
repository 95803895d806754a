package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

// fuzzFiles are the names the parts of a fuzz input are stored under: the
// input is split at NUL bytes, so that one input can hold several files.
var fuzzFiles = []string{"a.yaml", "sub/b.yml", "c.json", "d.yaml"}

const fuzzSecret = "sk-fuzz-SECRET-value"

// FuzzLoad checks that Load and Build never panic and always answer with
// exactly one of: a Config that builds (or a Build *Error), or a load
// *Error with at least one diagnostic, each with a code and a message, and
// never the value of a secret.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(minimalConfig + "agents: [{id: a, model_id: m}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys := fstest.MapFS{"secret.txt": {Data: []byte(fuzzSecret)}}
		for i, part := range bytes.SplitN(data, []byte{0}, len(fuzzFiles)) {
			fsys[fuzzFiles[i]] = &fstest.MapFile{Data: part}
		}
		opts := Options{
			LookupEnv:      envOf(map[string]string{"KEY": fuzzSecret, "N": "42", "EMPTY": ""}),
			ReadFile:       func(string) ([]byte, error) { return []byte(fuzzSecret), nil },
			CredentialsDir: "/creds",
			MaxFileSize:    1 << 20,
		}
		c, err := Load(fsys, opts)
		if err == nil {
			if c == nil || len(c.Fingerprint) != 64 {
				t.Fatalf("Load returned no error and config %v", c)
			}
			set, berr := c.Build(nil, nil)
			if berr == nil {
				if set == nil {
					t.Fatal("Build returned neither a set nor an error")
				}
				return
			}
			err = berr
		} else if c != nil {
			t.Fatal("Load returned both a config and an error")
		}
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error is %T, not *Error: %v", err, err)
		}
		if len(e.Diagnostics) == 0 {
			t.Fatal("*Error without diagnostics")
		}
		for _, d := range e.Diagnostics {
			if d.Code == "" || d.Message == "" || d.Severity != "error" {
				t.Fatalf("incomplete diagnostic %#v", d)
			}
		}
		js, _ := json.Marshal(e.Diagnostics)
		if strings.Contains(e.Error(), fuzzSecret) || bytes.Contains(js, []byte(fuzzSecret)) {
			t.Fatalf("diagnostics show the secret:\n%s", e.Error())
		}
	})
}
