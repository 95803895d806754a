package gateway

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/awakend/awakend/edge"
	"github.com/awakend/awakend/provider"
)

var jsonContentType = []string{"application/json"}

var errNotReady = edge.NewError(edge.TypeServer, "not_ready", "", "No configuration is being served yet.")

// fail answers an error in OpenAI's envelope (Anthropic's on its routes)
// and records the status.
func (g *Gateway) fail(w http.ResponseWriter, rs *reqState, status int, e *edge.Error) {
	if rs.errMsg == "" {
		rs.errMsg = e.Message
	}
	if rs.anthropic {
		status = edge.WriteAnthropicError(w, status, e)
	} else {
		edge.WriteError(w, status, e)
	}
	rs.status = status
}

// classify turns an error of an upstream call or its body into a
// *provider.Error; one that is not a *provider.Error (a contract violation
// of the executor, or a body's plain read error) counts as a server
// failure.
func classify(err error) *provider.Error {
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
func envelopeOf(e *provider.Error) *edge.Error {
	typ, code := e.Type, e.Code
	if typ == "" {
		switch e.Class {
		case provider.ClassRateLimit:
			typ = edge.TypeRateLimit
		case provider.ClassAuth, provider.ClassNotFound, provider.ClassInvalidRequest:
			typ = edge.TypeInvalidRequest
		default:
			typ = edge.TypeServer
		}
	}
	if code == "" {
		code = "upstream_" + string(e.Class)
	}
	msg := e.Message
	if msg == "" {
		msg = "The upstream provider failed (" + string(e.Class) + ")."
	}
	return edge.NewError(typ, code, "", msg)
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
