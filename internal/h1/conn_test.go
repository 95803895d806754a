package h1_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/awakend/awakend/internal/h1"
)

// secret stands for a credential a client put in a malformed request: it
// must not come back in the answer.
const secret = "sk-live-0123456789abcdef"

func TestBadRequest(t *testing.T) {
	tests := []struct {
		name      string
		maxHeader int // Server.MaxHeaderBytes
		req       string
		status    string
		reason    string // what the body says after the status
	}{{
		name:   "malformed header line",
		req:    "GET / HTTP/1.1\r\nHost: h1.test\r\nAuthorization Bearer " + secret + "\r\n\r\n",
		status: "HTTP/1.1 400 Bad Request",
		reason: "malformed MIME header",
	}, {
		name:   "header line without a name",
		req:    "GET / HTTP/1.1\r\nHost: h1.test\r\n: " + secret + "\r\n\r\n",
		status: "HTTP/1.1 400 Bad Request",
		reason: "malformed MIME header line",
	}, {
		name:   "request line without a version",
		req:    "GET /v1/models?api_key=" + secret + "\r\nHost: h1.test\r\n\r\n",
		status: "HTTP/1.1 400 Bad Request",
		reason: "malformed HTTP request",
	}, {
		name:   "malformed version",
		req:    "GET / HTTP/" + secret + "\r\nHost: h1.test\r\n\r\n",
		status: "HTTP/1.1 400 Bad Request",
		reason: "malformed HTTP version",
	}, {
		name:   "control byte in the target",
		req:    "GET /v1/models?api_key=" + secret + "\x7f HTTP/1.1\r\nHost: h1.test\r\n\r\n",
		status: "HTTP/1.1 400 Bad Request",
		reason: "malformed request URI",
	}, {
		name:   "bad Content-Length",
		req:    "POST / HTTP/1.1\r\nHost: h1.test\r\nContent-Length: " + secret + "\r\n\r\n",
		status: "HTTP/1.1 400 Bad Request",
		reason: "bad Content-Length",
	}, {
		name:   "HTTP/1.1 without Host",
		req:    "GET / HTTP/1.1\r\n\r\n",
		status: "HTTP/1.1 400 Bad Request",
		reason: "missing required Host header",
	}, {
		name:   "two Host headers",
		req:    "GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
		status: "HTTP/1.1 400 Bad Request",
		reason: "too many Host headers",
	}, {
		name:   "malformed Host",
		req:    "GET / HTTP/1.1\r\nHost: " + secret + "/x\r\n\r\n",
		status: "HTTP/1.1 400 Bad Request",
		reason: "malformed Host header",
	}, {
		name:      "headers over MaxHeaderBytes",
		maxHeader: 1024,
		// Over MaxHeaderBytes and net/http's 4 KiB of slack, not over
		// another 4 KiB.
		req:    "GET / HTTP/1.1\r\nHost: h1.test\r\nX-Big: " + strings.Repeat("b", 6<<10) + "\r\n\r\n",
		status: "HTTP/1.1 431 Request Header Fields Too Large",
	}, {
		name:   "HTTP/2.0",
		req:    "GET / HTTP/2.0\r\nHost: h1.test\r\n\r\n",
		status: "HTTP/1.1 505 HTTP Version Not Supported",
	}, {
		name:   "HTTP/2 preface",
		req:    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		status: "HTTP/1.1 505 HTTP Version Not Supported",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			called := make(chan struct{}, 1)
			f := serve(t, &h1.Server{
				MaxHeaderBytes: tc.maxHeader,
				Handler:        http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { called <- struct{}{} }),
			})
			raw := exchange(t, f.addr, tc.req) // reads until the server closes
			a := parse(t, raw)
			if a.status != tc.status {
				t.Errorf("status line = %q, want %q", a.status, tc.status)
			}
			checkHeader(t, a, map[string]string{"Connection": "close"})
			code, _, _ := strings.Cut(strings.TrimPrefix(tc.status, "HTTP/1.1 "), " ")
			want := strings.TrimPrefix(tc.status, "HTTP/1.1 ")
			if tc.reason != "" {
				want += ": " + tc.reason
			}
			if a.body != want || !strings.HasPrefix(a.body, code) {
				t.Errorf("body = %q, want %q", a.body, want)
			}
			if strings.Contains(raw, secret) {
				t.Errorf("the answer echoes the request's secret: %q", raw)
			}
			if len(called) > 0 {
				t.Error("the handler ran")
			}
		})
	}
}

func TestExpectContinue(t *testing.T) {
	const headers = "POST / HTTP/1.1\r\nHost: h1.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"

	t.Run("100 when the handler reads the body", func(t *testing.T) {
		started, read := make(chan struct{}), make(chan struct{})
		f := handle(t, func(w http.ResponseWriter, r *http.Request) {
			close(started)
			<-read
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "got %q", b)
		})
		c := dial(t, f.addr)
		br := bufio.NewReader(c)
		write(t, c, headers)
		wait(t, started, "the handler")

		// Nothing comes before the handler reads.
		c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if b, err := br.Peek(1); err == nil {
			t.Fatalf("the server sent %q before the handler read the body", b)
		}
		c.SetReadDeadline(time.Now().Add(testTimeout))
		close(read)
		line := make([]byte, len("HTTP/1.1 100 Continue\r\n\r\n"))
		if _, err := io.ReadFull(br, line); err != nil || string(line) != "HTTP/1.1 100 Continue\r\n\r\n" {
			t.Fatalf("interim answer = %q, %v; want a 100 Continue", line, err)
		}
		write(t, c, "hello")
		resp, body := readResponse(t, br, http.MethodPost)
		if resp.StatusCode != http.StatusOK || body != `got "hello"` || resp.Close {
			t.Errorf("answer: %d %q, Close %v; want 200 %q, kept", resp.StatusCode, body, resp.Close, `got "hello"`)
		}
	})

	t.Run("no 100 when the handler does not read", func(t *testing.T) {
		f := handle(t, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
		})
		raw := exchange(t, f.addr, headers) // the client never sends the body; the server closes
		if strings.Contains(raw, "100 Continue") {
			t.Errorf("answer %q has a 100 Continue", raw)
		}
		a := parse(t, raw)
		if a.status != "HTTP/1.1 401 Unauthorized" {
			t.Errorf("status line = %q, want 401", a.status)
		}
		checkHeader(t, a, map[string]string{"Connection": "close"})
	})

	t.Run("unknown expectation", func(t *testing.T) {
		f := handle(t, func(w http.ResponseWriter, r *http.Request) { t.Error("the handler ran") })
		a := parse(t, exchange(t, f.addr, "POST / HTTP/1.1\r\nHost: h1.test\r\nContent-Length: 5\r\nExpect: 200-ok\r\n\r\n"))
		if a.status != "HTTP/1.1 417 Expectation Failed" {
			t.Errorf("status line = %q, want 417", a.status)
		}
		checkHeader(t, a, map[string]string{"Connection": "close"})
	})

	t.Run("Go client", func(t *testing.T) {
		f := handle(t, func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			w.Write(b)
		})
		// A client that waits as long as the test for the 100 Continue.
		tr := &http.Transport{ExpectContinueTimeout: testTimeout}
		t.Cleanup(tr.CloseIdleConnections)
		req := newRequest(t, http.MethodPost, f.url, strings.NewReader("hello"))
		req.Header.Set("Expect", "100-continue")
		start := time.Now()
		resp, body, _ := do(t, &http.Client{Transport: tr}, req)
		if resp.StatusCode != http.StatusOK || body != "hello" {
			t.Errorf("answer: %d %q, want 200 \"hello\"", resp.StatusCode, body)
		}
		if d := time.Since(start); d > testTimeout/2 {
			t.Errorf("the request took %v: the client waited out its 100 Continue timeout", d)
		}
	})
}

func TestUnreadBody(t *testing.T) {
	tests := []struct {
		name    string
		size    int
		chunked bool
		close   bool
	}{
		{name: "small body is drained", size: 1 << 10},
		{name: "body at the drain limit is drained", size: 256 << 10},
		{name: "body over the drain limit closes", size: 256<<10 + 1, close: true},
		{name: "large body closes", size: 4 << 20, close: true},
		{name: "chunked body closes", size: 1 << 10, chunked: true, close: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := handle(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "unread") })
			c := client(t)
			for i := range 2 {
				var body io.Reader = bytes.NewReader(make([]byte, tc.size))
				if tc.chunked {
					body = io.MultiReader(body) // a length the client does not know: chunked
				}
				resp, got, reused := do(t, c, newRequest(t, http.MethodPost, f.url, body))
				if resp.StatusCode != http.StatusOK || got != "unread" {
					t.Fatalf("request %d: %d %q, want 200 \"unread\"", i, resp.StatusCode, got)
				}
				if resp.Close != tc.close {
					t.Errorf("request %d: Connection: close is %v, want %v", i, resp.Close, tc.close)
				}
				if want := i > 0 && !tc.close; reused != want {
					t.Errorf("request %d: connection reused %v, want %v", i, reused, want)
				}
			}
		})
	}
}

func TestChunkedRequestBody(t *testing.T) {
	type seen struct {
		length int64
		te     []string
		body   string
		err    error
	}
	got := make(chan seen, 2)
	f := handle(t, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		got <- seen{r.ContentLength, r.TransferEncoding, string(b), err}
		fmt.Fprintf(w, "%d", len(b))
	})

	t.Run("Go client", func(t *testing.T) {
		want := strings.Repeat("chunk of a body of unknown length;", 1000)
		resp, body, _ := do(t, client(t), newRequest(t, http.MethodPost, f.url, io.MultiReader(strings.NewReader(want))))
		s := wait(t, got, "the handler")
		if s.err != nil || s.body != want || s.length != -1 || len(s.te) != 1 || s.te[0] != "chunked" {
			t.Errorf("handler saw length %d, %q, %d bytes, %v; want -1, chunked, %d bytes", s.length, s.te, len(s.body), s.err, len(want))
		}
		if resp.StatusCode != http.StatusOK || body != fmt.Sprint(len(want)) {
			t.Errorf("answer: %d %q", resp.StatusCode, body)
		}
	})

	t.Run("raw, with a trailer, pipelined", func(t *testing.T) {
		c := dial(t, f.addr)
		br := bufio.NewReader(c)
		write(t, c, "POST / HTTP/1.1\r\nHost: h1.test\r\nTransfer-Encoding: chunked\r\n\r\n"+
			"5\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n"+
			"POST / HTTP/1.1\r\nHost: h1.test\r\nContent-Length: 3\r\n\r\nabc")
		for _, want := range []string{"hello, world", "abc"} {
			if s := wait(t, got, "the handler"); s.err != nil || s.body != want {
				t.Errorf("handler read %q, %v; want %q", s.body, s.err, want)
			}
			if _, body := readResponse(t, br, http.MethodPost); body != fmt.Sprint(len(want)) {
				t.Errorf("answer %q, want %d", body, len(want))
			}
		}
	})
}

func TestPipelining(t *testing.T) {
	f := handle(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
	})
	c := dial(t, f.addr)
	br := bufio.NewReader(c)
	write(t, c, "GET /1 HTTP/1.1\r\nHost: h1.test\r\n\r\n"+
		"POST /2 HTTP/1.1\r\nHost: h1.test\r\nContent-Length: 4\r\n\r\nbody"+
		"GET /3 HTTP/1.1\r\nHost: h1.test\r\n\r\n")
	for _, want := range []string{"GET /1 ", "POST /2 body", "GET /3 "} {
		if _, body := readResponse(t, br, http.MethodGet); body != want {
			t.Errorf("answer %q, want %q", body, want)
		}
	}
}
