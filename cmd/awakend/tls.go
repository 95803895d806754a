package main

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// daemonTLS verifies the daemon that reload and diff reach on loopback,
// where the names in its certificate do not match the address. The daemon
// must prove that it holds the key of the certificate in certFile or the
// key in keyFile, as they are now: while the files are being replaced, and
// until the daemon's reload of them, it serves the previous pair, which
// shares one of them with what is on disk (or the reload is rejected and
// must still be reported). A certificate that the system (roots; nil means
// the system's pool) trusts for a name of the one in certFile is accepted
// too, for a renewal of both files the daemon has not applied yet. (A
// client that meets a certificate it does not accept tries again once the
// daemon has had the time to apply the files, see client.settle.)
func daemonTLS(certFile, keyFile string, roots *x509.CertPool) (*tls.Config, error) {
	var keys []crypto.PublicKey
	var names []string
	var errs []error
	if leaf, err := readLeaf(certFile); err != nil {
		errs = append(errs, fmt.Errorf("tls.cert_file %s: %w", certFile, err))
	} else {
		keys, names = append(keys, leaf.PublicKey), leaf.DNSNames
	}
	if pub, err := readPublicKey(keyFile); err != nil {
		errs = append(errs, fmt.Errorf("tls.key_file %s: %w", keyFile, err))
	} else {
		keys = append(keys, pub)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("cannot verify the daemon (or pass --url): %w", errors.Join(errs...))
	}
	return &tls.Config{
		// Verified by VerifyConnection instead: the standard check would
		// ask for the loopback address among the certificate's names.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the daemon sent no certificate")
			}
			// The handshake proved that the daemon holds the private key
			// of the certificate it sent.
			got := cs.PeerCertificates[0]
			for _, k := range keys {
				if pub, ok := got.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); ok && pub.Equal(k) {
					return nil
				}
			}
			intermediates := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				intermediates.AddCert(c)
			}
			for _, name := range names {
				if _, err := got.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: intermediates}); err == nil {
					return nil
				}
			}
			return &certMismatch{certFile: certFile, keyFile: keyFile}
		},
	}, nil
}

// certMismatch is a daemon whose certificate daemonTLS does not accept.
type certMismatch struct{ certFile, keyFile string }

func (e *certMismatch) Error() string {
	return fmt.Sprintf("the daemon's certificate matches neither %s nor %s, and is not trusted for their names "+
		"(if both were replaced, the daemon did not apply them: see its log)", e.certFile, e.keyFile)
}

// readLeaf reads the first certificate of a PEM file.
func readLeaf(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return nil, errors.New("no PEM CERTIFICATE block")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

// readPublicKey reads the public half of a PEM private key file. Errors
// show no key material.
func readPublicKey(path string) (crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return nil, errors.New("no PEM PRIVATE KEY block")
		}
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue
		}
		var key any
		if key, err = x509.ParsePKCS8PrivateKey(b.Bytes); err != nil {
			if key, err = x509.ParsePKCS1PrivateKey(b.Bytes); err != nil {
				key, err = x509.ParseECPrivateKey(b.Bytes)
			}
		}
		signer, ok := key.(crypto.Signer)
		if err != nil || !ok {
			return nil, errors.New("not a private key")
		}
		return signer.Public(), nil
	}
}
