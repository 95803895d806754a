package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// issue makes a certificate for name, signed by parent (self-signed when
// parent is nil), and returns it with its key.
func issue(t *testing.T, name string, ca bool, parent *tls.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		DNSNames:              []string{name},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  ca,
	}
	signer, signerKey := tmpl, any(key)
	if parent != nil {
		signer, signerKey = parent.Leaf, parent.PrivateKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func writePEM(t *testing.T, c tls.Certificate) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDaemonTLS checks how reload and diff verify a daemon on loopback:
// the configured certificate, or one trusted for its names, and nothing
// else.
func TestDaemonTLS(t *testing.T) {
	ca := issue(t, "Test CA", true, nil)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Leaf)
	old := issue(t, "llm.example.com", false, &ca)
	renewed := issue(t, "llm.example.com", false, &ca)
	selfSigned := issue(t, "llm.example.com", false, nil)
	otherName := issue(t, "other.example.com", false, &ca)

	tests := []struct {
		name       string
		configured tls.Certificate // in tls.cert_file
		served     tls.Certificate // by the daemon
		ok         bool
	}{
		{"the configured certificate", selfSigned, selfSigned, true},
		{"renewed, the daemon not yet reloaded", renewed, old, true},
		{"a certificate of another name", old, otherName, false},
		{"a self-signed stranger of the same name", old, selfSigned, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{tt.served}}
			srv.StartTLS()
			defer srv.Close()
			conf, err := daemonTLS(writePEM(t, tt.configured), roots)
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
			if err != nil && !strings.Contains(err.Error(), "the daemon's certificate is neither the one in") {
				t.Errorf("err = %v, want one naming the file", err)
			}
		})
	}

	if _, err := daemonTLS(filepath.Join(t.TempDir(), "missing.pem"), nil); err == nil || !strings.Contains(err.Error(), "tls.cert_file") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := daemonTLS(writePEM(t, tls.Certificate{Certificate: [][]byte{[]byte("junk")}}), nil); err == nil {
		t.Error("a file that holds no certificate was accepted")
	}
}

func TestDaemonClientTLS(t *testing.T) {
	cert := writePEM(t, issue(t, "llm.example.com", false, nil))
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.yaml")
	withTLS := filepath.Join(dir, "tls.yaml")
	if err := os.WriteFile(plain, []byte("listen: 0.0.0.0:9443\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(withTLS, []byte("listen: 0.0.0.0:9443\ntls:\n  cert_file: "+cert+"\n  key_file: /not/read.pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		settings, url, want string
		tls                 bool
	}{
		{plain, "", "http://127.0.0.1:9443", false},
		{withTLS, "", "https://127.0.0.1:9443", true},
		{withTLS, "https://llm.example.com:9443", "https://llm.example.com:9443", false}, // verified as any client would
	} {
		c, err := daemonClient(tt.settings, tt.url, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_, custom := c.http.Transport.(*http.Transport)
		if c.base != tt.want || custom != tt.tls {
			t.Errorf("settings %s, --url %q: base %s, own TLS config %v; want %s, %v", filepath.Base(tt.settings), tt.url, c.base, custom, tt.want, tt.tls)
		}
	}
}
