package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/awakend/awakend/api"
	"github.com/awakend/awakend/edge"
	"github.com/awakend/awakend/provider"
)

// TestGuard: without client keys, a loopback peer naming another host
// (DNS rebinding) and a cross-origin POST are refused; with keys, the key
// decides.
func TestGuard(t *testing.T) {
	const evil, lo = "evil.example:8700", "127.0.0.1:40000"
	keys := []string{"sk-client"}
	for _, tt := range []struct {
		name         string
		keys         []string
		method, path string
		peer, host   string
		header       []string
		status       int
		code         string
	}{
		{name: "rebinding completion", method: "POST", path: "/v1/chat/completions", peer: lo, host: evil, status: 403, code: "host_not_allowed"},
		{name: "rebinding models", method: "GET", path: "/v1/models", peer: lo, host: evil, status: 403, code: "host_not_allowed"},
		{name: "rebinding from ::1", method: "GET", path: "/v1/models", peer: "[::1]:40000", host: evil, status: 403, code: "host_not_allowed"},
		{name: "localhost", method: "POST", path: "/v1/chat/completions", peer: lo, host: "localhost:8700", status: 200},
		{name: "127.0.0.1", method: "POST", path: "/v1/chat/completions", peer: lo, host: "127.0.0.1", status: 200},
		{name: "[::1]", method: "POST", path: "/v1/chat/completions", peer: "[::1]:40000", host: "[::1]:8700", status: 200},
		{name: "listen address", method: "POST", path: "/v1/chat/completions", peer: lo, host: "192.0.2.10:8700", status: 200},
		{name: "remote peer not Host-checked", method: "POST", path: "/v1/chat/completions", peer: "203.0.113.7:5555", host: evil, status: 200},
		{name: "cross-site POST", method: "POST", path: "/v1/chat/completions", peer: lo, host: "localhost:8700",
			header: []string{"Sec-Fetch-Site", "cross-site"}, status: 403, code: "cross_origin_request"},
		{name: "foreign Origin", method: "POST", path: "/v1/chat/completions", peer: lo, host: "localhost:8700",
			header: []string{"Origin", "http://evil.example"}, status: 403, code: "cross_origin_request"},
		{name: "same-origin POST", method: "POST", path: "/v1/chat/completions", peer: lo, host: "localhost:8700",
			header: []string{"Sec-Fetch-Site", "same-origin", "Origin", "http://localhost:8700"}, status: 200},
		{name: "non-browser POST", method: "POST", path: "/v1/chat/completions", peer: lo, host: "localhost:8700", status: 200},

		{name: "keys: rebinding name with a key", keys: keys, method: "POST", path: "/v1/chat/completions", peer: lo, host: evil,
			header: []string{"Authorization", "Bearer sk-client"}, status: 200},
		{name: "keys: rebinding name without a key", keys: keys, method: "POST", path: "/v1/chat/completions", peer: lo, host: evil, status: 401, code: "invalid_api_key"},
		{name: "keys: cross-site POST with a key", keys: keys, method: "POST", path: "/v1/chat/completions", peer: lo, host: "localhost:8700",
			header: []string{"Authorization", "Bearer sk-client", "Sec-Fetch-Site", "cross-site"}, status: 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := basicWorld()
			g, _ := w.gw(t, Options{Keys: edge.NewKeysVar(edge.NewKeys(tt.keys...)), Guard: edge.NewGuard("192.0.2.10:8700")})
			body := ""
			if tt.method == "POST" {
				body = chatReq("m")
			}
			r := httptest.NewRequest(tt.method, tt.path, strings.NewReader(body))
			r.RemoteAddr, r.Host = tt.peer, tt.host
			for i := 0; i+1 < len(tt.header); i += 2 {
				r.Header.Set(tt.header[i], tt.header[i+1])
			}
			rec := httptest.NewRecorder()
			g.ServeHTTP(rec, r)
			res := result{code: rec.Code, header: rec.Header(), body: rec.Body.String()}
			if res.code != tt.status {
				t.Fatalf("status %d, want %d: %s", res.code, tt.status, res.body)
			}
			if tt.code != "" && res.errCode(t) != tt.code {
				t.Errorf("code %q, want %q", res.errCode(t), tt.code)
			}
			if calls := w.fakes["p"].calls(); tt.status != 200 && calls != 0 {
				t.Errorf("a refused request reached the upstream (%d calls)", calls)
			}
		})
	}
}

// errReader returns its bytes, then err: a body whose client stopped
// sending.
type errReader struct {
	b   []byte
	err error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, r.err
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// TestReadBodyGrowsAsBytesArrive: the buffer follows the bytes that
// arrived, not the length announced.
func TestReadBodyGrowsAsBytesArrive(t *testing.T) {
	const limit = DefaultMaxBodyBytes
	for _, tt := range []struct {
		name    string
		hint    int64
		sent    int
		wantErr bool
		maxCap  int // at most
	}{
		{"16 MB announced, 10 bytes sent", 16777000, 10, true, bodyStart},
		{"unknown length, 10 bytes", -1, 10, false, bodyStart},
		{"small body, exact", 300, 300, false, 301},
		{"large body, announced", 5 << 20, 5 << 20, false, 5<<20 + 1},
		{"large body, unknown length", -1, 5 << 20, false, 2 * 5 << 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &errReader{b: make([]byte, tt.sent), err: io.EOF}
			if tt.wantErr {
				r.err = io.ErrUnexpectedEOF
			}
			b, err := readBody(nil, r, limit, tt.hint)
			if (err != nil) != tt.wantErr || len(b) != tt.sent {
				t.Fatalf("read %d bytes, %v", len(b), err)
			}
			if cap(b) > tt.maxCap {
				t.Errorf("buffer of %d bytes for %d sent, want at most %d", cap(b), tt.sent, tt.maxCap)
			}
		})
	}
	t.Run("over the limit", func(t *testing.T) {
		b, err := readBody(nil, &errReader{b: make([]byte, 5000), err: io.EOF}, 1000, -1)
		if err != errBodyTooLarge || cap(b) > 1001 {
			t.Errorf("%v, buffer of %d bytes", err, cap(b))
		}
		if _, err := readBody(nil, &errReader{err: io.EOF}, 1000, 1001); err != errBodyTooLarge {
			t.Errorf("Content-Length over the limit: %v", err)
		}
	})
}

// rawRequest sends head (a request without its body's end) on a new
// connection to srv and reads the answer.
func rawRequest(t *testing.T, srv *httptest.Server, head string) (*http.Response, string) {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second)) // a failing test ends
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func TestRequestBodyLimits(t *testing.T) {
	for _, tt := range []struct {
		name   string
		opts   Options
		head   string
		status int
		code   string
	}{
		{"trickling body", Options{BodyTimeout: 50 * time.Millisecond},
			"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{\"model\":",
			http.StatusRequestTimeout, "request_timeout"},
		{"chunked body over the limit", Options{MaxBodyBytes: 1024},
			"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n1000\r\n" + strings.Repeat("a", 0x1000) + "\r\n",
			http.StatusRequestEntityTooLarge, "request_too_large"},
		{"Content-Length over the limit, no body sent", Options{},
			"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + strconv.Itoa(DefaultMaxBodyBytes+1) + "\r\n\r\n",
			http.StatusRequestEntityTooLarge, "request_too_large"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := basicWorld()
			g, _ := w.gw(t, tt.opts)
			srv := serve(t, g)
			res, body := rawRequest(t, srv, tt.head)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tt.status, body)
			}
			var env struct{ Error map[string]any }
			if err := json.Unmarshal([]byte(body), &env); err != nil || env.Error["code"] != tt.code {
				t.Errorf("body %s (%v), want code %s", body, err, tt.code)
			}
			if !res.Close {
				t.Error("the connection stays open with the body unread")
			}
			if n := w.fakes["p"].calls(); n != 0 {
				t.Errorf("%d upstream calls", n)
			}
		})
	}
}

// TestUpstreamHeaders: the headers the provider passes on reach the
// client, on an answer, a stream and a failure; the gateway's own and
// framing headers are never an upstream's.
func TestUpstreamHeaders(t *testing.T) {
	upstream := func() http.Header {
		return http.Header{
			"X-Ratelimit-Remaining-Requests": {"41"},
			"x-ratelimit-limit-tokens":       {"90000"}, // not canonical
			"X-Upstream-Request-Id":          {"req_up_1"},
			"Openai-Processing-Ms":           {"321"},
			"Retry-After-Ms":                 {"1500"},
			"X-Request-Id":                   {"theirs"},
			"X-Awakend-Model":                {"spoofed"},
			"X-Awakend-Attempts":             {"99"},
			"Content-Length":                 {"99999"},
			"Connection":                     {"keep-alive"},
			"Set-Cookie":                     {"session=upstream"},
		}
	}
	for _, tt := range []struct {
		name   string
		stream bool
		fn     func(context.Context, *provider.Request) (*provider.Response, error)
		status int
		retry  string // Retry-After wanted
	}{
		{name: "answer", status: 200, fn: func(_ context.Context, req *provider.Request) (*provider.Response, error) {
			r := answer(req.UpstreamModel)
			r.Header = upstream()
			r.Header["Content-Type"] = []string{"application/json"}
			return r, nil
		}},
		{name: "stream", stream: true, status: 200, fn: func(context.Context, *provider.Request) (*provider.Response, error) {
			r := sseAnswer(`{"n":1}`, "[DONE]")
			r.Header = upstream()
			return r, nil
		}},
		{name: "rate limited", status: 429, retry: "2", fn: func(context.Context, *provider.Request) (*provider.Response, error) {
			h := upstream()
			h["Retry-After"] = []string{"999"}
			return nil, &provider.Error{Class: provider.ClassRateLimit, StatusCode: 429, RetryAfter: 2 * time.Second, Message: "slow down", Header: h}
		}},
		{name: "refused", status: 400, fn: func(context.Context, *provider.Request) (*provider.Response, error) {
			return nil, &provider.Error{Class: provider.ClassInvalidRequest, StatusCode: 400, Message: "bad", Header: upstream()}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			w.provider("p").set(tt.fn)
			w.model("m", "p")
			g, _ := w.gw(t, Options{})
			srv := serve(t, g)
			body := chatReq("m")
			if tt.stream {
				body = `{"model":"m","messages":[],"stream":true}`
			}
			req, _ := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("X-Request-ID", "ours")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tt.status, b)
			}
			for k, want := range map[string]string{
				"X-Ratelimit-Remaining-Requests": "41",
				"X-Ratelimit-Limit-Tokens":       "90000",
				"X-Upstream-Request-Id":          "req_up_1",
				"Openai-Processing-Ms":           "321",
				"Retry-After-Ms":                 "1500",
				"Retry-After":                    tt.retry,
				"X-Request-Id":                   "ours",
				"X-Awakend-Attempts":             "1",
				"Set-Cookie":                     "",
			} {
				if got := res.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if got := res.Header.Get(ModelHeader); got == "spoofed" {
				t.Errorf("%s taken from the upstream", ModelHeader)
			}
			if res.ContentLength != -1 && res.ContentLength != int64(len(b)) {
				t.Errorf("Content-Length %d for %d bytes", res.ContentLength, len(b))
			}
		})
	}
}

// TestEnvelopeShape: /api/v1 and /v1 answer errors in the same envelope.
func TestEnvelopeShape(t *testing.T) {
	g, h := basicWorld().gw(t, Options{})
	a := api.New(api.Options{Handle: h})
	shape := func(hd http.Handler, path string) []string {
		res := do(t, hd, "GET", path, "")
		if res.code != 404 {
			t.Fatalf("%s: %d %s", path, res.code, res.body)
		}
		var env map[string]map[string]any
		if err := json.Unmarshal([]byte(res.body), &env); err != nil || len(env) != 1 {
			t.Fatalf("%s: %s (%v)", path, res.body, err)
		}
		var keys []string
		for k := range env["error"] {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return keys
	}
	want := []string{"code", "message", "param", "type"}
	for _, got := range [][]string{shape(a, "/api/v1/models/nope"), shape(g, "/v1/models/nope"), shape(g, "/v1/nope")} {
		if !slices.Equal(got, want) {
			t.Errorf("error members %v, want %v", got, want)
		}
	}
}
