// Package h1 is the daemon's HTTP/1.1 server. It serves an http.Handler
// as net/http's Server does, with one difference that matters to a
// gateway: a request is read, handled and answered on its connection's
// goroutine alone.
//
// net/http starts a second goroutine for every request, once its body is
// read, to notice a client that goes away, and stops it again when the
// handler returns: on a machine with few cores the hand-offs between the
// two cost more than the gateway's own work (about 25 µs a request on two
// cores). Here that watch starts only for a request still running after
// Server.WatchAfter, so a quick request costs no goroutine at all and a
// long one (any real inference) is still cancelled when its client leaves.
//
// A plain request whose head arrived whole is parsed here, with half
// http.ReadRequest's allocations; any other is read by http.ReadRequest,
// which the fast path is fuzzed against. Responses are framed as net/http
// frames them (Content-Length when the handler's answer is complete and
// small, chunked once it flushes or outgrows the buffer, close-delimited
// for HTTP/1.0), with 100-continue, pipelining,
// keep-alive, header limits and timeouts, graceful Shutdown and Close.
// There is no TLS, HTTP/2 or Hijack: the daemon listens on loopback or
// behind a proxy.
package h1

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Server serves HTTP/1.1 requests to Handler. Its zero value, with a
// Handler, is ready to serve.
type Server struct {
	Handler http.Handler

	// ReadHeaderTimeout bounds the wait for a new connection's first
	// request, and the reading of a request's headers from their first
	// byte; 0 is no limit.
	ReadHeaderTimeout time.Duration
	// IdleTimeout bounds the wait for the next request on a keep-alive
	// connection; 0 is no limit. A connection waiting for a request is
	// closed between its timeout and an eighth of the shorter timeout
	// after it (sweep.go).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the size of a request's headers, request line
	// included; 0 is http.DefaultMaxHeaderBytes (1 MiB).
	MaxHeaderBytes int
	// WatchAfter is how long a request runs before its connection is
	// watched for the client going away (which cancels the request's
	// context); 0 is DefaultWatchAfter.
	WatchAfter time.Duration
	// Logger receives what the server cannot tell a client: a handler's
	// panic, an accept error. Nil discards it.
	Logger *slog.Logger

	closed atomic.Bool // Shutdown or Close was called
	cut    atomic.Bool // Close was called
	date   atomic.Pointer[date]

	mu        sync.Mutex
	listeners map[*net.Listener]struct{}
	conns     map[*conn]struct{}
	watches   *watchQueue
	idleWake  chan struct{} // a connection ended or went idle (Shutdown waits on it)

	sweepTimer *time.Timer // the sweep of waiting connections (sweep.go)
	sweeping   bool
}

// DefaultWatchAfter is Server.WatchAfter's default. A request answered
// sooner costs no watch; the watch of a longer one starts between once
// and twice this after the request was read, so that a client going away
// is noticed within 10 ms of the request or at once after that.
const DefaultWatchAfter = 5 * time.Millisecond

// Serve accepts connections on ln and serves each on a goroutine of its
// own. It returns http.ErrServerClosed once Shutdown or Close was called,
// or the listener's error; it closes ln when it returns.
func (s *Server) Serve(ln net.Listener) error {
	if !s.track(&ln, true) {
		ln.Close()
		return http.ErrServerClosed
	}
	defer s.track(&ln, false)
	defer ln.Close()
	var backoff time.Duration
	for {
		rwc, err := ln.Accept()
		if err != nil {
			if s.closed.Load() {
				return http.ErrServerClosed
			}
			if temporary(err) {
				// Out of descriptors and the like: wait, as net/http does.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.logger().Warn("accept failed; retrying", "error", err, "delay", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := s.newConn(rwc)
		if c == nil {
			rwc.Close()
			return http.ErrServerClosed
		}
		go c.serve()
	}
}

// temporary reports whether an accept error is worth retrying: EMFILE,
// ENFILE, ECONNABORTED and the like report Temporary.
func temporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// Shutdown stops the server gracefully: it closes the listeners, then
// idle connections, and waits for the requests running to be answered
// (their connections close after the answer). It returns ctx's error if
// ctx ends first, leaving those connections open: Close cuts them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	const settle = 5 * time.Second // a new connection's first request may be on its way
	for {
		s.mu.Lock()
		now := time.Now()
		for c := range s.conns {
			st, since := c.state()
			if st == stateIdle || (st == stateNew && now.Sub(since) > settle) {
				c.rwc.Close()
			}
		}
		n, wake := len(s.conns), s.idleWake
		s.mu.Unlock()
		if n == 0 {
			s.watches.stop()
			return nil
		}
		t := time.NewTimer(100 * time.Millisecond) // a new connection's settle time passing
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// Close stops the server at once: it closes the listeners and every
// connection, and cancels the context of every request running, with
// the cause http.ErrServerClosed.
func (s *Server) Close() error {
	s.cut.Store(true)
	s.stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watches.stop()
	for c := range s.conns {
		c.cancelRequest(http.ErrServerClosed)
		c.rwc.Close()
	}
	return nil
}

// stop marks the server closing and closes its listeners.
func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	s.closed.Store(true)
	s.stopSweepLocked()
	for ln := range s.listeners {
		(*ln).Close()
	}
}

func (s *Server) init() {
	if s.conns == nil {
		s.listeners = map[*net.Listener]struct{}{}
		s.conns = map[*conn]struct{}{}
		s.idleWake = make(chan struct{})
		s.watches = &watchQueue{after: s.watchAfter()}
	}
}

// track adds or removes a listener; adding fails once the server closes.
func (s *Server) track(ln *net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	if !add {
		delete(s.listeners, ln)
		return true
	}
	if s.closed.Load() {
		return false
	}
	s.listeners[ln] = struct{}{}
	return true
}

// newConn registers a new connection, or returns nil once the server
// closes.
func (s *Server) newConn(rwc net.Conn) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil
	}
	c := newConn(s, rwc)
	s.conns[c] = struct{}{}
	s.startSweepLocked()
	return c
}

// forget removes an ended connection.
func (s *Server) forget(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	s.wakeLocked()
}

// wakeLocked tells a waiting Shutdown that a connection ended or went
// idle.
func (s *Server) wakeLocked() {
	if s.closed.Load() {
		close(s.idleWake)
		s.idleWake = make(chan struct{})
	}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

func (s *Server) watchAfter() time.Duration {
	if s.WatchAfter > 0 {
		return s.WatchAfter
	}
	return DefaultWatchAfter
}

func (s *Server) maxHeaderBytes() int {
	if s.MaxHeaderBytes > 0 {
		return s.MaxHeaderBytes
	}
	return http.DefaultMaxHeaderBytes
}

// date is a Date header's value, formatted once a second.
type date struct {
	sec   int64
	value []byte
}

// dateValue returns the Date header's value for now.
func (s *Server) dateValue(now time.Time) []byte {
	sec := now.Unix()
	if d := s.date.Load(); d != nil && d.sec == sec {
		return d.value
	}
	d := &date{sec, now.UTC().AppendFormat(nil, http.TimeFormat)}
	s.date.Store(d)
	return d.value
}
