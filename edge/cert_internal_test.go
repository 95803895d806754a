package edge

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/awakend/awakend/internal/testcert"
)

// TestClientAdminVerdicts: a connection's certificate is verified once a
// minute at most, against the pair it was verified with, and the verdicts
// kept are bounded.
func TestClientAdminVerdicts(t *testing.T) {
	server := testcert.New(t, testcert.Options{})
	ca := testcert.New(t, testcert.Options{Name: "admins", Client: true})
	alice := testcert.New(t, testcert.Options{Name: "alice", Leaf: true, Client: true, Parent: &ca})
	stranger := testcert.New(t, testcert.Options{Name: "stranger", Leaf: true, Client: true})
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

	now := time.Now()
	cs := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{alice.X509}}
	if _, err := c.ClientAdmin(cs, now); err != nil {
		t.Fatal(err)
	}
	// What the connection carries is not checked again within the minute
	// (here it is changed behind its back, to show it).
	cs.PeerCertificates = []*x509.Certificate{stranger.X509}
	if _, err := c.ClientAdmin(cs, now.Add(30*time.Second)); err != nil {
		t.Errorf("within the minute: %v, want the kept verdict", err)
	}
	if _, err := c.ClientAdmin(cs, now.Add(61*time.Second)); err == nil {
		t.Error("after the minute, the connection was not checked again")
	}
	// A new pair (a reload) checks again at once.
	later := now.Add(62 * time.Second)
	cs.PeerCertificates = []*x509.Certificate{alice.X509}
	if _, err := c.ClientAdmin(cs, later); err == nil {
		t.Fatal("the refusal after the minute was not kept")
	}
	serve()
	if _, err := c.ClientAdmin(cs, later); err != nil {
		t.Errorf("after a reload: %v, want a new verdict", err)
	}

	for range 3 * maxVerdicts {
		if _, err := c.ClientAdmin(&tls.ConnectionState{PeerCertificates: []*x509.Certificate{alice.X509}}, now); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.verdicts); n > maxVerdicts {
		t.Errorf("%d verdicts kept, want at most %d", n, maxVerdicts)
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
