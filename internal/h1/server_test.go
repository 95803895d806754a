package h1_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/awakend/awakend/internal/h1"
)

func TestKeepAlive(t *testing.T) {
	f := handle(t, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%s %s %d", r.Method, r.URL.Path, len(b))
	})
	c := client(t)
	tests := []struct {
		method, path string
		body         string
	}{
		{method: http.MethodGet, path: "/a"},
		{method: http.MethodPost, path: "/b", body: `{"model":"m"}`},
		{method: http.MethodGet, path: "/c"},
		{method: http.MethodPost, path: "/d", body: strings.Repeat("x", 64<<10)},
		{method: http.MethodPut, path: "/e", body: "short"},
		{method: http.MethodHead, path: "/f"},
		{method: http.MethodGet, path: "/g"},
	}
	// In order, on the client's one connection: all but the first reuse it.
	for i, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			resp, got, reused := do(t, c, newRequest(t, tc.method, f.url+tc.path, body))
			want := fmt.Sprintf("%s %s %d", tc.method, tc.path, len(tc.body))
			if tc.method == http.MethodHead {
				want = ""
			}
			if resp.StatusCode != http.StatusOK || got != want {
				t.Errorf("answer %d %q, want 200 %q", resp.StatusCode, got, want)
			}
			if reused != (i > 0) {
				t.Errorf("connection reused %v, want %v", reused, i > 0)
			}
		})
	}
}

// TestServeClosed checks Serve's result once the server is shut down or
// closed, and that a Serve called afterwards returns at once.
func TestServeClosed(t *testing.T) {
	tests := []struct {
		name string
		stop func(*h1.Server) error
	}{
		{"Shutdown", func(s *h1.Server) error { return s.Shutdown(context.Background()) }},
		{"Close", (*h1.Server).Close},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := &h1.Server{Handler: http.NotFoundHandler()}
			f := serve(t, srv)
			if err := tc.stop(srv); err != nil {
				t.Fatalf("%s = %v", tc.name, err)
			}
			if err := f.served(); !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("Serve = %v, want http.ErrServerClosed", err)
			}
			if _, err := net.Dial("tcp", f.addr); err == nil {
				t.Error("the server still accepts connections")
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("Serve after %s = %v, want http.ErrServerClosed", tc.name, err)
			}
			if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
				t.Errorf("Serve after %s left its listener open: Accept = %v", tc.name, err)
			}
		})
	}
}

// blocker is a handler that signals when a request starts and answers
// once released, or reports its context's end.
type blocker struct {
	started chan struct{} // receives once per request
	release chan struct{} // closed to let requests answer
	causes  chan error    // the cause of each request's cancellation, nil if none
}

func newBlocker() *blocker {
	return &blocker{started: make(chan struct{}, 4), release: make(chan struct{}), causes: make(chan error, 4)}
}

func (b *blocker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	b.started <- struct{}{}
	select {
	case <-b.release:
		b.causes <- context.Cause(r.Context())
		io.WriteString(w, "answered")
	case <-r.Context().Done():
		b.causes <- context.Cause(r.Context())
	case <-time.After(testTimeout):
		b.causes <- errors.New("neither released nor cancelled")
	}
}

// refusing reports whether nothing accepts connections at addr.
func refusing(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
	}
	return err != nil
}

func TestShutdown(t *testing.T) {
	t.Run("waits for a running request", func(t *testing.T) {
		b := newBlocker()
		srv := &h1.Server{Handler: b}
		f := serve(t, srv)
		c := dial(t, f.addr)
		write(t, c, get11)
		wait(t, b.started, "the request")

		shut := make(chan error, 1)
		background(t, func() { shut <- srv.Shutdown(t.Context()) })
		eventually(t, "the listener closes", func() bool { return refusing(f.addr) })
		select {
		case err := <-shut:
			t.Fatalf("Shutdown = %v before the request was answered", err)
		case <-time.After(20 * time.Millisecond):
		}
		close(b.release)
		resp, body := readResponse(t, bufio.NewReader(c), http.MethodGet)
		if body != "answered" || !resp.Close {
			t.Errorf("answer %q, Connection: close %v; want \"answered\", true", body, resp.Close)
		}
		if err := wait(t, b.causes, "the handler"); err != nil {
			t.Errorf("the request was cancelled: %v", err)
		}
		if err := wait(t, shut, "Shutdown"); err != nil {
			t.Errorf("Shutdown = %v", err)
		}
		if err := f.served(); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v, want http.ErrServerClosed", err)
		}
	})

	t.Run("closes idle connections at once", func(t *testing.T) {
		srv := &h1.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}
		f := serve(t, srv)
		c := dial(t, f.addr)
		br := bufio.NewReader(c)
		write(t, c, get11)
		readResponse(t, br, http.MethodGet) // the connection is idle now

		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		if err := srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown = %v", err)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("Shutdown took %v", d)
		}
		if b, err := br.ReadByte(); err != io.EOF {
			t.Errorf("idle connection: read %q, %v; want EOF", b, err)
		}
	})

	t.Run("deadline passes", func(t *testing.T) {
		b := newBlocker()
		srv := &h1.Server{Handler: b}
		f := serve(t, srv)
		c := dial(t, f.addr)
		write(t, c, get11)
		wait(t, b.started, "the request")

		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
		defer cancel()
		if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Shutdown = %v, want context.DeadlineExceeded", err)
		}
		if !refusing(f.addr) {
			t.Error("the server still accepts connections")
		}
		srv.Close()
		if err := wait(t, b.causes, "the handler"); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("the request's cause = %v, want http.ErrServerClosed", err)
		}
		if b, err := io.ReadAll(c); len(b) > 0 {
			t.Errorf("the closed connection answered %q, %v", b, err)
		}
	})
}

// TestShutdownIdleAndRunning checks Shutdown with both kinds of
// connection: the idle one closes at once, the running request goes on
// (reading its body, answering) and its connection closes after.
func TestShutdownIdleAndRunning(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	srv := &h1.Server{WatchAfter: time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/idle" {
			return
		}
		close(started)
		<-release
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Write(b)
	})}
	f := serve(t, srv)
	idle := dial(t, f.addr)
	idleBR := bufio.NewReader(idle)
	write(t, idle, "GET /idle HTTP/1.1\r\nHost: h1.test\r\n\r\n")
	readResponse(t, idleBR, http.MethodGet)
	running := dial(t, f.addr)
	write(t, running, "POST / HTTP/1.1\r\nHost: h1.test\r\nContent-Length: 4\r\n\r\nbody")
	wait(t, started, "the request")

	shut := make(chan error, 1)
	background(t, func() { shut <- srv.Shutdown(t.Context()) })
	if b, err := idleBR.ReadByte(); err != io.EOF {
		t.Errorf("idle connection: read %q, %v; want EOF", b, err)
	}
	close(release)
	resp, body := readResponse(t, bufio.NewReader(running), http.MethodPost)
	if body != "body" || !resp.Close {
		t.Errorf("answer %q, Connection: close %v; want \"body\", true", body, resp.Close)
	}
	if err := wait(t, shut, "Shutdown"); err != nil {
		t.Errorf("Shutdown = %v", err)
	}
}

// TestShutdownSaysClose checks that an answer begun during Shutdown
// tells the client the connection closes.
func TestShutdownSaysClose(t *testing.T) {
	b := newBlocker()
	srv := &h1.Server{Handler: b}
	f := serve(t, srv)
	c := client(t)
	type result struct {
		resp *http.Response
		body string
	}
	got := make(chan result, 1)
	background(t, func() {
		resp, err := c.Get(f.url)
		if err != nil {
			got <- result{}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		got <- result{resp, string(body)}
	})
	wait(t, b.started, "the request")
	background(t, func() { srv.Shutdown(t.Context()) })
	eventually(t, "the listener closes", func() bool { return refusing(f.addr) })
	close(b.release)
	r := wait(t, got, "the answer")
	if r.resp == nil || r.body != "answered" || !r.resp.Close {
		t.Fatalf("answer %+v, want \"answered\" with Connection: close", r)
	}
}

func TestClose(t *testing.T) {
	b := newBlocker()
	srv := &h1.Server{WatchAfter: time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/idle" {
			b.ServeHTTP(w, r)
		}
	})}
	b.started, b.causes = make(chan struct{}, 8), make(chan error, 8)
	f := serve(t, srv)
	// Several, so that handlers have time to return between the
	// cancellation and their connection's close.
	conns := make([]net.Conn, 8)
	for i := range conns {
		conns[i] = dial(t, f.addr)
		write(t, conns[i], get11)
		wait(t, b.started, "a request")
	}
	idle := dial(t, f.addr)
	write(t, idle, "GET /idle HTTP/1.1\r\nHost: h1.test\r\n\r\n")
	readResponse(t, bufio.NewReader(idle), http.MethodGet)
	if err := srv.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	for range conns {
		if err := wait(t, b.causes, "a handler"); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("a running request's cause = %v, want http.ErrServerClosed", err)
		}
	}
	for _, c := range append(conns, idle) {
		if b, err := io.ReadAll(c); len(b) > 0 || err != nil {
			t.Errorf("closed connection: read %q, %v; want EOF", b, err)
		}
	}
	if err := f.served(); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve = %v, want http.ErrServerClosed", err)
	}
}

func TestTimeouts(t *testing.T) {
	const d = 50 * time.Millisecond
	tests := []struct {
		name         string
		header, idle time.Duration // Server.ReadHeaderTimeout, IdleTimeout
		send         string        // before the server should close
	}{
		{"headers stall", d, 0, "GET / HTTP/1.1\r\nHost: h1.test\r\n"},
		{"new connection is silent", d, 0, ""},
		{"kept connection is idle", 0, d, get11},
		{"kept connection is idle, header timeout set", time.Hour, d, get11},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := serve(t, &h1.Server{
				ReadHeaderTimeout: tc.header,
				IdleTimeout:       tc.idle,
				Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
			})
			c := dial(t, f.addr)
			br := bufio.NewReader(c)
			write(t, c, tc.send)
			if strings.HasSuffix(tc.send, "\r\n\r\n") {
				if _, body := readResponse(t, br, http.MethodGet); body != "ok" {
					t.Fatalf("answer %q", body)
				}
			}
			start := time.Now()
			rest, err := io.ReadAll(br)
			if err != nil || len(rest) > 0 {
				t.Errorf("read %q, %v; want the server to close the connection", rest, err)
			}
			if took := time.Since(start); took < d*4/5 {
				t.Errorf("the server closed the connection after %v, before the %v timeout", took, d)
			}
		})
	}
}

// TestTimeoutsSpareActiveConnections: the sweep that enforces the idle
// timeout closes only connections that wait for a request: not one whose
// request runs longer than the timeout, nor one kept busy by requests
// that come more often than the timeout, for many timeouts in a row.
func TestTimeoutsSpareActiveConnections(t *testing.T) {
	const d = 40 * time.Millisecond
	f := serve(t, &h1.Server{
		ReadHeaderTimeout: d,
		IdleTimeout:       d,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				time.Sleep(4 * d)
			}
			io.WriteString(w, "ok")
		}),
	})
	c := dial(t, f.addr)
	br := bufio.NewReader(c)
	write(t, c, "GET /slow HTTP/1.1\r\nHost: h1.test\r\n\r\n")
	if _, body := readResponse(t, br, http.MethodGet); body != "ok" {
		t.Fatalf("slow request: answer %q", body)
	}
	for i := range 10 {
		time.Sleep(d / 2)
		write(t, c, get11)
		if _, body := readResponse(t, br, http.MethodGet); body != "ok" {
			t.Fatalf("request %d, %v after the last: answer %q", i, d/2, body)
		}
	}
	start := time.Now()
	if rest, err := io.ReadAll(br); err != nil || len(rest) > 0 {
		t.Errorf("read %q, %v; want the server to close the idle connection", rest, err)
	}
	if took := time.Since(start); took < d*4/5 {
		t.Errorf("closed after %v idle, before the %v timeout", took, d)
	}
}

func TestPanic(t *testing.T) {
	tests := []struct {
		name  string
		value any
		log   string // what the log must hold; "" is nothing
	}{
		{"panic is logged", "boom", `msg="handler panicked"`},
		{"ErrAbortHandler is not", http.ErrAbortHandler, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log syncBuffer
			srv := &h1.Server{
				Logger: slog.New(slog.NewTextHandler(&log, nil)),
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path == "/panic" {
						io.WriteString(w, "partial")
						panic(tc.value)
					}
					io.WriteString(w, "ok")
				}),
			}
			f := serve(t, srv)
			if raw := exchange(t, f.addr, "GET /panic HTTP/1.1\r\nHost: h1.test\r\n\r\n"); raw != "" {
				t.Errorf("the panicking request was answered %q, want the connection closed", raw)
			}
			// The server goes on serving.
			if _, body, _ := do(t, client(t), newRequest(t, http.MethodGet, f.url+"/", nil)); body != "ok" {
				t.Errorf("next request: %q, want \"ok\"", body)
			}
			got := log.String()
			if tc.log == "" && got != "" {
				t.Errorf("log = %q, want nothing", got)
			}
			if tc.log != "" && (!strings.Contains(got, tc.log) || !strings.Contains(got, "panic=boom") || !strings.Contains(got, "path=/panic")) {
				t.Errorf("log = %q, want %s with the panic and the path", got, tc.log)
			}
		})
	}
}

// TestClientGone checks that a running request's context is cancelled
// with ErrClientGone when its client closes the connection.
func TestClientGone(t *testing.T) {
	tests := []struct {
		name string
		req  string
	}{
		{"GET", get11},
		{"POST with a body read", "POST / HTTP/1.1\r\nHost: h1.test\r\nContent-Length: 5\r\n\r\nhello"},
		{"chunked body read", "POST / HTTP/1.1\r\nHost: h1.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBlocker()
			f := serve(t, &h1.Server{Handler: b, WatchAfter: time.Millisecond})
			c := dial(t, f.addr)
			write(t, c, tc.req)
			wait(t, b.started, "the request")
			c.Close()
			if err := wait(t, b.causes, "the handler"); !errors.Is(err, h1.ErrClientGone) {
				t.Errorf("cause = %v, want h1.ErrClientGone", err)
			}
		})
	}
}

// TestClientGoneMany checks that the watches of requests armed together
// and apart all start: each client that leaves cancels its own request.
func TestClientGoneMany(t *testing.T) {
	b := newBlocker()
	b.started, b.causes = make(chan struct{}, 8), make(chan error, 8)
	f := serve(t, &h1.Server{Handler: b, WatchAfter: 5 * time.Millisecond})
	conns := make([]net.Conn, 8)
	for i := range conns {
		conns[i] = dial(t, f.addr)
		write(t, conns[i], get11)
		wait(t, b.started, "a request")
		if i%3 == 0 {
			time.Sleep(2 * time.Millisecond) // arm some apart, within one WatchAfter
		}
	}
	for _, c := range conns {
		c.Close()
	}
	for range conns {
		if err := wait(t, b.causes, "a handler"); !errors.Is(err, h1.ErrClientGone) {
			t.Errorf("cause = %v, want h1.ErrClientGone", err)
		}
	}
}

// TestClientGoneKeptConnection checks that a kept connection's next
// request is watched again after a watched one was answered.
func TestClientGoneKeptConnection(t *testing.T) {
	causes := make(chan error, 2)
	release := make(chan struct{})
	f := serve(t, &h1.Server{WatchAfter: time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/first" {
			<-release // long enough to be watched
			io.WriteString(w, "first")
			return
		}
		causes <- ctxDone(r.Context())
	})})
	c := dial(t, f.addr)
	br := bufio.NewReader(c)
	write(t, c, "GET /first HTTP/1.1\r\nHost: h1.test\r\n\r\n")
	eventually(t, "the first request is watched", watching)
	close(release)
	if _, body := readResponse(t, br, http.MethodGet); body != "first" {
		t.Fatalf("first answer %q", body)
	}
	write(t, c, "GET /second HTTP/1.1\r\nHost: h1.test\r\n\r\n")
	eventually(t, "the second request is watched", watching)
	c.Close()
	if err := wait(t, causes, "the second handler"); !errors.Is(err, h1.ErrClientGone) {
		t.Errorf("cause = %v, want h1.ErrClientGone", err)
	}
}

// TestQuickRequestNotWatched checks that requests answered before
// WatchAfter are neither cancelled nor watched, and leave no goroutine.
func TestQuickRequestNotWatched(t *testing.T) {
	const after = 30 * time.Millisecond
	errs := make(chan error, 10)
	f := serve(t, &h1.Server{WatchAfter: after, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		errs <- r.Context().Err()
		io.WriteString(w, "quick")
	})})
	c := client(t)
	for i := range 5 {
		var body io.Reader
		if i%2 == 1 {
			body = strings.NewReader("body")
		}
		if _, got, _ := do(t, c, newRequest(t, http.MethodPost, f.url, body)); got != "quick" {
			t.Fatalf("answer %q", got)
		}
		if err := wait(t, errs, "the handler"); err != nil {
			t.Errorf("request %d: context done: %v", i, err)
		}
	}
	time.Sleep(2 * after) // past WatchAfter: a watch not stopped would have started
	if watching() {
		t.Error("a watch runs for requests already answered")
	}
}

// TestPipelinedWhileWatched checks that a request the client sends while
// its previous one runs, watched, is kept for its turn, and is not taken
// for the client going away.
func TestPipelinedWhileWatched(t *testing.T) {
	b := newBlocker()
	f := serve(t, &h1.Server{WatchAfter: time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			b.ServeHTTP(w, r)
			return
		}
		io.WriteString(w, "fast")
	})})
	c := dial(t, f.addr)
	br := bufio.NewReader(c)
	write(t, c, "GET /slow HTTP/1.1\r\nHost: h1.test\r\n\r\n")
	wait(t, b.started, "the slow request")
	eventually(t, "the slow request is watched", watching)
	write(t, c, "GET /fast HTTP/1.1\r\nHost: h1.test\r\n\r\n")
	eventually(t, "the watch reads the next request's first byte", func() bool { return !watching() })
	close(b.release)
	if err := wait(t, b.causes, "the slow handler"); err != nil {
		t.Errorf("the slow request was cancelled: %v", err)
	}
	for _, want := range []string{"answered", "fast"} {
		if _, body := readResponse(t, br, http.MethodGet); body != want {
			t.Errorf("answer %q, want %q", body, want)
		}
	}
}

// TestWatchEnds checks that a watch ends with its request: a slow
// request answered leaves no goroutine on its kept connection.
func TestWatchEnds(t *testing.T) {
	b := newBlocker()
	f := serve(t, &h1.Server{Handler: b, WatchAfter: time.Millisecond})
	c := dial(t, f.addr)
	write(t, c, get11)
	wait(t, b.started, "the request")
	eventually(t, "the request is watched", watching)
	close(b.release)
	if _, body := readResponse(t, bufio.NewReader(c), http.MethodGet); body != "answered" {
		t.Errorf("answer %q", body)
	}
	if err := wait(t, b.causes, "the handler"); err != nil {
		t.Errorf("the request was cancelled: %v", err)
	}
	eventually(t, "the watch ends", func() bool { return !watching() })
}
