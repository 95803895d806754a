package edge

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// Certificate is the TLS certificate the daemon serves, read from a pair of
// files. A reload reads the pair (Load) as one of its inputs and, only if
// the whole reload succeeds, publishes it (Serve); handshakes take the
// current one (GetCertificate), so a new certificate applies to new
// handshakes and open connections keep the one they were made with.
type Certificate struct {
	files atomic.Pointer[[2]string] // the certificate and key files
	cur   atomic.Pointer[tls.Certificate]
}

// NewCertificate returns a certificate read from certFile and keyFile; none
// is served before the first Serve.
func NewCertificate(certFile, keyFile string) *Certificate {
	c := &Certificate{}
	c.SetFiles(certFile, keyFile)
	return c
}

// SetFiles names the files the next Load reads.
func (c *Certificate) SetFiles(certFile, keyFile string) {
	c.files.Store(&[2]string{certFile, keyFile})
}

// Files returns the certificate and key files Load reads.
func (c *Certificate) Files() (certFile, keyFile string) {
	f := c.files.Load()
	return f[0], f[1]
}

// TLSConfig is a server configuration that serves the current certificate,
// TLS 1.2 and later.
func (c *Certificate) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.GetCertificate}
}

// GetCertificate is the tls.Config's GetCertificate.
func (c *Certificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if cert := c.cur.Load(); cert != nil {
		return cert, nil
	}
	return nil, errors.New("no certificate loaded")
}

// Leaf is the served certificate's leaf; nil without one, or for a nil c.
func (c *Certificate) Leaf() *x509.Certificate {
	if c == nil {
		return nil
	}
	if cert := c.cur.Load(); cert != nil {
		return cert.Leaf
	}
	return nil
}

// Pair is a certificate and key as read by one reload.
type Pair struct {
	cert        *tls.Certificate // nil if the pair did not load
	Fingerprint string           // of both files, or of why they could not be read
}

// Load reads and checks the pair of files c names (LoadPair).
func (c *Certificate) Load() (Pair, error) { return LoadPair(c.Files()) }

// LoadPair reads and checks a certificate and key pair. The fingerprint is
// set even when the pair does not load, so that a reload of the same broken
// files is recognized. Errors are *CertError: they name the setting and the
// file, never the contents.
func LoadPair(certFile, keyFile string) (Pair, error) {
	h := sha256.New()
	certPEM, certErr := readPEM(certFile)
	keyPEM, keyErr := readPEM(keyFile)
	hashFile(h, 'c', certFile, certPEM, certErr)
	hashFile(h, 'k', keyFile, keyPEM, keyErr)
	p := Pair{Fingerprint: hex.EncodeToString(h.Sum(nil))}
	var errs []error
	if certErr != nil {
		errs = append(errs, &CertError{Setting: "tls.cert_file", File: certFile, Err: unwrapPath(certErr)})
	} else if err := checkChain(certPEM); err != nil {
		errs = append(errs, &CertError{Setting: "tls.cert_file", File: certFile, Err: err})
	}
	if keyErr != nil {
		errs = append(errs, &CertError{Setting: "tls.key_file", File: keyFile, Err: unwrapPath(keyErr)})
	}
	if len(errs) > 0 {
		return p, errors.Join(errs...)
	}
	// The chain parses, so what X509KeyPair finds wrong is the key: not
	// PEM, not a key, or not the leaf's. Its messages show no key material.
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "tls: ")
		return p, &CertError{Setting: "tls.key_file", File: keyFile, Err: fmt.Errorf("%s (certificate %s)", msg, certFile)}
	}
	p.cert = &cert
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

// Serve makes p's certificate the one new handshakes get.
func (c *Certificate) Serve(p Pair) { c.cur.Store(p.cert) }

// checkChain checks that certPEM is a PEM chain of parseable certificates,
// and nothing else.
func checkChain(certPEM []byte) error {
	n := 0
	for rest := certPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return fmt.Errorf("PEM block %d is %q, not a CERTIFICATE", n+1, b.Type)
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %w", n+1, err)
		}
		n++
	}
	if n == 0 {
		return errors.New("no PEM CERTIFICATE block")
	}
	return nil
}

// Summary describes the pair's leaf for the log and a reload's changes.
func (p Pair) Summary() string {
	if p.cert == nil || p.cert.Leaf == nil {
		return "tls certificate"
	}
	return "tls certificate (expires " + p.cert.Leaf.NotAfter.UTC().Format(time.DateOnly) + ")"
}

// CertError is a TLS certificate or key file that did not load: a rejected
// reload, or a start-up error.
type CertError struct {
	Setting string // tls.cert_file or tls.key_file
	File    string
	Err     error
}

// Error says which setting and file, and what is wrong with it.
func (e *CertError) Error() string { return e.Setting + " " + e.File + ": " + e.Err.Error() }

// Unwrap returns the underlying error.
func (e *CertError) Unwrap() error { return e.Err }

// hashFile writes one file unambiguously: a tag, the length-prefixed name,
// whether it could be read, and the length-prefixed contents (or error).
func hashFile(h hash.Hash, tag byte, name string, data []byte, err error) {
	var buf [binary.MaxVarintLen64 + 1]byte
	buf[0] = tag
	h.Write(binary.AppendUvarint(buf[:1], uint64(len(name))))
	io.WriteString(h, name)
	buf[0] = 0
	if err != nil {
		buf[0], data = 1, []byte(err.Error())
	}
	h.Write(binary.AppendUvarint(buf[:1], uint64(len(data))))
	h.Write(data)
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
