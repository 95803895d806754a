package inference

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/awakend/awakend/e2e/harness"
)

// rawExchange writes raw bytes on a new connection to the daemon and reads
// every response that comes back until the daemon closes the connection or
// goes quiet.
func rawExchange(t *testing.T, d *daemon, raw string) []*http.Response {
	t.Helper()
	c, err := net.Dial("tcp", d.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	br := bufio.NewReader(c)
	var out []*http.Response
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(strings.NewReader(string(b)))
		out = append(out, resp)
	}
}

// Requests whose framing two HTTP parsers could read differently are
// refused whole: one 400, and the bytes after the head are never served
// as a request of their own (a reload, here).
func TestRequestSmugglingRefused(t *testing.T) {
	t.Parallel()
	d := start(t, harness.ConfigDir(t, map[string]string{"a.yaml": mockConfig}), harness.Options{})
	host := d.Addr
	smuggled := "POST /api/v1/reload HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 0\r\n\r\n"
	cases := map[string]string{
		"space before the colon of Content-Length": "GET /v1/models HTTP/1.1\r\nHost: " + host + "\r\nContent-Length : 60\r\n\r\n" + smuggled,
		"space before the colon of Transfer-Encoding": "POST /v1/chat/completions HTTP/1.1\r\nHost: " + host +
			"\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + smuggled,
		"two Content-Lengths that disagree": "POST /v1/chat/completions HTTP/1.1\r\nHost: " + host +
			"\r\nContent-Length: 4\r\nContent-Length: " + strconv.Itoa(len(smuggled)+4) + "\r\n\r\n{}{}" + smuggled,
		"an unknown transfer coding": "POST /v1/chat/completions HTTP/1.1\r\nHost: " + host +
			"\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled,
		"a bare LF inside a header value": "GET /v1/models HTTP/1.1\r\nHost: " + host + "\r\nX-A: a\rb\r\n\r\n" + smuggled,
		"a NUL in a header value":         "GET /v1/models HTTP/1.1\r\nHost: " + host + "\r\nX-A: a\x00b\r\n\r\n" + smuggled,
	}
	before := d.Status().Total()
	for name, raw := range cases {
		t.Run(name, func(t *testing.T) {
			resps := rawExchange(t, d, raw)
			if len(resps) != 1 {
				codes := []int{}
				for _, r := range resps {
					codes = append(codes, r.StatusCode)
				}
				t.Fatalf("%d responses %v, want exactly one", len(resps), codes)
			}
			if code := resps[0].StatusCode; (code < 400 || code > 499 || code == http.StatusNotFound) && code != http.StatusNotImplemented {
				t.Errorf("status %d, want a 4xx (or 501) refusal", code)
			}
		})
	}
	if after := d.Status().Total(); after != before {
		t.Errorf("a smuggled request ran a reload: %d reloads before, %d after", before, after)
	}
}

// With no token configured, a request from a loopback peer must name the
// daemon as its Host: a web page that rebinds its own name to 127.0.0.1
// cannot read the registry (system prompts) or spend provider credit, and
// a page cannot POST across origins (a reload, a completion).
func TestBrowserAttacksRefused(t *testing.T) {
	t.Parallel()
	d := start(t, harness.ConfigDir(t, map[string]string{"a.yaml": mockConfig}), harness.Options{})
	_, port, _ := net.SplitHostPort(d.Addr)
	self, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	chat := `{"model":"a","messages":[{"role":"user","content":"hi"}]}`
	tests := []struct {
		name, method, path, host string
		header                   map[string]string
		body                     string
		refused                  bool
	}{
		{name: "rebound name reads agents", method: "GET", path: "/api/v1/agents/a", host: "evil.example:" + port, refused: true},
		{name: "rebound name reads status", method: "GET", path: "/api/v1/status", host: "evil.example", refused: true},
		{name: "rebound name calls a model", method: "POST", path: "/v1/chat/completions", host: "attacker.test:" + port, body: chat, refused: true},
		{name: "rebound name reads metrics", method: "GET", path: "/metrics", host: "evil.example:" + port, refused: true},
		{name: "cross-site reload", method: "POST", path: "/api/v1/reload", host: d.Addr,
			header: map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, refused: true},
		{name: "cross-origin reload, Origin only", method: "POST", path: "/api/v1/reload", host: d.Addr,
			header: map[string]string{"Origin": "http://evil.example"}, refused: true},
		{name: "cross-site completion", method: "POST", path: "/v1/chat/completions", host: "localhost:" + port, body: chat,
			header: map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}, refused: true},

		{name: "listen address", method: "GET", path: "/api/v1/agents/a", host: d.Addr},
		{name: "localhost", method: "GET", path: "/api/v1/agents/a", host: "localhost:" + port},
		{name: "127.0.0.1 without port", method: "GET", path: "/api/v1/status", host: "127.0.0.1"},
		{name: "[::1]", method: "GET", path: "/api/v1/status", host: "[::1]:" + port},
		{name: "the machine's own name", method: "GET", path: "/api/v1/status", host: strings.ToUpper(self) + ":" + port},
		{name: "a CLI's reload (no Origin)", method: "POST", path: "/api/v1/reload", host: d.Addr},
		{name: "same-origin completion", method: "POST", path: "/v1/chat/completions", host: "localhost:" + port, body: chat,
			header: map[string]string{"Origin": "http://localhost:" + port, "Sec-Fetch-Site": "same-origin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, d.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			req.Host = tt.host
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := d.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			refused := resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusMisdirectedRequest
			if refused != tt.refused {
				t.Fatalf("status %d, refused %v, want %v: %s", resp.StatusCode, refused, tt.refused, b)
			}
			if tt.refused && strings.Contains(string(b), "You help.") {
				t.Errorf("a refused request saw the system prompt: %s", b)
			}
		})
	}
}

// A token guards its routes: with an admin token, a request with the token
// is answered whatever its Host, since a page cannot know the token.
func TestTokenGuardedRoutesSkipHostCheck(t *testing.T) {
	t.Parallel()
	settings := harness.ConfigDir(t, map[string]string{"awakend.yaml": "admin:\n  token: admin-secret-1\n"})
	d := start(t, harness.ConfigDir(t, map[string]string{"a.yaml": mockConfig}), harness.Options{Settings: settings + "/awakend.yaml"})
	req, _ := http.NewRequest("GET", d.URL+"/api/v1/agents/a", nil)
	req.Host = "awakend.internal.example"
	req.Header.Set("Authorization", "Bearer admin-secret-1")
	resp, err := d.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("token-guarded route with another Host: status %d, want 200", resp.StatusCode)
	}
}
