package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// daemonTLS verifies the daemon that reload and diff reach on loopback,
// where the names in its certificate do not match the address. It accepts
// the certificate in certFile (as read now), or one that the system trusts
// for a name of that certificate (roots; nil means the system's): after a
// renewal the daemon may serve the new certificate or, until its reload,
// the old one.
func daemonTLS(certFile string, roots *x509.CertPool) (*tls.Config, error) {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file: %w (or pass --url)", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("tls.cert_file %s: no PEM CERTIFICATE block", certFile)
	}
	want, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file %s: %w", certFile, err)
	}
	return &tls.Config{
		// Verified by VerifyConnection instead: the standard check would
		// ask for the loopback address among the certificate's names.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the daemon sent no certificate")
			}
			got := cs.PeerCertificates[0]
			if got.Equal(want) {
				return nil
			}
			intermediates := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				intermediates.AddCert(c)
			}
			for _, name := range want.DNSNames {
				if _, err := got.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, Intermediates: intermediates}); err == nil {
					return nil
				}
			}
			return fmt.Errorf("the daemon's certificate is neither the one in %s nor trusted for its names", certFile)
		},
	}, nil
}
