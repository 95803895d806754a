package provider

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/awakend/awakend/provider/providertest"
	"github.com/awakend/awakend/registry"
)

func TestFastOnlyForPlainHTTP(t *testing.T) {
	for _, tt := range []struct {
		base string
		fast bool
	}{
		{"http://127.0.0.1:9/v1", true},
		{"http://localhost/v1", true},
		{"https://127.0.0.1:9/v1", false},
	} {
		e := newExec(t, registry.ProviderSpec{Adapter: "openai", BaseURL: tt.base}, time.Second)
		if got := e.fast != nil; got != tt.fast {
			t.Errorf("%s: fast path %v, want %v", tt.base, got, tt.fast)
		}
	}
	u, err := url.Parse("http://localhost/v1/chat/completions")
	if err != nil {
		t.Fatal(err)
	}
	if f := newFast(u, http.Header{}, time.Second); f.addr != "localhost:80" {
		t.Errorf("addr %q, want localhost:80", f.addr)
	}
}

// staleServer answers each connection's first request, then handles the
// connection as closing says: "idle" closes it at once, as a server
// closing an idle keep-alive connection; "read" reads the next request and
// closes without an answer, as one that closed as the request went out.
func staleServer(t *testing.T, closing string) (base string, conns func() int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu sync.Mutex
		n  int
		wg sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			n++
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				const answer = `{"ok":true}`
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n"+answer)
				if closing == "read" {
					if req, err := http.ReadRequest(br); err == nil {
						io.Copy(io.Discard, req.Body)
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return "http://" + l.Addr().String() + "/v1", func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

// A call on a pooled connection the server has since closed goes again on
// a fresh connection, as net/http does for a request it could not send:
// a connection that rested in the pool long enough is checked before its
// reuse ("idle"), a younger one is retried once the close shows
// ("idle-young", "read").
func TestFastStaleConnection(t *testing.T) {
	for _, tt := range []struct {
		name, closing string
		peekAfter     time.Duration
	}{
		{"idle", "idle", 0},
		{"idle-young", "idle", time.Hour},
		{"read", "read", time.Hour},
	} {
		t.Run(tt.name, func(t *testing.T) {
			closing := tt.closing
			base, conns := staleServer(t, closing)
			e := newExec(t, registry.ProviderSpec{Adapter: "openai", BaseURL: base}, 5*time.Second)
			e.fast.peekAfter = tt.peekAfter
			for i := range 3 {
				if closing == "idle" {
					time.Sleep(20 * time.Millisecond) // let the close arrive
				}
				resp, err := e.Call(t.Context(), &Request{Body: []byte(`{}`)})
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(b) != `{"ok":true}` {
					t.Fatalf("call %d: %q, %v", i, b, err)
				}
			}
			if n := conns(); n != 3 {
				t.Errorf("%d connections for 3 calls, want 3", n)
			}
		})
	}
}

// Concurrent calls share the pool, and each connection carries one call at
// a time.
func TestFastConcurrent(t *testing.T) {
	srv := providertest.NewServer(t)
	e := newExec(t, registry.ProviderSpec{Adapter: "openai", BaseURL: srv.OpenAIURL()}, 5*time.Second)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				resp, err := e.Call(t.Context(), &Request{Body: []byte(`{}`), RequestID: "req-1"})
				if err != nil {
					t.Error(err)
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || !strings.Contains(string(b), "chat.completion") {
					t.Errorf("%q, %v", b, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if st := srv.Stats(); st.Requests != 200 || st.Conns > 8 {
		t.Errorf("stats %+v, want 200 requests on at most 8 connections", st)
	}
	e.Close()
	await(t, srv, "the idle connections to close", func(s providertest.Stats) bool { return s.Conns == 0 })
}

// A call leaves its read deadline on the pooled connection, past by the
// time the connection is used again: the next call, checked for a stale
// connection or not, still gets that connection.
func TestFastDeadlineLeftOnIdleConnection(t *testing.T) {
	for _, peekAfter := range []time.Duration{0, time.Hour} {
		srv := providertest.NewServer(t)
		e := newExec(t, registry.ProviderSpec{Adapter: "openai", BaseURL: srv.OpenAIURL()}, 30*time.Millisecond)
		e.fast.peekAfter = peekAfter
		call := func(i int) *fconn {
			t.Helper()
			resp, err := e.Call(t.Context(), &Request{Body: []byte(`{}`)})
			if err != nil {
				t.Fatalf("peekAfter %v, call %d: %v", peekAfter, i, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			e.fast.mu.Lock()
			defer e.fast.mu.Unlock()
			if len(e.fast.idle) != 1 {
				t.Fatalf("peekAfter %v, call %d: %d idle connections, want 1", peekAfter, i, len(e.fast.idle))
			}
			return e.fast.idle[0]
		}
		first := call(0)
		time.Sleep(60 * time.Millisecond) // the first call's deadline passes
		if call(1) != first {
			t.Errorf("peekAfter %v: the second call did not reuse the connection", peekAfter)
		}
	}
}

// A request too large to go into the socket's buffer at once, to an
// upstream that never reads it, times out in the write.
func TestFastWriteTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var accepted []net.Conn
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted = append(accepted, c) // held open, never read
		}
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		for _, c := range accepted {
			c.Close()
		}
	})
	e := newExec(t, registry.ProviderSpec{Adapter: "openai", BaseURL: "http://" + l.Addr().String() + "/v1"}, 100*time.Millisecond)
	body := []byte(`{"messages":"` + strings.Repeat("x", 64<<20) + `"}`)
	start := time.Now()
	_, err = e.Call(t.Context(), &Request{Body: body})
	if ue := asError(t, err); ue.Class != ClassTimeout {
		t.Errorf("err = %v (class %s), want a timeout", err, ue.Class)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the call took %v with a 100ms timeout", took)
	}
}
