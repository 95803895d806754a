package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/awakend/awakend/provider"
)

// Error types of OpenAI's envelope.
const (
	typeInvalidRequest = "invalid_request_error"
	typeServer         = "server_error"
	typeRateLimit      = "rate_limit_error"
)

// apiError is the inside of OpenAI's error envelope. Param is null when
// empty, as OpenAI sends it.
type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

func (e *apiError) Error() string { return e.Message }

// envelope is OpenAI's error envelope.
type envelope struct {
	Error *apiError `json:"error"`
}

var errNotReady = &apiError{Message: "No configuration is being served yet.", Type: typeServer, Code: ptr("not_ready")}

func ptr(s string) *string { return &s }

// newError returns an envelope body with a code and, if param is not
// empty, a param.
func newError(typ, code, param, msg string) *apiError {
	e := &apiError{Message: msg, Type: typ}
	if code != "" {
		e.Code = &code
	}
	if param != "" {
		e.Param = &param
	}
	return e
}

// fail answers an error in OpenAI's envelope and records the status.
func (g *Gateway) fail(w http.ResponseWriter, rs *reqState, status int, e *apiError) {
	rs.status = status
	if rs.errMsg == "" {
		rs.errMsg = e.Message
	}
	b, _ := json.Marshal(envelope{e})
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["X-Content-Type-Options"] = nosniff
	h["Content-Length"] = []string{strconv.Itoa(len(b) + 1)}
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

var (
	jsonContentType = []string{"application/json"}
	nosniff         = []string{"nosniff"}
)

// classify turns whatever an attempt returned into a *provider.Error. A
// cancelled request context wins; an error that is not a *provider.Error
// (a contract violation of the executor) counts as a server failure.
func classify(ctx interface{ Err() error }, err error) *provider.Error {
	if ctx.Err() != nil {
		return &provider.Error{Class: provider.ClassCanceled, Message: "the client closed the request"}
	}
	var pe *provider.Error
	if errors.As(err, &pe) {
		return pe
	}
	return &provider.Error{Class: provider.ClassServer, Message: err.Error()}
}

// statusOf is the status answered to the client for an upstream failure:
// the upstream's own status for the client's mistakes, a gateway status
// for failures of the upstream.
func statusOf(e *provider.Error) int {
	switch e.Class {
	case provider.ClassRateLimit:
		return http.StatusTooManyRequests
	case provider.ClassOverloaded:
		return http.StatusServiceUnavailable
	case provider.ClassTimeout:
		return http.StatusGatewayTimeout
	case provider.ClassServer, provider.ClassConnect:
		return http.StatusBadGateway
	case provider.ClassCanceled:
		return statusClientClosed
	}
	if e.StatusCode >= 400 && e.StatusCode < 500 {
		return e.StatusCode
	}
	switch e.Class {
	case provider.ClassAuth:
		return http.StatusUnauthorized
	case provider.ClassNotFound:
		return http.StatusNotFound
	}
	return http.StatusBadRequest
}

// statusClientClosed is nginx's status for a client that went away before
// the answer; it is only logged and counted, never sent.
const statusClientClosed = 499

// envelopeOf is the error body answered for an upstream failure: the
// upstream's type and code when the executor gave them.
func envelopeOf(e *provider.Error) *apiError {
	typ, code := e.Type, e.Code
	if typ == "" {
		switch e.Class {
		case provider.ClassRateLimit:
			typ = typeRateLimit
		case provider.ClassAuth, provider.ClassNotFound, provider.ClassInvalidRequest:
			typ = typeInvalidRequest
		default:
			typ = typeServer
		}
	}
	if code == "" {
		code = "upstream_" + string(e.Class)
	}
	msg := e.Message
	if msg == "" {
		msg = "The upstream provider failed (" + string(e.Class) + ")."
	}
	return newError(typ, code, "", msg)
}

// retryAfterSecs renders a duration as a Retry-After value: whole seconds,
// rounded up, at least 1.
func retryAfterSecs(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.FormatInt(s, 10)
}
