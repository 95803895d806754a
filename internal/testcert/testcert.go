// Package testcert issues certificates for tests: ECDSA P-256, valid for
// an hour either side of now, self-signed or signed by another, in the
// forms the tests need (PEM files, a tls.Certificate, a pool to trust).
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Options say what to issue. The zero value is a self-signed CA
// certificate for localhost, 127.0.0.1 and ::1 with a random serial.
type Options struct {
	Name     string   // the subject's common name; "awakend test" if empty
	DNSNames []string // nil: localhost
	IPs      []net.IP // nil: 127.0.0.1 and ::1
	Serial   int64    // 0: random
	Leaf     bool     // not a CA: it cannot sign others
	Client   bool     // for client authentication, not a server's (its extended key usage)
	Parent   *Cert    // the issuer; nil: self-signed
}

// Cert is an issued certificate and its key.
type Cert struct {
	X509    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte // the certificate, PEM
	KeyPEM  []byte // its key, PKCS #8 PEM
}

// New issues a certificate, failing tb on any error.
func New(tb testing.TB, o Options) Cert {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	serial := big.NewInt(o.Serial)
	if o.Serial == 0 {
		if serial, err = rand.Int(rand.Reader, big.NewInt(1<<62)); err != nil {
			tb.Fatal(err)
		}
	}
	if o.Name == "" {
		o.Name = "awakend test"
	}
	if o.DNSNames == nil {
		o.DNSNames = []string{"localhost"}
	}
	if o.IPs == nil {
		o.IPs = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	usage := x509.ExtKeyUsageServerAuth
	if o.Client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: o.Name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		DNSNames:              o.DNSNames,
		IPAddresses:           o.IPs,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
		IsCA:                  !o.Leaf,
	}
	signer, signerKey := tmpl, key
	if o.Parent != nil {
		signer, signerKey = o.Parent.X509, o.Parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return Cert{
		X509:    leaf,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
}

// TLS is c as a tls.Certificate.
func (c Cert) TLS() tls.Certificate {
	return tls.Certificate{Certificate: [][]byte{c.X509.Raw}, PrivateKey: c.Key, Leaf: c.X509}
}

// Pool is a pool that trusts c.
func (c Cert) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.X509)
	return p
}

// Install writes c's certificate and key to certFile and keyFile, each
// replaced by a rename as certificate tools do, so that a reader never
// sees half a file.
func (c Cert) Install(tb testing.TB, certFile, keyFile string) {
	tb.Helper()
	for file, data := range map[string][]byte{certFile: c.CertPEM, keyFile: c.KeyPEM} {
		tmp := filepath.Join(filepath.Dir(file), "."+filepath.Base(file)+".tmp")
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			tb.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			tb.Fatal(err)
		}
	}
}
