package daemon

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/awakend/awakend/config"
	"github.com/awakend/awakend/internal/testcert"
	"github.com/awakend/awakend/lastgood"
	"github.com/awakend/awakend/provider/providertest"
	"github.com/awakend/awakend/settings"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// patience bounds every wait for something the daemon does on its own.
const patience = 10 * time.Second

// testCert is a self-signed certificate for 127.0.0.1, in PEM.
type testCert struct {
	name      string // its subject's common name
	cert, key []byte
	x509      *x509.Certificate
}

func newTestCert(t *testing.T, name string) testCert {
	c := testcert.New(t, testcert.Options{Name: name, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	return testCert{name: name, cert: c.CertPEM, key: c.KeyPEM, x509: c.X509}
}

// keyLine is a line of c's key PEM, to check that nothing shows it.
func (c testCert) keyLine() string { return strings.Split(string(c.key), "\n")[1] }

// pemFiles is where a test daemon reads its pair.
type pemFiles struct{ cert, key string }

func newPEMFiles(t *testing.T) pemFiles {
	dir := filepath.Join(t.TempDir(), "tls")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return pemFiles{cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem")}
}

// install writes c's certificate and key.
func (f pemFiles) install(t *testing.T, c testCert) { f.write(t, c.cert, c.key) }

func (f pemFiles) write(t *testing.T, cert, key []byte) {
	t.Helper()
	write(t, filepath.Dir(f.cert), filepath.Base(f.cert), string(cert))
	write(t, filepath.Dir(f.key), filepath.Base(f.key), string(key))
}

// records is a slog.Handler that keeps every record.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
	more chan struct{} // closed and replaced at each record
}

func newRecords() *records { return &records{more: make(chan struct{})} }

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *records) WithGroup(string) slog.Handler            { return r }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, rec.Clone())
	close(r.more)
	r.more = make(chan struct{})
	return nil
}

// await returns the first record that match accepts, waiting for it.
func (r *records) await(t *testing.T, match func(slog.Record) bool) slog.Record {
	t.Helper()
	timeout := time.After(patience)
	for i := 0; ; {
		r.mu.Lock()
		recs, more := r.recs, r.more
		r.mu.Unlock()
		for ; i < len(recs); i++ {
			if match(recs[i]) {
				return recs[i]
			}
		}
		select {
		case <-more:
		case <-timeout:
			t.Fatalf("no such log record within %v", patience)
		}
	}
}

// attr is the value of a record's attribute, as text.
func attr(rec slog.Record, key string) string {
	var v string
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}

// testDaemon is a daemon.Run on a loopback port.
type testDaemon struct {
	url  string
	logs *records
	stop func() error
}

// startDaemon runs the daemon with s on 127.0.0.1:0 until the test ends.
func startDaemon(t *testing.T, s settings.Settings) *testDaemon {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := newRecords()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{Settings: s, Logger: slog.New(logs), Listeners: []net.Listener{ln}, Version: "test"})
	}()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	scheme := "http"
	if s.TLS.CertFile != "" {
		scheme = "https"
	}
	return &testDaemon{url: scheme + "://" + ln.Addr().String(), logs: logs, stop: stop}
}

// tlsSettings are settings for a daemon serving dir with the pair in f,
// reloading only when asked (the watcher's debounce outlasts the test).
func tlsSettings(dir string, f pemFiles) settings.Settings {
	s := settings.Default()
	s.ConfigDir = dir
	s.Reload.Debounce, s.Reload.MaxWait, s.Reload.RescanInterval = time.Hour, time.Hour, 0
	s.Shutdown.Timeout = patience
	s.TLS.CertFile, s.TLS.KeyFile = f.cert, f.key
	return s
}

// newClient is an HTTP client that trusts certs and, with h2, attempts
// HTTP/2. Each client has its own connections.
func newClient(t *testing.T, h2 bool, certs ...testCert) *http.Client {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c.x509)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: h2}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// get does a GET and returns the response with its body read.
func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	return do(t, c, http.MethodGet, url, "")
}

func do(t *testing.T, c *http.Client, method, url, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp, string(b)
}

// servedBy is the common name of the certificate a response came over.
func servedBy(resp *http.Response) string {
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		return "<no tls>"
	}
	return resp.TLS.PeerCertificates[0].Subject.CommonName
}

// reloadAnswer is POST /api/v1/reload's answer.
type reloadAnswer struct {
	Result      string              `json:"result"`
	Version     uint64              `json:"version"`
	Changes     string              `json:"changes"`
	Diagnostics []config.Diagnostic `json:"diagnostics"`
}

func (d *testDaemon) reload(t *testing.T, c *http.Client) (int, reloadAnswer, string) {
	t.Helper()
	resp, body := do(t, c, http.MethodPost, d.url+"/api/v1/reload", "")
	var ans reloadAnswer
	if err := json.Unmarshal([]byte(body), &ans); err != nil {
		t.Fatalf("reload answer %q: %v", body, err)
	}
	return resp.StatusCode, ans, body
}

// models lists the ids /v1/models serves.
func (d *testDaemon) models(t *testing.T, c *http.Client) []string {
	t.Helper()
	_, body := get(t, c, d.url+"/v1/models")
	var list struct {
		Data []struct{ ID string } `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatalf("/v1/models %q: %v", body, err)
	}
	var ids []string
	for _, m := range list.Data {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	return ids
}

// openStream starts a streamed chat completion and reads its first event.
func openStream(t *testing.T, c *http.Client, url, model string) (*http.Response, *bufio.Reader) {
	t.Helper()
	body := fmt.Sprintf(`{"model": %q, "stream": true, "messages": [{"role": "user", "content": "hi"}]}`, model)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream: %s: %s", resp.Status, b)
	}
	r := bufio.NewReader(resp.Body)
	for !strings.Contains(readEvent(t, r), `"one"`) { // the role chunk first
	}
	return resp, r
}

// readEvent reads one SSE event.
func readEvent(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	var ev strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream after %q: %v", ev.String(), err)
		}
		if line == "\n" && ev.Len() > 0 {
			return ev.String()
		}
		ev.WriteString(line)
	}
}

// writeConfig writes a registry of one openai provider at upstream with
// the given models.
func writeConfig(t *testing.T, dir, upstream string, models ...string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "providers:\n  - {id: up, adapter: openai, base_url: %q}\nmodels:\n", upstream)
	for _, m := range models {
		fmt.Fprintf(&b, "  - {id: %s, provider_id: up, upstream_model: u-%s}\n", m, m)
	}
	write(t, dir, "registry.yaml", b.String())
}

// TestTLS runs the daemon over TLS: HTTP/2 through ALPN, and a certificate
// swapped by reloads while a connection and a stream opened before stay up;
// a bad pair is rejected with the registry change that came with it, and
// the old certificate keeps serving.
func TestTLS(t *testing.T) {
	a, b, c, stranger := newTestCert(t, "cert-a"), newTestCert(t, "cert-b"), newTestCert(t, "cert-c"), newTestCert(t, "stranger")
	upstream := providertest.NewServer(t)
	hold := make(chan struct{})
	upstream.Respond(func(*providertest.Request) providertest.Reply {
		return providertest.Reply{Chunks: []string{"one", " two", " three"}, Hold: hold}
	})
	dir := t.TempDir()
	writeConfig(t, dir, upstream.OpenAIURL(), "m")
	files := newPEMFiles(t)
	files.install(t, a)
	d := startDaemon(t, tlsSettings(dir, files))
	trustAll := []testCert{a, b, c}

	// HTTP/2 over TLS, and HTTP/1.1 for a client that does not ask for h2.
	old := newClient(t, true, trustAll...)
	resp, _ := get(t, old, d.url+"/healthz")
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 || resp.TLS.NegotiatedProtocol != "h2" || servedBy(resp) != "cert-a" {
		t.Fatalf("h2 client: %s %s alpn %q by %s, want 200 HTTP/2 h2 by cert-a", resp.Status, resp.Proto, resp.TLS.NegotiatedProtocol, servedBy(resp))
	}
	if resp, _ := get(t, newClient(t, false, trustAll...), d.url+"/healthz"); resp.ProtoMajor != 1 || servedBy(resp) != "cert-a" {
		t.Fatalf("h1 client: %s by %s, want HTTP/1.1 by cert-a", resp.Proto, servedBy(resp))
	}
	if leaf := attr(d.logs.await(t, func(r slog.Record) bool { return r.Message == "tls certificate loaded" }), "subject"); leaf != "CN=cert-a" {
		t.Errorf("start-up logged the certificate %q, want CN=cert-a", leaf)
	}

	// A stream over the first client's HTTP/2 connection, held by the
	// upstream after its first chunk.
	streamResp, stream := openStream(t, old, d.url, "m")
	if streamResp.ProtoMajor != 2 {
		t.Fatalf("stream over %s, want HTTP/2", streamResp.Proto)
	}

	t.Run("new certificate applies to new connections only", func(t *testing.T) {
		files.install(t, b)
		code, ans, body := d.reload(t, newClient(t, true, trustAll...))
		if code != http.StatusOK || ans.Result != "applied" || !strings.Contains(ans.Changes, "~tls certificate") || ans.Version != 1 {
			t.Fatalf("reload = %d %s, want applied with ~tls certificate and version 1 (no registry change)", code, body)
		}
		if resp, _ := get(t, newClient(t, true, trustAll...), d.url+"/healthz"); servedBy(resp) != "cert-b" || resp.ProtoMajor != 2 {
			t.Errorf("a new connection got %s over %s, want cert-b over HTTP/2", servedBy(resp), resp.Proto)
		}
		// The connection made before the swap is still up, with the
		// certificate of its handshake, and serves a second stream beside
		// the held one.
		if resp, _ := get(t, old, d.url+"/healthz"); resp.StatusCode != http.StatusOK || servedBy(resp) != "cert-a" {
			t.Errorf("the old connection answered %s by %s, want 200 by cert-a", resp.Status, servedBy(resp))
		}
		if st := upstream.Stats(); st.InFlight != 1 || st.Canceled != 0 {
			t.Errorf("upstream stats %+v, want the stream in flight", st)
		}
	})

	t.Run("unchanged pair", func(t *testing.T) {
		code, ans, body := d.reload(t, newClient(t, true, trustAll...))
		if code != http.StatusOK || ans.Result != "unchanged" || ans.Changes != "" {
			t.Fatalf("forced reload of the same files = %d %s, want unchanged", code, body)
		}
	})

	t.Run("a bad pair is rejected with the registry change beside it", func(t *testing.T) {
		writeConfig(t, dir, upstream.OpenAIURL(), "m", "m2")
		files.write(t, c.cert, stranger.key)
		code, ans, body := d.reload(t, newClient(t, true, trustAll...))
		if code != http.StatusUnprocessableEntity || ans.Result != "rejected" || ans.Version != 1 {
			t.Fatalf("reload = %d %s, want 422 rejected at version 1", code, body)
		}
		if len(ans.Diagnostics) != 1 || ans.Diagnostics[0].File != files.key || ans.Diagnostics[0].Code != "tls_certificate" ||
			!strings.Contains(ans.Diagnostics[0].Message, "private key does not match public key") {
			t.Errorf("diagnostics %+v, want one naming %s: does not match", ans.Diagnostics, files.key)
		}
		if strings.Contains(body, stranger.keyLine()) || strings.Contains(body, "PRIVATE KEY-----") {
			t.Errorf("the answer shows the key: %s", body)
		}
		nc := newClient(t, true, trustAll...)
		if resp, _ := get(t, nc, d.url+"/healthz"); servedBy(resp) != "cert-b" {
			t.Errorf("after the rejection a new connection got %s, want cert-b still", servedBy(resp))
		}
		if got := d.models(t, nc); !slices.Equal(got, []string{"m"}) {
			t.Errorf("models %v after the rejected reload, want [m]: all or nothing", got)
		}
	})

	t.Run("pair not PEM", func(t *testing.T) {
		files.write(t, []byte("not a certificate\n"), c.key)
		code, ans, body := d.reload(t, newClient(t, true, trustAll...))
		if code != http.StatusUnprocessableEntity || len(ans.Diagnostics) != 1 || ans.Diagnostics[0].File != files.cert ||
			ans.Diagnostics[0].Message != "tls.cert_file: no PEM CERTIFICATE block" {
			t.Fatalf("reload = %d %s, want rejected naming %s", code, body, files.cert)
		}
	})

	t.Run("fixed pair applies with the registry", func(t *testing.T) {
		files.install(t, c)
		code, ans, body := d.reload(t, newClient(t, true, trustAll...))
		if code != http.StatusOK || ans.Result != "applied" || ans.Version != 2 ||
			!strings.HasPrefix(ans.Changes, "+1 model") || !strings.Contains(ans.Changes, "~tls certificate") {
			t.Fatalf("reload = %d %s, want applied at version 2 with +1 model and ~tls certificate", code, body)
		}
		nc := newClient(t, true, trustAll...)
		if resp, _ := get(t, nc, d.url+"/healthz"); servedBy(resp) != "cert-c" {
			t.Errorf("a new connection got %s, want cert-c", servedBy(resp))
		}
		if got := d.models(t, nc); !slices.Equal(got, []string{"m", "m2"}) {
			t.Errorf("models %v, want [m m2]", got)
		}
	})

	// The stream opened before the first swap finishes on its connection.
	close(hold)
	var rest strings.Builder
	for {
		ev := readEvent(t, stream)
		rest.WriteString(ev)
		if ev == "data: [DONE]\n" {
			break
		}
	}
	if !strings.Contains(rest.String(), `" two"`) || !strings.Contains(rest.String(), `" three"`) {
		t.Errorf("the rest of the stream %q lacks its chunks", rest.String())
	}
	if servedBy(streamResp) != "cert-a" {
		t.Errorf("the stream's connection is %s's, want cert-a's", servedBy(streamResp))
	}

	if err := d.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if conn, err := net.Dial("tcp", strings.TrimPrefix(d.url, "https://")); err == nil {
		conn.Close()
		t.Error("the daemon still accepts connections after Run returned")
	}
}

// TestTLSReloadOnFileChange swaps the pair as certbot does, through links
// that move from one archive file to the next, and waits for new
// connections to get the new certificate: the watcher reloads by itself
// (the rescan is off).
func TestTLSReloadOnFileChange(t *testing.T) {
	a, b := newTestCert(t, "cert-a"), newTestCert(t, "cert-b")
	root := t.TempDir()
	archive, live := filepath.Join(root, "archive"), filepath.Join(root, "live")
	for _, d := range []string{archive, live} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	link := func(n int, c testCert) {
		write(t, archive, fmt.Sprintf("cert%d.pem", n), string(c.cert))
		write(t, archive, fmt.Sprintf("key%d.pem", n), string(c.key))
		for _, f := range []string{"cert", "key"} {
			tmp := filepath.Join(live, f+".tmp")
			if err := os.Symlink(fmt.Sprintf("../archive/%s%d.pem", f, n), tmp); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(live, f+".pem")); err != nil {
				t.Fatal(err)
			}
		}
	}
	link(1, a)
	dir := t.TempDir()
	write(t, dir, "registry.yaml", "providers:\n  - {id: p, adapter: mock}\n")
	s := tlsSettings(dir, pemFiles{cert: filepath.Join(live, "cert.pem"), key: filepath.Join(live, "key.pem")})
	s.Reload.Debounce, s.Reload.MaxWait = 10*time.Millisecond, 100*time.Millisecond
	d := startDaemon(t, s)

	c := newClient(t, true, a, b)
	if resp, _ := get(t, c, d.url+"/healthz"); servedBy(resp) != "cert-a" {
		t.Fatalf("served by %s, want cert-a", servedBy(resp))
	}
	// The watchers' first rescan, asked for once their watches were up.
	d.logs.await(t, func(r slog.Record) bool { return r.Message == "config reload" && attr(r, "trigger") == "rescan" })
	link(2, b)
	rec := d.logs.await(t, func(r slog.Record) bool {
		return r.Message == "config reload" && attr(r, "result") == "applied"
	})
	if attr(rec, "trigger") != "watch" || !strings.HasPrefix(attr(rec, "changes"), "~tls certificate") {
		t.Errorf("reload logged trigger %q changes %q, want watch and ~tls certificate", attr(rec, "trigger"), attr(rec, "changes"))
	}
	if resp, _ := get(t, newClient(t, true, a, b), d.url+"/healthz"); servedBy(resp) != "cert-b" {
		t.Errorf("a new connection got %s, want cert-b", servedBy(resp))
	}
}

func TestTLSStartup(t *testing.T) {
	good, other := newTestCert(t, "good"), newTestCert(t, "other")
	tests := []struct {
		name      string
		cert, key []byte // nil: the file is missing
		want      []string
	}{
		{name: "missing certificate", key: good.key, want: []string{"tls.cert_file {cert}: no such file or directory"}},
		{name: "both missing", want: []string{"tls.cert_file {cert}: no such file or directory", "tls.key_file {key}: no such file or directory"}},
		{name: "certificate too large", cert: make([]byte, 1<<20+1), key: good.key, want: []string{"tls.cert_file {cert}: larger than 1024 KiB"}},
		{name: "certificate not PEM", cert: []byte("garbage"), key: good.key, want: []string{"tls.cert_file {cert}: no PEM CERTIFICATE block"}},
		{name: "key in the certificate file", cert: good.key, key: good.key, want: []string{`tls.cert_file {cert}: PEM block 1 is "PRIVATE KEY", not a CERTIFICATE`}},
		{
			name: "certificate not DER", cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}), key: good.key,
			want: []string{"tls.cert_file {cert}: certificate 1: x509: malformed certificate"},
		},
		{name: "certificate in the key file", cert: good.cert, key: good.cert, want: []string{"tls.key_file {key}: found a certificate rather than a key in the PEM for the private key (certificate {cert})"}},
		{name: "key not matching", cert: good.cert, key: other.key, want: []string{"tls.key_file {key}: private key does not match public key (certificate {cert})"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			write(t, dir, "registry.yaml", "providers:\n  - {id: p, adapter: mock}\n")
			files := newPEMFiles(t)
			if tt.cert != nil {
				write(t, filepath.Dir(files.cert), filepath.Base(files.cert), string(tt.cert))
			}
			if tt.key != nil {
				write(t, filepath.Dir(files.key), filepath.Base(files.key), string(tt.key))
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			err = Run(t.Context(), Options{Settings: tlsSettings(dir, files), Logger: slog.New(slog.DiscardHandler), Listeners: []net.Listener{ln}})
			var se *StartupError
			if !errors.As(err, &se) {
				t.Fatalf("Run = %v, want a start-up error", err)
			}
			for _, w := range tt.want {
				w = strings.NewReplacer("{cert}", files.cert, "{key}", files.key).Replace(w)
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
			for _, secret := range []string{good.keyLine(), other.keyLine()} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error shows a key: %v", err)
				}
			}
			if _, err := ln.Accept(); err == nil {
				t.Error("Run left the listener open")
			}
		})
	}
}

// TestServerLog checks that what net/http logs goes to the daemon's log at
// a level fit for a daemon on the internet: a client that cannot speak TLS
// is not a warning.
func TestServerLog(t *testing.T) {
	a := newTestCert(t, "cert-a")
	dir := t.TempDir()
	write(t, dir, "registry.yaml", "providers:\n  - {id: p, adapter: mock}\n")
	files := newPEMFiles(t)
	files.install(t, a)
	d := startDaemon(t, tlsSettings(dir, files))

	// Plain HTTP to the TLS port.
	resp, err := http.Get("http" + strings.TrimPrefix(d.url, "https") + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain HTTP to the TLS port: %s, want 400", resp.Status)
	}
	rec := d.logs.await(t, func(r slog.Record) bool { return r.Message == "http server" })
	if rec.Level != slog.LevelDebug || !strings.Contains(attr(rec, "error"), "TLS handshake error") {
		t.Errorf("logged %s %q, want a debug record of the handshake error", rec.Level, attr(rec, "error"))
	}

	for _, tt := range []struct {
		msg  string
		want slog.Level
	}{
		{"http: TLS handshake error from 192.0.2.1:4711: EOF", slog.LevelDebug},
		{"http2: server: error reading preface from client 192.0.2.1:4711: bogus greeting", slog.LevelDebug},
		{"http: URL query contains semicolon, which is no longer a supported separator", slog.LevelDebug},
		{"http: panic serving 192.0.2.1:4711: boom", slog.LevelError},
		{"http2: panic serving 192.0.2.1:4711: boom", slog.LevelError},
		{"http: Accept error: accept tcp: too many open files; retrying in 5ms", slog.LevelWarn},
		{"http: superfluous response.WriteHeader call from x.go:1", slog.LevelWarn},
	} {
		if got := serverLogLevel(tt.msg); got != tt.want {
			t.Errorf("serverLogLevel(%q) = %s, want %s", tt.msg, got, tt.want)
		}
	}
}

func TestServerLimits(t *testing.T) {
	srv, _ := newServer(http.NotFoundHandler(), slog.New(slog.DiscardHandler))
	if srv.ReadHeaderTimeout != 10*time.Second || srv.ReadTimeout != 0 || srv.WriteTimeout != 0 ||
		srv.IdleTimeout <= 0 || srv.MaxHeaderBytes != 64<<10 || srv.ErrorLog == nil {
		t.Errorf("server %+v: want a 10s header timeout, no read or write timeout (streams), an idle timeout, 64 KiB of headers, an error log", srv)
	}

	// Headers beyond the cap are refused.
	d := startDaemon(t, func() settings.Settings {
		dir := t.TempDir()
		write(t, dir, "registry.yaml", "providers:\n  - {id: p, adapter: mock}\n")
		s := settings.Default()
		s.ConfigDir, s.Reload.RescanInterval, s.Shutdown.Timeout = dir, 0, patience
		return s
	}())
	for _, tt := range []struct {
		size int
		want int
	}{{32 << 10, http.StatusOK}, {128 << 10, http.StatusRequestHeaderFieldsTooLarge}} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, d.url+"/healthz", nil)
		req.Header.Set("X-Filler", strings.Repeat("x", tt.size))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("%d KiB of headers: %s, want %d", tt.size>>10, resp.Status, tt.want)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}

func TestWarnIfExposed(t *testing.T) {
	tests := []struct {
		name    string
		addr    string
		token   string
		keys    []string
		clients bool   // the registry declares clients
		exposed string // "" for no warning
	}{
		{name: "loopback", addr: "127.0.0.1:8700"},
		{name: "IPv6 loopback", addr: "[::1]:8700"},
		{name: "every interface, nothing set", addr: "0.0.0.0:8700", exposed: "/api/v1/* (the whole registry, system prompts included); /v1/* (inference billed to the providers' API keys)"},
		{name: "every IPv6 interface, keys only", addr: "[::]:8700", keys: []string{"k"}, exposed: "/api/v1/* (the whole registry, system prompts included)"},
		{name: "one address, token only", addr: "192.0.2.7:8700", token: "t", exposed: "/v1/* (inference billed to the providers' API keys)"},
		{name: "one address, both set", addr: "192.0.2.7:8700", token: "t", keys: []string{"k"}},
		{name: "one address, token and clients", addr: "192.0.2.7:8700", token: "t", clients: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, err := net.ResolveTCPAddr("tcp", tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			s := settings.Default()
			s.Admin.Token, s.Gateway.APIKeys = tt.token, tt.keys
			logs := newRecords()
			warnIfExposed(slog.New(logs), addr, s, tt.clients)
			if tt.exposed == "" {
				if len(logs.recs) != 0 {
					t.Errorf("logged %q, want nothing", logs.recs[0].Message)
				}
				return
			}
			if len(logs.recs) != 1 {
				t.Fatalf("logged %d records, want one warning", len(logs.recs))
			}
			rec := logs.recs[0]
			if rec.Level != slog.LevelWarn || attr(rec, "exposed") != tt.exposed || attr(rec, "listen") != addr.String() ||
				!strings.Contains(attr(rec, "fix"), "set ") || strings.Contains(rec.Message+attr(rec, "fix"), "\"t\"") {
				t.Errorf("logged %s %q exposed %q fix %q", rec.Level, rec.Message, attr(rec, "exposed"), attr(rec, "fix"))
			}
		})
	}
}

// TestShutdownDrains stops a daemon while one request runs and another
// client holds an idle keep-alive connection: no new connection is
// accepted, the idle client's next request is still answered (and its
// connection closed after), and the running request finishes.
func TestShutdownDrains(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "registry.yaml", `providers:
  - {id: p, adapter: mock, adapter_options: {mock: {reply: one two three four, chunk_delay_ms: 250}}}
models:
  - {id: slow, provider_id: p, upstream_model: m}
`)
	s := settings.Default()
	s.ConfigDir, s.Reload.RescanInterval, s.Shutdown.Timeout = dir, 0, patience
	d := startDaemon(t, s)
	addr := strings.TrimPrefix(d.url, "http://")

	idle := newClient(t, false)
	if resp, _ := get(t, idle, d.url+"/healthz"); resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %s", resp.Status)
	}

	// A stream that is running (its headers arrived) when the stop comes.
	req, _ := http.NewRequest(http.MethodPost, d.url+"/v1/chat/completions",
		strings.NewReader(`{"model":"slow","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Content-Type", "application/json")
	stream, err := newClient(t, false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	slow := make(chan string, 1)
	go func() {
		b, err := io.ReadAll(stream.Body)
		if err != nil {
			slow <- err.Error()
			return
		}
		slow <- string(b)
	}()

	stopped := make(chan error, 1)
	go func() { stopped <- d.stop() }()
	d.logs.await(t, func(r slog.Record) bool { return r.Message == "shutting down" })
	// The listener closes right after the log line.
	for deadline := time.Now().Add(patience); ; {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the daemon still accepts connections while shutting down")
		}
		time.Sleep(5 * time.Millisecond)
	}
	resp, _ := get(t, idle, d.url+"/healthz")
	if resp.StatusCode != http.StatusOK || !resp.Close {
		t.Errorf("request on the idle connection while draining: %s, close=%v; want 200 and Connection: close", resp.Status, resp.Close)
	}
	if got := <-slow; stream.StatusCode != http.StatusOK || !strings.HasSuffix(got, "data: [DONE]\n\n") {
		t.Errorf("the stream running at shutdown: %s, ends %q; want 200 and the whole stream", stream.Status, got[max(0, len(got)-40):])
	}
	if err := <-stopped; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestServesEveryListener: the daemon serves each listener it is given (the
// sockets systemd passed), and closes them all when it stops.
func TestServesEveryListener(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "registry.yaml", "providers:\n  - {id: p, adapter: mock}\n")
	s := settings.Default()
	s.ConfigDir, s.Reload.RescanInterval, s.Shutdown.Timeout = dir, 0, patience
	var lns []net.Listener
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
	}
	addrs := []string{lns[0].Addr().String(), lns[1].Addr().String()}
	logs := newRecords()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Options{Settings: s, Logger: slog.New(logs), Listeners: lns}) }()
	rec := logs.await(t, func(r slog.Record) bool { return r.Message == "serving" })
	if got, want := attr(rec, "listen"), addrs[0]+" "+addrs[1]; got != want {
		t.Errorf("serving listen=%q, want %q", got, want)
	}
	c := newClient(t, false)
	for _, a := range addrs {
		if resp, _ := get(t, c, "http://"+a+"/healthz"); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %s", a, resp.Status)
		}
	}
	c.CloseIdleConnections()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if conn, err := net.Dial("tcp", a); err == nil {
			conn.Close()
			t.Errorf("%s still accepts after the daemon stopped", a)
		}
	}
}

// TestStartupLastGood: with a broken directory, Run serves what the state
// directory holds, degraded; with nothing usable there it returns a
// StartupError. Each time the diagnostics are reported.
func TestStartupLastGood(t *testing.T) {
	good := []lastgood.File{{Path: "r.yaml", Data: []byte("providers:\n  - {id: p, adapter: mock}\nmodels:\n  - {id: saved, provider_id: p, upstream_model: u}\n")}}
	for _, tc := range []struct {
		name  string
		state func(t *testing.T, dir string) // fills the state directory
		serve bool
		log   string // a message logged at error level
	}{
		{"saved", func(t *testing.T, dir string) {
			if err := lastgood.Save(dir, lastgood.Saved{Fingerprint: "fp", Files: good}); err != nil {
				t.Fatal(err)
			}
		}, true, "DEGRADED: config rejected at start-up; serving the last-known-good configuration until the directory is fixed"},
		{"nothing saved", func(*testing.T, string) {}, false, ""},
		{"damaged", func(t *testing.T, dir string) {
			write(t, dir, lastgood.FileName, `{"format":1,"files":[`)
		}, false, "last-known-good configuration unusable"},
		{"saved but invalid now", func(t *testing.T, dir string) {
			bad := []lastgood.File{{Path: "r.yaml", Data: []byte("models:\n  - {id: m, provider_id: gone, upstream_model: u}\n")}}
			if err := lastgood.Save(dir, lastgood.Saved{Files: bad}); err != nil {
				t.Fatal(err)
			}
		}, false, "the last-known-good configuration does not load either"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, state := t.TempDir(), t.TempDir()
			write(t, dir, "r.yaml", "models:\n  - {id: m, provider_id: nope, upstream_model: u}\n")
			tc.state(t, state)
			s := settings.Default()
			s.ConfigDir, s.StateDir, s.Reload.RescanInterval, s.Shutdown.Timeout = dir, state, 0, patience
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			logs := newRecords()
			var reported []string
			var mu sync.Mutex
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() {
				done <- Run(ctx, Options{Settings: s, Logger: slog.New(logs), Listeners: []net.Listener{ln},
					Report: func(err error) { mu.Lock(); reported = append(reported, err.Error()); mu.Unlock() }})
			}()
			if tc.serve {
				logs.await(t, func(r slog.Record) bool { return r.Message == "serving" })
				c := newClient(t, false)
				if resp, body := get(t, c, "http://"+ln.Addr().String()+"/api/v1/models/saved"); resp.StatusCode != http.StatusOK {
					t.Errorf("the saved model: %s %s", resp.Status, body)
				}
				if _, body := get(t, c, "http://"+ln.Addr().String()+"/api/v1/status"); !strings.Contains(body, `"degraded":{"reason":`) {
					t.Errorf("status is not degraded: %s", body)
				}
				c.CloseIdleConnections()
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			} else {
				var se *StartupError
				if err := <-done; !errors.As(err, &se) {
					t.Fatalf("Run = %v, want a StartupError", err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(reported) == 0 || !strings.Contains(reported[0], "r.yaml:2:26: error: model 'm' references missing provider 'nope' [model_missing_provider]") {
				t.Errorf("reported %q, want the directory's diagnostics", reported)
			}
			if tc.log != "" {
				rec := logs.await(t, func(r slog.Record) bool { return r.Message == tc.log })
				if rec.Level != slog.LevelError {
					t.Errorf("%q logged at %v, want error", tc.log, rec.Level)
				}
			}
		})
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRuntimeURL(t *testing.T) {
	for _, tt := range []struct {
		listen string
		tls    bool
		want   string
	}{
		{"127.0.0.1:8700", false, "http://127.0.0.1:8700"},
		{"0.0.0.0:8700", false, "http://127.0.0.1:8700"},
		{":8700", true, "https://127.0.0.1:8700"},
		{"[::]:9000", false, "http://[::1]:9000"},
		{"[::1]:9000", true, "https://[::1]:9000"},
	} {
		if got, err := URL(tt.listen, tt.tls); err != nil || got != tt.want {
			t.Errorf("URL(%q, %v) = %q, %v; want %q", tt.listen, tt.tls, got, err, tt.want)
		}
	}
	if _, err := URL("8700", false); err == nil {
		t.Error("URL accepted an address without a port")
	}

	dir := t.TempDir()
	if _, ok, err := ReadURL(dir); ok || err != nil {
		t.Fatalf("ReadURL of a directory without the file: %v %v", ok, err)
	}
	addr := &net.TCPAddr{IP: net.IPv4zero, Port: 8701}
	remove, err := writeURL(dir, addr, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok, err := ReadURL(dir); !ok || err != nil || got != "http://127.0.0.1:8701" {
		t.Errorf("ReadURL = %q, %v, %v", got, ok, err)
	}
	remove()
	if _, ok, _ := ReadURL(dir); ok {
		t.Error("the URL file outlived the daemon")
	}
	write(t, dir, URLFile, "not a url\n")
	if _, _, err := ReadURL(dir); err == nil {
		t.Error("ReadURL accepted garbage")
	}
}

// TestCertificateExpiryLogged: a served certificate close to its expiry is
// a warning, an expired one an error, each once per certificate and state.
func TestCertificateExpiryLogged(t *testing.T) {
	recs := newRecords()
	log := slog.New(recs)
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	leaf := &x509.Certificate{NotAfter: now.Add(30 * 24 * time.Hour)}
	var e expiryLog
	levels := func() (out []string) {
		recs.mu.Lock()
		defer recs.mu.Unlock()
		for _, r := range recs.recs {
			out = append(out, r.Level.String())
		}
		return out
	}
	e.check(log, nil, now)
	e.check(log, leaf, now)
	e.check(log, leaf, now.Add(20*24*time.Hour)) // 10 days left
	e.check(log, leaf, now.Add(21*24*time.Hour)) // still soon: no new line
	e.check(log, leaf, now.Add(31*24*time.Hour)) // expired
	e.check(log, leaf, now.Add(32*24*time.Hour))
	renewed := &x509.Certificate{NotAfter: now.Add(120 * 24 * time.Hour)}
	e.check(log, renewed, now.Add(32*24*time.Hour))
	if got := levels(); !slices.Equal(got, []string{"WARN", "ERROR"}) {
		t.Errorf("logged %v, want one WARN, then one ERROR", got)
	}
}
