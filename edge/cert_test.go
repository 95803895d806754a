package edge_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/awakend/awakend/edge"
	"github.com/awakend/awakend/internal/testcert"
)

// tlsFiles writes a server pair and, for each CA given, a client CA file
// holding them all; it returns the files to load.
func tlsFiles(t *testing.T, server testcert.Cert, cas ...testcert.Cert) edge.TLSSettings {
	t.Helper()
	dir := t.TempDir()
	f := edge.TLSSettings{Cert: filepath.Join(dir, "cert.pem"), Key: filepath.Join(dir, "key.pem")}
	server.Install(t, f.Cert, f.Key)
	if len(cas) > 0 {
		f.ClientCA = filepath.Join(dir, "clients.pem")
		var pem []byte
		for _, ca := range cas {
			pem = append(pem, ca.CertPEM...)
		}
		if err := os.WriteFile(f.ClientCA, pem, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func TestLoadPairClientCAs(t *testing.T) {
	server := testcert.New(t, testcert.Options{})
	ca := testcert.New(t, testcert.Options{Name: "admins"})
	leaf := testcert.New(t, testcert.Options{Name: "alice", Leaf: true, Client: true, Parent: &ca})

	f := tlsFiles(t, server, ca)
	p, err := edge.LoadPair(f)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p.Summary(), "and 1 client CA"; !strings.HasSuffix(got, want) {
		t.Errorf("summary %q, want it to end in %q", got, want)
	}
	plain, err := edge.LoadPair(edge.TLSSettings{Cert: f.Cert, Key: f.Key})
	if err != nil {
		t.Fatal(err)
	}
	if plain.Fingerprint == p.Fingerprint {
		t.Error("the fingerprint does not cover the client CA file")
	}

	for _, tt := range []struct {
		name string
		data string // the client CA file; "-" for none there
		want string
	}{
		{"missing", "-", "tls.client_ca_file " + f.ClientCA + ": no such file or directory"},
		{"not PEM", "hello\n", "no PEM CERTIFICATE block"},
		{"a key", string(ca.KeyPEM), `PEM block 1 is "PRIVATE KEY", not a CERTIFICATE`},
		{"a leaf", string(ca.CertPEM) + string(leaf.CertPEM), "certificate 2 (CN=alice) is not a CA certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(f.ClientCA)
			if tt.data != "-" {
				if err := os.WriteFile(f.ClientCA, []byte(tt.data), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := edge.LoadPair(f)
			var ce *edge.CertError
			if !errors.As(err, &ce) || ce.Setting != "tls.client_ca_file" || ce.File != f.ClientCA || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want a tls.client_ca_file error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "BEGIN") {
				t.Errorf("the error shows the file: %v", err)
			}
		})
	}
}

// withTLS is a request over TLS whose client sent chain.
func withTLS(chain ...testcert.Cert) *http.Request {
	r := httptest.NewRequest("GET", "/api/v1/status", nil)
	r.TLS = &tls.ConnectionState{}
	for _, c := range chain {
		r.TLS.PeerCertificates = append(r.TLS.PeerCertificates, c.X509)
	}
	return r
}

// TestClientAdmin serves the certificate as the daemon does (ServeTLS,
// HTTP/2 by ALPN) and checks what each client's certificate is worth.
func TestClientAdmin(t *testing.T) {
	server := testcert.New(t, testcert.Options{})
	ca := testcert.New(t, testcert.Options{Name: "admins", Client: true})
	other := testcert.New(t, testcert.Options{Name: "others", Client: true})
	inter := testcert.New(t, testcert.Options{Name: "admins-2", Client: true, Parent: &ca})
	alice := testcert.New(t, testcert.Options{Name: "alice", Leaf: true, Client: true, Parent: &ca})
	bob := testcert.New(t, testcert.Options{Name: "bob", Leaf: true, Client: true, Parent: &inter})
	mallory := testcert.New(t, testcert.Options{Name: "mallory", Leaf: true, Client: true, Parent: &other})
	serverUse := testcert.New(t, testcert.Options{Name: "a-server", Leaf: true, Parent: &ca})

	f := tlsFiles(t, server, ca)
	c := edge.NewCertificate(f)
	load := func() {
		t.Helper()
		p, err := c.Load()
		if err != nil {
			t.Fatal(err)
		}
		c.Serve(p)
	}
	load()

	// The handler answers what ClientAdmin says of the request.
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			subject, _, err := c.ClientAdmin(r, time.Now())
			if err != nil {
				subject = "-"
			}
			io.WriteString(w, r.Proto+" "+subject)
		}),
		TLSConfig:   c.TLSConfig(),
		ConnContext: edge.ConnContext,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })

	client := func(cert *testcert.Cert, chain ...testcert.Cert) *http.Client {
		conf := &tls.Config{RootCAs: server.Pool()}
		if cert != nil {
			tc := cert.TLS()
			for _, c := range chain {
				tc.Certificate = append(tc.Certificate, c.X509.Raw)
			}
			conf.Certificates = []tls.Certificate{tc}
		}
		tr := &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	get := func(cl *http.Client) string {
		t.Helper()
		resp, err := cl.Get("https://127.0.0.1:" + strings.Split(ln.Addr().String(), ":")[1] + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}

	aliceClient := client(&alice)
	for _, tt := range []struct {
		name string
		cl   *http.Client
		want string
	}{
		{"no certificate", client(nil), "HTTP/2.0 -"},
		{"issued by the CA", aliceClient, "HTTP/2.0 CN=alice"},
		{"through an intermediate it sends", client(&bob, inter), "HTTP/2.0 CN=bob"},
		{"through an intermediate it does not send", client(&bob), "HTTP/2.0 -"},
		{"another CA's", client(&mallory), "HTTP/2.0 -"},
		{"a server certificate", client(&serverUse), "HTTP/2.0 -"},
		{"self-signed", client(&other), "HTTP/2.0 -"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := get(tt.cl); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}

	var invalid x509.CertificateInvalidError
	if _, _, err := c.ClientAdmin(withTLS(alice), time.Now().Add(2*time.Hour)); !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
		t.Errorf("an expired certificate: %v, want it refused as expired", err)
	}
	if _, _, err := c.ClientAdmin(withTLS(), time.Now()); err != edge.ErrNoClientCert {
		t.Errorf("no certificate: %v, want ErrNoClientCert", err)
	}

	// The certificate request names the CA, for clients that hold several.
	var asked [][]byte
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: server.Pool(),
		GetClientCertificate: func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
			asked = cri.AcceptableCAs
			return &tls.Certificate{}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if len(asked) != 1 || !bytes.Equal(asked[0], ca.X509.RawSubject) {
		t.Errorf("acceptable CAs %q, want the CA's subject", asked)
	}

	// Allowed SANs narrow what the CA issued to the names listed.
	ops := testcert.New(t, testcert.Options{Name: "ops", DNSNames: []string{"ops.example.com"}, Leaf: true, Client: true, Parent: &ca})
	c.Set(edge.TLSSettings{Cert: f.Cert, Key: f.Key, ClientCA: f.ClientCA, ClientSANs: []string{"ops.example.com", "127.0.0.2"}})
	load()
	if _, _, err := c.ClientAdmin(withTLS(ops), time.Now()); err != nil {
		t.Errorf("a certificate with an allowed SAN: %v", err)
	}
	if _, _, err := c.ClientAdmin(withTLS(alice), time.Now()); err == nil || !strings.Contains(err.Error(), "tls.client_allowed_sans") {
		t.Errorf("a certificate without an allowed SAN: %v, want it refused for that", err)
	}
	c.Set(edge.TLSSettings{Cert: f.Cert, Key: f.Key, ClientCA: f.ClientCA})
	load()

	// A reload that trusts another CA applies to the open connection too.
	if err := os.WriteFile(f.ClientCA, other.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	load()
	if got := get(aliceClient); got != "HTTP/2.0 -" {
		t.Errorf("after the CA changed, alice's open connection got %q", got)
	}
	// Without client CAs, no certificate is asked for, or worth anything.
	c.Set(edge.TLSSettings{Cert: f.Cert, Key: f.Key})
	load()
	conn, err = tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: server.Pool(), NextProtos: []string{"h2"},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			t.Error("a client certificate was asked for without client CAs")
			return &tls.Certificate{}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Errorf("protocol %q without client CAs, want h2", p)
	}
	conn.Close()
}
