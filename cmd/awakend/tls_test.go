package main

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/awakend/awakend/daemon"
	"github.com/awakend/awakend/internal/testcert"
)

// issue makes a certificate for name, signed by parent (self-signed when
// parent is nil), and returns it with its key.
func issue(t *testing.T, name string, ca bool, parent *tls.Certificate) tls.Certificate {
	t.Helper()
	var p *testcert.Cert
	if parent != nil {
		p = &testcert.Cert{X509: parent.Leaf, Key: parent.PrivateKey.(*ecdsa.PrivateKey)}
	}
	return testcert.New(t, testcert.Options{Name: name, DNSNames: []string{name}, IPs: []net.IP{}, Leaf: !ca, Parent: p}).TLS()
}

// writePEM writes c's certificate and key, and returns the two files.
func writePEM(t *testing.T, c tls.Certificate) (cert, key string) {
	t.Helper()
	dir := t.TempDir()
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	var keyPEM []byte
	if c.PrivateKey != nil {
		der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// TestDaemonTLS checks how reload and diff verify a daemon on loopback: it
// must hold the key of the certificate or of the key on disk, or have a
// certificate trusted for the names on disk; nothing else.
func TestDaemonTLS(t *testing.T) {
	ca := issue(t, "Test CA", true, nil)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Leaf)
	old := issue(t, "llm.example.com", false, &ca)
	renewed := issue(t, "llm.example.com", false, &ca)
	selfSigned := issue(t, "llm.example.com", false, nil)
	selfRenewed := issue(t, "llm.example.com", false, nil)
	otherName := issue(t, "other.example.com", false, &ca)

	tests := []struct {
		name      string
		cert, key tls.Certificate // on disk: the certificate of cert, the key of key
		served    tls.Certificate // by the daemon
		ok        bool
	}{
		{"the pair on disk", selfSigned, selfSigned, selfSigned, true},
		{"certificate replaced, key not yet", selfRenewed, selfSigned, selfSigned, true},
		{"key replaced, certificate not yet", selfSigned, selfRenewed, selfSigned, true},
		{"both renewed by a trusted CA, not applied yet", renewed, renewed, old, true},
		{"both replaced, self-signed, not applied yet", selfRenewed, selfRenewed, selfSigned, false},
		{"a trusted certificate of another name", old, old, otherName, false},
		{"a self-signed stranger of the same name", old, old, selfSigned, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
			srv.Config.ErrorLog = log.New(io.Discard, "", 0)
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{tt.served}}
			srv.StartTLS()
			defer srv.Close()
			certFile, _ := writePEM(t, tt.cert)
			_, keyFile := writePEM(t, tt.key)
			conf, err := daemonTLS(certFile, keyFile, roots)
			if err != nil {
				t.Fatal(err)
			}
			c := newClient(srv.URL, "", 5*time.Second, conf)
			defer c.http.CloseIdleConnections()
			resp, err := c.http.Get(srv.URL)
			if err == nil {
				resp.Body.Close()
			}
			if (err == nil) != tt.ok {
				t.Errorf("err = %v, want ok %v", err, tt.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "the daemon's certificate matches neither "+certFile+" nor "+keyFile) {
				t.Errorf("err = %v, want one naming the files", err)
			}
		})
	}

	certFile, keyFile := writePEM(t, old)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	if _, err := daemonTLS(missing, keyFile, nil); err != nil {
		t.Errorf("with the key alone: %v", err)
	}
	if _, err := daemonTLS(certFile, missing, nil); err != nil {
		t.Errorf("with the certificate alone: %v", err)
	}
	junkCert, junkKey := writePEM(t, tls.Certificate{Certificate: [][]byte{[]byte("junk")}})
	if err := os.WriteFile(junkKey, []byte("-----BEGIN PRIVATE KEY-----\nanVuaw==\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := daemonTLS(junkCert, junkKey, nil)
	if err == nil || !strings.Contains(err.Error(), "tls.cert_file "+junkCert) || !strings.Contains(err.Error(), "tls.key_file "+junkKey+": not a private key") {
		t.Errorf("junk files: %v", err)
	}
	if _, err := daemonTLS(missing, missing, nil); err == nil || !strings.Contains(err.Error(), "or pass --url") {
		t.Errorf("no files: %v", err)
	}
}

// TestDaemonTLSSettle: a daemon whose certificate is older than the files
// is asked again once it has had the time to apply them.
func TestDaemonTLSSettle(t *testing.T) {
	before, after := issue(t, "llm.example.com", false, nil), issue(t, "llm.example.com", false, nil)
	certFile, keyFile := writePEM(t, after)
	for _, settle := range []time.Duration{0, time.Millisecond} {
		var handshakes atomic.Int32
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") }))
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		srv.TLS = &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			served := after
			if handshakes.Add(1) == 1 {
				served = before // the daemon applies the files after the first handshake
			}
			return &tls.Config{Certificates: []tls.Certificate{served}}, nil
		}}
		srv.StartTLS()
		conf, err := daemonTLS(certFile, keyFile, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := newClient(srv.URL, "", 5*time.Second, conf)
		c.settle = settle
		var out struct{}
		_, err = c.do(t.Context(), http.MethodGet, "/", nil, &out)
		if (err == nil) != (settle > 0) || handshakes.Load() != map[bool]int32{false: 1, true: 2}[settle > 0] {
			t.Errorf("settle %v: err %v after %d handshakes", settle, err, handshakes.Load())
		}
		c.http.CloseIdleConnections()
		srv.Close()
	}
}

// daemonFlagsOf parses args as reload and diff parse their daemon flags.
func daemonFlagsOf(t *testing.T, args ...string) *daemonFlags {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	f := addDaemonFlags(fs, time.Second, "the daemon")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return f
}

// urlFlags are the daemon flags with --url set to url, if not "".
func urlFlags(t *testing.T, url string) *daemonFlags {
	if url == "" {
		return daemonFlagsOf(t)
	}
	return daemonFlagsOf(t, "--url", url)
}

// clientSettings writes a certificate pair for llm.example.com and two
// settings files listening on 0.0.0.0:9443, without TLS and with the pair.
func clientSettings(t *testing.T) (cert, key, plain, withTLS string) {
	t.Helper()
	cert, key = writePEM(t, issue(t, "llm.example.com", false, nil))
	dir := t.TempDir()
	plain, withTLS = filepath.Join(dir, "plain.yaml"), filepath.Join(dir, "tls.yaml")
	if err := os.WriteFile(plain, []byte("listen: 0.0.0.0:9443\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(withTLS, []byte("listen: 0.0.0.0:9443\ntls:\n  cert_file: "+cert+"\n  key_file: "+key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key, plain, withTLS
}

// TestDaemonClientCertificate: --cert and --key make the client present a
// certificate, whichever way it finds the daemon; --cacert verifies the
// daemon at --url.
func TestDaemonClientCertificate(t *testing.T) {
	cert, key, plain, withTLS := clientSettings(t)
	conf := func(c *client) *tls.Config {
		if tr, ok := c.http.Transport.(*http.Transport); ok {
			return tr.TLSClientConfig
		}
		return nil
	}
	for _, tt := range []struct {
		settings string
		args     []string
		roots    bool // --cacert's pool verifies the daemon
	}{
		{withTLS, []string{"--cert", cert, "--key", key}, false},
		{plain, []string{"--url", "https://llm.example.com:9443", "--cert", cert, "--key", key}, false},
		{plain, []string{"--url", "https://llm.example.com:9443", "--cert", cert, "--key", key, "--cacert", cert}, true},
	} {
		c, err := daemonClient(tt.settings, daemonFlagsOf(t, tt.args...))
		if err != nil {
			t.Fatalf("%q: %v", tt.args, err)
		}
		tc := conf(c)
		if tc == nil || len(tc.Certificates) != 1 || (tc.RootCAs != nil) != tt.roots {
			t.Errorf("%q: TLS config %+v, want the client certificate (and --cacert's roots: %v)", tt.args, tc, tt.roots)
		}
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--cert", cert}, "--cert and --key go together"},
		{[]string{"--key", key}, "--cert and --key go together"},
		{[]string{"--cert", cert, "--key", cert}, "--cert " + cert + ", --key " + cert + ":"},
		{[]string{"--cacert", cert}, "--cacert verifies the daemon at --url; set --url too"},
		{[]string{"--url", "https://a:1", "--cacert", key}, "--cacert " + key + ": no PEM certificate in it"},
	} {
		_, err := daemonClient(plain, daemonFlagsOf(t, tt.args...))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.args, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Errorf("%q: the error shows the key: %v", tt.args, err)
		}
	}
}

func TestDaemonClientTLS(t *testing.T) {
	_, _, plain, withTLS := clientSettings(t)
	for _, tt := range []struct {
		settings, url, want string
		tls                 bool
	}{
		{plain, "", "http://127.0.0.1:9443", false},
		{withTLS, "", "https://127.0.0.1:9443", true},
		{withTLS, "https://llm.example.com:9443", "https://llm.example.com:9443", false}, // verified as any client would
	} {
		c, err := daemonClient(tt.settings, urlFlags(t, tt.url))
		if err != nil {
			t.Fatal(err)
		}
		_, custom := c.http.Transport.(*http.Transport)
		if c.base != tt.want || custom != tt.tls {
			t.Errorf("settings %s, --url %q: base %s, own TLS config %v; want %s, %v", filepath.Base(tt.settings), tt.url, c.base, custom, tt.want, tt.tls)
		}
	}
}

// TestDaemonClientRuntimeURL: under systemd, awakend reload reaches the
// daemon at the URL it wrote, not at a listen address the settings file
// names now but only a restart applies; an explicit --url still wins.
func TestDaemonClientRuntimeURL(t *testing.T) {
	dir := t.TempDir()
	settingsFile := filepath.Join(dir, "awakend.yaml")
	if err := os.WriteFile(settingsFile, []byte("listen: 127.0.0.1:9999\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(run, daemon.URLFile), []byte("http://127.0.0.1:8700\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RUNTIME_DIRECTORY", run)
	for url, want := range map[string]string{"": "http://127.0.0.1:8700", "http://[::1]:1234": "http://[::1]:1234"} {
		c, err := daemonClient(settingsFile, urlFlags(t, url))
		if err != nil {
			t.Fatal(err)
		}
		if c.base != want {
			t.Errorf("--url %q: base %s, want %s", url, c.base, want)
		}
	}
	t.Setenv("RUNTIME_DIRECTORY", filepath.Join(dir, "none"))
	if c, err := daemonClient(settingsFile, urlFlags(t, "")); err != nil || c.base != "http://127.0.0.1:9999" {
		t.Errorf("without a written URL: %v, %v; want the settings' listen", c, err)
	}
}
