package daemon

import (
	"crypto/x509"
	"log/slog"
	"time"
)

// certWarnBefore is how long before its expiry a served certificate is
// logged as expiring: long enough for a renewal that failed to be noticed
// and fixed by hand.
const certWarnBefore = 14 * 24 * time.Hour

// expiryState is where a certificate stands with regard to its expiry.
type expiryState int

const (
	expiryOK expiryState = iota
	expirySoon
	expired
)

// expiryLog logs the served certificate's expiry once per certificate and
// state: a warning within certWarnBefore of it, an error once past it.
type expiryLog struct {
	leaf  *x509.Certificate // the certificate last checked
	state expiryState
}

// check looks at leaf (nil: none served) at now.
func (e *expiryLog) check(log *slog.Logger, leaf *x509.Certificate, now time.Time) {
	if leaf == nil {
		return
	}
	state := expiryOK
	switch left := leaf.NotAfter.Sub(now); {
	case left <= 0:
		state = expired
	case left < certWarnBefore:
		state = expirySoon
	}
	if leaf == e.leaf && state == e.state {
		return
	}
	e.leaf, e.state = leaf, state
	attrs := []any{"subject", leaf.Subject.String(), "dns_names", leaf.DNSNames, "not_after", leaf.NotAfter}
	switch state {
	case expired:
		log.Error("the tls certificate served has expired; clients refuse it: renew it (the reload after the renewal serves it)", attrs...)
	case expirySoon:
		log.Warn("the tls certificate served expires soon; renew it", append(attrs, "left", leaf.NotAfter.Sub(now).Round(time.Hour))...)
	}
}
