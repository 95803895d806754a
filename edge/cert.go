package edge

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/awakend/awakend/internal/digest"
)

// TLSSettings are the TLS inputs of a reload: the files of the certificate
// chain and the key the daemon serves and, if ClientCA is not "", of the
// certificate authorities whose client certificates are the admin's
// (ClientAdmin); ClientSANs, if set, narrows those to the certificates
// that carry one of these subject alternative names.
type TLSSettings struct {
	Cert, Key, ClientCA string
	ClientSANs          []string
}

// Certificate is the TLS certificate the daemon serves, read from a pair of
// files, and the client CAs it trusts. A reload reads the files (Load) as
// one of its inputs and, only if the whole reload succeeds, publishes them
// (Serve); handshakes take the current certificate (GetCertificate), so a
// new one applies to new handshakes and open connections keep the one they
// were made with. Client certificates are checked against the current CAs
// (again after each reload, see ClientAdmin), so a CA a reload removes
// admits no one from then on, on open connections too.
type Certificate struct {
	set atomic.Pointer[TLSSettings]
	cur atomic.Pointer[Pair]
	gen atomic.Uint64 // of the pairs served
}

// verdict is what ClientAdmin found of a connection's certificate, under
// the pair of generation gen, from at until until.
type verdict struct {
	gen       uint64
	at, until time.Time
	subject   string
	err       error
}

// verdictSlot holds a connection's verdict (see ConnContext).
type verdictSlot struct {
	mu sync.Mutex
	v  verdict
	ok bool
}

type slotKey struct{}

// ConnContext is an http.Server's ConnContext: it gives each connection a
// place for the verdict on its client certificate, which ClientAdmin
// fills and which goes with the connection.
func ConnContext(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, slotKey{}, &verdictSlot{})
}

// Limits of ClientAdmin's work for a connection.
const (
	// verdictFor is how long a verdict holds before the certificate is
	// checked again, at most (and never past its expiry).
	verdictFor = time.Minute
	// maxIntermediates bounds the certificates of a client's chain that
	// verification considers: a client could otherwise send hundreds, for
	// as many signature checks.
	maxIntermediates = 8
	// maxSubject clips the subject ClientAdmin returns for the log: a
	// self-signed certificate can carry one of hundreds of kilobytes.
	maxSubject = 200
)

// NewCertificate returns a certificate read as ts says; none is served
// before the first Serve.
func NewCertificate(ts TLSSettings) *Certificate {
	c := &Certificate{}
	c.Set(ts)
	return c
}

// Set names what the next Load reads.
func (c *Certificate) Set(ts TLSSettings) { c.set.Store(&ts) }

// Settings returns what Load reads.
func (c *Certificate) Settings() TLSSettings { return *c.set.Load() }

// nextProtos are the protocols the daemon offers over TLS, as net/http's
// ServeTLS sets them on the server's own configuration; the configuration
// that asks for client certificates replaces that one, so it must offer
// them itself. (Were HTTP/2 ever turned off on the server, this would
// have to follow.)
var nextProtos = []string{"h2", "http/1.1"}

// TLSConfig is a server configuration that serves the current certificate,
// TLS 1.2 and later, and asks for a client certificate while client CAs
// are set. A client that sends none, or one no CA signed, still connects:
// the routes decide what its certificate is worth.
func (c *Certificate) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: c.GetCertificate,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			if p := c.cur.Load(); p != nil && p.clientCAs != nil {
				return p.askClient, nil
			}
			return nil, nil // the configuration above
		},
	}
}

// GetCertificate is the tls.Config's GetCertificate.
func (c *Certificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if p := c.cur.Load(); p != nil && p.cert != nil {
		return p.cert, nil
	}
	return nil, errors.New("no certificate loaded")
}

// Leaf is the served certificate's leaf; nil without one, or for a nil c.
func (c *Certificate) Leaf() *x509.Certificate {
	if c == nil {
		return nil
	}
	if p := c.cur.Load(); p != nil && p.cert != nil {
		return p.cert.Leaf
	}
	return nil
}

// ErrNoClientCert is ClientAdmin's answer to a connection that gives no
// certificate to check: a nil Certificate, plain HTTP, no client CAs, or
// no certificate sent.
var ErrNoClientCert = errors.New("no client certificate")

// ClientAdmin checks the client certificate of r's connection: issued by
// one of the current client CAs (through the intermediates the client
// sent), valid at now, fit to authenticate a client (a certificate with no
// extended key usage is fit for any) and, if the settings list client
// SANs, naming one of them (a DNS name, an email address, an IP address or
// a URI, exactly as written). It returns the certificate's subject, for
// the log, and nil when it is the admin's; otherwise ErrNoClientCert, or
// why the certificate was refused. checked says whether the certificate
// was verified now, rather than known from an earlier request.
//
// On a connection that ConnContext set up, the verdict is kept for the
// connection's next requests (HTTP/1 keep-alive, HTTP/2 streams), for a
// minute at most and until a new pair is served: a client cannot have its
// chain verified again by the request.
func (c *Certificate) ClientAdmin(r *http.Request, now time.Time) (subject string, checked bool, err error) {
	cs := r.TLS
	if c == nil || cs == nil || len(cs.PeerCertificates) == 0 {
		return "", false, ErrNoClientCert
	}
	p := c.cur.Load()
	if p == nil || p.clientCAs == nil {
		return "", false, ErrNoClientCert
	}
	slot, _ := r.Context().Value(slotKey{}).(*verdictSlot)
	if slot != nil {
		slot.mu.Lock()
		defer slot.mu.Unlock()
		if v := slot.v; slot.ok && v.gen == p.gen && !now.Before(v.at) && now.Before(v.until) {
			return v.subject, false, v.err
		}
	}
	v := verdict{gen: p.gen, at: now, until: now.Add(verdictFor)}
	v.subject, v.err = verifyClient(p, cs.PeerCertificates, now)
	if na := cs.PeerCertificates[0].NotAfter; na.Before(v.until) {
		v.until = na
	}
	if slot != nil {
		slot.v, slot.ok = v, true
	}
	return v.subject, true, v.err
}

// verifyClient checks a client's chain against p's client CAs and SANs.
func verifyClient(p *Pair, chain []*x509.Certificate, now time.Time) (subject string, err error) {
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, ic := range chain[1:min(len(chain), 1+maxIntermediates)] {
		inter.AddCert(ic)
	}
	_, err = leaf.Verify(x509.VerifyOptions{
		Roots: p.clientCAs, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err == nil && len(p.clientSANs) > 0 && !slices.ContainsFunc(sans(leaf), func(n string) bool { return slices.Contains(p.clientSANs, n) }) {
		err = errors.New("none of its subject alternative names is in tls.client_allowed_sans")
	}
	subject = leaf.Subject.String()
	if len(subject) > maxSubject {
		subject = subject[:maxSubject] + "…"
	}
	return subject, err
}

// sans are a certificate's subject alternative names, as text.
func sans(c *x509.Certificate) []string {
	names := slices.Concat(c.DNSNames, c.EmailAddresses)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	for _, u := range c.URIs {
		names = append(names, u.String())
	}
	return names
}

// Pair is the certificate, key and client CAs as read by one reload.
type Pair struct {
	cert        *tls.Certificate // nil if the files did not load
	gen         uint64           // set by Serve: which pair a verdict holds for
	clientCAs   *x509.CertPool   // nil without tls.client_ca_file
	clientSANs  []string         // tls.client_allowed_sans
	nCAs        int              // in clientCAs
	askClient   *tls.Config      // the handshake's configuration with clientCAs
	Fingerprint string           // of all the files, or of why they could not be read
}

// Load reads and checks the files c names (LoadPair).
func (c *Certificate) Load() (Pair, error) { return LoadPair(c.Settings()) }

// LoadPair reads and checks a certificate and key pair, and the client CAs
// if f names them. The fingerprint, of the files and the client SANs, is
// set even when the files do not load, so that a reload of the same broken
// files is recognized. Errors are *CertError: they name the setting and
// the file, never the contents.
func LoadPair(f TLSSettings) (Pair, error) {
	h := sha256.New()
	certPEM, certErr := readPEM(f.Cert)
	keyPEM, keyErr := readPEM(f.Key)
	digest.Input(h, 'c', f.Cert, certPEM, certErr)
	digest.Input(h, 'k', f.Key, keyPEM, keyErr)
	var caPEM []byte
	var caErr error
	if f.ClientCA != "" {
		caPEM, caErr = readPEM(f.ClientCA)
		digest.Input(h, 'a', f.ClientCA, caPEM, caErr)
		for _, n := range f.ClientSANs {
			digest.Input(h, 's', n, nil, nil)
		}
	}
	p := Pair{Fingerprint: hex.EncodeToString(h.Sum(nil)), clientSANs: slices.Clone(f.ClientSANs)}
	var errs []error
	if certErr != nil {
		errs = append(errs, &CertError{Setting: "tls.cert_file", File: f.Cert, Err: unwrapPath(certErr)})
	} else if _, err := parseChain(certPEM); err != nil {
		errs = append(errs, &CertError{Setting: "tls.cert_file", File: f.Cert, Err: err})
	}
	if keyErr != nil {
		errs = append(errs, &CertError{Setting: "tls.key_file", File: f.Key, Err: unwrapPath(keyErr)})
	}
	if f.ClientCA != "" {
		if caErr != nil {
			errs = append(errs, &CertError{Setting: "tls.client_ca_file", File: f.ClientCA, Err: unwrapPath(caErr)})
		} else if cas, err := parseCAs(caPEM); err != nil {
			errs = append(errs, &CertError{Setting: "tls.client_ca_file", File: f.ClientCA, Err: err})
		} else {
			p.clientCAs, p.nCAs = x509.NewCertPool(), len(cas)
			for _, ca := range cas {
				p.clientCAs.AddCert(ca)
			}
		}
	}
	if len(errs) > 0 {
		return p, errors.Join(errs...)
	}
	// The chain parses, so what X509KeyPair finds wrong is the key: not
	// PEM, not a key, or not the leaf's. Its messages show no key material.
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "tls: ")
		return p, &CertError{Setting: "tls.key_file", File: f.Key, Err: fmt.Errorf("%s (certificate %s)", msg, f.Cert)}
	}
	p.cert = &cert
	if p.clientCAs != nil {
		// The CAs' names go in the certificate request, so that a client
		// holding several certificates offers the right one; the chain is
		// verified per request (ClientAdmin), against the CAs then.
		p.askClient = &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{cert},
			NextProtos:   nextProtos,
			ClientAuth:   tls.RequestClientCert,
			ClientCAs:    p.clientCAs,
		}
	}
	return p, nil
}

// maxPEM caps what load reads of a file: a certificate chain or a key is a
// few kilobytes, and a path that names a device must not stall reloads.
const maxPEM = 1 << 20

// readPEM reads a file of at most maxPEM bytes.
func readPEM(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEM+1))
	if err == nil && len(b) > maxPEM {
		err = fmt.Errorf("larger than %d KiB", maxPEM>>10)
	}
	return b, err
}

// Serve makes p's certificate the one new handshakes get, and its client
// CAs the ones requests are checked against.
func (c *Certificate) Serve(p Pair) {
	p.gen = c.gen.Add(1)
	c.cur.Store(&p)
}

// parseChain parses a PEM file of certificates, and nothing else.
func parseChain(certPEM []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := certPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		n := len(certs) + 1
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, not a CERTIFICATE", n, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	return certs, nil
}

// parseCAs parses a PEM file of CA certificates: a certificate that may not
// sign others would never verify a client, so it is refused rather than
// left to fail every request.
func parseCAs(caPEM []byte) ([]*x509.Certificate, error) {
	cas, err := parseChain(caPEM)
	for i, ca := range cas {
		if !ca.BasicConstraintsValid || !ca.IsCA {
			return nil, fmt.Errorf("certificate %d (%s) is not a CA certificate", i+1, ca.Subject)
		}
	}
	return cas, err
}

// Summary describes the pair's leaf, and its client CAs, for the log and a
// reload's changes.
func (p Pair) Summary() string {
	s := "tls certificate"
	if p.cert != nil && p.cert.Leaf != nil {
		s += " (expires " + p.cert.Leaf.NotAfter.UTC().Format(time.DateOnly) + ")"
	}
	switch p.nCAs {
	case 0:
		return s
	case 1:
		return s + " and 1 client CA"
	}
	return s + " and " + strconv.Itoa(p.nCAs) + " client CAs"
}

// CertError is a TLS certificate, key or CA file that did not load: a rejected
// reload, or a start-up error.
type CertError struct {
	Setting string // tls.cert_file, tls.key_file or tls.client_ca_file
	File    string
	Err     error
}

// Error says which setting and file, and what is wrong with it.
func (e *CertError) Error() string { return e.Setting + " " + e.File + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *CertError) Unwrap() error { return e.Err }

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
