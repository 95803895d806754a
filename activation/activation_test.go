package activation

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// passed puts real descriptors where systemd would: it duplicates each
// file onto first, first+1, … (which listeners then takes over and closes).
func passed(t *testing.T, first int, files ...*os.File) {
	t.Helper()
	for i, f := range files {
		if err := syscall.Dup3(int(f.Fd()), first+i, 0); err != nil {
			t.Fatalf("dup3 onto %d: %v", first+i, err)
		}
		f.Close()
	}
}

func tcpFile(t *testing.T) (*os.File, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	return f, ln.Addr().String()
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// isOpen reports whether fd is an open descriptor.
func isOpen(fd int) bool {
	var st syscall.Stat_t
	return syscall.Fstat(fd, &st) == nil
}

func TestListenersServeThePassedSockets(t *testing.T) {
	const first = 300
	tcp, addr := tcpFile(t)
	sock := filepath.Join(t.TempDir(), "s")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ul.(*net.UnixListener).SetUnlinkOnClose(false)
	uf, err := ul.(*net.UnixListener).File()
	if err != nil {
		t.Fatal(err)
	}
	ul.Close()
	passed(t, first, tcp, uf)

	lns, err := listeners(env(map[string]string{
		"LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "http:admin",
	}), 42, first)
	if err != nil {
		t.Fatal(err)
	}
	if len(lns) != 2 {
		t.Fatalf("got %d listeners, want 2", len(lns))
	}
	defer lns[0].Close()
	defer lns[1].Close()
	if lns[0].Name != "http" || lns[1].Name != "admin" {
		t.Errorf("names %q, %q; want http, admin", lns[0].Name, lns[1].Name)
	}
	if got := lns[0].Addr().String(); got != addr {
		t.Errorf("first listener on %s, want %s", got, addr)
	}
	// The originals are closed: the listeners hold duplicates.
	if isOpen(first) || isOpen(first+1) {
		t.Error("the passed descriptors are still open")
	}
	for _, c := range []struct{ network, addr string }{{"tcp", addr}, {"unix", sock}} {
		i := 0
		if c.network == "unix" {
			i = 1
		}
		go func() {
			conn, err := lns[i].Accept()
			if err == nil {
				conn.Write([]byte("hello " + c.network))
				conn.Close()
			}
		}()
		conn, err := net.Dial(c.network, c.addr)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(conn)
		conn.Close()
		if string(b) != "hello "+c.network {
			t.Errorf("%s: read %q through the passed socket", c.network, b)
		}
	}
}

func TestListenersDefaultNames(t *testing.T) {
	const first = 310
	f, _ := tcpFile(t)
	passed(t, first, f)
	lns, err := listeners(env(map[string]string{"LISTEN_PID": "7", "LISTEN_FDS": "1"}), 7, first)
	if err != nil {
		t.Fatal(err)
	}
	defer lns[0].Close()
	if want := "LISTEN_FD_" + strconv.Itoa(first); lns[0].Name != want {
		t.Errorf("name %q, want %q", lns[0].Name, want)
	}
}

func TestListenersNotActivated(t *testing.T) {
	for name, vars := range map[string]map[string]string{
		"no variables":      {},
		"another process":   {"LISTEN_PID": "8", "LISTEN_FDS": "1"},
		"only LISTEN_FDS":   {"LISTEN_FDS": "1"},
		"no sockets passed": {"LISTEN_PID": "7", "LISTEN_FDS": "0"},
	} {
		t.Run(name, func(t *testing.T) {
			lns, err := listeners(env(vars), 7, 320)
			if err != nil || len(lns) != 0 {
				t.Errorf("got %v, %v; want no listeners and no error", lns, err)
			}
		})
	}
}

func TestListenersErrors(t *testing.T) {
	const first = 330
	for _, c := range []struct {
		name string
		vars map[string]string
		want string
	}{
		{"bad pid", map[string]string{"LISTEN_PID": "x", "LISTEN_FDS": "1"}, `LISTEN_PID="x" is not a process id`},
		{"bad count", map[string]string{"LISTEN_PID": "7", "LISTEN_FDS": "two"}, `LISTEN_FDS="two" is not a number`},
		{"negative count", map[string]string{"LISTEN_PID": "7", "LISTEN_FDS": "-1"}, `LISTEN_FDS="-1"`},
		{"names mismatch", map[string]string{"LISTEN_PID": "7", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "a:b"}, "2 names for LISTEN_FDS=1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := listeners(env(c.vars), 7, first)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want it to contain %q", err, c.want)
			}
		})
	}

	// A descriptor that is not a listening socket: the listener before it
	// is closed again and the error names the descriptor.
	t.Run("not a socket", func(t *testing.T) {
		sock, addr := tcpFile(t)
		plain, err := os.Create(filepath.Join(t.TempDir(), "plain"))
		if err != nil {
			t.Fatal(err)
		}
		passed(t, first, sock, plain)
		_, err = listeners(env(map[string]string{"LISTEN_PID": "7", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "web:oops"}), 7, first)
		if err == nil || !strings.Contains(err.Error(), "descriptor 331 (oops)") {
			t.Fatalf("error %v, want it to name descriptor 331 (oops)", err)
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Error("the listener built before the bad descriptor still accepts")
		}
	})
}

func TestListenersUnsetsTheEnvironment(t *testing.T) {
	t.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()+1)) // another process: no descriptors are touched
	t.Setenv("LISTEN_FDS", "1")
	t.Setenv("LISTEN_FDNAMES", "web")
	lns, err := Listeners()
	if err != nil || lns != nil {
		t.Fatalf("got %v, %v", lns, err)
	}
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if v, ok := os.LookupEnv(k); ok {
			t.Errorf("%s=%q is still set", k, v)
		}
	}
}
