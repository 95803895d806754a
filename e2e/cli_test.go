package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/awakend/awakend/e2e/harness"
)

// badDir is a config directory with three problems in b.yaml: a duplicate
// of a.yaml's agent, a missing model and a misspelt field.
func badDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	harness.Write(t, dir, "a.yaml", providersYAML+modelsYAML+"agents:\n  - {id: a, model_id: m}\n")
	harness.Write(t, dir, "b.yaml", "agents:\n  - {id: a, model_id: m}\n  - id: b\n    model_id: ghost\n    max_round: 3\n")
	return dir
}

// badLines are badDir's diagnostics as text.
var badLines = []string{
	`b.yaml:2:10: error: agent "a" is already defined at a.yaml:6:10 [duplicate_id]`,
	`b.yaml:4:15: error: agent 'b' references missing model 'ghost' [agent_missing_model]`,
	`b.yaml:5:5: error: unknown field "max_round" in agent "b" (did you mean "max_rounds"?) [unknown_field]`,
}

// diagLine is the shape of a positioned diagnostic line.
var diagLine = regexp.MustCompile(`^[^\s:]+:\d+:\d+: error: .+ \[[a-z_]+\]$`)

// Start-up with an invalid directory exits 1 with every diagnostic on its
// own file:line:col line, like nginx -t; it never becomes ready.
func TestStartupInvalid(t *testing.T) {
	t.Parallel()
	r := harness.Run(t, nil, "serve", "--config-dir", badDir(t), "--listen", "127.0.0.1:0", "--settings", "/dev/null", "--log-format", "text")
	if r.Code != 1 {
		t.Fatalf("exit code %d, want 1; stderr:\n%s", r.Code, r.Stderr)
	}
	var diags []string
	for _, line := range strings.Split(r.Stderr, "\n") {
		if diagLine.MatchString(line) {
			diags = append(diags, line)
		}
	}
	if !slices.Equal(diags, badLines) {
		t.Fatalf("diagnostic lines on stderr:\n%s\nwant:\n%s\nstderr:\n%s", strings.Join(diags, "\n"), strings.Join(badLines, "\n"), r.Stderr)
	}
	if strings.Contains(r.Stderr, "msg=serving") {
		t.Fatalf("an invalid directory was served:\n%s", r.Stderr)
	}
}

// Start-up with a missing directory fails with a message naming it.
func TestStartupMissingDirectory(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "nope")
	r := harness.Run(t, nil, "serve", "--config-dir", dir, "--listen", "127.0.0.1:0", "--settings", "/dev/null", "--log-format", "text")
	if r.Code == 0 {
		t.Fatalf("exit code 0 for a missing directory; stderr:\n%s", r.Stderr)
	}
	if !strings.Contains(r.Stderr, "config directory "+dir+": no such file or directory") {
		t.Fatalf("stderr does not say the directory is missing:\n%s", r.Stderr)
	}
}

// awakend check: exit 0 with a summary for a valid directory, 1 with the
// diagnostics for an invalid one (text or JSON), 2 when it cannot run.
func TestCheck(t *testing.T) {
	t.Parallel()
	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		r := harness.Run(t, nil, "check", "../examples/configs", "--settings", "/dev/null")
		if r.Code != 0 || !regexp.MustCompile(`^ok: \d+ providers?, \d+ models?, \d+ pools?, \d+ agents?\n$`).MatchString(r.Stdout) {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 0 and one ok: line", r.Code, r.Stdout, r.Stderr)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		t.Parallel()
		r := harness.Run(t, nil, "check", badDir(t), "--settings", "/dev/null")
		want := strings.Join(badLines, "\n") + "\n3 errors in 1 file\n"
		if r.Code != 1 || r.Stdout != want {
			t.Fatalf("exit %d, stdout:\n%s\nwant exit 1, stdout:\n%s", r.Code, r.Stdout, want)
		}
	})
	t.Run("json", func(t *testing.T) {
		t.Parallel()
		r := harness.Run(t, nil, "check", badDir(t), "--format", "json", "--settings", "/dev/null")
		var rep struct {
			Valid       bool                 `json:"valid"`
			Diagnostics []harness.Diagnostic `json:"diagnostics"`
			Summary     string               `json:"summary"`
		}
		if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, r.Stdout)
		}
		type pos struct {
			file         string
			line, column int
			code         string
		}
		var got []pos
		for _, d := range rep.Diagnostics {
			got = append(got, pos{d.File, d.Line, d.Column, d.Code})
		}
		want := []pos{{"b.yaml", 2, 10, "duplicate_id"}, {"b.yaml", 4, 15, "agent_missing_model"}, {"b.yaml", 5, 5, "unknown_field"}}
		if r.Code != 1 || rep.Valid || !slices.Equal(got, want) || rep.Summary != "3 errors in 1 file" {
			t.Fatalf("exit %d, valid %v, diagnostics %+v, summary %q; want 1, false, %+v", r.Code, rep.Valid, got, rep.Summary, want)
		}
	})
	t.Run("missing", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "nope")
		r := harness.Run(t, nil, "check", dir, "--settings", "/dev/null")
		if r.Code != 2 || !strings.Contains(r.Stderr, dir) || !strings.Contains(r.Stderr, "no such file or directory") {
			t.Fatalf("exit %d, stderr %q; want 2 naming the missing directory", r.Code, r.Stderr)
		}
	})
}

// awakend reload when the config directory has vanished: rejected, exit
// 1, and the reason printed as it is, with no empty code.
func TestReloadCommandVanishedDirectory(t *testing.T) {
	t.Parallel()
	dir := baseDir(t)
	d := startWith(t, dir, options{Options: harness.Options{Env: []string{"AWAKEND_RELOAD__DEBOUNCE=10m", "AWAKEND_RELOAD__MAX_WAIT=10m"}}, rescanPending: true})
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	r := harness.Run(t, nil, "reload", "--url", d.URL, "--settings", "/dev/null")
	want := "error: config directory " + dir + ": no such file or directory\n" +
		"awakend: reload rejected: 1 problem; still serving version 1\n"
	if r.Code != 1 || r.Stdout != "" || r.Stderr != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want 1, nothing, %q", r.Code, r.Stdout, r.Stderr, want)
	}
}

// awakend reload against a running daemon: exit 0 with the new version when
// applied; exit 1 with the diagnostics when rejected, the daemon still
// serving the old version; found through the settings (AWAKEND_LISTEN) as
// ExecReload= runs it; exit 2 when no daemon runs. The watcher is slowed
// down to minutes so that the command, not the watcher, does each reload.
func TestReloadCommand(t *testing.T) {
	t.Parallel()
	dir := baseDir(t)
	d := startWith(t, dir, options{Options: harness.Options{Env: []string{"AWAKEND_RELOAD__DEBOUNCE=10m", "AWAKEND_RELOAD__MAX_WAIT=10m"}}, rescanPending: true})
	reload := func(env ...string) harness.Result {
		t.Helper()
		if len(env) > 0 {
			return harness.Run(t, env, "reload", "--settings", "/dev/null")
		}
		return harness.Run(t, nil, "reload", "--url", d.URL, "--settings", "/dev/null")
	}

	harness.Replace(t, dir, "agents.yaml", agentsFile("a", "b"))
	if r := reload(); r.Code != 0 || r.Stdout != "applied: version 2 (+1 agent)\n" {
		t.Fatalf("applied: exit %d, stdout %q, stderr %q; want 0, %q", r.Code, r.Stdout, r.Stderr, "applied: version 2 (+1 agent)\n")
	}

	harness.Replace(t, dir, "agents.yaml", "agents:\n  - {id: a, model_id: ghost}\n")
	r := reload()
	want := "agents.yaml:2:23: error: agent 'a' references missing model 'ghost' [agent_missing_model]\n" +
		"awakend: reload rejected: 1 problem; still serving version 2\n"
	if r.Code != 1 || r.Stderr != want {
		t.Fatalf("rejected: exit %d, stderr:\n%s\nwant exit 1, stderr:\n%s", r.Code, r.Stderr, want)
	}
	if v, ids := d.agents(); v != 2 || !slices.Equal(ids, []string{"a", "b"}) {
		t.Fatalf("after the rejected reload: version %d, agents %v; want 2, [a b]", v, ids)
	}

	harness.Replace(t, dir, "agents.yaml", agentsFile("a", "b", "c"))
	if r := reload("AWAKEND_LISTEN=" + d.Addr); r.Code != 0 || r.Stdout != "applied: version 3 (+1 agent)\n" {
		t.Fatalf("through AWAKEND_LISTEN: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	if r := reload(); r.Code != 0 || r.Stdout != "unchanged: version 3\n" {
		t.Fatalf("nothing to do: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}

	d.Stop()
	if r := reload(); r.Code != 2 || !strings.Contains(r.Stderr, "not running") {
		t.Fatalf("no daemon: exit %d, stderr %q; want 2, not running", r.Code, r.Stderr)
	}
}

// awakend diff DIR: what reloading DIR would change in the running daemon,
// with the removal preview of a removed provider (its models, pools and
// agents, including the agent that reaches it through a pool). It changes
// nothing.
func TestDiffCommand(t *testing.T) {
	t.Parallel()
	running := t.TempDir()
	harness.Write(t, running, "all.yaml", `providers:
  - {id: p, adapter: openai, base_url: "http://a.example/v1"}
  - {id: q, adapter: mock}
models:
  - {id: m, provider_id: p, upstream_model: u1}
  - {id: keep, provider_id: p, upstream_model: u2}
  - {id: n, provider_id: q, upstream_model: u3}
model_pools:
  - id: pool
    members: [{model_id: n}, {model_id: keep}]
agents:
  - {id: a, model_id: keep}
  - {id: b, model_id: n}
  - {id: c, model_id: pool}
`)
	next := t.TempDir()
	harness.Write(t, next, "all.yaml", `providers:
  - {id: p, adapter: openai, base_url: "http://b.example/v1"}
models:
  - {id: keep, provider_id: p, upstream_model: u2}
agents:
  - {id: a, model_id: keep}
  - {id: x, model_id: keep}
`)
	d := start(t, running)

	r := harness.Run(t, nil, "diff", next, "--url", d.URL, "--settings", "/dev/null")
	want := "reloading " + next + " would change version 1:\n" +
		"  ~ provider p (base_url)\n" +
		"  - provider q\n" +
		"      bound models [n], model pools [pool], agents [b c]\n" +
		"  - model m\n" +
		"  - model n\n" +
		"  - model_pool pool\n" +
		"  - agent b\n" +
		"  - agent c\n" +
		"  + agent x\n" +
		"+1 agent, ~1 provider (base_url), -1 provider, -2 models, -1 model pool, -2 agents\n"
	if r.Code != 0 || r.Stdout != want {
		t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s\nwant exit 0, stdout:\n%s", r.Code, r.Stdout, r.Stderr, want)
	}

	r = harness.Run(t, nil, "diff", running, "--url", d.URL, "--settings", "/dev/null")
	if r.Code != 0 || r.Stdout != "no changes: "+running+" matches the running version 1\n" {
		t.Fatalf("diff of the running directory: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}

	r = harness.Run(t, nil, "diff", badDir(t), "--url", d.URL, "--settings", "/dev/null")
	if r.Code != 1 || !strings.Contains(r.Stderr, badLines[0]) {
		t.Fatalf("diff of an invalid directory: exit %d, stderr %q; want 1 with the diagnostics", r.Code, r.Stderr)
	}

	if s := d.Status(); s.Version != 1 || s.Total() != d.base.Total() {
		t.Fatalf("diff changed the daemon: version %d, reloads %+v", s.Version, s.Reloads)
	}
}
