package config

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expected.txt files of testdata/bad")

// goldenOptions are the inputs from outside the directory that every
// testdata case gets.
func goldenOptions(t *testing.T) Options {
	creds, err := filepath.Abs("testdata/credentials")
	if err != nil {
		t.Fatal(err)
	}
	return Options{
		LookupEnv: envOf(map[string]string{
			"OPENAI_API_KEY": "sk-golden-env-key",
			"EMPTY":          "",
		}),
		ReadFile:       os.ReadFile,
		CredentialsDir: creds,
	}
}

// TestGoodConfigs loads and builds every directory of testdata/good, which
// must have no problem at all.
func TestGoodConfigs(t *testing.T) {
	cases, _ := filepath.Glob("testdata/good/*")
	if len(cases) == 0 {
		t.Fatal("no testdata/good cases")
	}
	for _, dir := range cases {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			c, err := Load(os.DirFS(dir), goldenOptions(t))
			if err != nil {
				t.Fatalf("Load:\n%v", err)
			}
			if _, err := c.Build(nil, nil); err != nil {
				t.Fatalf("Build:\n%v", err)
			}
			if len(c.Files) == 0 || len(c.Fingerprint) != 64 {
				t.Errorf("Files %q, Fingerprint %q", c.Files, c.Fingerprint)
			}
		})
	}
}

// TestBadConfigs loads testdata/bad/<case>/conf and compares the
// diagnostics, as text, with testdata/bad/<case>/expected.txt. Run with
// -update to rewrite the expected files.
func TestBadConfigs(t *testing.T) {
	cases, _ := filepath.Glob("testdata/bad/*")
	if len(cases) == 0 {
		t.Fatal("no testdata/bad cases")
	}
	for _, dir := range cases {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			c, err := Load(os.DirFS(filepath.Join(dir, "conf")), goldenOptions(t))
			if err == nil {
				_, err = c.Build(nil, nil)
			}
			got := strings.Join(diagLines(t, err), "\n") + "\n"
			golden := filepath.Join(dir, "expected.txt")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("diagnostics differ from %s (run with -update to accept):\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

// TestBadConfigsCoverEveryCode checks that the golden files show every
// diagnostic code at least once.
func TestBadConfigsCoverEveryCode(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*/expected.txt")
	var all strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(b)
	}
	codes := []string{
		CodeSyntax, CodeUnknownField, CodeUnknownKey, CodeType, CodeMissingField, CodeDuplicateKey,
		CodeConflict, CodeInterpolation, CodeTooLarge, CodeEmpty, CodeRead, CodeDuplicateID, CodeAmbiguousID,
		// the registry's spec rules
		"required", "invalid_token_limit", "invalid_knowledge_cutoff", "invalid_price", "invalid_modality",
		"pool_no_members", "pool_invalid_weight", "pool_duplicate_member", "invalid_value", "invalid_endpoint",
		"invalid_reasoning_effort",
		// and its graph
		"agent_missing_model", "model_missing_provider", "model_pool_missing_model", "agent_missing_plugin",
		"agent_missing_delegate", "agent_hook_filter_plugin_not_loaded",
	}
	for _, code := range codes {
		if !strings.Contains(all.String(), "["+code+"]\n") {
			t.Errorf("no testdata/bad case shows [%s]", code)
		}
	}
	// CodeExecutor needs a failing factory: see TestBuildExecutors.
}
