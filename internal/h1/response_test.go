package h1_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// Raw requests the framing tests send.
const (
	get11      = "GET / HTTP/1.1\r\nHost: h1.test\r\n\r\n"
	get11Close = "GET / HTTP/1.1\r\nHost: h1.test\r\nConnection: close\r\n\r\n"
	head11     = "HEAD / HTTP/1.1\r\nHost: h1.test\r\nConnection: close\r\n\r\n"
	get10      = "GET / HTTP/1.0\r\n\r\n"
	get10Keep  = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
)

// chunks is the chunked encoding of parts, terminating chunk included.
func chunks(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(p), p)
	}
	b.WriteString("0\r\n\r\n")
	return b.String()
}

// writes writes each part to w, flushing between them when flush is set.
func writes(w http.ResponseWriter, flush bool, parts ...string) error {
	for i, p := range parts {
		if flush && i > 0 {
			if err := http.NewResponseController(w).Flush(); err != nil {
				return fmt.Errorf("Flush: %w", err)
			}
		}
		if _, err := io.WriteString(w, p); err != nil {
			return fmt.Errorf("Write(%d bytes): %w", len(p), err)
		}
	}
	return nil
}

// absent marks a header the answer must not have.
const absent = "<absent>"

// checkHeader checks a's headers against want: a value, or absent.
func checkHeader(t *testing.T, a answer, want map[string]string) {
	t.Helper()
	for k, v := range want {
		got, ok := a.header[k]
		switch {
		case v == absent && ok:
			t.Errorf("%s = %q, want none", k, got)
		case v != absent && (len(got) != 1 || got[0] != v):
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestFraming(t *testing.T) {
	large := strings.Repeat("0123456789", 500) // 5000 bytes: more than the 4 KiB held back
	part := strings.Repeat("abcdefghij", 50)   // 500 bytes
	exact := strings.Repeat("x", 4096)         // exactly what is held back
	tests := []struct {
		name    string
		req     string // the server must close the connection after answering
		handler func(w http.ResponseWriter) error
		status  string
		header  map[string]string
		body    string // raw, as sent
	}{{
		name:    "small answer has a Content-Length",
		req:     get11Close,
		handler: func(w http.ResponseWriter) error { return writes(w, false, "hello, ", "world") },
		status:  "HTTP/1.1 200 OK",
		header:  map[string]string{"Content-Length": "12", "Transfer-Encoding": absent, "Connection": "close"},
		body:    "hello, world",
	}, {
		name:    "empty answer",
		req:     get11Close,
		handler: func(w http.ResponseWriter) error { return nil },
		status:  "HTTP/1.1 200 OK",
		header:  map[string]string{"Content-Length": "0", "Transfer-Encoding": absent, "Content-Type": absent},
	}, {
		name:    "status without body",
		req:     get11Close,
		handler: func(w http.ResponseWriter) error { w.WriteHeader(http.StatusNotFound); return nil },
		status:  "HTTP/1.1 404 Not Found",
		header:  map[string]string{"Content-Length": "0", "Transfer-Encoding": absent},
	}, {
		name:    "flush makes the answer chunked",
		req:     get11Close,
		handler: func(w http.ResponseWriter) error { return writes(w, true, "hello", ", world", "!") },
		status:  "HTTP/1.1 200 OK",
		header:  map[string]string{"Transfer-Encoding": "chunked", "Content-Length": absent},
		body:    chunks("hello", ", world", "!"),
	}, {
		name: "flush before any write",
		req:  get11Close,
		handler: func(w http.ResponseWriter) error {
			w.Header().Set("Content-Type", "text/event-stream")
			return writes(w, true, "", "data: 1\n\n")
		},
		status: "HTTP/1.1 200 OK",
		header: map[string]string{"Transfer-Encoding": "chunked", "Content-Type": "text/event-stream"},
		body:   chunks("data: 1\n\n"),
	}, {
		name: "answer larger than the buffer is chunked",
		req:  get11Close,
		handler: func(w http.ResponseWriter) error {
			return writes(w, false, slices.Repeat([]string{part}, 10)...)
		},
		status: "HTTP/1.1 200 OK",
		header: map[string]string{"Transfer-Encoding": "chunked", "Content-Length": absent},
		// 8 writes (4000 bytes) are held; the 9th outgrows the buffer.
		body: chunks(strings.Repeat(part, 8), part, part),
	}, {
		name:    "one write larger than the buffer is chunked",
		req:     get11Close,
		handler: func(w http.ResponseWriter) error { return writes(w, false, large) },
		status:  "HTTP/1.1 200 OK",
		header:  map[string]string{"Transfer-Encoding": "chunked", "Content-Length": absent},
		body:    chunks(large),
	}, {
		name:    "answer the size of the buffer has a Content-Length",
		req:     get11Close,
		handler: func(w http.ResponseWriter) error { return writes(w, false, exact) },
		status:  "HTTP/1.1 200 OK",
		header:  map[string]string{"Content-Length": "4096", "Transfer-Encoding": absent},
		body:    exact,
	}, {
		name: "declared Content-Length is kept",
		req:  get11Close,
		handler: func(w http.ResponseWriter) error {
			w.Header().Set("Content-Length", "5000")
			return writes(w, false, large[:2000], large[2000:])
		},
		status: "HTTP/1.1 200 OK",
		header: map[string]string{"Content-Length": "5000", "Transfer-Encoding": absent},
		body:   large,
	}, {
		name: "declared Content-Length is kept when flushed",
		req:  get11Close,
		handler: func(w http.ResponseWriter) error {
			w.Header().Set("Content-Length", "10")
			return writes(w, true, "hello", "world")
		},
		status: "HTTP/1.1 200 OK",
		header: map[string]string{"Content-Length": "10", "Transfer-Encoding": absent},
		body:   "helloworld",
	}, {
		name: "handler's Transfer-Encoding is the server's to set",
		req:  get11Close,
		handler: func(w http.ResponseWriter) error {
			w.Header().Set("Transfer-Encoding", "chunked")
			return writes(w, false, "hello")
		},
		status: "HTTP/1.1 200 OK",
		header: map[string]string{"Content-Length": "5", "Transfer-Encoding": absent},
		body:   "hello",
	}, {
		name: "invalid declared Content-Length is replaced",
		req:  get11Close,
		handler: func(w http.ResponseWriter) error {
			w.Header().Set("Content-Length", "five")
			return writes(w, false, "hello")
		},
		status: "HTTP/1.1 200 OK",
		header: map[string]string{"Content-Length": "5", "Transfer-Encoding": absent},
		body:   "hello",
	}, {
		name: "Content-Length set after WriteHeader is ignored",
		req:  get11Close,
		handler: func(w http.ResponseWriter) error {
			w.WriteHeader(http.StatusOK)
			w.Header().Set("Content-Length", "7")
			return writes(w, false, "hello")
		},
		status: "HTTP/1.1 200 OK",
		header: map[string]string{"Content-Length": "5", "Transfer-Encoding": absent},
		body:   "hello",
	}, {
		name: "Content-Length set after WriteHeader is not sent with chunks",
		req:  get11Close,
		handler: func(w http.ResponseWriter) error {
			w.WriteHeader(http.StatusOK)
			w.Header().Set("Content-Length", "7")
			return writes(w, false, large)
		},
		status: "HTTP/1.1 200 OK",
		header: map[string]string{"Content-Length": absent, "Transfer-Encoding": "chunked"},
		body:   chunks(large),
	}, {
		name: "writing past the declared Content-Length fails",
		req:  get11Close,
		handler: func(w http.ResponseWriter) error {
			w.Header().Set("Content-Length", "3")
			if n, err := io.WriteString(w, "hello"); n != 0 || !errors.Is(err, http.ErrContentLength) {
				return fmt.Errorf("Write past Content-Length = %d, %v; want 0, http.ErrContentLength", n, err)
			}
			return writes(w, false, "abc")
		},
		status: "HTTP/1.1 200 OK",
		header: map[string]string{"Content-Length": "3"},
		body:   "abc",
	}, {
		// The client asked to keep the connection: the server closes it
		// because the answer is short of its length.
		name: "writing less than the declared Content-Length closes",
		req:  get11,
		handler: func(w http.ResponseWriter) error {
			w.Header().Set("Content-Length", "10")
			return writes(w, false, "hello")
		},
		status: "HTTP/1.1 200 OK",
		header: map[string]string{"Content-Length": "10"},
		body:   "hello",
	}, {
		name:    "HTTP/1.0 small answer",
		req:     get10,
		handler: func(w http.ResponseWriter) error { return writes(w, false, "hello") },
		status:  "HTTP/1.1 200 OK",
		header:  map[string]string{"Content-Length": "5", "Transfer-Encoding": absent, "Connection": "close"},
		body:    "hello",
	}, {
		name:    "HTTP/1.0 flushed answer is delimited by the close",
		req:     get10,
		handler: func(w http.ResponseWriter) error { return writes(w, true, "hello", "world") },
		status:  "HTTP/1.1 200 OK",
		header:  map[string]string{"Content-Length": absent, "Transfer-Encoding": absent, "Connection": "close"},
		body:    "helloworld",
	}, {
		name:    "HTTP/1.0 large answer is delimited by the close",
		req:     get10,
		handler: func(w http.ResponseWriter) error { return writes(w, false, large, large) },
		status:  "HTTP/1.1 200 OK",
		header:  map[string]string{"Content-Length": absent, "Transfer-Encoding": absent, "Connection": "close"},
		body:    large + large,
	}, {
		name:    "HTTP/1.0 keep-alive flushed answer is delimited by the close",
		req:     get10Keep,
		handler: func(w http.ResponseWriter) error { return writes(w, true, "hello", "world") },
		status:  "HTTP/1.1 200 OK",
		header:  map[string]string{"Content-Length": absent, "Transfer-Encoding": absent, "Connection": "close"},
		body:    "helloworld",
	}, {
		name:    "HEAD has the Content-Length of what the handler wrote, no body",
		req:     head11,
		handler: func(w http.ResponseWriter) error { return writes(w, false, "hello") },
		status:  "HTTP/1.1 200 OK",
		header:  map[string]string{"Content-Length": "5", "Transfer-Encoding": absent, "Content-Type": "text/plain; charset=utf-8"},
	}, {
		name:    "HEAD of a large answer",
		req:     head11,
		handler: func(w http.ResponseWriter) error { return writes(w, false, "<html>", large) },
		status:  "HTTP/1.1 200 OK",
		header:  map[string]string{"Content-Length": "5006", "Transfer-Encoding": absent, "Content-Type": "text/html; charset=utf-8"},
	}, {
		name:    "HEAD the handler wrote nothing to",
		req:     head11,
		handler: func(w http.ResponseWriter) error { return nil },
		status:  "HTTP/1.1 200 OK",
		header:  map[string]string{"Content-Length": absent, "Transfer-Encoding": absent},
	}, {
		name: "HEAD with a declared Content-Length",
		req:  head11,
		handler: func(w http.ResponseWriter) error {
			w.Header().Set("Content-Length", "1234")
			return nil
		},
		status: "HTTP/1.1 200 OK",
		header: map[string]string{"Content-Length": "1234", "Transfer-Encoding": absent},
	}, {
		name: "HEAD flushed",
		req:  head11,
		handler: func(w http.ResponseWriter) error {
			return writes(w, true, "hello", "world")
		},
		status: "HTTP/1.1 200 OK",
		header: map[string]string{"Content-Length": absent, "Transfer-Encoding": absent},
	}, {
		name:    "204 has no body",
		req:     get11Close,
		handler: noBody(http.StatusNoContent),
		status:  "HTTP/1.1 204 No Content",
		header:  map[string]string{"Content-Length": absent, "Transfer-Encoding": absent, "Content-Type": absent},
	}, {
		name:    "304 has no body",
		req:     get11Close,
		handler: noBody(http.StatusNotModified),
		status:  "HTTP/1.1 304 Not Modified",
		header:  map[string]string{"Content-Length": absent, "Transfer-Encoding": absent, "Content-Type": absent},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := make(chan error, 1)
			f := handle(t, func(w http.ResponseWriter, r *http.Request) { errs <- tc.handler(w) })
			a := parse(t, exchange(t, f.addr, tc.req))
			if err := wait(t, errs, "the handler"); err != nil {
				t.Fatal(err)
			}
			if a.status != tc.status {
				t.Errorf("status line = %q, want %q", a.status, tc.status)
			}
			checkHeader(t, a, tc.header)
			if a.body != tc.body {
				t.Errorf("body = %q, want %q", short(a.body), short(tc.body))
			}
		})
	}
}

// noBody is a handler answering code that checks a body is refused.
func noBody(code int) func(w http.ResponseWriter) error {
	return func(w http.ResponseWriter) error {
		w.WriteHeader(code)
		if n, err := io.WriteString(w, "body"); n != 0 || !errors.Is(err, http.ErrBodyNotAllowed) {
			return fmt.Errorf("Write after %d = %d, %v; want 0, http.ErrBodyNotAllowed", code, n, err)
		}
		return nil
	}
}

// short shortens s for a failure message.
func short(s string) string {
	if len(s) > 200 {
		return s[:100] + "…" + s[len(s)-100:]
	}
	return s
}

// TestHTTP10KeepAlive checks that an HTTP/1.0 client that asks to keep
// the connection gets it, with a Content-Length, for a complete answer.
func TestHTTP10KeepAlive(t *testing.T) {
	f := handle(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.Path) })
	c := dial(t, f.addr)
	br := bufio.NewReader(c)
	for _, path := range []string{"/one", "/two"} {
		write(t, c, "GET "+path+" HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
		resp, body := readResponse(t, br, http.MethodGet)
		if resp.ContentLength != int64(len(path)) || body != path {
			t.Errorf("GET %s: Content-Length %d, body %q; want %d, %q", path, resp.ContentLength, body, len(path), path)
		}
		if got := resp.Header.Get("Connection"); got != "keep-alive" {
			t.Errorf("GET %s: Connection = %q, want keep-alive", path, got)
		}
	}
}

func TestHeaders(t *testing.T) {
	tests := []struct {
		name    string
		req     string
		handler http.HandlerFunc
		header  map[string]string
	}{{
		name:    "Content-Type is sniffed",
		req:     get11Close,
		handler: func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<!DOCTYPE html><p>hi") },
		header:  map[string]string{"Content-Type": "text/html; charset=utf-8"},
	}, {
		name: "Content-Type is sniffed from one large write",
		req:  get11Close,
		handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "<!DOCTYPE html>"+strings.Repeat("<p>hi</p>", 1000))
		},
		header: map[string]string{"Content-Type": "text/html; charset=utf-8"},
	}, {
		name: "Content-Type is sniffed past a short first write",
		req:  get11Close,
		handler: func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "<!DOCTYPE")
			io.WriteString(w, " html>"+strings.Repeat("<p>hi</p>", 1000))
		},
		header: map[string]string{"Content-Type": "text/html; charset=utf-8"},
	}, {
		name: "handler's Content-Type is kept",
		req:  get11Close,
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, "<html>")
		},
		header: map[string]string{"Content-Type": "application/json"},
	}, {
		name: "nil Content-Type is not sniffed",
		req:  get11Close,
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = nil
			io.WriteString(w, "<html>")
		},
		header: map[string]string{"Content-Type": absent},
	}, {
		name: "encoded body is not sniffed",
		req:  get11Close,
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			io.WriteString(w, "\x1f\x8b\x08")
		},
		header: map[string]string{"Content-Type": absent, "Content-Encoding": "gzip"},
	}, {
		name:    "client asked to close",
		req:     get11Close,
		handler: func(w http.ResponseWriter, r *http.Request) {},
		header:  map[string]string{"Connection": "close"},
	}, {
		name: "handler asked to close",
		req:  get11,
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
		},
		header: map[string]string{"Connection": "close"},
	}, {
		name: "handler's Date is kept",
		req:  get11Close,
		handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Date", "Mon, 02 Jan 2006 15:04:05 GMT")
		},
		header: map[string]string{"Date": "Mon, 02 Jan 2006 15:04:05 GMT"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := handle(t, tc.handler)
			a := parse(t, exchange(t, f.addr, tc.req)) // reads until the server closes
			checkHeader(t, a, tc.header)
		})
	}
}

func TestDate(t *testing.T) {
	f := handle(t, func(w http.ResponseWriter, r *http.Request) {})
	a := parse(t, exchange(t, f.addr, get11Close))
	d, err := http.ParseTime(a.header.Get("Date"))
	if err != nil {
		t.Fatalf("Date %q: %v", a.header.Get("Date"), err)
	}
	if off := time.Since(d); off < -time.Minute || off > time.Minute {
		t.Errorf("Date = %v, %v from now", d, off)
	}
}

// TestKeptConnectionHasNoConnectionHeader checks the ordinary HTTP/1.1
// answer: the connection stays open, and no Connection header says so.
func TestKeptConnectionHasNoConnectionHeader(t *testing.T) {
	f := handle(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	c := dial(t, f.addr)
	br := bufio.NewReader(c)
	for range 2 {
		write(t, c, get11)
		resp, body := readResponse(t, br, http.MethodGet)
		if resp.Close || resp.Header["Connection"] != nil || body != "ok" {
			t.Errorf("answer: Close %v, Connection %q, body %q; want false, none, \"ok\"", resp.Close, resp.Header["Connection"], body)
		}
	}
}

// TestInformational checks that a 1xx answer goes out at once, with the
// headers set so far, before the final one.
func TestInformational(t *testing.T) {
	f := handle(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "done")
	})
	raw := exchange(t, f.addr, get11Close)
	early, final, ok := strings.Cut(raw, "\r\n\r\n")
	if !ok || early != "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload" {
		t.Fatalf("answer = %q, want a 103 with the Link header first", raw)
	}
	if a := parse(t, final); a.status != "HTTP/1.1 200 OK" || a.body != "done" {
		t.Errorf("final answer = %q, want 200 \"done\"", final)
	}
}

// TestResponseController checks that http.ResponseController's Flush
// reaches the response and sends what was written at once.
func TestResponseController(t *testing.T) {
	release := make(chan struct{})
	errs := make(chan error, 1)
	f := handle(t, func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		io.WriteString(w, "first;")
		if err := rc.Flush(); err != nil {
			errs <- fmt.Errorf("Flush: %w", err)
			return
		}
		<-release
		io.WriteString(w, "second")
		errs <- nil
	})
	resp, err := client(t).Do(newRequest(t, http.MethodGet, f.url, nil))
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, len("first;"))
	_, err = io.ReadFull(resp.Body, first) // arrives before the handler goes on
	close(release)
	if err != nil || string(first) != "first;" {
		t.Fatalf("first part = %q, %v; want \"first;\"", first, err)
	}
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "second" {
		t.Errorf("rest = %q, %v; want \"second\"", rest, err)
	}
	if err := wait(t, errs, "the handler"); err != nil {
		t.Error(err)
	}
	if got := resp.TransferEncoding; len(got) != 1 || got[0] != "chunked" {
		t.Errorf("TransferEncoding = %q, want chunked", got)
	}
}
