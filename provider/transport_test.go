package provider

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/awakend/awakend/provider/providertest"
	"github.com/awakend/awakend/registry"
)

// rawServer is an upstream that speaks the bytes its test chooses: serve
// runs for each connection, numbered from 0. Connections and goroutines
// end at cleanup.
type rawServer struct {
	l     net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

func newRawServer(t *testing.T, serve func(n int, c net.Conn, br *bufio.Reader)) *rawServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{l: l}
	s.wg.Go(func() {
		for n := 0; ; n++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Go(func() {
				defer c.Close()
				serve(n, c, bufio.NewReader(c))
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) baseURL() string { return "http://" + s.l.Addr().String() + "/v1" }

// accepted is how many connections the server took.
func (s *rawServer) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// readRequest reads one request and its body from br.
func readRequest(br *bufio.Reader) ([]byte, error) {
	req, err := http.ReadRequest(br)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(req.Body)
}

// writeJSON writes a keep-alive 200 answer with body.
func writeJSON(c net.Conn, body string) error {
	_, err := fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	return err
}

// hangGuard guards the waits of a raw server on its client against a hang;
// no test depends on how long they take.
const hangGuard = 10 * time.Second

func callText(t *testing.T, e *Executor, body string) (string, error) {
	t.Helper()
	resp, err := e.Call(t.Context(), &Request{Body: []byte(body)})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// An upstream that writes a second, unsolicited answer on a connection
// that went idle must not have it taken for the next call's answer: the
// connection is dropped and the next call gets its own.
func TestUnsolicitedBytesOnIdleConnection(t *testing.T) {
	// The transport logs the bytes it dropped; they are this test's own.
	defer log.SetOutput(log.Writer())
	log.SetOutput(io.Discard)

	stale := make(chan struct{}) // the test: write the unsolicited answer now
	seen := make(chan bool, 1)   // the server: whether the client closed the connection
	var answers atomic.Int32
	srv := newRawServer(t, func(n int, c net.Conn, br *bufio.Reader) {
		for i := 0; ; i++ {
			if _, err := readRequest(br); err != nil {
				return
			}
			if writeJSON(c, fmt.Sprintf(`{"answer":%d}`, answers.Add(1))) != nil {
				return
			}
			if n != 0 || i != 0 {
				continue
			}
			<-stale
			if writeJSON(c, `{"answer":"stale"}`) != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(hangGuard))
			_, err := br.Peek(1)
			seen <- err == io.EOF
			c.SetReadDeadline(time.Time{})
			if err != nil {
				return
			}
		}
	})
	e := newExec(t, registry.ProviderSpec{Adapter: "openai", BaseURL: srv.baseURL()}, 5*time.Second)

	if got, err := callText(t, e, `{}`); err != nil || got != `{"answer":1}` {
		t.Fatalf("first call: %q, %v", got, err)
	}
	close(stale)
	if !<-seen {
		t.Error("the client kept the connection that sent an unsolicited answer")
	}
	got, err := callText(t, e, `{}`)
	if err != nil || got != `{"answer":2}` {
		t.Fatalf("second call got %q, %v; want its own answer", got, err)
	}
	if n := srv.accepted(); n != 2 {
		t.Errorf("%d connections, want the second call on a new one", n)
	}
}

// An upstream that closes the connection once it has read a POST fails
// the call, and the POST is never sent again: a replay would run (and
// bill) the completion twice. A request on a fresh connection and one on a
// reused connection are alike.
func TestPostNotReplayed(t *testing.T) {
	for _, tt := range []struct {
		name   string
		before int // calls answered before the one the upstream drops
	}{
		{"fresh connection", 0},
		{"reused connection", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var dropped atomic.Int32
			srv := newRawServer(t, func(_ int, c net.Conn, br *bufio.Reader) {
				for {
					body, err := readRequest(br)
					if err != nil {
						return
					}
					if bytes.Contains(body, []byte("drop me")) {
						dropped.Add(1)
						return // closes the connection without an answer
					}
					if writeJSON(c, `{"ok":true}`) != nil {
						return
					}
				}
			})
			e := newExec(t, registry.ProviderSpec{Adapter: "openai", BaseURL: srv.baseURL()}, 5*time.Second)
			for range tt.before {
				if _, err := callText(t, e, `{}`); err != nil {
					t.Fatal(err)
				}
			}
			_, err := callText(t, e, `{"messages":[{"role":"user","content":"drop me"}]}`)
			ue := asError(t, err)
			if ue.Class != ClassServer || ue.StatusCode != 0 {
				t.Errorf("%v (class %s), want a server failure", err, ue.Class)
			}
			if n := dropped.Load(); n != 1 {
				t.Errorf("the upstream got the POST %d times, want once", n)
			}
			if n := srv.accepted(); n != 1 {
				t.Errorf("%d connections, want 1", n)
			}
		})
	}
}

// Idle connections close: when the executor's idle timeout passes, and as
// soon as the upstream closes its side (no socket left in CLOSE_WAIT).
func TestIdleConnectionsClose(t *testing.T) {
	t.Run("idle timeout", func(t *testing.T) {
		srv := providertest.NewServer(t)
		e := newExec(t, registry.ProviderSpec{Adapter: "openai", BaseURL: srv.OpenAIURL()}, 5*time.Second)
		e.tr.IdleConnTimeout = time.Millisecond
		if _, err := callText(t, e, `{}`); err != nil {
			t.Fatal(err)
		}
		await(t, srv, "the idle connection to close", func(s providertest.Stats) bool { return s.Conns == 0 })
	})
	t.Run("upstream closes", func(t *testing.T) {
		closed := make(chan bool, 1)
		srv := newRawServer(t, func(_ int, c net.Conn, br *bufio.Reader) {
			if _, err := readRequest(br); err != nil {
				return
			}
			if writeJSON(c, `{"ok":true}`) != nil {
				return
			}
			// Close our side only, and wait for the client to close its own.
			c.(*net.TCPConn).CloseWrite()
			c.SetReadDeadline(time.Now().Add(hangGuard))
			_, err := br.ReadByte()
			closed <- err == io.EOF
		})
		e := newExec(t, registry.ProviderSpec{Adapter: "openai", BaseURL: srv.baseURL()}, 5*time.Second)
		if _, err := callText(t, e, `{}`); err != nil {
			t.Fatal(err)
		}
		if !<-closed {
			t.Error("the client left the connection the upstream closed open")
		}
	})
}

// A stream's upstream that stalls before its answer is bounded by the
// provider's timeout at every step: while the request is written (an
// upstream that reads nothing), and while a failure's body is read (an
// upstream that sends a 429's headers and then holds its body).
func TestStreamStallBeforeAnswer(t *testing.T) {
	for _, tt := range []struct {
		name  string
		serve func(c net.Conn, br *bufio.Reader, release <-chan struct{})
		body  []byte
		class Class
	}{
		{
			name: "request never read",
			serve: func(_ net.Conn, _ *bufio.Reader, release <-chan struct{}) {
				<-release // reads nothing: the client's write fills the socket and stalls
			},
			body:  bytes.Repeat([]byte("x"), 32<<20),
			class: ClassTimeout,
		},
		{
			name: "error body held",
			serve: func(c net.Conn, br *bufio.Reader, release <-chan struct{}) {
				if _, err := readRequest(br); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"error\":")
				<-release
			},
			body:  []byte(`{"stream":true}`),
			class: ClassRateLimit,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			srv := newRawServer(t, func(_ int, c net.Conn, br *bufio.Reader) { tt.serve(c, br, release) })
			e := newExec(t, registry.ProviderSpec{Adapter: "openai", BaseURL: srv.baseURL()}, 100*time.Millisecond)
			done := make(chan error, 1)
			go func() {
				_, err := e.Call(t.Context(), &Request{Body: tt.body, Stream: true})
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(hangGuard):
				t.Fatal("the call is still waiting on the stalled upstream")
			}
			if ue := asError(t, err); ue.Class != tt.class {
				t.Errorf("%v (class %s), want %s", err, ue.Class, tt.class)
			}
		})
	}
}

// An answer whose headers exceed the hangGuard fails the call rather than
// filling memory.
func TestResponseHeaderBound(t *testing.T) {
	srv := newRawServer(t, func(_ int, c net.Conn, br *bufio.Reader) {
		if _, err := readRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
		line := "X-Padding: " + strings.Repeat("p", 1000) + "\r\n"
		for range 2 * maxResponseHeader / len(line) {
			if _, err := io.WriteString(c, line); err != nil {
				return
			}
		}
		io.WriteString(c, "Content-Length: 2\r\n\r\n{}")
	})
	e := newExec(t, registry.ProviderSpec{Adapter: "openai", BaseURL: srv.baseURL()}, 5*time.Second)
	_, err := callText(t, e, `{}`)
	var ue *Error
	if !errors.As(err, &ue) || ue.Class != ClassServer || !strings.Contains(ue.Message, "header") {
		t.Fatalf("%v, want a server failure about the headers", err)
	}
}
