package daemon

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
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/awakend/awakend/config"
)

// certificate is the TLS certificate the daemon serves, read from a pair of
// files. A reload reads the pair (load) as one of its inputs and, only if
// the whole reload succeeds, publishes it (serve); handshakes take the
// current one (getCertificate), so a new certificate applies to new
// handshakes and open connections keep the one they were made with.
type certificate struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

func newCertificate(certFile, keyFile string) *certificate {
	return &certificate{certFile: certFile, keyFile: keyFile}
}

// getCertificate is the tls.Config's GetCertificate.
func (c *certificate) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if cert := c.cur.Load(); cert != nil {
		return cert, nil
	}
	return nil, errors.New("no certificate loaded")
}

// leaf is the served certificate's leaf; nil without one.
func (c *certificate) leaf() *x509.Certificate {
	if c == nil {
		return nil
	}
	if cert := c.cur.Load(); cert != nil {
		return cert.Leaf
	}
	return nil
}

// pair is a certificate and key as read by one reload.
type pair struct {
	cert        *tls.Certificate // nil if the pair did not load
	fingerprint string           // of both files, or of why they could not be read
}

// load reads and checks the pair. The fingerprint is set even when the pair
// does not load, so that a reload of the same broken files is recognized.
// Errors name the setting and the file, never the contents.
func (c *certificate) load() (pair, error) {
	h := sha256.New()
	certPEM, certErr := readPEM(c.certFile)
	keyPEM, keyErr := readPEM(c.keyFile)
	hashFile(h, 'c', c.certFile, certPEM, certErr)
	hashFile(h, 'k', c.keyFile, keyPEM, keyErr)
	p := pair{fingerprint: hex.EncodeToString(h.Sum(nil))}
	var errs []error
	if certErr != nil {
		errs = append(errs, &CertError{Setting: "tls.cert_file", File: c.certFile, Err: unwrapPath(certErr)})
	} else if err := checkChain(certPEM); err != nil {
		errs = append(errs, &CertError{Setting: "tls.cert_file", File: c.certFile, Err: err})
	}
	if keyErr != nil {
		errs = append(errs, &CertError{Setting: "tls.key_file", File: c.keyFile, Err: unwrapPath(keyErr)})
	}
	if len(errs) > 0 {
		return p, errors.Join(errs...)
	}
	// The chain parses, so what X509KeyPair finds wrong is the key: not
	// PEM, not a key, or not the leaf's. Its messages show no key material.
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "tls: ")
		return p, &CertError{Setting: "tls.key_file", File: c.keyFile, Err: fmt.Errorf("%s (certificate %s)", msg, c.certFile)}
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

// serve makes p's certificate the one new handshakes get.
func (c *certificate) serve(p pair) { c.cur.Store(p.cert) }

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

// summary describes the pair's leaf for the log and a reload's changes.
func (p pair) summary() string {
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

// Diagnostic is e as a diagnostic, placed at the file.
func (e *CertError) Diagnostic() config.Diagnostic {
	return config.Diagnostic{File: e.File, Code: "tls_certificate", Severity: "error", Message: e.Setting + ": " + e.Err.Error()}
}

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

// inputsFingerprint is the fingerprint of a reload's inputs: the config's
// alone without TLS, so that it matches `awakend check`, and otherwise
// the config's and the pair's together.
func inputsFingerprint(configFP string, p *pair) string {
	if p == nil {
		return configFP
	}
	h := sha256.New()
	hashFile(h, 'f', "config", []byte(configFP), nil)
	hashFile(h, 't', "tls", []byte(p.fingerprint), nil)
	return hex.EncodeToString(h.Sum(nil))
}
