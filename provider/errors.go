package provider

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// maxErrorBody bounds how much of an upstream error body is read, before
// and after decoding.
const maxErrorBody = 64 << 10

// Bounds of the texts taken from upstream for an *Error: its message, and
// its type and code.
const (
	maxMessage = 512
	maxCode    = 128
)

// statusError turns a non-2xx upstream response into an *Error. It reads
// and closes the body.
func (e *Executor) statusError(resp *http.Response) *Error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	resp.Body.Close()
	if coding, ok := contentCoding(resp.Header); !ok {
		b = nil // not readable; the status says enough
	} else if coding != "" {
		b, _ = io.ReadAll(io.LimitReader(&decodedBody{raw: io.NopCloser(bytes.NewReader(b)), coding: coding}, maxErrorBody))
	}
	err := classify(resp.StatusCode, resp.Header, b, e.now(), e.secrets)
	err.Header = e.passHeaders(resp.Header, "")
	return err
}

// classify builds the *Error for an upstream answer with a non-2xx status:
// the class from the status (refined by Anthropic's error type when the
// body has one), Retry-After, and the message, type and code of the
// upstream's error envelope, each with sec redacted from it and then cut
// to its bound. It understands OpenAI's envelope
// {"error": {"message", "type", "code"}}, Anthropic's
// {"type": "error", "error": {"type", "message"}}, and the shapes of common
// OpenAI-compatible servers ({"error": "text"}, {"message": ...}).
func classify(status int, h http.Header, body []byte, now time.Time, sec secrets) *Error {
	e := &Error{Class: statusClass(status), StatusCode: status, RetryAfter: retryAfter(h, now)}
	var env struct {
		Type    string          `json:"type"`
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(body, &env) == nil {
		var inner struct {
			Message string          `json:"message"`
			Type    string          `json:"type"`
			Code    json.RawMessage `json:"code"`
		}
		var text string
		switch {
		case json.Unmarshal(env.Error, &inner) == nil:
			e.Message, e.Type, e.Code = inner.Message, inner.Type, codeString(inner.Code)
			if env.Type == "error" { // Anthropic: its error type is precise
				if c, ok := anthropicErrorClass(inner.Type); ok {
					e.Class = c
				}
			}
		case json.Unmarshal(env.Error, &text) == nil:
			e.Message = text
		default:
			e.Message = env.Message
		}
	}
	if status >= 300 && status < 400 {
		e.Message = "upstream redirected (HTTP " + strconv.Itoa(status) + "); check base_url"
		if loc, err := url.Parse(h.Get("Location")); err == nil && loc.Host != "" {
			e.Message += ": redirected to " + loc.Scheme + "://" + loc.Host + loc.Path
		}
	}
	// Redact first: a secret cut in two by the bound would leave its
	// first part behind.
	e.Message = clip(strings.TrimSpace(sec.redact(e.Message)), maxMessage)
	e.Type = clip(sec.redact(e.Type), maxCode)
	e.Code = clip(sec.redact(e.Code), maxCode)
	if e.Message == "" {
		e.Message = http.StatusText(status)
		if e.Message == "" {
			e.Message = "HTTP " + strconv.Itoa(status)
		}
	}
	if e.Type == "" {
		e.Type = defaultType(e.Class)
	}
	return e
}

// statusClass maps an upstream HTTP status to a failure class.
func statusClass(status int) Class {
	switch {
	case status == http.StatusTooManyRequests, status == http.StatusPaymentRequired:
		return ClassRateLimit
	case status == http.StatusServiceUnavailable, status == 529:
		return ClassOverloaded
	case status == http.StatusRequestTimeout:
		return ClassTimeout
	case status >= 500:
		return ClassServer
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		return ClassAuth
	case status == http.StatusNotFound, status >= 300 && status < 400:
		return ClassNotFound
	default: // 400, 413, 422 and every other 4xx
		return ClassInvalidRequest
	}
}

// anthropicErrorClass maps an Anthropic error type to a failure class.
func anthropicErrorClass(t string) (Class, bool) {
	switch t {
	case "overloaded_error":
		return ClassOverloaded, true
	case "rate_limit_error":
		return ClassRateLimit, true
	case "authentication_error", "permission_error":
		return ClassAuth, true
	case "invalid_request_error", "request_too_large":
		return ClassInvalidRequest, true
	case "not_found_error":
		return ClassNotFound, true
	case "api_error":
		return ClassServer, true
	case "timeout_error":
		return ClassTimeout, true
	}
	return "", false
}

// defaultType is the OpenAI error type to answer with when the upstream
// named none.
func defaultType(c Class) string {
	switch c {
	case ClassInvalidRequest, ClassNotFound:
		return "invalid_request_error"
	case ClassAuth:
		return "authentication_error"
	case ClassRateLimit:
		return "rate_limit_error"
	case ClassTimeout:
		return "timeout_error"
	case ClassCanceled:
		return "canceled"
	}
	return "server_error"
}

// codeString renders an envelope's code, a string or a number, as text.
func codeString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	if n := strings.TrimSpace(string(raw)); n != "" && n != "null" && (n[0] == '-' || n[0] >= '0' && n[0] <= '9') {
		return n
	}
	return ""
}

// clip cuts s to n bytes at a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// maxRetryAfter bounds a Retry-After so that absurd values cannot overflow.
const maxRetryAfter = 24 * time.Hour

// retryAfter reads how long the upstream asks to wait: OpenAI's
// retry-after-ms, else Retry-After as seconds or as an HTTP date. It is 0
// when the headers say nothing usable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
			return seconds(f / 1000)
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return seconds(f)
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter)
	}
	return 0
}

func seconds(f float64) time.Duration {
	if math.IsNaN(f) || f <= 0 {
		return 0
	}
	if f >= maxRetryAfter.Seconds() {
		return maxRetryAfter
	}
	return time.Duration(f * float64(time.Second))
}

// transportError turns a failed round trip into an *Error: canceled when
// the caller's ctx was canceled, timeout on a deadline, connect when no
// connection could be made, server when one broke before the answer.
func (e *Executor) transportError(ctx context.Context, err error) *Error {
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err // url.Error's text repeats the URL; keep it out
	}
	c := transportClass(ctx, err)
	msg := cause.Error()
	switch c {
	case ClassCanceled:
		msg = "client canceled the request"
		cause = ctx.Err()
	case ClassTimeout:
		if ctx.Err() == nil && e.timeout > 0 {
			msg = "no answer within " + e.timeout.String() + ": " + msg
		}
	}
	return &Error{Class: c, Message: clip(e.secrets.redact(msg), maxMessage), Type: defaultType(c), cause: cause}
}

// transportClass classifies a round-trip error.
func transportClass(ctx context.Context, err error) Class {
	switch ctx.Err() {
	case context.Canceled:
		return ClassCanceled
	case context.DeadlineExceeded:
		return ClassTimeout
	}
	var op *net.OpError
	if errors.As(err, &op) && (op.Op == "dial" || op.Op == "proxyconnect") {
		return ClassConnect
	}
	var (
		dns    *net.DNSError
		verify *tls.CertificateVerificationError
		header tls.RecordHeaderError
		alert  tls.AlertError
		auth   x509.UnknownAuthorityError
		host   x509.HostnameError
		cert   x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &dns), errors.As(err, &verify), errors.As(err, &header),
		errors.As(err, &alert), errors.As(err, &auth), errors.As(err, &host), errors.As(err, &cert),
		errors.Is(err, syscall.ECONNREFUSED):
		return ClassConnect
	}
	// net/http reports a plain-HTTP server behind an https URL with an
	// untyped error made from the TLS record header error.
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return ClassConnect
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ClassTimeout
	}
	return ClassServer
}

// canceled is the *Error for a call whose ctx ended before an answer.
func canceled(ctx context.Context) *Error {
	c := ClassCanceled
	msg := "client canceled the request"
	if ctx.Err() == context.DeadlineExceeded {
		c, msg = ClassTimeout, "deadline exceeded before the answer"
	}
	return &Error{Class: c, Message: msg, Type: defaultType(c), cause: ctx.Err()}
}

// quote renders a text taken from upstream for a message of the
// executor's: redacted, cut short and quoted.
func (e *Executor) quote(s string) string {
	return strconv.Quote(clip(e.secrets.redact(s), maxCode))
}
