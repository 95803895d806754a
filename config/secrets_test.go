package config

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// Secrets never appear in diagnostics: not interpolated values, not the
// values of api_key, endpoint.auth.token or headers, in text or JSON.
func TestSecretsNeverInDiagnostics(t *testing.T) {
	const (
		envSecret  = "sk-live-TOPSECRET-9f8e7d"
		fileSecret = "sk-file-TOPSECRET-1a2b3c"
		literal    = "sk-literal-TOPSECRET-4d5e"
	)
	secrets := []string{envSecret, fileSecret, literal, "TOPSECRET"}
	opts := Options{LookupEnv: envOf(map[string]string{"OPENAI_KEY": envSecret, "NUM": "99999999999"})}
	for _, tc := range []struct {
		name, yaml string
		mention    string // source text the diagnostics should show instead
	}{
		{"api_key beside an unknown field", "providers:\n  - {id: p, adapter: mock, api_key: \"${OPENAI_KEY}\", bogus: 1}\n", ""},
		{"number field", "providers:\n  - {id: p, adapter: mock, timeout_secs: \"${OPENAI_KEY}\"}\n", "${OPENAI_KEY}"},
		{"number out of range", "models:\n  - {id: m, provider_id: p, upstream_model: u, context_window: \"${NUM}\"}\n", "${NUM}"},
		{"registry url check", "providers:\n  - {id: p, adapter: openai, base_url: \"${OPENAI_KEY}\"}\n", "${OPENAI_KEY}"},
		{"registry adapter check", "providers:\n  - {id: p, adapter: \"${OPENAI_KEY}\"}\n", "${OPENAI_KEY}"},
		{"file secret in a url", "providers:\n  - {id: p, adapter: openai, base_url: \"${file:key.txt}\"}\n", "${file:key.txt}"},
		{"missing reference and depends_on", minimalConfig + "agents:\n  - {id: a, model_id: \"${OPENAI_KEY}\"}\n", "${OPENAI_KEY}"},
		{"interpolated id", minimalConfig + "agents:\n  - {id: \"${OPENAI_KEY}\", model_id: nope}\n", "${OPENAI_KEY}"},
		{"duplicate interpolated id", "providers:\n  - {id: \"${OPENAI_KEY}\", adapter: mock}\n  - {id: \"${OPENAI_KEY}\", adapter: mock}\n", "${OPENAI_KEY}"},
		{"endpoint token", "agents:\n  - {id: a, endpoint: {base_url: \"https://x\", auth: {type: basic, token: \"${OPENAI_KEY}\"}}}\n", ""},
		{"literal endpoint token", "agents:\n  - {id: a, endpoint: {base_url: \"https://x\", auth: {type: basic, token: " + literal + "}}}\n", ""},
		{"legacy token mixed", "agents:\n  - {id: a, endpoint: {base_url: \"https://x\", target: t, bearer_token: " + literal + "}}\n", ""},
		{"duplicate header", "providers:\n  - {id: p, adapter: mock, adapter_options: {headers: {X: \"${OPENAI_KEY}\", X: " + literal + "}}}\n", ""},
		{"header of the wrong type", "providers:\n  - {id: p, adapter: mock, adapter_options: {headers: {X: [" + literal + "]}}}\n", ""},
		{"literal api_key of the wrong type", "providers:\n  - {id: p, adapter: mock, api_key: [" + literal + "], timeout_secs: x}\n", ""},
		{"headers given as a string", "providers:\n  - {id: p, adapter: mock, adapter_options: {headers: \"Bearer " + literal + "\"}}\n", ""},
		{"misspelt api_key", "providers:\n  - {id: p, adapter: mock, apikey: " + literal + "}\n", ""},
		{"failed load still validated", minimalConfig + "agents:\n  - {id: a, model_id: \"${OPENAI_KEY}\", system_prompt: \"${OPENAI_KEY}\", bogus: 1}\n", "${OPENAI_KEY}"},
		{"secret in free-form values", minimalConfig + "agents:\n  - {id: a, model_id: m, sections: {k: \"${OPENAI_KEY}\", k: " + literal + "}}\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := mapDir(map[string]string{"a.yaml": tc.yaml, "key.txt": fileSecret + "\n"})
			c, err := Load(fsys, opts)
			if err == nil {
				_, err = c.Build(nil, nil)
			}
			var e *Error
			if !errors.As(err, &e) || len(e.Diagnostics) == 0 {
				t.Fatalf("want diagnostics, got %v", err)
			}
			js, _ := json.Marshal(e.Diagnostics)
			for _, out := range []string{e.Error(), string(js)} {
				for _, s := range secrets {
					if strings.Contains(out, s) {
						t.Errorf("diagnostics show a secret:\n%s", out)
					}
				}
			}
			if tc.mention != "" && !strings.Contains(e.Error(), tc.mention) {
				t.Errorf("diagnostics do not show %q:\n%s", tc.mention, e.Error())
			}
		})
	}
}
