package harness

import (
	"bytes"
	"cmp"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Options change how Start runs a daemon. The zero value is a daemon on
// no settings file, logging text at debug level to the harness.
type Options struct {
	// Env is extra environment, NAME=value, added to Environ.
	Env []string
	// LogFormat is --log-format; "" is text.
	LogFormat string
	// LogLevel is --log-level; "" is debug, "-" passes none, leaving the
	// level to the settings file.
	LogLevel string
	// LogFile, if set, is the file the daemon writes its output to, as a
	// service writes to its log, instead of to a pipe the harness reads:
	// Logs reads it back, WaitLog cannot wait on it.
	LogFile string
	// Settings is the settings file (--settings); "" is none (/dev/null).
	Settings string
	// Listen, if set, is the listen address the settings file names: the
	// harness passes no --listen, so that the file's listen setting is the
	// one that applies. "" lets the harness choose (and pass) one.
	Listen string
	// TLS is the client side of a daemon that serves TLS (its settings
	// file names the certificate and key): the URL is https and the
	// harness's own requests use this configuration. nil is plain HTTP.
	TLS *tls.Config
	// Unprivileged runs the daemon as nobody (65534) when the tests run
	// as root; the config dir, its parents and NotifyDir must let it in.
	Unprivileged bool
	// NotifyDir holds the notify socket; "" is a new tb.TempDir().
	NotifyDir string
	// Args are extra arguments of awakend serve, after the harness's own
	// (--config-dir, --listen, --settings, --log-format, --log-level).
	// The harness chooses the listen address: Args must not set it.
	Args []string
	// Binary is the awakend to run; "" is Binary.
	Binary string
}

// exitedNote is the datagram the harness sends itself on the notify socket
// once the daemon has exited. Datagrams arrive in order, so when it is read
// every notification the daemon sent has been read too.
const exitedNote = "HARNESS_EXITED=1"

// sockets numbers the notify sockets, so that two in one NotifyDir never
// share a name.
var sockets atomic.Int64

// Daemon is one running awakend serve process, started by Start and
// stopped when the test that started it ends.
type Daemon struct {
	// URL is the daemon's base URL: http://127.0.0.1:port, or https://
	// when Options.TLS is set.
	URL string
	// Addr is the address it listens on, 127.0.0.1:port.
	Addr string
	// TLS is Options.TLS: the client side of its TLS, nil for plain HTTP.
	TLS *tls.Config

	tb      testing.TB
	cmd     *exec.Cmd
	client  *http.Client
	logFile string        // Options.LogFile
	exited  chan struct{} // closed once the process has exited
	ready   bool          // it sent READY=1: the cleanup checks how it ends

	mu      sync.Mutex
	notes   []string      // every sd_notify datagram, in order
	seen    int           // notes consumed by WaitNote
	log     bytes.Buffer  // stdout and stderr, unless logFile
	changed chan struct{} // closed and replaced when notes or log grow
}

// Start runs awakend serve on the config directory dir ("" for none: the
// settings name the source) and returns once it
// has sent READY=1: it is then listening and serving its first snapshot.
// It listens on a loopback port that was free a moment before; should
// another process take the port in between, it starts again on another.
//
// When the test ends the daemon gets SIGTERM; the test fails if it does
// not exit with code 0 or if its log reports a data race, and its log is
// shown if the test failed.
func Start(tb testing.TB, dir string, o Options) *Daemon {
	tb.Helper()
	for attempt := 1; ; attempt++ {
		d := launch(tb, dir, o)
		if d.awaitReady() {
			return d
		}
		<-d.exited
		if attempt == 3 || o.Listen != "" || !strings.Contains(d.Logs(), "address already in use") {
			tb.Fatalf("awakend exited (%v) before it was ready; log:\n%s", d.cmd.ProcessState, d.Logs())
		}
	}
}

// launch starts the process, its notify socket and the goroutines that
// collect its output; it does not wait for anything.
func launch(tb testing.TB, dir string, o Options) *Daemon {
	tb.Helper()
	addr := o.Listen
	if addr == "" {
		addr = FreeAddr(tb)
	}
	scheme := "http://"
	if o.TLS != nil {
		scheme = "https://"
	}
	d := &Daemon{
		URL: scheme + addr, Addr: addr, TLS: o.TLS, tb: tb, logFile: o.LogFile,
		client: &http.Client{Timeout: Timeout, Transport: &http.Transport{
			TLSClientConfig: o.TLS, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 4,
		}},
		exited: make(chan struct{}), changed: make(chan struct{}),
	}
	args := []string{"serve"}
	if dir != "" { // none for a daemon whose settings name another source
		args = append(args, "--config-dir", dir)
	}
	if o.Listen == "" {
		args = append(args, "--listen", addr)
	}
	if o.LogLevel != "-" {
		args = append(args, "--log-level", cmp.Or(o.LogLevel, "debug"))
	}
	d.cmd = exec.Command(cmp.Or(o.Binary, Binary), append(append(args,
		"--settings", cmp.Or(o.Settings, os.DevNull),
		"--log-format", cmp.Or(o.LogFormat, "text"),
	), o.Args...)...)
	if o.Unprivileged && os.Geteuid() == 0 {
		d.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	if o.LogFile != "" {
		f, err := os.Create(o.LogFile)
		if err != nil {
			tb.Fatal(err)
		}
		defer f.Close() // the child has its own descriptor
		d.cmd.Stdout, d.cmd.Stderr = f, f
	} else {
		w := &logWriter{d}
		d.cmd.Stdout, d.cmd.Stderr = w, w
	}

	sockDir := o.NotifyDir
	if sockDir == "" {
		sockDir = tb.TempDir()
	}
	sock := filepath.Join(sockDir, fmt.Sprintf("notify-%d.sock", sockets.Add(1)))
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		tb.Fatal(err)
	}
	if o.Unprivileged {
		if err := os.Chmod(sock, 0o777); err != nil {
			conn.Close()
			tb.Fatal(err)
		}
	}
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
			d.broadcast()
			d.mu.Unlock()
		}
	}()
	// No periodic rescan: every reload a test sees is one it caused. The
	// options' environment comes last, so it can say otherwise.
	d.cmd.Env = append(Environ(), "NOTIFY_SOCKET="+sock, "AWAKEND_RELOAD__RESCAN_INTERVAL=0s")
	d.cmd.Env = append(d.cmd.Env, o.Env...)
	if err := d.cmd.Start(); err != nil {
		conn.Close()
		<-notesDone
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

	tb.Cleanup(func() {
		d.Stop()
		<-waitDone
		conn.Close()
		<-notesDone
		d.client.CloseIdleConnections()
		if !d.ready {
			return // a start that failed is reported by Start
		}
		// Every daemon ends with SIGTERM and must exit cleanly; a panic,
		// or the race detector's exit code, fails the test that started it.
		if code := d.cmd.ProcessState.ExitCode(); code != 0 {
			tb.Errorf("awakend exited with code %d", code)
		}
		if strings.Contains(d.Logs(), "WARNING: DATA RACE") {
			tb.Error("the daemon reported a data race")
		}
		if tb.Failed() {
			tb.Logf("awakend log:\n%s", d.Logs())
		}
	})
	return d
}

// awaitReady consumes the notifications up to the first READY=1 and
// reports true, or false if the process exited first.
func (d *Daemon) awaitReady() bool {
	d.tb.Helper()
	deadline := time.NewTimer(Timeout)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		for d.seen < len(d.notes) {
			n := d.notes[d.seen]
			if n == exitedNote {
				d.mu.Unlock()
				return false
			}
			d.seen++
			if strings.Contains(n, "READY=1") {
				d.ready = true
				d.mu.Unlock()
				return true
			}
		}
		ch := d.changed
		d.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			d.tb.Fatalf("no READY=1 within %v; log:\n%s", Timeout, d.Logs())
		}
	}
}

// FreeAddr returns a loopback address whose port is free now.
func FreeAddr(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// logWriter collects the daemon's output in its log and wakes the
// waiters. A pointer, so that exec.Cmd sees Stdout and Stderr as one
// writer and calls it from one goroutine.
type logWriter struct{ d *Daemon }

func (w *logWriter) Write(p []byte) (int, error) {
	w.d.mu.Lock()
	defer w.d.mu.Unlock()
	n, err := w.d.log.Write(p)
	w.d.broadcast()
	return n, err
}

// broadcast wakes every waiter; d.mu is held.
func (d *Daemon) broadcast() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// Changed returns a channel that is closed when the next notification or
// log output arrives.
func (d *Daemon) Changed() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.changed
}

// Client is the HTTP client the harness's own requests to the daemon use;
// its idle connections are closed when the test ends.
func (d *Daemon) Client() *http.Client { return d.client }

// Pid is the daemon's process id.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Logs returns what the daemon has written so far.
func (d *Daemon) Logs() string {
	if d.logFile != "" {
		b, err := os.ReadFile(d.logFile)
		if err != nil {
			return err.Error()
		}
		return string(b)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// Stop sends SIGTERM and waits for the process to exit; it does nothing
// if the process has exited already.
func (d *Daemon) Stop() {
	select {
	case <-d.exited:
		return
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(Timeout):
		_ = d.cmd.Process.Kill()
		<-d.exited
		d.tb.Errorf("awakend did not stop within %v of SIGTERM", Timeout)
	}
}

// Signal sends sig to the daemon.
func (d *Daemon) Signal(sig os.Signal) {
	d.tb.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.tb.Fatal(err)
	}
}

// WaitExit waits for the process to exit and returns its exit code.
func (d *Daemon) WaitExit(timeout time.Duration) int {
	d.tb.Helper()
	select {
	case <-d.exited:
		return d.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		d.tb.Fatalf("awakend did not exit within %v", timeout)
		return -1
	}
}

// WaitNote waits for the next sd_notify datagram containing want that no
// earlier WaitNote (nor Start, which consumes the notifications up to the
// first READY=1) consumed, and returns it.
func (d *Daemon) WaitNote(want string) string {
	d.tb.Helper()
	deadline := time.NewTimer(Timeout)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		for d.seen < len(d.notes) {
			n := d.notes[d.seen]
			if n == exitedNote {
				d.mu.Unlock()
				d.tb.Fatalf("awakend exited (%v) waiting for %q", d.cmd.ProcessState, want)
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
		case <-deadline.C:
			d.tb.Fatalf("no %q notification within %v", want, Timeout)
		}
	}
}

// SawNote reports whether any datagram so far contained want. Once the
// process has exited, WaitExitNote makes "so far" mean "ever".
func (d *Daemon) SawNote(want string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.ContainsFunc(d.notes, func(n string) bool { return strings.Contains(n, want) })
}

// NoteCount is the number of datagrams so far that contained want.
func (d *Daemon) NoteCount(want string) int {
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

// WaitExitNote waits until every notification of an exited daemon has
// been read.
func (d *Daemon) WaitExitNote() {
	d.tb.Helper()
	deadline := time.NewTimer(Timeout)
	defer deadline.Stop()
	for {
		ch := d.Changed()
		if d.SawNote(exitedNote) {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			d.tb.Fatal("the daemon's notifications did not drain")
		}
	}
}

// WaitLog waits until the log matches re and returns the submatches.
func (d *Daemon) WaitLog(re *regexp.Regexp) []string {
	d.tb.Helper()
	if d.logFile != "" {
		d.tb.Fatalf("WaitLog %v: the daemon logs to %s, which the harness does not watch", re, d.logFile)
	}
	deadline := time.NewTimer(Timeout)
	defer deadline.Stop()
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
			// Its output is all collected by now.
			if m := re.FindStringSubmatch(d.Logs()); m != nil {
				return m
			}
			d.tb.Fatalf("awakend exited (%v) before logging %v", d.cmd.ProcessState, re)
		case <-deadline.C:
			d.tb.Fatalf("the log does not match %v within %v", re, Timeout)
		}
	}
}
