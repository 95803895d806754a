package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/awakend/awakend/e2e/harness"
	"github.com/awakend/awakend/lastgood"
)

// TestLastKnownGood runs the real binary with a state directory through a
// reboot onto a broken config directory: each applied configuration is
// saved (as written, the secret unresolved), a start-up on a directory that
// does not validate serves the saved one, degraded and loud, `awakend
// check` and `awakend reload` still show the rejection, and a fixed
// directory ends it. A damaged state file is an error and the daemon does
// not start, as without one.
func TestLastKnownGood(t *testing.T) {
	t.Parallel()
	state := t.TempDir()
	const secret = "sk-lastgood-e2e-0123456789"
	env := []string{"AWAKEND_STATE_DIR=" + state, "LASTGOOD_KEY=" + secret}
	stateFile := filepath.Join(state, "last-known-good.json")
	dir := t.TempDir()
	harness.Write(t, dir, "providers.yaml", "providers:\n  - {id: p, adapter: mock, api_key: \"${LASTGOOD_KEY}\"}\n")
	harness.Write(t, dir, "models.yaml", modelsYAML)
	harness.Write(t, dir, "agents/a.yaml", agentsFile("a"))

	d := harness.Start(t, dir, harness.Options{Env: env})
	saved, err := lastgood.Read(state)
	if err != nil {
		t.Fatalf("no state file after start-up: %v", err)
	}
	for _, f := range saved.Files {
		if strings.Contains(string(f.Data), secret) {
			t.Fatalf("the state file holds the resolved secret in %s", f.Path)
		}
	}
	harness.Write(t, dir, "agents/b.yaml", agentsFile("b"))
	if r := d.Reload(); r.Result != "applied" {
		t.Fatalf("reload adding agent b: %+v", r)
	}
	st, err := lastgood.Read(state)
	if err != nil {
		t.Fatalf("state file after the reload: %v", err)
	}
	var paths []string
	for _, f := range st.Files {
		paths = append(paths, f.Path)
		if f.Path == "providers.yaml" && !strings.Contains(string(f.Data), "${LASTGOOD_KEY}") {
			t.Errorf("providers.yaml saved as %q, want it as written", f.Data)
		}
	}
	if strings.Join(paths, " ") != "agents/a.yaml agents/b.yaml models.yaml providers.yaml" {
		t.Errorf("saved files %v, want the four config files", paths)
	}
	d.Stop()

	// The reboot: the directory now holds a rejected edit.
	harness.Write(t, dir, "agents/b.yaml", "agents:\n  - {id: b, model_id: ghost}\n")
	d = harness.Start(t, dir, harness.Options{Env: env})
	code, _, body := d.Get("/api/v1/agents/b")
	if code != 200 {
		t.Fatalf("agent b from the last-known-good configuration: HTTP %d %s", code, body)
	}
	var status struct {
		Degraded *struct {
			Reason        string `json:"reason"`
			LastKnownGood struct {
				Fingerprint string `json:"fingerprint"`
			} `json:"last_known_good"`
		} `json:"degraded"`
		LastReload struct {
			Result      string `json:"result"`
			Diagnostics []struct {
				Code string `json:"code"`
			} `json:"diagnostics"`
		} `json:"last_reload"`
	}
	d.GetJSON("/api/v1/status", &status)
	if status.Degraded == nil || status.Degraded.LastKnownGood.Fingerprint == "" || !strings.Contains(status.Degraded.Reason, "agent_missing_model") {
		t.Errorf("status degraded = %+v, want the saved fingerprint and the reason", status.Degraded)
	}
	if status.LastReload.Result != "rejected" || len(status.LastReload.Diagnostics) != 1 || status.LastReload.Diagnostics[0].Code != "agent_missing_model" {
		t.Errorf("status last_reload = %+v, want the directory's rejection", status.LastReload)
	}
	if v := d.Metric("awakend_config_degraded"); v != 1 {
		t.Errorf("awakend_config_degraded = %v, want 1", v)
	}
	if v := d.Metric("awakend_config_last_reload_successful"); v != 0 {
		t.Errorf("awakend_config_last_reload_successful = %v, want 0", v)
	}
	if !d.SawNote("STATUS=DEGRADED: serving the last-known-good configuration") {
		t.Error("no STATUS= saying the daemon is degraded")
	}
	logs := d.Logs()
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^agents/b\.yaml:2:\d+: error: agent 'b' references missing model 'ghost' \[agent_missing_model\]$`),
		regexp.MustCompile(`(?m)level=ERROR msg="DEGRADED: config rejected at start-up; serving the last-known-good configuration`),
	} {
		if !re.MatchString(logs) {
			t.Errorf("log has no line matching %s:\n%s", re, logs)
		}
	}
	if r := harness.Run(t, nil, "check", dir, "--settings", "/dev/null"); r.Code != 1 || !strings.Contains(r.Stdout+r.Stderr, "[agent_missing_model]") {
		t.Errorf("awakend check on the broken directory: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if r := harness.Run(t, nil, "reload", "--url", d.URL, "--settings", "/dev/null"); r.Code != 1 || !strings.Contains(r.Stdout+r.Stderr, "[agent_missing_model]") {
		t.Errorf("awakend reload of the broken directory: exit %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if v := d.Metric("awakend_config_degraded"); v != 1 {
		t.Errorf("awakend_config_degraded after a rejected reload = %v, want 1", v)
	}

	// Fixed: the directory's configuration goes live, degraded no more.
	harness.Write(t, dir, "agents/b.yaml", agentsFile("b", "c"))
	if r := d.Reload(); r.Result != "applied" {
		t.Fatalf("reload of the fixed directory: %+v", r)
	}
	d.GetJSON("/api/v1/status", &status)
	if status.Degraded != nil {
		t.Errorf("still degraded after a valid configuration was applied: %+v", status.Degraded)
	}
	if v := d.Metric("awakend_config_degraded"); v != 0 {
		t.Errorf("awakend_config_degraded = %v after the fix, want 0", v)
	}
	if !d.SawNote("STATUS=serving version 2") {
		t.Error("no STATUS= without DEGRADED after the fix")
	}
	d.Stop()

	// A damaged state file is never worse than none: the broken directory
	// does not start, with the diagnostics and what is wrong with the file.
	harness.Write(t, dir, "agents/b.yaml", "agents:\n  - {id: b, model_id: ghost}\n")
	b, _ := os.ReadFile(stateFile)
	if err := os.WriteFile(stateFile, b[:len(b)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	r := harness.Run(t, env, "serve", "--config-dir", dir, "--listen", "127.0.0.1:0", "--settings", "/dev/null", "--log-format", "text")
	if r.Code != 1 {
		t.Fatalf("exit code %d with a damaged state file, want 1; stderr:\n%s", r.Code, r.Stderr)
	}
	for _, want := range []string{"[agent_missing_model]", "last-known-good configuration unusable", stateFile, "not a state file"} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, r.Stderr)
		}
	}
}
