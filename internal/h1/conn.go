package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/awakend/awakend/internal/rawconn"
)

// ErrClientGone is the cause of a request's cancellation when its client
// closed the connection before the answer ended.
var ErrClientGone = errors.New("the client closed the connection")

// A connection is new until its first request, active while it reads or
// answers one, idle between requests, closed once the sweep closed it.
const (
	stateNew int32 = iota
	stateActive
	stateIdle
	stateClosed
)

const (
	// bufSize is the size of a connection's read and write buffers, and
	// how much of an answer is held back to learn its length.
	bufSize = 4 << 10
	// maxDrain is how much of a request body the handler left unread the
	// server reads and discards to keep the connection; past it, the
	// connection closes (net/http's figure).
	maxDrain = 256 << 10
)

// aLongTimeAgo is a deadline that has passed: setting it wakes a blocked
// Read at once.
var aLongTimeAgo = time.Unix(1, 0)

// conn is one client connection, served by one goroutine.
type conn struct {
	srv    *Server
	rwc    net.Conn
	remote string
	cr     connReader
	br     *bufio.Reader
	bw     *bufio.Writer
	held   []byte // an answer's start, before its headers go out
	st     atomic.Int32
	waited atomic.Int32 // sweeps since it began to wait for a request (sweep.go)
	born   time.Time

	// The watch for the client going away (see Server.WatchAfter).
	mu       sync.Mutex              // guards cancel, armed and watching
	cancel   context.CancelCauseFunc // cancels the running request's context
	armed    *response               // the request a watch is due for
	watching chan struct{}           // closed when the running watch ends
}

func newConn(s *Server, rwc net.Conn) *conn {
	c := &conn{srv: s, rwc: rwc, remote: rwc.RemoteAddr().String(), born: time.Now()}
	// Requests are read and answers written without the runtime's system
	// call bookkeeping (rawconn); the watch reads rwc.
	raw := rawconn.Wrap(rwc)
	c.cr.c = raw
	c.cr.limit = -1
	c.br = bufio.NewReaderSize(&c.cr, bufSize)
	c.bw = bufio.NewWriterSize(raw, bufSize)
	c.held = make([]byte, 0, bufSize)
	return c
}

// state returns the connection's state and when it was accepted.
func (c *conn) state() (int32, time.Time) {
	return c.st.Load(), c.born
}

// serve reads and answers requests until the connection or the server
// closes.
func (c *conn) serve() {
	defer c.end()
	s := c.srv
	for {
		// A new connection has ReadHeaderTimeout to send its first
		// request, a kept one IdleTimeout to start its next: the sweep
		// closes it past that (sweep.go).
		waiting := c.st.Load()
		// The limit counts what Peek reads too: set after it, it would
		// let the headers run a buffer (4 KiB) past it.
		c.cr.limit = int64(s.maxHeaderBytes()) + 4096 // net/http's slack for the request line
		if _, err := c.br.Peek(1); err != nil {
			return
		}
		if !c.st.CompareAndSwap(waiting, stateActive) {
			return // swept as its first byte came
		}
		req := parseRequest(c.br)
		var err error
		if req == nil {
			// The head is not all here, or not plain: net/http reads
			// it, within ReadHeaderTimeout from its first byte.
			if d := s.ReadHeaderTimeout; d > 0 {
				c.rwc.SetReadDeadline(time.Now().Add(d))
			}
			req, err = http.ReadRequest(c.br)
			c.rwc.SetReadDeadline(time.Time{})
		}
		hit := c.cr.hit
		c.cr.limit, c.cr.hit = -1, false
		if err != nil {
			c.reject(err, hit)
			return
		}
		if !c.serveRequest(req) {
			return
		}
		c.waited.Store(0)
		c.st.Store(stateIdle)
		if s.closed.Load() {
			return
		}
	}
}

// end closes the connection and forgets it.
func (c *conn) end() {
	c.rwc.Close()
	c.srv.forget(c)
}

// reject answers a request that could not be read, as net/http does, and
// the connection closes.
func (c *conn) reject(err error, tooLarge bool) {
	var ne net.Error
	var ue *url.Error
	switch {
	case tooLarge:
		c.fail(http.StatusRequestHeaderFieldsTooLarge, "")
	case errors.As(err, &ue):
		// Before the net.Error case: a *url.Error is one too.
		c.fail(http.StatusBadRequest, "malformed request URI")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &ne):
		// The client went away or stalled: nobody to answer.
	default:
		// The parser's reason without the offending text, which may
		// hold a credential: it follows a colon, or is quoted
		// (`malformed HTTP request "GET /?key=…"`).
		msg := err.Error()
		if i := strings.IndexAny(msg, ":\""); i >= 0 {
			msg = msg[:i]
		}
		c.fail(http.StatusBadRequest, strings.TrimSpace(msg))
	}
}

// fail writes a plain-text error answer, and closes the connection
// gently: the client may still be sending what the answer refuses.
func (c *conn) fail(code int, reason string) {
	msg := http.StatusText(code)
	if reason != "" {
		msg += ": " + reason
	}
	bw := c.bw
	writeStatus(bw, code)
	bw.WriteString("Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n")
	bw.WriteString(strconv.Itoa(code) + " " + msg)
	if bw.Flush() == nil {
		c.linger()
	}
}

// lingerFor bounds linger's wait.
const lingerFor = 500 * time.Millisecond

// linger half-closes the connection and reads what the client still
// sends, until it closes its side or lingerFor passes: closing at once
// with unread input makes the kernel send a reset, which can destroy the
// answer before the client reads it.
func (c *conn) linger() {
	cw, ok := c.rwc.(interface{ CloseWrite() error })
	if !ok || cw.CloseWrite() != nil {
		return
	}
	c.rwc.SetReadDeadline(time.Now().Add(lingerFor))
	io.Copy(io.Discard, c.rwc)
}

// validHost reports whether a Host header holds only the bytes a host,
// an IP literal and a port are made of.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		b := h[i]
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:[]%", b) >= 0:
		default:
			return false
		}
	}
	return true
}

// serveRequest answers one request and reports whether the connection
// may carry another.
func (c *conn) serveRequest(req *http.Request) bool {
	if req.ProtoMajor != 1 {
		c.fail(http.StatusHTTPVersionNotSupported, "")
		return false
	}
	if req.ProtoMinor >= 1 && req.Host == "" {
		c.fail(http.StatusBadRequest, "missing required Host header")
		return false
	}
	if !validHost(req.Host) {
		c.fail(http.StatusBadRequest, "malformed Host header")
		return false
	}
	w := &response{c: c, header: make(http.Header), declared: -1}
	if ex := req.Header["Expect"]; len(ex) > 0 && req.ProtoMinor >= 1 {
		if len(ex) > 1 || !strings.EqualFold(ex[0], "100-continue") {
			c.fail(http.StatusExpectationFailed, "")
			return false
		}
		delete(req.Header, "Expect")
		w.expect = req.ContentLength != 0
	}
	// The request's context is not a child of a server-wide one, whose
	// children every request would lock in turn: Close cancels each
	// connection's request itself.
	ctx, cancel := context.WithCancelCause(context.Background())
	c.mu.Lock()
	c.cancel = cancel
	c.mu.Unlock()
	if c.srv.cut.Load() {
		cancel(http.ErrServerClosed)
	}
	req = req.WithContext(ctx)
	req.RemoteAddr = c.remote
	if req.Body == http.NoBody {
		w.body.eof = true
		c.arm(w)
	} else {
		w.body.w, w.body.rc = w, req.Body
		req.Body = &w.body
	}
	w.req, w.head = req, req.Method == http.MethodHead

	ok := c.handle(w, req)
	c.disarm()
	cancel(context.Canceled)
	c.mu.Lock()
	c.cancel = nil
	c.mu.Unlock()
	if !ok || c.srv.cut.Load() {
		// The handler panicked, or Close cut the request: its answer,
		// likely empty, must not pass for a complete one.
		return false
	}
	if err := w.finish(); err != nil {
		return false
	}
	if w.closeAfter {
		if !w.body.eof {
			c.linger()
		}
		return false
	}
	if !w.body.drain() {
		c.linger()
		return false
	}
	return true
}

// cancelRequest cancels the running request's context, if any: Close
// does, and a watch that sees the client go.
func (c *conn) cancelRequest(cause error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		c.cancel(cause)
	}
}

// handle runs the handler, and reports false if it panicked. A panic is
// logged, but for http.ErrAbortHandler, which aborts the answer quietly.
func (c *conn) handle(w *response, req *http.Request) (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.srv.logger().Error("handler panicked", "remote", c.remote, "method", req.Method,
					"path", req.URL.Path, "panic", v, "stack", string(buf))
			}
			ok = false
		}
	}()
	c.srv.Handler.ServeHTTP(w, req)
	return true
}

// connReader reads the connection for its bufio.Reader, within a limit
// while the headers are read, and gives back first the byte a watch read.
type connReader struct {
	c     net.Conn
	limit int64 // bytes left for the headers; -1 is no limit
	hit   bool  // the headers reached the limit
	saved bool  // b is the next byte
	b     byte
}

func (r *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.limit == 0 {
		r.hit = true
		return 0, io.EOF
	}
	if r.limit > 0 && int64(len(p)) > r.limit {
		p = p[:r.limit]
	}
	var n int
	var err error
	if r.saved {
		p[0], r.saved, n = r.b, false, 1
	} else {
		n, err = r.c.Read(p)
	}
	if r.limit > 0 {
		r.limit -= int64(n)
	}
	return n, err
}

// keep saves b, read by a watch, as the next byte.
func (r *connReader) keep(b byte) {
	r.b, r.saved = b, true
}

// body is a request's body as the handler reads it: it answers an
// Expect: 100-continue on the first read and arms the watch at its end.
type body struct {
	w   *response
	rc  io.ReadCloser
	eof bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	w := b.w
	if w.expect && !w.continued {
		w.continued = true
		if !w.committed {
			w.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if err := w.c.bw.Flush(); err != nil {
				return 0, err
			}
		}
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
		w.c.arm(w)
	}
	return n, err
}

// Close does nothing: what the handler left unread is drained, or the
// connection closed, once it returns.
func (b *body) Close() error { return nil }

// drain reads what the handler left of the body, up to maxDrain, and
// reports whether the connection can carry another request.
func (b *body) drain() bool {
	if b.eof {
		return true
	}
	if b.w.expect && !b.w.continued {
		return false // the client waits for a 100 Continue that will not come
	}
	n, err := io.CopyN(io.Discard, b.rc, maxDrain+1)
	return err == io.EOF && n <= maxDrain
}
