package inference

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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
