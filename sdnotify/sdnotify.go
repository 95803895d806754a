// Package sdnotify owns awakend's side of the systemd service notification
// protocol (sd_notify(3)): the readiness, reload, stopping, status and
// watchdog messages a Type=notify or Type=notify-reload unit exchanges with
// the service manager over the datagram socket named in $NOTIFY_SOCKET.
//
// It speaks the protocol directly and links neither libsystemd nor
// go-systemd. Outside systemd, where $NOTIFY_SOCKET is unset, every method is
// a no-op that returns nil, so callers need no "are we under systemd" checks.
package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// sendTimeout bounds one datagram write. systemd drains its notification
// socket promptly; a write that blocks this long means the manager is wedged
// and the caller is better off with an error than a hung goroutine.
const sendTimeout = 5 * time.Second

// Notifier sends state notifications to the service manager. Its zero value
// and a nil *Notifier are disabled notifiers. A Notifier is safe for
// concurrent use: each message is sent on its own socket.
type Notifier struct {
	addr string // "" when disabled
}

// New returns a Notifier for the socket named in $NOTIFY_SOCKET: a
// file-system path ("/run/systemd/notify") or, with a leading '@', a name in
// the Linux abstract socket namespace. When the variable is unset or empty
// the Notifier is disabled.
func New() *Notifier {
	return NewAt(os.Getenv("NOTIFY_SOCKET"))
}

// NewAt returns a Notifier for the socket addr, written as in $NOTIFY_SOCKET.
// An empty addr gives a disabled Notifier.
func NewAt(addr string) *Notifier {
	return &Notifier{addr: addr}
}

// Enabled reports whether n sends anything, that is whether it was given a
// socket address.
func (n *Notifier) Enabled() bool {
	return n != nil && n.addr != ""
}

// Send sends states, each a "KEY=VALUE" assignment, to the service manager as
// one datagram of newline-separated lines, so that systemd applies them
// together. A state that is not of that form or that contains a newline or a
// NUL byte is an error and nothing is sent. On a disabled Notifier Send does
// nothing and returns nil.
func (n *Notifier) Send(states ...string) error {
	if !n.Enabled() {
		return nil
	}
	if len(states) == 0 {
		return errors.New("sdnotify: no states to send")
	}
	for _, s := range states {
		key, _, ok := strings.Cut(s, "=")
		if !ok || key == "" || strings.ContainsAny(s, "\n\x00") {
			return fmt.Errorf("sdnotify: invalid state %q: want KEY=VALUE on one line", s)
		}
	}
	return n.send(strings.Join(states, "\n"))
}

// send writes payload as one datagram to n's socket.
func (n *Notifier) send(payload string) error {
	if n.addr[0] != '/' && n.addr[0] != '@' {
		// systemd 254+ may also hand out vsock: addresses; awakend runs
		// on the host it is managed by, so only AF_UNIX is supported.
		return fmt.Errorf("sdnotify: unsupported NOTIFY_SOCKET address %q", n.addr)
	}
	// The standard library maps a leading '@' to the abstract namespace,
	// which is exactly the NOTIFY_SOCKET convention.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer conn.Close()
	if err := conn.SetWriteDeadline(time.Now().Add(sendTimeout)); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	if _, err := conn.Write([]byte(payload)); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}

// Ready tells the service manager that start-up, or a reload announced with
// Reloading, has finished: READY=1, with STATUS=status when status is not
// empty.
func (n *Notifier) Ready(status string) error {
	return n.Send(withStatus([]string{"READY=1"}, status)...)
}

// Reloading tells the service manager that a configuration reload has begun:
// RELOADING=1 and MONOTONIC_USEC= (the current CLOCK_MONOTONIC time in
// microseconds), with STATUS=status when status is not empty, in one
// datagram. systemd 253 and later require MONOTONIC_USEC= in the same message
// to match a Type=notify-reload reload to its request; older managers ignore
// it. A successful or failed reload must be followed by Ready.
func (n *Notifier) Reloading(status string) error {
	if !n.Enabled() {
		return nil
	}
	usec, err := monotonicUsec()
	if err != nil {
		return err
	}
	states := []string{"RELOADING=1", "MONOTONIC_USEC=" + strconv.FormatUint(usec, 10)}
	return n.Send(withStatus(states, status)...)
}

// Stopping tells the service manager that the service is shutting down:
// STOPPING=1.
func (n *Notifier) Stopping() error {
	return n.Send("STOPPING=1")
}

// Status sets the free-form status line that "systemctl status" shows:
// STATUS=s. Line breaks and other control characters in s become spaces and
// invalid UTF-8 is replaced, since systemd ignores a status that is not one
// clean UTF-8 line. An empty s clears the status.
func (n *Notifier) Status(s string) error {
	return n.Send("STATUS=" + sanitize(s))
}

// Watchdog resets the service manager's watchdog timer: WATCHDOG=1.
func (n *Notifier) Watchdog() error {
	return n.Send("WATCHDOG=1")
}

// WatchdogInterval reports the watchdog timeout systemd expects this process
// to honour, as sd_watchdog_enabled(3) does: $WATCHDOG_USEC, a positive
// number of microseconds, and, when $WATCHDOG_PID is set, only if it names
// this process (the variables are inherited by children, which must not
// ping). It reports false when the watchdog is off or the variables are
// malformed.
func WatchdogInterval() (time.Duration, bool) {
	s := os.Getenv("WATCHDOG_USEC")
	if s == "" {
		return 0, false
	}
	usec, err := strconv.ParseUint(s, 10, 64)
	if err != nil || usec == 0 || usec > uint64(1<<63-1)/uint64(time.Microsecond) {
		return 0, false
	}
	if p, set := os.LookupEnv("WATCHDOG_PID"); set {
		pid, err := strconv.Atoi(p)
		if err != nil || pid != os.Getpid() {
			return 0, false
		}
	}
	return time.Duration(usec) * time.Microsecond, true
}

// RunWatchdog pings the watchdog (WATCHDOG=1) at once and then every
// interval/2, the margin sd_watchdog_enabled(3) recommends, until ctx is
// done; interval is the timeout WatchdogInterval reports. It runs in the
// caller's goroutine and returns when ctx is done, or at once when n is
// disabled or interval is not positive. A failed ping is passed to report,
// when report is not nil, and does not stop the loop: systemd acts only when
// pings stop for a whole interval, so the next tick is the retry.
func (n *Notifier) RunWatchdog(ctx context.Context, interval time.Duration, report func(error)) {
	if !n.Enabled() || interval <= 0 {
		return
	}
	period := interval / 2
	if period <= 0 {
		period = interval
	}
	ping := func() {
		if err := n.Watchdog(); err != nil && report != nil {
			report(err)
		}
	}
	ping()
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			ping()
		}
	}
}

// withStatus appends STATUS=status to states when status is not empty.
func withStatus(states []string, status string) []string {
	if status == "" {
		return states
	}
	return append(states, "STATUS="+sanitize(status))
}

// sanitize makes s a single line of valid UTF-8: control characters
// (including CR, LF and NUL) become spaces.
func sanitize(s string) string {
	s = strings.ToValidUTF8(s, string(utf8.RuneError))
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}

// monotonicUsec returns CLOCK_MONOTONIC in microseconds, the clock systemd
// compares MONOTONIC_USEC= against. (Go's own monotonic readings are not
// exposed as absolute values.)
func monotonicUsec() (uint64, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, fmt.Errorf("sdnotify: read CLOCK_MONOTONIC: %w", err)
	}
	return uint64(ts.Sec)*1_000_000 + uint64(ts.Nsec)/1_000, nil
}
