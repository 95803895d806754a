// Package e2e tests the real awakend binary: real files, real fsnotify,
// real signals, real HTTP. Readiness and reload completion are learned from
// the sd_notify datagrams the daemon sends (NOTIFY_SOCKET) and from the
// status API, never from sleeps; the daemons run through e2e/harness.
//
// Tests whose scenario depends on wall-clock gaps staying well under the
// 250 ms debounce (the slow writer, vim's and emacs's save sequences, the
// burst, the constant writer) do not call t.Parallel: Go runs them one at a
// time before the parallel tests start, so a loaded machine does not
// stretch their gaps. Every other test runs its daemon in parallel.
package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/awakend/awakend/e2e/harness"
)

func TestMain(m *testing.M) {
	os.Exit(harness.Main(m))
}

// daemon is one running awakend serve, started by start.
type daemon struct {
	*harness.Daemon
	t    *testing.T
	base harness.Status // the status once started, the start-up rescan done
}

// options change how startWith launches a daemon.
type options struct {
	harness.Options
	// rescanPending does not wait for the start-up rescan (a long
	// debounce delays it; a request merges it into its own reload).
	rescanPending bool
}

// start runs awakend serve on dir, with env added to its environment, and
// waits until it is ready and quiet.
func start(t *testing.T, dir string, env ...string) *daemon {
	t.Helper()
	return startWith(t, dir, options{Options: harness.Options{Env: env}})
}

// startWith is start with options. The daemon logs text at debug level,
// which the tests match.
func startWith(t *testing.T, dir string, o options) *daemon {
	t.Helper()
	o.LogFormat, o.LogLevel = "text", "debug"
	d := &daemon{Daemon: harness.Start(t, dir, o.Options), t: t}
	// Once its watches are up the watcher asks for one rescan, for what
	// changed before they were (TestChangeRightAfterReady). Wait for it, so
	// that each test starts from a quiet daemon; base is the status then,
	// for tests that count reloads.
	d.WaitLog(regexp.MustCompile(`msg="config watcher up"`))
	if !o.rescanPending {
		d.base = d.WaitStatus("the start-up rescan finished", func(s harness.Status) bool { return s.Count("rescan", "") > 0 })
	}
	return d
}

// waitAgents waits until the served agents are exactly ids and returns the
// status then.
func (d *daemon) waitAgents(ids ...string) harness.Status {
	d.t.Helper()
	slices.Sort(ids)
	var v uint64
	d.WaitStatus(fmt.Sprintf("agents are %v", ids), func(harness.Status) bool {
		var got []string
		v, got = d.agents()
		return slices.Equal(got, ids)
	})
	// The status read after the agents is at least as new as they are.
	s := d.Status()
	d.Settle(s)
	if s.Version != v {
		d.t.Fatalf("agents %v served at version %d, but the status reports version %d", ids, v, s.Version)
	}
	return s
}

// agentList is the body of GET /api/v1/agents.
type agentList struct {
	Data []struct {
		ID           string `json:"id"`
		SystemPrompt string `json:"system_prompt"`
	} `json:"data"`
}

// agents returns the served agent ids, sorted, and the version they were
// read from.
func (d *daemon) agents() (uint64, []string) {
	d.t.Helper()
	code, h, body := d.Get("/api/v1/agents")
	if code != http.StatusOK {
		d.t.Fatalf("GET /api/v1/agents: HTTP %d: %s", code, body)
	}
	var l agentList
	if err := json.Unmarshal(body, &l); err != nil {
		d.t.Fatalf("GET /api/v1/agents: %v: %s", err, body)
	}
	v := harness.Version(d.t, h)
	ids := make([]string, 0, len(l.Data))
	for _, a := range l.Data {
		ids = append(ids, a.ID)
	}
	slices.Sort(ids)
	return v, ids
}

// agentsFile is a file declaring the named agents on model m.
func agentsFile(ids ...string) string {
	var b strings.Builder
	b.WriteString("agents:\n")
	for _, id := range ids {
		fmt.Fprintf(&b, "  - {id: %s, model_id: m, system_prompt: hi}\n", id)
	}
	return b.String()
}

// Files of the base directory.
const (
	providersYAML = "providers:\n  - {id: p, adapter: mock}\n"
	modelsYAML    = "models:\n  - {id: m, provider_id: p, upstream_model: mock-1}\n"
)

// baseDir is a valid config directory: provider p, model m, agent a, each in
// its own file. Without agents.yaml it is still valid (no agents), so a
// reload that read it half-written would go live: the tests can tell.
func baseDir(t *testing.T) string {
	t.Helper()
	return harness.ConfigDir(t, map[string]string{
		"providers.yaml": providersYAML,
		"models.yaml":    modelsYAML,
		"agents.yaml":    agentsFile("a"),
	})
}
