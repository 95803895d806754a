package provider

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/awakend/awakend/internal/rawconn"
)

// Limits of a fast pool, as the executor's http.Transport has them.
const (
	fastMaxIdle     = 512
	fastIdleTimeout = 90 * time.Second
)

// fastKeepBuf is the largest request buffer a connection keeps for its
// next request: a long conversation's does not stay pinned to the pool.
const fastKeepBuf = 64 << 10

// fastPeekAfter is how long a connection rests in the pool before it is
// checked for a close by the server on its reuse. A server closes idle
// connections after seconds (nginx 75 s, Node and uvicorn 5 s, gunicorn
// 2 s); a younger connection is reused unchecked, which spares a syscall a
// call under load, and the rare one closed meanwhile is retried
// (errFastRetry).
const fastPeekAfter = time.Second

// fast is an HTTP/1.1 client for a plain http:// upstream reached without
// a proxy. It writes a request and reads its answer on the calling
// goroutine, over a pool of keep-alive connections, where http.Transport
// hands each request to a connection's writeLoop and readLoop goroutines
// and back: two goroutine switches fewer per call.
type fast struct {
	addr      string // host:port to dial
	prefix    []byte // request line and fixed headers, up to Content-Length
	dialer    net.Dialer
	peekAfter time.Duration // fastPeekAfter; tests lower it

	mu   sync.Mutex
	idle []*fconn // most recently used last
}

// fconn is one connection of a fast pool.
type fconn struct {
	c             net.Conn
	br            *bufio.Reader
	wbuf          []byte // the last request written, its capacity kept for the next
	idleAt        time.Time
	reused        bool
	writeDeadline bool // the call set one
}

// writeWaitsOver is the size of a request past which its write may wait
// for the upstream to read it: half the send buffer a Linux TCP socket
// starts with (16 KiB, net.ipv4.tcp_wmem). A smaller request goes into
// the buffer at once, whatever the upstream does.
const writeWaitsOver = 8 << 10

// clearWriteDeadline clears the write deadline of the call, if it set one.
func (pc *fconn) clearWriteDeadline() {
	if pc.writeDeadline {
		pc.c.SetWriteDeadline(time.Time{})
		pc.writeDeadline = false
	}
}

// newFast returns the fast client for u, or nil when u must go through
// http.Transport: an https URL, or one a proxy applies to.
func newFast(u *url.URL, h http.Header, dial time.Duration) *fast {
	if u.Scheme != "http" {
		return nil
	}
	if p, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err != nil || p != nil {
		return nil
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	b := []byte("POST " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\n")
	for k, vs := range h {
		for _, v := range vs {
			if !validHeader(k) || !validHeader(v) {
				return nil // http.Transport refuses it with an error of its own
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return &fast{addr: addr, prefix: b, dialer: net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}, peekAfter: fastPeekAfter}
}

// get returns an idle connection still open, or nil.
func (f *fast) get(now time.Time) *fconn {
	for {
		f.mu.Lock()
		n := len(f.idle)
		if n == 0 {
			f.mu.Unlock()
			return nil
		}
		pc := f.idle[n-1]
		f.idle[n-1] = nil
		f.idle = f.idle[:n-1]
		f.mu.Unlock()
		idle := now.Sub(pc.idleAt)
		if idle >= f.peekAfter {
			pc.c.SetReadDeadline(time.Time{}) // the last call's, past by now, would fail the peek
		}
		if idle < fastIdleTimeout && pc.br.Buffered() == 0 && (idle < f.peekAfter || alive(pc.c)) {
			return pc
		}
		pc.c.Close()
	}
}

// validHeader reports whether s may go into a request header as it is.
func validHeader(s string) bool {
	return !strings.ContainsAny(s, "\r\n\x00")
}

// put returns a connection whose answer was read in full to the pool, or
// closes it when retired is true or the pool is full. Connections idle
// for longer than fastIdleTimeout, at the bottom of the pool, close too.
func (f *fast) put(pc *fconn, retired bool) {
	if retired {
		pc.c.Close()
		return
	}
	now := time.Now()
	pc.idleAt, pc.reused = now, true
	var stale *fconn
	f.mu.Lock()
	if len(f.idle) > 0 && now.Sub(f.idle[0].idleAt) >= fastIdleTimeout {
		stale = f.idle[0]
		f.idle = append(f.idle[:0], f.idle[1:]...)
	}
	if len(f.idle) < fastMaxIdle {
		f.idle = append(f.idle, pc)
		pc = nil
	}
	f.mu.Unlock()
	if stale != nil {
		stale.c.Close()
	}
	if pc != nil {
		pc.c.Close()
	}
}

// closeIdle closes the pool's idle connections.
func (f *fast) closeIdle() {
	f.mu.Lock()
	idle := f.idle
	f.idle = nil
	f.mu.Unlock()
	for _, pc := range idle {
		pc.c.Close()
	}
}

// alive reports whether the server has not closed an idle connection: a
// non-blocking peek finds neither EOF nor an error (nor, for an idle
// connection, any unexpected byte).
func alive(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ok = false
	var buf [1]byte
	cerr := rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		ok = n < 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
		return true // never wait
	})
	return cerr == nil && ok
}

// errFastRetry marks a failure on a reused connection before any byte of
// the answer arrived: the server closed the idle connection as the request
// went out, and the request may go again on a fresh one.
var errFastRetry = errors.New("server closed idle connection")

// doFast is send over the fast client.
func (e *Executor) doFast(ctx context.Context, body []byte, stream bool, requestID string) (*http.Response, error) {
	var deadline time.Time
	if e.timeout > 0 {
		deadline = time.Now().Add(e.timeout)
	}
	e.begin()
	resp, err := e.roundTrip(ctx, body, stream, requestID, deadline, true)
	if err != nil {
		e.end()
		return nil, e.transportError(ctx, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		err := e.statusError(resp) // reads and closes the body, which ends the call
		return nil, err
	}
	return resp, nil
}

// roundTrip sends one request over a pooled or new connection and reads
// the answer's headers. The response body, once closed, returns the
// connection to the pool and ends the call.
func (e *Executor) roundTrip(ctx context.Context, body []byte, stream bool, requestID string, deadline time.Time, retry bool) (*http.Response, error) {
	f := e.fast
	pc := f.get(time.Now())
	if pc == nil {
		d := f.dialer
		d.Deadline = deadline
		c, err := d.DialContext(ctx, "tcp", f.addr)
		if err != nil {
			return nil, err
		}
		c = rawconn.Wrap(c) // no runtime bookkeeping around its system calls
		pc = &fconn{c: c, br: bufio.NewReaderSize(c, 4096)}
	}
	if err := ctx.Err(); err != nil {
		f.put(pc, e.retired.Load())
		return nil, err
	}
	// The timeout bounds the answer's head. The request's write needs a
	// deadline of its own only when it may not fit the socket's buffer
	// at once: a runtime timer set and cleared is about 1 µs a call.
	pc.c.SetReadDeadline(deadline)
	pc.writeDeadline = len(body) > writeWaitsOver && !deadline.IsZero()
	if pc.writeDeadline {
		pc.c.SetWriteDeadline(deadline)
	}
	// Cancelling ctx aborts the call, as net/http does: the upstream sees
	// its connection close at once, even mid-stream.
	stop := context.AfterFunc(ctx, func() { pc.c.Close() })

	resp, err := e.exchange(pc, body, requestID)
	if err != nil {
		stop()
		pc.c.Close()
		if retry && errors.Is(err, errFastRetry) && ctx.Err() == nil {
			return e.roundTrip(ctx, body, stream, requestID, deadline, false)
		}
		return nil, err
	}
	if stream {
		pc.c.SetReadDeadline(time.Time{}) // the timeout is to the headers only
	}
	pc.clearWriteDeadline()
	resp.Body = &fastBody{rc: resp.Body, pc: pc, e: e, ctx: ctx, stop: stop, keep: !resp.Close}
	return resp, nil
}

// exchange writes the request on pc and reads the answer's headers.
func (e *Executor) exchange(pc *fconn, body []byte, requestID string) (*http.Response, error) {
	f := e.fast
	buf := pc.wbuf[:0]
	if n := len(f.prefix) + len(requestID) + 64 + len(body); cap(buf) < n {
		buf = make([]byte, 0, n)
	}
	buf = append(buf, f.prefix...)
	if requestID != "" {
		buf = append(buf, "X-Request-Id: "...)
		buf = append(buf, requestID...)
		buf = append(buf, "\r\n"...)
	}
	buf = append(buf, "Content-Length: "...)
	buf = strconv.AppendInt(buf, int64(len(body)), 10)
	buf = append(buf, "\r\n\r\n"...)
	buf = append(buf, body...)
	if cap(buf) <= fastKeepBuf {
		pc.wbuf = buf
	}
	if _, err := pc.c.Write(buf); err != nil {
		if pc.reused && isReset(err) {
			return nil, fmt.Errorf("%w: %w", errFastRetry, err)
		}
		return nil, err
	}
	for {
		resp, err := readResponse(pc.br)
		if err != nil {
			if pc.reused && isReset(err) {
				return nil, fmt.Errorf("%w: %w", errFastRetry, err)
			}
			return nil, err
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			pc.reused = false // bytes of the answer arrived: no retry any more
			continue          // an informational answer: the final one follows
		}
		return resp, nil
	}
}

// postRequest is what http.ReadResponse is told the request was: it
// reads only the method, so one value serves every call.
var postRequest = &http.Request{Method: http.MethodPost}

// isReset reports whether err says the peer closed the connection.
func isReset(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// fastBody is the body of a fast call: closed, it returns its connection
// to the pool when the answer was read to its end, or closes it, and ends
// the call.
type fastBody struct {
	rc   io.ReadCloser
	pc   *fconn
	e    *Executor
	ctx  context.Context
	stop func() bool
	keep bool // the answer allows the connection's reuse
	eof  bool
	done bool
}

func (b *fastBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof = true
	} else if err != nil && b.ctx.Err() != nil {
		err = b.ctx.Err() // as net/http reports a canceled read
	}
	return n, err
}

func (b *fastBody) Close() error {
	if b.done {
		return nil
	}
	b.done = true
	stopped := b.stop()
	if b.eof && b.keep && stopped && b.pc.br.Buffered() == 0 {
		// The read deadline stays: the next call sets its own.
		b.e.fast.put(b.pc, b.e.retired.Load())
	} else {
		b.pc.c.Close()
	}
	b.e.end()
	return nil
}
