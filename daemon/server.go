package daemon

import (
	"context"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/awakend/awakend/edge"
	"github.com/awakend/awakend/settings"
)

// Limits of the HTTP server.
const (
	// readHeaderTimeout bounds the TLS handshake and the request line and
	// headers of each request, so a client that trickles them cannot hold
	// a connection. There is no ReadTimeout or WriteTimeout: they would cut
	// streams that rightly last minutes; the gateway bounds reading a
	// request body per request.
	readHeaderTimeout = 10 * time.Second
	// idleTimeout closes a keep-alive connection with no request. Clients'
	// own pools drop idle connections sooner; this sheds those that do not.
	idleTimeout = 2 * time.Minute
	// maxHeaderBytes caps a request's headers (and HTTP/2's header list).
	// An API client sends a few short headers, a long bearer token among
	// them; the standard library's default (a megabyte) would let every
	// slow connection pin far more memory for nothing.
	maxHeaderBytes = 64 << 10
	// drainGrace is how long, on shutdown, open connections have to close
	// by themselves before the server closes those that are idle: each
	// response while draining says Connection: close, so a client that
	// keeps a connection busy moves to a new one within it. A connection
	// that idles longer is closed, and its client retries on a fresh one.
	drainGrace = time.Second
)

// newServer returns the daemon's HTTP server for handler, and what keeps
// count of its open connections. HTTP/2 is on when it serves TLS.
func newServer(handler http.Handler, logger *slog.Logger) (*http.Server, *conns) {
	c := &conns{open: map[net.Conn]struct{}{}}
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          log.New(serverLog{logger}, "", 0),
		ConnState:         c.track,
		ConnContext:       edge.ConnContext, // where a client certificate's verdict is kept
	}, c
}

// conns keeps the set of the server's open connections. A connection whose
// response was just written may not be idle yet, so draining waits for
// connections to close, not for them to go idle.
type conns struct {
	mu   sync.Mutex
	open map[net.Conn]struct{}
}

func (c *conns) track(conn net.Conn, st http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st == http.StateClosed || st == http.StateHijacked {
		delete(c.open, conn)
	} else {
		c.open[conn] = struct{}{}
	}
}

func (c *conns) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.open)
}

// awaitClosed returns once every connection is closed, after d, or when
// ctx is done, whichever comes first.
func (c *conns) awaitClosed(ctx context.Context, d time.Duration) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for c.count() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
	}
}

// serverLog writes what net/http reports below the handlers to the daemon's
// log. Most of it is a client's doing — a scanner's failed TLS handshake, a
// connection closed mid-preface — and goes to Debug, so that a daemon
// reachable from the internet does not log a warning per probe. A panic in
// a handler is an Error; the rest (an accept error, a handler misusing its
// ResponseWriter) is a Warn.
type serverLog struct{ log *slog.Logger }

func (w serverLog) Write(p []byte) (int, error) {
	msg := strings.TrimRight(string(p), "\n")
	w.log.Log(context.Background(), serverLogLevel(msg), "http server", "error", msg)
	return len(p), nil
}

// serverLogLevel is the level of one net/http error log line.
func serverLogLevel(msg string) slog.Level {
	switch {
	case strings.Contains(msg, "panic serving"):
		return slog.LevelError
	case strings.HasPrefix(msg, "http: TLS handshake error"),
		strings.HasPrefix(msg, "http2: "), // a client's broken HTTP/2 connection
		strings.HasPrefix(msg, "http: URL query contains semicolon"):
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

// warnIfExposed warns, loudly, when the daemon listens beyond loopback and
// no secret guards the registry API or the gateway.
func warnIfExposed(log *slog.Logger, addr net.Addr, s settings.Settings, clients bool) {
	if tcp, ok := addr.(*net.TCPAddr); !ok || tcp.IP.IsLoopback() {
		return
	}
	var exposed, settings []string
	if s.Admin.Token == "" {
		exposed = append(exposed, "/api/v1/* (the whole registry, system prompts included)")
		settings = append(settings, "admin.token")
	}
	if len(s.Gateway.APIKeys) == 0 && !clients {
		exposed = append(exposed, "/v1/* (inference billed to the providers' API keys)")
		settings = append(settings, "gateway.api_keys or declare clients")
	}
	if len(exposed) == 0 {
		return
	}
	log.Warn("UNAUTHENTICATED: listening beyond loopback with no token; anyone who can reach the address can use what is exposed",
		"listen", addr.String(),
		"exposed", strings.Join(exposed, "; "),
		"fix", "set "+strings.Join(settings, " and ")+" (from a credential), or listen on 127.0.0.1")
}
