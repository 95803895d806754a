package inference

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"go.uber.org/goleak"
)

// binary is the awakend binary built once for the whole package: with the
// race detector when the tests run under it, without it otherwise, so
// that the benchmark measures a normal build.
var binary string

// binaryEnv names a prebuilt awakend binary to test instead of building
// ../../cmd/awakend.
const binaryEnv = "INFERENCE_AWAKEND_BINARY"

// waitTimeout bounds every wait for the daemon: generous, since the
// binary may run under the race detector on a shared two-core machine.
const waitTimeout = 60 * time.Second

func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		os.Exit(serveHelper(role))
	}
	dir, err := os.MkdirTemp("", "awakend-inference-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	binary = filepath.Join(dir, "awakend")
	if prebuilt := os.Getenv(binaryEnv); prebuilt != "" {
		// A binary built elsewhere, a release build say (with -race
		// for a test run under the race detector).
		binary = prebuilt
	} else {
		args := []string{"build", "-o", binary}
		if raceEnabled {
			args = append(args, "-race")
		}
		build := exec.Command("go", append(args, "../../cmd/awakend")...)
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building awakend:", err)
			os.RemoveAll(dir)
			os.Exit(2)
		}
	}
	code := m.Run()
	if code == 0 {
		// Every client, upstream and daemon watcher a test started must be
		// gone by now.
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// exitedNote is the datagram the harness sends itself on the notify socket
// once the daemon has exited. Datagrams arrive in order, so when it is read
// every notification the daemon sent has been read too.
const exitedNote = "INFERENCE_EXITED=1"

// daemon is one running awakend serve process.
type daemon struct {
	tb      testing.TB
	url     string // http://127.0.0.1:port
	cmd     *exec.Cmd
	logPath string        // stdout and stderr, JSON lines
	exited  chan struct{} // closed once the process has exited

	mu      sync.Mutex
	notes   []string      // every sd_notify datagram, in order
	changed chan struct{} // closed and replaced when a datagram arrives
}

// options change how a daemon is started.
type options struct {
	env      []string // extra environment, NAME=value
	logLevel string   // --log-level; "" is info
	binary   string   // the awakend to run; "" is the package's binary
}

// start runs awakend serve on the config directory dir and returns once it
// has sent READY=1 (it is then listening and serving its first snapshot).
// It listens on a port that was free a moment before; if another process
// took the port in between, it starts again on another.
func start(tb testing.TB, dir string, o options) *daemon {
	tb.Helper()
	for attempt := 1; ; attempt++ {
		d, ready := launch(tb, dir, o)
		if ready {
			return d
		}
		<-d.exited
		if attempt == 3 || !strings.Contains(d.logs(), "address already in use") {
			tb.Fatalf("awakend exited (%v) before it was ready; log:\n%s", d.cmd.ProcessState, d.logs())
		}
	}
}

// launch starts the process and waits for READY=1; it reports false if the
// process exited first.
func launch(tb testing.TB, dir string, o options) (*daemon, bool) {
	tb.Helper()
	tmp := tb.TempDir()
	sock := filepath.Join(tmp, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		tb.Fatal(err)
	}
	addr := freeAddr(tb)
	d := &daemon{tb: tb, url: "http://" + addr, logPath: filepath.Join(tmp, "awakend.log"),
		exited: make(chan struct{}), changed: make(chan struct{})}
	notesDone := make(chan struct{})
	go func() {
		defer close(notesDone)
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			d.mu.Lock()
			d.notes = append(d.notes, string(buf[:n]))
			close(d.changed)
			d.changed = make(chan struct{})
			d.mu.Unlock()
		}
	}()

	logf, err := os.Create(d.logPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer logf.Close() // the child has its own descriptor
	d.cmd = exec.Command(cmp.Or(o.binary, binary), "serve",
		"--settings", "/dev/null",
		"--listen", addr,
		"--config-dir", dir,
		"--log-format", "json",
		"--log-level", cmp.Or(o.logLevel, "info"))
	// No periodic rescan: every reload a test sees is one it caused.
	d.cmd.Env = append(environ(), "NOTIFY_SOCKET="+sock, "AWAKEND_RELOAD__RESCAN_INTERVAL=0s")
	d.cmd.Env = append(d.cmd.Env, o.env...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	waitDone := make(chan struct{})
	go func() {
		defer close(waitDone)
		_ = d.cmd.Wait()
		if c, err := net.Dial("unixgram", sock); err == nil {
			_, _ = c.Write([]byte(exitedNote))
			c.Close()
		}
		close(d.exited)
	}()

	ready := false
	tb.Cleanup(func() {
		d.stop()
		<-waitDone
		conn.Close()
		<-notesDone
		if !ready {
			return // a start that failed is reported by start
		}
		// Every daemon ends with SIGTERM and must exit cleanly; a panic or
		// the race detector's exit code fails the test that started it.
		if code := d.cmd.ProcessState.ExitCode(); code != 0 {
			tb.Errorf("awakend exited with code %d", code)
		}
		if strings.Contains(d.logs(), "WARNING: DATA RACE") {
			tb.Error("the daemon reported a data race")
		}
		if tb.Failed() {
			tb.Logf("awakend log:\n%s", d.logs())
		}
	})

	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for seen := 0; ; {
		d.mu.Lock()
		notes, ch := d.notes[seen:], d.changed
		seen = len(d.notes)
		d.mu.Unlock()
		for _, n := range notes {
			if n == exitedNote {
				return d, false
			}
			if strings.Contains(n, "READY=1") {
				ready = true
				return d, true
			}
		}
		select {
		case <-ch:
		case <-deadline.C:
			tb.Fatalf("no READY=1 within %v; log:\n%s", waitTimeout, d.logs())
		}
	}
}

// freeAddr returns a loopback address whose port is free now.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// environ is the test's environment without what would change how awakend
// runs: its settings (AWAKEND_*, strict: an unknown one is an error) and
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

// stop sends SIGTERM and waits for the process to exit.
func (d *daemon) stop() {
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(waitTimeout):
		_ = d.cmd.Process.Kill()
		<-d.exited
		d.tb.Errorf("awakend did not stop within %v of SIGTERM", waitTimeout)
	}
}

// logs returns what the daemon has logged so far.
func (d *daemon) logs() string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// status is the part of GET /api/v1/status the tests read.
type status struct {
	Version uint64 `json:"version"`
	Reloads []struct {
		Trigger string `json:"trigger"`
		Result  string `json:"result"`
		Count   uint64 `json:"count"`
	} `json:"reloads"`
}

func (d *daemon) status() status {
	d.tb.Helper()
	var s status
	d.do(http.MethodGet, "/api/v1/status", http.StatusOK, &s)
	return s
}

// awaitStatus waits until cond holds for the status, checking now and again
// after every notification. Each reload ends with READY=1, sent once the
// new snapshot serves and the status reports it, so no reload is missed.
func (d *daemon) awaitStatus(what string, cond func(status) bool) status {
	d.tb.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		ch := d.changed
		d.mu.Unlock()
		s := d.status()
		if cond(s) {
			return s
		}
		select {
		case <-ch:
		case <-d.exited:
			d.tb.Fatalf("awakend exited (%v) waiting until %s", d.cmd.ProcessState, what)
		case <-deadline.C:
			d.tb.Fatalf("not %s within %v; status: %+v", what, waitTimeout, s)
		}
	}
}

// reloaded is the body of POST /api/v1/reload.
type reloaded struct {
	Result  string `json:"result"`
	Version uint64 `json:"version"`
}

// reload asks for a reload (force=false: the fingerprint decides) and
// returns its result; anything but 200 fails the test.
func (d *daemon) reload() reloaded {
	d.tb.Helper()
	var r reloaded
	d.do(http.MethodPost, "/api/v1/reload?force=false", http.StatusOK, &r)
	return r
}

// do sends an empty request to the daemon's API, checks the status code and
// decodes the JSON answer into out.
func (d *daemon) do(method, path string, want int, out any) {
	d.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, d.url+path, nil)
	if err != nil {
		d.tb.Fatal(err)
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		d.tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		d.tb.Fatalf("%s %s: %v", method, path, err)
	}
	if resp.StatusCode != want {
		d.tb.Fatalf("%s %s: HTTP %d, want %d: %s", method, path, resp.StatusCode, want, body)
	}
	if err := json.Unmarshal(body, out); err != nil {
		d.tb.Fatalf("%s %s: %v: %s", method, path, err, body)
	}
}

// apiClient calls the daemon's own API. Its connections are closed at the
// end of each test that used it (see newClient).
var apiClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}

// newClient returns an OpenAI SDK client of the daemon's gateway: no
// retries (a failure must show), key as the API key ("" sends none,
// whatever OPENAI_API_KEY says), its own connection pool closed when the
// test ends.
func (d *daemon) newClient(tb testing.TB, key string) openai.Client {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}, Timeout: waitTimeout}
	tb.Cleanup(func() {
		hc.CloseIdleConnections()
		apiClient.CloseIdleConnections()
	})
	return openai.NewClient(
		option.WithBaseURL(d.url+"/v1"),
		option.WithAPIKey(key),
		option.WithHTTPClient(hc),
		option.WithMaxRetries(0),
	)
}

// configDir writes files (name → content) into a new config directory.
func configDir(tb testing.TB, files map[string]string) string {
	tb.Helper()
	dir := tb.TempDir()
	for name, content := range files {
		write(tb, dir, name, content)
	}
	return dir
}

// write replaces a file of the config directory atomically, as careful
// tools do: a temporary file with an ignored name, renamed over it. A
// reload never reads it half-written.
func write(tb testing.TB, dir, name, content string) {
	tb.Helper()
	p := filepath.Join(dir, name)
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		tb.Fatal(err)
	}
}

// version parses the X-Awakend-Config-Version of a response.
func version(tb testing.TB, h http.Header) uint64 {
	tb.Helper()
	v, err := parseVersion(h)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func parseVersion(h http.Header) (uint64, error) {
	v, err := strconv.ParseUint(h.Get("X-Awakend-Config-Version"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("X-Awakend-Config-Version %q: %w", h.Get("X-Awakend-Config-Version"), err)
	}
	return v, nil
}
