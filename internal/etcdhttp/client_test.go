package etcdhttp

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/awakend/awakend/internal/testcert"
)

func TestInt64ReadsStringsAndNumbers(t *testing.T) {
	for in, want := range map[string]Int64{`"4111120393078715406"`: 4111120393078715406, `12`: 12, `"-3"`: -3, `null`: 0} {
		var n Int64
		if err := json.Unmarshal([]byte(in), &n); err != nil || n != want {
			t.Errorf("%s: %d, %v", in, n, err)
		}
	}
	for _, in := range []string{`"x"`, `1.5`, `true`} {
		var n Int64
		if err := json.Unmarshal([]byte(in), &n); err == nil {
			t.Errorf("%s read as %d", in, n)
		}
	}
	if b, _ := json.Marshal(Int64(4111120393078715406)); string(b) != `"4111120393078715406"` {
		t.Errorf("marshalled as %s", b)
	}
}

func TestPrefix(t *testing.T) {
	for in, want := range map[string]string{"/a/": "/a0", "a\xff": "b", "\xff\xff": "\x00"} {
		if key, end := Prefix(in); string(key) != in || string(end) != want {
			t.Errorf("Prefix(%q) = %q, %q; want end %q", in, key, end, want)
		}
	}
}

func TestEndpoints(t *testing.T) {
	c, err := New([]string{"127.0.0.1:2379", "http://h:1/", "https://h:2"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Endpoints(), " "); got != "http://127.0.0.1:2379 http://h:1 https://h:2" {
		t.Errorf("endpoints %s", got)
	}
	for _, bad := range []string{"ftp://h:1", "http://h:1/v3", "http://", "http://h:1?q"} {
		if _, err := New([]string{bad}, time.Second); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("New(%q): %v", bad, err)
		}
	}
	if _, err := New(nil, time.Second); err == nil {
		t.Error("no endpoints accepted")
	}
}

// Both shapes of etcd 3.4's gateway errors, and those of later gateways.
func TestParseError(t *testing.T) {
	for _, tc := range []struct {
		body         string
		status, code int
		message      string
	}{
		{`{"error":"etcdserver: request timed out","message":"etcdserver: request timed out","code":14}`, 503, 14, "etcdserver: request timed out"},
		{`{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}`, 503, 14, "etcdserver: no leader"},
		{`{"code":11,"message":"etcdserver: mvcc: required revision has been compacted","details":[]}`, 400, 11, "etcdserver: mvcc: required revision has been compacted"},
		{`{"error":{"code":5,"message":"etcdserver: requested lease not found"}}`, 200, 5, "etcdserver: requested lease not found"},
	} {
		e, ok := parseError("http://m:1", "/v3/x", tc.status, []byte(tc.body))
		if !ok || e.Status != tc.status || e.Code != tc.code || e.Message != tc.message {
			t.Errorf("%s: %+v, %v", tc.body, e, ok)
		}
	}
	if _, ok := parseError("", "", 500, []byte("<html>")); ok {
		t.Error("HTML read as an etcd error")
	}
}

// fake is a member that answers every request with h.
func fake(t *testing.T, h http.HandlerFunc) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func client(t *testing.T, eps ...string) *Client {
	c, err := New(eps, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// A member that is unavailable or answers what is not etcd's sends the
// request to the next; one that refuses the request itself does not.
func TestFailover(t *testing.T) {
	var hits []string
	unavailable := fake(t, func(w http.ResponseWriter, r *http.Request) {
		hits = append(hits, "unavailable")
		w.WriteHeader(503)
		io.WriteString(w, `{"error":"etcdserver: request timed out","message":"etcdserver: request timed out","code":14}`)
	})
	proxy := fake(t, func(w http.ResponseWriter, r *http.Request) {
		hits = append(hits, "proxy")
		w.WriteHeader(502)
		io.WriteString(w, "<html>bad gateway</html>")
	})
	good := fake(t, func(w http.ResponseWriter, r *http.Request) {
		hits = append(hits, "good")
		io.WriteString(w, `{"header":{"revision":"7"}}`)
	})
	refusing := fake(t, func(w http.ResponseWriter, r *http.Request) {
		hits = append(hits, "refusing")
		w.WriteHeader(400)
		io.WriteString(w, `{"error":"etcdserver: mvcc: required revision is a future revision","message":"etcdserver: mvcc: required revision is a future revision","code":11}`)
	})
	c := client(t, unavailable, proxy, good)
	resp, err := c.Range(t.Context(), RangeRequest{Key: []byte("k")})
	if err != nil || resp.Header.Revision != 7 || strings.Join(hits, " ") != "unavailable proxy good" {
		t.Fatalf("%+v, %v after %q", resp, err, hits)
	}
	// The member that answered is asked first from now on.
	hits = nil
	if _, err := c.Range(t.Context(), RangeRequest{Key: []byte("k")}); err != nil || strings.Join(hits, " ") != "good" {
		t.Fatalf("the second request: %v after %q", err, hits)
	}

	hits = nil
	c = client(t, refusing, good)
	_, err = c.Range(t.Context(), RangeRequest{Key: []byte("k"), Revision: 99})
	var e *Error
	if !errors.As(err, &e) || e.Code != 11 || e.Endpoint != refusing || len(hits) != 1 {
		t.Fatalf("a refused request: %v after %q", err, hits)
	}
	if want := refusing + "/v3/kv/range: etcdserver: mvcc: required revision is a future revision (HTTP 400, code 11)"; err.Error() != want {
		t.Errorf("error %q\nwant %q", err, want)
	}

	// Nobody answers: the error names every member and what it said.
	c = client(t, unavailable, "127.0.0.1:1")
	_, err = c.Range(t.Context(), RangeRequest{Key: []byte("k")})
	if err == nil || !strings.Contains(err.Error(), unavailable+"/v3/kv/range: etcdserver: request timed out") ||
		!strings.Contains(err.Error(), "http://127.0.0.1:1/v3/kv/range: dial tcp 127.0.0.1:1") {
		t.Errorf("every member failing: %v", err)
	}
}

func TestResponsesAreBounded(t *testing.T) {
	defer func(r, l int) { maxResponse, maxWatchLine = r, l }(maxResponse, maxWatchLine)
	maxResponse, maxWatchLine = 1<<10, 1<<10
	big := `{"header":{"revision":"1"},"kvs":[{"key":"` + strings.Repeat("A", 2<<10) + `"}]}`
	ep := fake(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v3/watch" {
			io.WriteString(w, `{"result":{"created":true}}`+"\n"+`{"result":`+big+"}\n")
			return
		}
		io.WriteString(w, big)
	})
	c := client(t, ep)
	if _, err := c.Range(t.Context(), RangeRequest{Key: []byte("k")}); err == nil || !strings.Contains(err.Error(), "exceeds 1024 bytes") {
		t.Errorf("an answer over the limit: %v", err)
	}
	w, err := c.Watch(t.Context(), WatchRequest{Key: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Next(); err == nil || !strings.Contains(err.Error(), "exceeds 1024 bytes") {
		t.Errorf("a watch line over the limit: %v", err)
	}
}

// A unary request is bounded by the client's timeout even when the member
// never answers.
func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	ep := fake(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	c, err := New([]string{ep}, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	_, err = c.Range(t.Context(), RangeRequest{Key: []byte("k")})
	if err == nil || !strings.Contains(err.Error(), ep+"/v3/kv/range: ") || time.Since(start) > 5*time.Second {
		t.Errorf("a member that never answers: %v after %v", err, time.Since(start))
	}
	// It leaves time for the next member.
	good := fake(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"header":{"revision":"5"}}`) })
	c, err = New([]string{ep, good}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if resp, err := c.Range(t.Context(), RangeRequest{Key: []byte("k")}); err != nil || resp.Header.Revision != 5 {
		t.Errorf("a hanging member, then one that answers: %+v, %v", resp, err)
	}
}

// An https:// endpoint is verified against the system's certificate
// authorities (SSL_CERT_FILE here, read once by the process: no other test
// of the package uses TLS before this one).
func TestHTTPSIsVerified(t *testing.T) {
	ca := testcert.New(t, testcert.Options{})
	file := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(file, ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSL_CERT_FILE", file)
	t.Setenv("SSL_CERT_DIR", t.TempDir())
	answer := func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"header":{"revision":"3"}}`) }
	trusted := httptest.NewUnstartedServer(http.HandlerFunc(answer))
	trusted.TLS = &tls.Config{Certificates: []tls.Certificate{testcert.New(t, testcert.Options{Leaf: true, Parent: &ca}).TLS()}}
	trusted.StartTLS()
	defer trusted.Close()
	stranger := httptest.NewUnstartedServer(http.HandlerFunc(answer)) // its own CA, not the system's
	stranger.Config.ErrorLog = log.New(io.Discard, "", 0)             // the refused handshake
	stranger.StartTLS()
	defer stranger.Close()

	if resp, err := client(t, trusted.URL).Range(t.Context(), RangeRequest{Key: []byte("k")}); err != nil || resp.Header.Revision != 3 {
		t.Fatalf("a member with a certificate the system trusts: %+v, %v", resp, err)
	}
	if _, err := client(t, stranger.URL).Range(t.Context(), RangeRequest{Key: []byte("k")}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a member with a certificate nobody trusts: %v", err)
	}
}
