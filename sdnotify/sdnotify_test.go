package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// listen opens a unixgram socket at addr, the way systemd's notification
// socket is opened, and closes it when the test ends.
func listen(t *testing.T, addr string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// pathSocket returns a listener on a socket file in a fresh temporary
// directory and its address.
func pathSocket(t *testing.T) (*net.UnixConn, string) {
	addr := filepath.Join(t.TempDir(), "notify")
	return listen(t, addr), addr
}

// abstractSocket returns a listener in the abstract namespace and its
// address in NOTIFY_SOCKET form.
func abstractSocket(t *testing.T) (*net.UnixConn, string) {
	addr := fmt.Sprintf("@awakend-sdnotify-test/%d/%d", os.Getpid(), time.Now().UnixNano())
	return listen(t, addr), addr
}

// drain returns every datagram queued on c without blocking. A send has
// queued its datagram by the time it returns, so what drain sees right after
// a call is exactly what that call sent.
func drain(t *testing.T, c *net.UnixConn) []string {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	buf := make([]byte, 64<<10)
	for {
		var n int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			return true
		}); err != nil {
			t.Fatal(err)
		}
		if errors.Is(rerr, unix.EAGAIN) {
			return got
		}
		if rerr != nil {
			t.Fatalf("recvfrom: %v", rerr)
		}
		got = append(got, string(buf[:n]))
	}
}

func TestMessages(t *testing.T) {
	tests := []struct {
		name string
		call func(*Notifier) error
		want string
	}{
		{"ready", func(n *Notifier) error { return n.Ready("serving 3 agents") }, "READY=1\nSTATUS=serving 3 agents"},
		{"ready without status", func(n *Notifier) error { return n.Ready("") }, "READY=1"},
		{"ready status with newlines", func(n *Notifier) error { return n.Ready("bad\nconfig\r\nkept") }, "READY=1\nSTATUS=bad config  kept"},
		{"stopping", func(n *Notifier) error { return n.Stopping() }, "STOPPING=1"},
		{"status", func(n *Notifier) error { return n.Status("applied version 7") }, "STATUS=applied version 7"},
		{"status empty clears", func(n *Notifier) error { return n.Status("") }, "STATUS="},
		{"status control and invalid utf-8", func(n *Notifier) error { return n.Status("a\x00b\tc\xffd\u2028e") }, "STATUS=a b c\uFFFDd e"},
		{"watchdog", func(n *Notifier) error { return n.Watchdog() }, "WATCHDOG=1"},
		{"send several", func(n *Notifier) error { return n.Send("READY=1", "MAINPID=42", "X_CUSTOM=a=b") }, "READY=1\nMAINPID=42\nX_CUSTOM=a=b"},
	}
	sockets := []struct {
		name   string
		listen func(*testing.T) (*net.UnixConn, string)
	}{
		{"path", pathSocket},
		{"abstract", abstractSocket},
	}
	for _, s := range sockets {
		t.Run(s.name, func(t *testing.T) {
			l, addr := s.listen(t)
			n := NewAt(addr)
			if !n.Enabled() {
				t.Fatal("Enabled() = false for a socket address")
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					if err := tt.call(n); err != nil {
						t.Fatalf("error: %v", err)
					}
					got := drain(t, l)
					if len(got) != 1 || got[0] != tt.want {
						t.Fatalf("datagrams = %q, want exactly [%q]", got, tt.want)
					}
				})
			}
		})
	}
}

func TestReloading(t *testing.T) {
	l, addr := pathSocket(t)
	n := NewAt(addr)

	before := clockMonotonicUsec(t)
	if err := n.Reloading("reloading\nconfig"); err != nil {
		t.Fatal(err)
	}
	after := clockMonotonicUsec(t)

	got := drain(t, l)
	if len(got) != 1 {
		t.Fatalf("got %d datagrams %q, want 1", len(got), got)
	}
	lines := strings.Split(got[0], "\n")
	if len(lines) != 3 || lines[0] != "RELOADING=1" || lines[2] != "STATUS=reloading config" {
		t.Fatalf("datagram = %q, want RELOADING=1, MONOTONIC_USEC=…, STATUS=reloading config", got[0])
	}
	v, ok := strings.CutPrefix(lines[1], "MONOTONIC_USEC=")
	if !ok {
		t.Fatalf("second line = %q, want MONOTONIC_USEC=…", lines[1])
	}
	usec, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("MONOTONIC_USEC=%q: %v", v, err)
	}
	if usec < before || usec > after {
		t.Fatalf("MONOTONIC_USEC=%d, want CLOCK_MONOTONIC between %d and %d", usec, before, after)
	}

	if err := n.Reloading(""); err != nil {
		t.Fatal(err)
	}
	got = drain(t, l)
	if len(got) != 1 || strings.Count(got[0], "\n") != 1 || !strings.HasPrefix(got[0], "RELOADING=1\nMONOTONIC_USEC=") {
		t.Fatalf("without status: datagrams = %q, want one RELOADING=1 + MONOTONIC_USEC=", got)
	}
}

func clockMonotonicUsec(t *testing.T) uint64 {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return uint64(ts.Sec)*1_000_000 + uint64(ts.Nsec)/1_000
}

func TestSendInvalid(t *testing.T) {
	l, addr := pathSocket(t)
	n := NewAt(addr)
	tests := []struct {
		name   string
		states []string
	}{
		{"none", nil},
		{"empty", []string{""}},
		{"no equals", []string{"READY"}},
		{"empty key", []string{"=1"}},
		{"newline smuggles a state", []string{"STATUS=a\nREADY=1"}},
		{"nul", []string{"STATUS=a\x00b"}},
		{"one bad among good", []string{"READY=1", "oops"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := n.Send(tt.states...); err == nil {
				t.Fatal("Send succeeded, want an error")
			}
			if got := drain(t, l); len(got) != 0 {
				t.Fatalf("sent %q, want nothing", got)
			}
		})
	}
}

func TestSendErrors(t *testing.T) {
	tests := []struct {
		name string
		addr string
		want string
	}{
		{"missing socket", filepath.Join(t.TempDir(), "absent"), "absent"},
		{"relative path", "run/notify", `unsupported NOTIFY_SOCKET address "run/notify"`},
		{"vsock", "vsock:2:1234", `unsupported NOTIFY_SOCKET address "vsock:2:1234"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := NewAt(tt.addr).Ready("x")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestNew(t *testing.T) {
	l, addr := pathSocket(t)
	t.Setenv("NOTIFY_SOCKET", addr)
	n := New()
	if err := n.Ready("up"); err != nil {
		t.Fatal(err)
	}
	if got := drain(t, l); len(got) != 1 || got[0] != "READY=1\nSTATUS=up" {
		t.Fatalf("datagrams = %q", got)
	}
}

func TestDisabled(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	os.Unsetenv("NOTIFY_SOCKET")

	var zero Notifier
	for name, n := range map[string]*Notifier{"New unset": New(), "NewAt empty": NewAt(""), "nil": nil, "zero": &zero} {
		t.Run(name, func(t *testing.T) {
			if n.Enabled() {
				t.Fatal("Enabled() = true, want false")
			}
			calls := map[string]error{
				"Send":      n.Send("READY=1"),
				"Send bad":  n.Send("not a state"),
				"Ready":     n.Ready("x"),
				"Reloading": n.Reloading("x"),
				"Stopping":  n.Stopping(),
				"Status":    n.Status("x"),
				"Watchdog":  n.Watchdog(),
			}
			for call, err := range calls {
				if err != nil {
					t.Errorf("%s: %v, want nil", call, err)
				}
			}
			// Returns at once rather than waiting for ctx.
			n.RunWatchdog(t.Context(), time.Second, func(err error) { t.Errorf("report(%v)", err) })
		})
	}
}

func TestWatchdogInterval(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	tests := []struct {
		name  string
		usec  *string
		pid   *string
		want  time.Duration
		wantT bool
	}{
		{name: "unset"},
		{name: "empty", usec: ptr("")},
		{name: "not a number", usec: ptr("thirty")},
		{name: "negative", usec: ptr("-1")},
		{name: "zero", usec: ptr("0")},
		{name: "overflows a Duration", usec: ptr("18446744073709551615")},
		{name: "set", usec: ptr("30000000"), want: 30 * time.Second, wantT: true},
		{name: "pid matches", usec: ptr("2500"), pid: &pid, want: 2500 * time.Microsecond, wantT: true},
		{name: "pid empty", usec: ptr("1000000"), pid: ptr("")},
		{name: "pid of another process", usec: ptr("1000000"), pid: ptr(strconv.Itoa(os.Getpid() + 1))},
		{name: "pid not a number", usec: ptr("1000000"), pid: ptr("self")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setenv(t, "WATCHDOG_USEC", tt.usec)
			setenv(t, "WATCHDOG_PID", tt.pid)
			got, ok := WatchdogInterval()
			if got != tt.want || ok != tt.wantT {
				t.Fatalf("WatchdogInterval() = %v, %v; want %v, %v", got, ok, tt.want, tt.wantT)
			}
		})
	}
}

func ptr(s string) *string { return &s }

// setenv sets key to *v, or unsets it when v is nil, for the test's duration.
func setenv(t *testing.T, key string, v *string) {
	t.Helper()
	if v != nil {
		t.Setenv(key, *v)
		return
	}
	t.Setenv(key, "")
	os.Unsetenv(key)
}

func TestRunWatchdog(t *testing.T) {
	l, addr := pathSocket(t)
	synctest.Test(t, func(t *testing.T) {
		n := NewAt(addr)
		var mu sync.Mutex
		var reported []error
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		wg.Go(func() {
			n.RunWatchdog(ctx, 10*time.Second, func(err error) {
				mu.Lock()
				defer mu.Unlock()
				reported = append(reported, err)
			})
		})

		expect := func(when string, want int) {
			t.Helper()
			synctest.Wait()
			got := drain(t, l)
			if len(got) != want {
				t.Fatalf("%s: %d pings, want %d", when, len(got), want)
			}
			for _, g := range got {
				if g != "WATCHDOG=1" {
					t.Fatalf("%s: datagram %q, want WATCHDOG=1", when, g)
				}
			}
		}

		expect("at start", 1)
		time.Sleep(4999 * time.Millisecond)
		expect("just before interval/2", 0)
		time.Sleep(time.Millisecond)
		expect("at interval/2", 1)
		time.Sleep(15 * time.Second)
		expect("three half-intervals later", 3)

		cancel()
		wg.Wait()
		time.Sleep(time.Minute)
		expect("after ctx is done", 0)

		mu.Lock()
		defer mu.Unlock()
		if len(reported) != 0 {
			t.Fatalf("reported %v, want no errors", reported)
		}
	})
}

func TestRunWatchdogReportsAndContinues(t *testing.T) {
	addr := filepath.Join(t.TempDir(), "gone")
	synctest.Test(t, func(t *testing.T) {
		n := NewAt(addr)
		errs := make(chan error, 10)
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		wg.Go(func() {
			n.RunWatchdog(ctx, 2*time.Second, func(err error) { errs <- err })
		})
		time.Sleep(3500 * time.Millisecond) // pings at 0s, 1s, 2s, 3s
		cancel()
		wg.Wait()
		close(errs)
		count := 0
		for err := range errs {
			count++
			if !strings.Contains(err.Error(), "gone") {
				t.Errorf("reported %v, want the socket path in it", err)
			}
		}
		if count != 4 {
			t.Fatalf("reported %d failed pings, want 4", count)
		}
	})
}
