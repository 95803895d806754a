package h1_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/awakend/awakend/internal/h1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every wait a test makes on the network, so that a
// bug fails the test instead of hanging it.
const testTimeout = 5 * time.Second

// fixture is a Server running on a loopback listener.
type fixture struct {
	srv    *h1.Server
	addr   string // host:port
	url    string // http://addr
	served func() error
}

// serve starts srv on a loopback listener. The cleanup closes it, checks
// that Serve returned http.ErrServerClosed, and that no goroutine
// outlived the test. Clients made after serve (client, dial) are closed
// before that check.
func serve(t *testing.T, srv *h1.Server) *fixture {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	f := &fixture{
		srv:    srv,
		addr:   ln.Addr().String(),
		url:    "http://" + ln.Addr().String(),
		served: sync.OnceValue(func() error { return <-done }),
	}
	t.Cleanup(func() {
		srv.Close()
		if err := f.served(); !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve = %v, want http.ErrServerClosed", err)
		}
		goleak.VerifyNone(t)
	})
	return f
}

// handle starts a Server with handler h.
func handle(t *testing.T, h http.HandlerFunc) *fixture {
	t.Helper()
	return serve(t, &h1.Server{Handler: h})
}

// client returns an HTTP client of its own, whose connections close at
// cleanup.
func client(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: testTimeout}
}

// do sends req with ctx (the test's), reads the whole body and reports
// whether the connection was reused.
func do(t *testing.T, c *http.Client, req *http.Request) (resp *http.Response, body string, reused bool) {
	t.Helper()
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = info.Reused }}
	req = req.WithContext(httptrace.WithClientTrace(t.Context(), trace))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL, err)
	}
	return resp, string(b), reused
}

// newRequest is http.NewRequest for a test: it fails the test on error.
func newRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// dial opens a raw connection to addr, closed at cleanup; reads and
// writes fail after testTimeout.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(testTimeout))
	t.Cleanup(func() { c.Close() })
	return c
}

// write writes s to c.
func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
}

// readAll reads c until the server closes it. A reset after the answer
// (the server closed with request bytes unread) ends it too; any other
// error fails the test.
func readAll(t *testing.T, c net.Conn) string {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("reading the answer: %v (read %q)", err, b)
	}
	return string(b)
}

// exchange writes req on a new connection and returns all the server
// sent until it closed the connection.
func exchange(t *testing.T, addr, req string) string {
	t.Helper()
	c := dial(t, addr)
	write(t, c, req)
	return readAll(t, c)
}

// answer is one raw HTTP answer, split.
type answer struct {
	status string // the status line
	header http.Header
	body   string // the raw bytes after the headers
}

// parse splits raw, which holds one answer (the last, if 1xx answers
// precede it), into its status line, headers and raw body.
func parse(t *testing.T, raw string) answer {
	t.Helper()
	for strings.HasPrefix(raw, "HTTP/1.1 1") {
		_, rest, ok := strings.Cut(raw, "\r\n\r\n")
		if !ok {
			break
		}
		raw = rest
	}
	head, body, ok := strings.Cut(raw, "\r\n\r\n")
	if !ok {
		t.Fatalf("no end of headers in %q", raw)
	}
	status, fields, _ := strings.Cut(head, "\r\n")
	h, err := textproto.NewReader(bufio.NewReader(strings.NewReader(fields + "\r\n\r\n"))).ReadMIMEHeader()
	if err != nil {
		t.Fatalf("parsing the headers of %q: %v", raw, err)
	}
	return answer{status: status, header: http.Header(h), body: body}
}

// readResponse reads one answer from br and its whole body.
func readResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer's body: %v", err)
	}
	return resp, string(b)
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines to write
// while a test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// watching reports whether a goroutine is watching a connection for its
// client going away.
func watching() bool {
	buf := make([]byte, 1<<20)
	return bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("h1.(*conn).watch("))
}

// eventually polls cond every millisecond until it holds, and fails the
// test if it does not within testTimeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// wait receives from ch, and fails the test if nothing comes within
// testTimeout.
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// background runs f on a goroutine and returns a channel closed when it
// returns; the cleanup waits for it.
func background(t *testing.T, f func()) <-chan struct{} {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	t.Cleanup(func() { <-done })
	return done
}

// ctxDone is a handler's wait for its request's end: the context's
// cause, or nil if it was not cancelled within testTimeout.
func ctxDone(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(testTimeout):
		return nil
	}
}
