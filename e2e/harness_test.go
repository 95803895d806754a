// Package e2e tests the real awakend binary: real files, real fsnotify,
// real signals, real HTTP. Readiness and reload completion are learned from
// the sd_notify datagrams the daemon sends (NOTIFY_SOCKET) and from the
// status API, never from sleeps.
//
// Tests whose scenario depends on wall-clock gaps staying well under the
// 250 ms debounce (the slow writer, vim's and emacs's save sequences, the
// burst, the constant writer) do not call t.Parallel: Go runs them one at a
// time before the parallel tests start, so a loaded machine does not
// stretch their gaps. Every other test runs its daemon in parallel.
//
// E2E_AWAKEND_BINARY=/path/to/awakend tests a binary built elsewhere (build
// it with -race) instead of building ../cmd/awakend.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the awakend binary built once for the whole package.
var binary string

// waitTimeout bounds every wait for the daemon: generous, since the binary
// runs under the race detector on a shared two-core machine.
const waitTimeout = 30 * time.Second

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "awakend-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// TestPermissionDenied runs the binary as an unprivileged user when the
	// tests run as root: let that user reach it.
	if err := os.Chmod(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	binary = filepath.Join(dir, "awakend")
	if prebuilt := os.Getenv("E2E_AWAKEND_BINARY"); prebuilt != "" {
		// A binary built elsewhere (a release candidate, or a snapshot of
		// the tree), copied so that the unprivileged test can run it. Build
		// it with -race: the tests look for the race detector's reports.
		data, err := os.ReadFile(prebuilt)
		if err == nil {
			err = os.WriteFile(binary, data, 0o755)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "E2E_AWAKEND_BINARY:", err)
			os.RemoveAll(dir)
			os.Exit(2)
		}
	} else {
		build := exec.Command("go", "build", "-race", "-o", binary, "../cmd/awakend")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building awakend:", err)
			os.RemoveAll(dir)
			os.Exit(2)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// client bounds every request, so that a deadlocked daemon fails the test
// instead of hanging it.
var client = &http.Client{Timeout: waitTimeout}

// exitedNote is the datagram the harness sends itself on the notify socket
// once the daemon has exited. Datagrams are delivered in order, so when it is
// read every notification the daemon sent has been read too.
const exitedNote = "E2E_EXITED=1"

// daemon is one running awakend process.
type daemon struct {
	t      *testing.T
	url    string // http://127.0.0.1:port, known once the daemon serves
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	base   status        // the status once started, the start-up rescan done

	mu      sync.Mutex
	notes   []string      // every sd_notify datagram, in order
	seen    int           // notes consumed by waitNote
	log     bytes.Buffer  // stderr
	changed chan struct{} // closed and replaced when notes or log grow
}

// options change how a daemon is launched.
type options struct {
	env []string // extra environment, NAME=value
	// unprivileged runs the daemon as nobody (65534) when the tests run
	// as root; the config dir, its parents and notifyDir must let it in.
	unprivileged bool
	// notifyDir holds the notify socket; "" means a fresh t.TempDir().
	notifyDir string
	// rescanPending does not wait for the start-up rescan (a long
	// debounce delays it; a request merges it into its own reload).
	rescanPending bool
}

// start runs awakend serve on dir and waits until it is ready and serving.
func start(t *testing.T, dir string, env ...string) *daemon {
	t.Helper()
	return startWith(t, dir, options{env: env})
}

// startWith is start with options.
func startWith(t *testing.T, dir string, o options) *daemon {
	t.Helper()
	d := launch(t, dir, o)
	d.waitNote("READY=1", waitTimeout)
	// READY=1 comes right before the "serving" line that names the port.
	m := d.waitLog(regexp.MustCompile(`msg=serving listen=(\S+)`))
	d.url = "http://" + m[1]
	// Once its watches are up the watcher asks for one rescan, for what
	// changed before they were (TestChangeRightAfterReady). Wait for it, so
	// that each test starts from a quiet daemon; base is the status then,
	// for tests that count reloads.
	d.waitLog(regexp.MustCompile(`msg="config watcher up"`))
	if !o.rescanPending {
		d.base = d.waitUntil("the start-up rescan finished", func(s status) bool { return s.count("rescan", "") > 0 })
	}
	return d
}

// launch runs awakend serve on dir without waiting for readiness. It
// listens on a port the kernel picks, so parallel daemons never collide.
func launch(t *testing.T, dir string, o options) *daemon {
	t.Helper()
	sockDir := o.notifyDir
	if sockDir == "" {
		sockDir = t.TempDir()
	}
	sock := filepath.Join(sockDir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	if o.unprivileged {
		if err := os.Chmod(sock, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	d := &daemon{t: t, exited: make(chan struct{}), changed: make(chan struct{})}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			d.mu.Lock()
			d.notes = append(d.notes, string(buf[:n]))
			d.broadcast()
			d.mu.Unlock()
		}
	}()
	d.cmd = exec.Command(binary, "serve", "--config-dir", dir, "--listen", "127.0.0.1:0",
		"--settings", "/dev/null", "--log-format", "text", "--log-level", "debug")
	d.cmd.Env = append(environ(), "NOTIFY_SOCKET="+sock, "AWAKEND_RELOAD__RESCAN_INTERVAL=0s")
	d.cmd.Env = append(d.cmd.Env, o.env...)
	if o.unprivileged && os.Geteuid() == 0 {
		d.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	d.cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		d.mu.Lock()
		defer d.mu.Unlock()
		n, err := d.log.Write(p)
		d.broadcast()
		return n, err
	})
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.cmd.Wait()
		if c, err := net.Dial("unixgram", sock); err == nil {
			c.Write([]byte(exitedNote))
			c.Close()
		}
		close(d.exited)
	}()
	t.Cleanup(func() {
		d.stop()
		conn.Close()
		// Every daemon ends with SIGTERM and must exit cleanly; a panic, or
		// the race detector's exit code, fails the test that started it.
		if code := d.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("awakend exited with code %d", code)
		}
		if strings.Contains(d.logs(), "WARNING: DATA RACE") {
			t.Error("the daemon reported a data race")
		}
		if t.Failed() {
			t.Logf("awakend log:\n%s", d.logs())
		}
	})
	return d
}

// broadcast wakes every waiter; d.mu is held.
func (d *daemon) broadcast() {
	close(d.changed)
	d.changed = make(chan struct{})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (d *daemon) logs() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// stop sends SIGTERM and waits for the process to exit.
func (d *daemon) stop() {
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(waitTimeout):
		d.cmd.Process.Kill()
		<-d.exited
		d.t.Errorf("awakend did not stop within %v of SIGTERM", waitTimeout)
	}
}

// signal sends sig to the daemon.
func (d *daemon) signal(sig os.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatal(err)
	}
}

// waitExit waits for the process to exit and returns its exit code.
func (d *daemon) waitExit(timeout time.Duration) int {
	d.t.Helper()
	select {
	case <-d.exited:
		return d.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		d.t.Fatalf("awakend did not exit within %v", timeout)
		return -1
	}
}

// waitNote waits for the next sd_notify datagram containing want that no
// earlier waitNote consumed, and returns it.
func (d *daemon) waitNote(want string, timeout time.Duration) string {
	d.t.Helper()
	deadline := time.After(timeout)
	for {
		d.mu.Lock()
		for d.seen < len(d.notes) {
			n := d.notes[d.seen]
			if n == exitedNote {
				d.mu.Unlock()
				d.t.Fatalf("awakend exited (%v) waiting for %q", d.cmd.ProcessState, want)
			}
			d.seen++
			if strings.Contains(n, want) {
				d.mu.Unlock()
				return n
			}
		}
		ch := d.changed
		d.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			d.t.Fatalf("no %q notification within %v", want, timeout)
		}
	}
}

// sawNote reports whether any datagram so far contained want. Once the
// process has exited, waitExitNote makes "so far" mean "ever".
func (d *daemon) sawNote(want string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.ContainsFunc(d.notes, func(n string) bool { return strings.Contains(n, want) })
}

// noteCount is the number of datagrams so far that contained want.
func (d *daemon) noteCount(want string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, note := range d.notes {
		if strings.Contains(note, want) {
			n++
		}
	}
	return n
}

// waitExitNote waits until every notification of an exited daemon has been
// read (the harness's own exitedNote comes after them).
func (d *daemon) waitExitNote() {
	d.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		if d.sawNote(exitedNote) {
			return
		}
		d.mu.Lock()
		ch := d.changed
		d.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			d.t.Fatal("the daemon's notifications did not drain")
		}
	}
}

// waitLog waits until the log matches re and returns the submatches.
func (d *daemon) waitLog(re *regexp.Regexp) []string {
	d.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		d.mu.Lock()
		m := re.FindStringSubmatch(d.log.String())
		ch := d.changed
		d.mu.Unlock()
		if m != nil {
			return m
		}
		select {
		case <-ch:
		case <-d.exited:
			d.t.Fatalf("awakend exited (%v) before logging %v", d.cmd.ProcessState, re)
		case <-deadline:
			d.t.Fatalf("the log does not match %v within %v", re, waitTimeout)
		}
	}
}

// waitUntil waits until cond holds for the status, checking once now and
// again whenever a notification or a log line arrives. Each reload ends
// with READY=1, sent after the status, the metrics and the registry were
// updated, so no reload's effect is missed. It returns the status that
// satisfied cond.
func (d *daemon) waitUntil(what string, cond func(status) bool) status {
	d.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		d.mu.Lock()
		ch, exited := d.changed, slices.Contains(d.notes, exitedNote)
		d.mu.Unlock()
		if exited {
			d.t.Fatalf("awakend exited (%v) waiting until %s", d.cmd.ProcessState, what)
		}
		s := d.status()
		if cond(s) {
			d.settle(s)
			return s
		}
		select {
		case <-ch:
		case <-deadline:
			d.t.Fatalf("not %s within %v; status: %+v", what, waitTimeout, s)
		}
	}
}

// settle waits for the READY=1 of every reload the status counts. The loop
// records a reload in the status before it updates the metrics and sends
// READY=1, so a test that saw the status could otherwise read the metrics
// of the reload before.
func (d *daemon) settle(s status) {
	d.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		d.mu.Lock()
		ch := d.changed
		d.mu.Unlock()
		if uint64(d.noteCount("READY=1")) >= s.total() {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			d.t.Fatalf("%d reloads finished, but only %d READY=1 notifications came", s.total(), d.noteCount("READY=1"))
		}
	}
}

// waitAgents waits until the served agents are exactly ids and returns the
// status then.
func (d *daemon) waitAgents(ids ...string) status {
	d.t.Helper()
	slices.Sort(ids)
	var v uint64
	d.waitUntil(fmt.Sprintf("agents are %v", ids), func(status) bool {
		var got []string
		v, got = d.agents()
		return slices.Equal(got, ids)
	})
	// The status read after the agents is at least as new as they are.
	s := d.status()
	d.settle(s)
	if s.Version != v {
		d.t.Fatalf("agents %v served at version %d, but the status reports version %d", ids, v, s.Version)
	}
	return s
}

// waitReload waits until a reload finished after the one that made the
// status before, and returns the status then.
func (d *daemon) waitReload(before status) status {
	d.t.Helper()
	n := before.total()
	return d.waitUntil(fmt.Sprintf("more than %d reloads finished", n), func(s status) bool { return s.total() > n })
}

// diagnostic is one problem of a rejected reload, as the API serves it.
type diagnostic struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
	Code     string `json:"code"`
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

// reloadInfo is one reload in GET /api/v1/status.
type reloadInfo struct {
	Trigger     string       `json:"trigger"`
	Result      string       `json:"result"`
	Version     uint64       `json:"version"`
	Changes     string       `json:"changes"`
	Error       string       `json:"error"`
	Diagnostics []diagnostic `json:"diagnostics"`
}

// hasCode reports whether one of the reload's diagnostics has code.
func (r *reloadInfo) hasCode(code string) bool {
	return r != nil && slices.ContainsFunc(r.Diagnostics, func(d diagnostic) bool { return d.Code == code })
}

// status is the part of GET /api/v1/status the tests read.
type status struct {
	Version    uint64         `json:"version"`
	Resources  map[string]int `json:"resources"`
	LastReload *reloadInfo    `json:"last_reload"`
	Reloads    []struct {
		Trigger string `json:"trigger"`
		Result  string `json:"result"`
		Count   uint64 `json:"count"`
	} `json:"reloads"`
	Watcher struct {
		Up        bool   `json:"up"`
		Mode      string `json:"mode"`
		Dirs      int    `json:"dirs"`
		LastError string `json:"last_error"`
	} `json:"watcher"`
}

// count is the number of finished reloads of a trigger and result; ""
// matches any.
func (s status) count(trigger, result string) uint64 {
	var n uint64
	for _, r := range s.Reloads {
		if (trigger == "" || r.Trigger == trigger) && (result == "" || r.Result == result) {
			n += r.Count
		}
	}
	return n
}

// total is the number of finished reloads, the start-up load and the
// start-up rescan included.
func (s status) total() uint64 { return s.count("", "") }

// watched is the number of reloads the watcher asked for: "watch", and
// "rescan" which it uses after a new directory, a setup or an overflow. The
// start-up rescan is one of them: compare with daemon.base.
func (s status) watched(result string) uint64 {
	return s.count("watch", result) + s.count("rescan", result)
}

// lastResult is last_reload.result, "" if none.
func (s status) lastResult() string {
	if s.LastReload == nil {
		return ""
	}
	return s.LastReload.Result
}

func (d *daemon) status() status {
	d.t.Helper()
	var s status
	if code := d.getJSON("/api/v1/status", &s); code != http.StatusOK {
		d.t.Fatalf("GET /api/v1/status: HTTP %d", code)
	}
	return s
}

// get fetches path and returns the status code, headers and body.
func (d *daemon) get(path string) (int, http.Header, []byte) {
	d.t.Helper()
	resp, err := client.Get(d.url + path)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		d.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, resp.Header, body
}

func (d *daemon) getJSON(path string, out any) int {
	d.t.Helper()
	code, _, body := d.get(path)
	if err := json.Unmarshal(body, out); err != nil {
		d.t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	return code
}

// post sends an empty POST to path and returns the status code and body.
func (d *daemon) post(path string) (int, []byte) {
	d.t.Helper()
	resp, err := client.Post(d.url+path, "application/json", nil)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		d.t.Fatalf("POST %s: %v", path, err)
	}
	return resp.StatusCode, body
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
	code, h, body := d.get("/api/v1/agents")
	if code != http.StatusOK {
		d.t.Fatalf("GET /api/v1/agents: HTTP %d: %s", code, body)
	}
	var l agentList
	if err := json.Unmarshal(body, &l); err != nil {
		d.t.Fatalf("GET /api/v1/agents: %v: %s", err, body)
	}
	v, err := strconv.ParseUint(h.Get("X-Awakend-Config-Version"), 10, 64)
	if err != nil {
		d.t.Fatalf("X-Awakend-Config-Version: %v", err)
	}
	ids := make([]string, 0, len(l.Data))
	for _, a := range l.Data {
		ids = append(ids, a.ID)
	}
	slices.Sort(ids)
	return v, ids
}

// metric returns the value of the sample of the named metric whose labels
// include the given name, value pairs; the test fails if there is none.
func (d *daemon) metric(name string, labels ...string) float64 {
	d.t.Helper()
	code, _, body := d.get("/metrics")
	if code != http.StatusOK {
		d.t.Fatalf("GET /metrics: HTTP %d", code)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		series, value, ok := cutLast(line, " ")
		if !ok {
			continue
		}
		n, lbls, _ := strings.Cut(strings.TrimSuffix(series, "}"), "{")
		if n != name || !hasLabels(lbls, labels) {
			continue
		}
		f, err := strconv.ParseFloat(value, 64)
		if err != nil {
			d.t.Fatalf("metric %s: %v", line, err)
		}
		return f
	}
	d.t.Fatalf("no sample of %s with labels %q in /metrics", name, labels)
	return 0
}

func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// hasLabels reports whether the exposition label set lbls (a="x",b="y")
// includes every name, value pair of want.
func hasLabels(lbls string, want []string) bool {
	have := map[string]string{}
	for _, kv := range strings.Split(lbls, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			have[k] = strings.Trim(v, `"`)
		}
	}
	for i := 0; i+1 < len(want); i += 2 {
		if have[want[i]] != want[i+1] {
			return false
		}
	}
	return true
}

// environ is the test's environment without what would change how awakend
// runs: its settings (AWAKEND_*, strict: an unknown one is an error), and
// the systemd variables of a test run that is itself a service.
func environ() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		for _, p := range []string{"AWAKEND_", "NOTIFY_SOCKET=", "JOURNAL_STREAM=", "CREDENTIALS_DIRECTORY=", "WATCHDOG_", "LISTEN_"} {
			if strings.HasPrefix(kv, p) {
				return true
			}
		}
		return false
	})
}

// cli is the outcome of one run of the awakend command.
type cli struct {
	stdout, stderr string
	code           int
}

// run runs awakend with args (and extra environment) to completion.
func run(t *testing.T, env []string, args ...string) cli {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("awakend %q did not finish within %v; stderr:\n%s", args, waitTimeout, stderr.String())
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("awakend %q: %v", args, err)
	}
	return cli{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
}

// write writes a file in the config directory, creating directories. It
// truncates and writes in place, as `echo > f` and most programs do.
func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replace writes a file atomically: a temporary file with an ignored name
// in the same directory, renamed over the file.
func replace(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		t.Fatal(err)
	}
}

// remove removes a file or directory tree of the config directory.
func remove(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
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
	dir := t.TempDir()
	write(t, dir, "providers.yaml", providersYAML)
	write(t, dir, "models.yaml", modelsYAML)
	write(t, dir, "agents.yaml", agentsFile("a"))
	return dir
}
