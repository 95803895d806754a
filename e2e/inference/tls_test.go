package inference

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/awakend/awakend/e2e/harness"
	"github.com/awakend/awakend/internal/testcert"
)

// certPair is a self-signed certificate for 127.0.0.1 and localhost, as PEM.
type certPair struct {
	c    testcert.Cert
	leaf *x509.Certificate
}

func newCertPair(t *testing.T, serial int64) certPair {
	t.Helper()
	c := testcert.New(t, testcert.Options{Serial: serial})
	return certPair{c: c, leaf: c.X509}
}

// install writes the pair where the daemon reads it, each file replaced
// by a rename as certificate tools do.
func (p certPair) install(t *testing.T, dir string) {
	t.Helper()
	p.c.Install(t, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
}

// servedSerial opens a new TLS connection to addr and returns the serial
// number of the certificate the daemon presents.
func servedSerial(t *testing.T, addr string, roots *x509.CertPool) int64 {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestTLS serves HTTP/2 over TLS from a certificate that a reload swaps:
// a stream opened on the first certificate runs to its end across the
// swap, new connections get the new certificate, and a pair that does not
// load is a rejected reload that keeps the certificate serving.
func TestTLS(t *testing.T) {
	t.Parallel()
	a, b := newCertPair(t, 1), newCertPair(t, 2)
	roots := x509.NewCertPool()
	roots.AddCert(a.leaf)
	roots.AddCert(b.leaf)
	certDir := t.TempDir()
	a.install(t, certDir)
	settings := filepath.Join(t.TempDir(), "awakend.yaml")
	if err := os.WriteFile(settings, []byte("tls:\n  cert_file: "+filepath.Join(certDir, "cert.pem")+
		"\n  key_file: "+filepath.Join(certDir, "key.pem")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := start(t, harness.ConfigDir(t, map[string]string{"slow.yaml": `providers:
  - id: slow
    adapter: mock
    adapter_options: {mock: {chunk_delay_ms: 40, reply: "one two three four five six seven eight nine ten eleven twelve"}}
models:
  - {id: m, provider_id: slow, upstream_model: slow-1}
`}), harness.Options{Settings: settings, TLS: &tls.Config{RootCAs: roots}})
	if !strings.HasPrefix(d.URL, "https://") {
		t.Fatalf("daemon URL %s", d.URL)
	}

	// A stream over HTTP/2, open across the swap.
	req, _ := http.NewRequestWithContext(t.Context(), "POST", d.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	resp, err := d.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s, want HTTP/2", resp.Proto)
	}
	if got := resp.TLS.PeerCertificates[0].SerialNumber.Int64(); got != 1 {
		t.Fatalf("first certificate served: serial %d", got)
	}
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() {
		t.Fatalf("no first line: %v", sc.Err())
	}

	b.install(t, certDir)
	d.Signal(syscall.SIGHUP)
	d.WaitStatus("the new certificate applied", func(s harness.Status) bool {
		return s.LastReload != nil && s.LastReload.Trigger == "signal" && s.LastReload.Result == "applied"
	})
	if got := servedSerial(t, d.Addr, roots); got != 2 {
		t.Errorf("after the reload a new connection got certificate %d, want 2", got)
	}

	// The stream opened before the swap finishes on its connection.
	var rest strings.Builder
	for sc.Scan() {
		rest.WriteString(sc.Text() + "\n")
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("the stream opened before the swap broke: %v", err)
	}
	if !strings.Contains(rest.String(), "twelve") || !strings.Contains(rest.String(), "[DONE]") {
		t.Errorf("the stream did not finish:\n%s", rest.String())
	}

	// A key that does not match its certificate: rejected, b still served.
	broken := certPair{c: testcert.Cert{CertPEM: a.c.CertPEM, KeyPEM: b.c.KeyPEM}}
	broken.install(t, certDir)
	d.Signal(syscall.SIGHUP)
	st := d.WaitStatus("the broken pair rejected", func(s harness.Status) bool {
		return s.LastReload != nil && s.LastReload.Trigger == "signal" && s.LastReload.Result == "rejected"
	})
	msg := st.LastReload.Error
	for _, dg := range st.LastReload.Diagnostics {
		msg += " " + dg.File + " " + dg.Message
	}
	if !strings.Contains(msg, "cert.pem") && !strings.Contains(msg, "key.pem") {
		t.Errorf("the rejection does not name the files: %+v", st.LastReload)
	}
	if got := servedSerial(t, d.Addr, roots); got != 2 {
		t.Errorf("after a rejected pair a new connection got certificate %d, want 2 still", got)
	}
	if strings.Contains(d.Logs(), "PRIVATE KEY") {
		t.Error("the log shows key material")
	}
}

// TestTLSClientCertificate: with tls.client_ca_file, a client certificate
// a CA in the file issued stands for the admin token; the CAs are an input
// of every reload, so a new file applies at once, to open connections
// too, and a broken one is a rejected reload.
func TestTLSClientCertificate(t *testing.T) {
	t.Parallel()
	server := newCertPair(t, 1)
	caA := testcert.New(t, testcert.Options{Name: "admins-a", Client: true})
	caB := testcert.New(t, testcert.Options{Name: "admins-b", Client: true})
	other := testcert.New(t, testcert.Options{Name: "others", Client: true})
	alice := testcert.New(t, testcert.Options{Name: "alice", Leaf: true, Client: true, Parent: &caA})
	bob := testcert.New(t, testcert.Options{Name: "bob", DNSNames: []string{"bob.ops.example"}, Leaf: true, Client: true, Parent: &caB})
	eve := testcert.New(t, testcert.Options{Name: "eve", DNSNames: []string{"eve.example"}, Leaf: true, Client: true, Parent: &caB})
	mallory := testcert.New(t, testcert.Options{Name: "mallory", Leaf: true, Client: true, Parent: &other})

	dir := t.TempDir()
	server.install(t, dir)
	caFile := filepath.Join(dir, "admins.pem")
	writeCAs := func(pem ...[]byte) {
		t.Helper()
		tmp := caFile + ".tmp"
		if err := os.WriteFile(tmp, bytes.Join(pem, nil), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, caFile); err != nil {
			t.Fatal(err)
		}
	}
	writeCAs(caA.CertPEM)
	settings := filepath.Join(t.TempDir(), "awakend.yaml")
	writeSettings := func(more string) {
		t.Helper()
		body := "admin:\n  token: the-admin-token\ntls:\n  cert_file: " + filepath.Join(dir, "cert.pem") +
			"\n  key_file: " + filepath.Join(dir, "key.pem") + "\n  client_ca_file: " + caFile + "\n" + more
		if err := os.WriteFile(settings+".tmp", []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(settings+".tmp", settings); err != nil {
			t.Fatal(err)
		}
	}
	writeSettings("")
	roots := server.c.Pool()
	// The harness polls the status route with no token: as an admin, by
	// the certificate it holds now.
	var harnessCert atomic.Pointer[tls.Certificate]
	aliceTLS, bobTLS := alice.TLS(), bob.TLS()
	harnessCert.Store(&aliceTLS)
	d := start(t, harness.ConfigDir(t, map[string]string{"m.yaml": "providers:\n  - {id: p, adapter: mock}\nmodels:\n  - {id: m, provider_id: p, upstream_model: u}\n"}),
		harness.Options{Settings: settings, TLS: &tls.Config{RootCAs: roots, GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return harnessCert.Load(), nil
		}}})
	d.WaitLog(regexp.MustCompile(`"msg":"tls certificate loaded".*"client_ca_file":"` + regexp.QuoteMeta(caFile) + `"`))

	// A client sends its certificate if it was issued by a CA the
	// daemon's request names, as Go's (and browsers) choose one; insist
	// sends it whatever the request names, as curl --cert does.
	client := func(cert *testcert.Cert, insist bool) *http.Client {
		conf := &tls.Config{RootCAs: roots}
		if cert != nil {
			tc := cert.TLS()
			conf.Certificates = []tls.Certificate{tc}
			if insist {
				conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tc, nil }
			}
		}
		tr := &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	do := func(c *http.Client, method, path string, header ...string) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, d.URL+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	aliceClient, bobClient, malloryClient, anonymous := client(&alice, false), client(&bob, false), client(&mallory, true), client(nil, false)
	for _, tt := range []struct {
		name         string
		c            *http.Client
		method, path string
		header       []string
		want         int
	}{
		{"alice reads", aliceClient, "GET", "/api/v1/agents", nil, 200},
		{"alice reloads", aliceClient, "POST", "/api/v1/reload", nil, 200},
		{"alice's cross-site reload", aliceClient, "POST", "/api/v1/reload", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"no certificate", anonymous, "GET", "/api/v1/agents", nil, 401},
		{"another CA's", malloryClient, "GET", "/api/v1/agents", nil, 401},
		{"another CA's, on the gateway", malloryClient, "GET", "/v1/models", nil, 200},
		{"bob, before his CA", bobClient, "GET", "/api/v1/agents", nil, 401},
	} {
		if got := do(tt.c, tt.method, tt.path, tt.header...); got != tt.want {
			t.Errorf("%s: %s %s = %d, want %d", tt.name, tt.method, tt.path, got, tt.want)
		}
	}
	d.WaitLog(regexp.MustCompile(`"msg":"client certificate refused","subject":"CN=mallory"`))

	// awakend reload from afar, as an admin with no token: by --cert.
	certs := t.TempDir()
	aliceCert, aliceKey := filepath.Join(certs, "alice.pem"), filepath.Join(certs, "alice.key")
	alice.Install(t, aliceCert, aliceKey)
	reloadCmd := func(args ...string) (string, error) {
		cmd := exec.CommandContext(t.Context(), harness.Binary, append([]string{"reload", "--settings", "/dev/null", "--url", d.URL,
			"--cacert", filepath.Join(dir, "cert.pem")}, args...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := reloadCmd("--cert", aliceCert, "--key", aliceKey); err != nil || !strings.HasPrefix(out, "unchanged: version 1") {
		t.Errorf("awakend reload --cert: %v\n%s", err, out)
	}
	if out, err := reloadCmd(); err == nil || !strings.Contains(out, "admin token") {
		t.Errorf("awakend reload without a certificate: %v\n%s, want refused for want of the token", err, out)
	}

	// Both CAs, by the watcher: bob is an admin too, once he connects
	// again (his first connection was asked for A's certificates: he sent
	// none).
	writeCAs(caA.CertPEM, caB.CertPEM)
	d.WaitStatus("two client CAs applied", func(s harness.Status) bool {
		return s.LastReload != nil && s.LastReload.Trigger == "watch" && strings.HasSuffix(s.LastReload.Changes, "and 2 client CAs")
	})
	bobClient.CloseIdleConnections()
	if got := do(bobClient, "GET", "/api/v1/agents"); got != 200 {
		t.Errorf("bob once his CA is trusted: %d, want 200", got)
	}
	// B alone: alice's open connection is refused from then on.
	harnessCert.Store(&bobTLS)
	d.Client().CloseIdleConnections()
	writeCAs(caB.CertPEM)
	d.WaitStatus("one client CA applied", func(s harness.Status) bool {
		return s.LastReload != nil && s.LastReload.Trigger == "watch" && strings.HasSuffix(s.LastReload.Changes, "and 1 client CA")
	})
	if got := do(aliceClient, "GET", "/api/v1/agents"); got != 401 {
		t.Errorf("alice once her CA is gone: %d, want 401", got)
	}
	// A file that is not CAs: rejected, naming it; B still trusted.
	writeCAs(alice.CertPEM)
	st := d.WaitStatus("the leaf rejected", func(s harness.Status) bool {
		return s.LastReload != nil && s.LastReload.Trigger == "watch" && s.LastReload.Result == "rejected"
	})
	if !st.LastReload.HasCode("tls_certificate") || !strings.Contains(st.LastReload.Error, "tls.client_ca_file "+caFile+": certificate 1 (CN=alice) is not a CA certificate") {
		t.Errorf("rejection %+v", st.LastReload)
	}
	if got := do(bobClient, "GET", "/api/v1/agents"); got != 200 {
		t.Errorf("bob after a rejected CA file: %d, want 200", got)
	}

	// Allowed SANs: of what B issued, bob's name only.
	writeCAs(caB.CertPEM)
	writeSettings("  client_allowed_sans: [bob.ops.example]\n")
	d.WaitStatus("the allowed SANs applied", func(s harness.Status) bool {
		return s.LastReload != nil && s.LastReload.Result == "applied" && strings.Contains(s.LastReload.Changes, "~settings (tls.client_allowed_sans)")
	})
	if got := do(bobClient, "GET", "/api/v1/agents"); got != 200 {
		t.Errorf("bob, whose name is allowed: %d, want 200", got)
	}
	if got := do(client(&eve, false), "GET", "/api/v1/agents"); got != 401 {
		t.Errorf("eve, from the same CA, not allowed: %d, want 401", got)
	}
	d.WaitLog(regexp.MustCompile(`"subject":"CN=eve".*none of its subject alternative names is in tls.client_allowed_sans`))
}

// TestTLSFilesMoved: when the settings file names a new certificate pair,
// the daemon watches the new files from that reload on: renewing them
// reloads by itself, with no rescan to fall back on.
func TestTLSFilesMoved(t *testing.T) {
	t.Parallel()
	a, b, c := newCertPair(t, 1), newCertPair(t, 2), newCertPair(t, 3)
	roots := x509.NewCertPool()
	for _, p := range []certPair{a, b, c} {
		roots.AddCert(p.leaf)
	}
	first, second := t.TempDir(), t.TempDir()
	a.install(t, first)
	settings := filepath.Join(t.TempDir(), "awakend.yaml")
	writeSettings := func(certDir string) {
		t.Helper()
		body := "reload:\n  rescan_interval: 0s\ntls:\n  cert_file: " + filepath.Join(certDir, "cert.pem") + "\n  key_file: " + filepath.Join(certDir, "key.pem") + "\n"
		if err := os.WriteFile(settings+".tmp", []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(settings+".tmp", settings); err != nil {
			t.Fatal(err)
		}
	}
	writeSettings(first)
	d := start(t, harness.ConfigDir(t, map[string]string{"m.yaml": "providers:\n  - {id: p, adapter: mock}\nmodels:\n  - {id: m, provider_id: p, upstream_model: u}\n"}),
		harness.Options{Settings: settings, TLS: &tls.Config{RootCAs: roots}})

	b.install(t, second)
	writeSettings(second)
	d.WaitStatus("the settings naming the second pair applied", func(s harness.Status) bool {
		return s.LastReload != nil && s.LastReload.Result == "applied" && strings.Contains(s.LastReload.Changes, "~settings (tls.cert_file, tls.key_file)")
	})
	if got := servedSerial(t, d.Addr, roots); got != 2 {
		t.Fatalf("after the settings moved, a new connection got certificate %d, want 2", got)
	}
	// The watcher, following, asked for a rescan; a reload now takes it in.
	d.WaitLog(regexp.MustCompile(`file watcher follows new files`))
	d.Reload()

	c.install(t, second)
	d.WaitStatus("the renewed pair applied by the watcher", func(s harness.Status) bool {
		return s.LastReload != nil && s.LastReload.Trigger == "watch" && s.LastReload.Result == "applied" &&
			strings.HasPrefix(s.LastReload.Changes, "~tls certificate")
	})
	if got := servedSerial(t, d.Addr, roots); got != 3 {
		t.Errorf("after the renewal, a new connection got certificate %d, want 3", got)
	}
}
