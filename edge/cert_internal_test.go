package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/awakend/awakend/internal/testcert"
)

// TestClientAdminVerdicts: on a connection ConnContext set up, the
// certificate is verified once a minute at most, against the pair it was
// verified with; without, at every request; and a long subject is clipped.
func TestClientAdminVerdicts(t *testing.T) {
	server := testcert.New(t, testcert.Options{})
	ca := testcert.New(t, testcert.Options{Name: "admins", Client: true})
	alice := testcert.New(t, testcert.Options{Name: "alice", Leaf: true, Client: true, Parent: &ca})
	stranger := testcert.New(t, testcert.Options{Name: strings.Repeat("x", 1000), Leaf: true, Client: true})
	dir := t.TempDir()
	ts := TLSSettings{Cert: filepath.Join(dir, "c.pem"), Key: filepath.Join(dir, "k.pem"), ClientCA: filepath.Join(dir, "ca.pem")}
	server.Install(t, ts.Cert, ts.Key)
	if err := os.WriteFile(ts.ClientCA, ca.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	c := NewCertificate(ts)
	serve := func() {
		p, err := c.Load()
		if err != nil {
			t.Fatal(err)
		}
		c.Serve(p)
	}
	serve()

	// One connection's requests: its context and its ConnectionState.
	conn := ConnContext(context.Background(), nil)
	cs := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{alice.X509}}
	request := func() *http.Request {
		r := httptest.NewRequestWithContext(conn, "GET", "/api/v1/status", nil)
		r.TLS = cs
		return r
	}
	now := time.Now()
	if _, checked, err := c.ClientAdmin(request(), now); err != nil || !checked {
		t.Fatalf("first request: checked %v, %v", checked, err)
	}
	// What the connection carries is not checked again within the minute
	// (here it is changed behind its back, to show it).
	cs.PeerCertificates = []*x509.Certificate{stranger.X509}
	if _, checked, err := c.ClientAdmin(request(), now.Add(30*time.Second)); err != nil || checked {
		t.Errorf("within the minute: checked %v, %v; want the kept verdict", checked, err)
	}
	later := now.Add(61 * time.Second)
	subject, checked, err := c.ClientAdmin(request(), later)
	if err == nil || !checked {
		t.Errorf("after the minute: checked %v, %v; want the stranger refused", checked, err)
	}
	if len(subject) > maxSubject+len("…") {
		t.Errorf("subject of %d bytes, want it clipped to %d", len(subject), maxSubject)
	}
	// A new pair (a reload) checks again at once.
	cs.PeerCertificates = []*x509.Certificate{alice.X509}
	if _, checked, err := c.ClientAdmin(request(), later); err == nil || checked {
		t.Fatalf("the refusal was not kept: checked %v, %v", checked, err)
	}
	serve()
	if _, checked, err := c.ClientAdmin(request(), later); err != nil || !checked {
		t.Errorf("after a reload: checked %v, %v; want a new verdict", checked, err)
	}
	// Without ConnContext, every request is checked.
	r := httptest.NewRequest("GET", "/api/v1/status", nil)
	r.TLS = cs
	for range 2 {
		if _, checked, err := c.ClientAdmin(r, later); err != nil || !checked {
			t.Errorf("without a slot: checked %v, %v", checked, err)
		}
	}
}

// TestClientAdminIntermediates: a chain longer than maxIntermediates is
// cut, so that a client cannot make each check arbitrarily long.
func TestClientAdminIntermediates(t *testing.T) {
	root := testcert.New(t, testcert.Options{Name: "root", Client: true})
	chain := []testcert.Cert{root}
	for range maxIntermediates + 1 {
		parent := chain[len(chain)-1]
		chain = append(chain, testcert.New(t, testcert.Options{Name: "intermediate", Client: true, Parent: &parent}))
	}
	leafParent := chain[len(chain)-1]
	leaf := testcert.New(t, testcert.Options{Name: "deep", Leaf: true, Client: true, Parent: &leafParent})
	p := &Pair{clientCAs: root.Pool()}
	var sent []*x509.Certificate
	sent = append(sent, leaf.X509)
	for i := len(chain) - 1; i >= 1; i-- {
		sent = append(sent, chain[i].X509)
	}
	if _, err := verifyClient(p, sent, time.Now()); err == nil {
		t.Errorf("a chain of %d intermediates verified; want it cut at %d", len(sent)-1, maxIntermediates)
	}
	if _, err := verifyClient(p, sent[:1+maxIntermediates], time.Now()); err == nil {
		t.Error("the cut chain, short of the root, verified")
	}
}
