package edge

import (
	"net/http"
	"strconv"

	"github.com/awakend/awakend/anthropic"
)

// WriteAnthropicError answers e in Anthropic's error shape,
// {"type":"error","error":{"type","message"}}, with the status Anthropic
// uses for its type, and returns that status: an error of the gateway's
// own status has the type Anthropic gives that status (502 and other 5xx
// become 500 api_error, 503 becomes 529 overloaded_error); a type that is
// already one of Anthropic's is kept.
func WriteAnthropicError(w http.ResponseWriter, status int, e *Error) int {
	status, typ := AnthropicStatus(status, e.Type)
	b := anthropic.ErrorBody(typ, e.Message)
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["X-Content-Type-Options"] = nosniff
	h["Content-Length"] = []string{strconv.Itoa(len(b) + 1)}
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return status
}

// AnthropicStatus maps a status and an error type (OpenAI's or
// Anthropic's) to the status and type Anthropic answers with.
func AnthropicStatus(status int, typ string) (int, string) {
	switch status {
	case http.StatusBadRequest:
		return status, "invalid_request_error"
	case http.StatusUnauthorized:
		return status, "authentication_error"
	case http.StatusPaymentRequired:
		return status, "billing_error"
	case http.StatusForbidden:
		return status, "permission_error"
	case http.StatusNotFound:
		return status, "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return status, "request_too_large"
	case http.StatusTooManyRequests:
		return status, "rate_limit_error"
	case http.StatusGatewayTimeout:
		return status, "timeout_error"
	case http.StatusServiceUnavailable, 529:
		return 529, "overloaded_error"
	}
	if status >= 500 {
		return http.StatusInternalServerError, "api_error"
	}
	switch typ {
	case "invalid_request_error", "authentication_error", "permission_error", "not_found_error", "rate_limit_error":
		return status, typ
	}
	return status, "invalid_request_error"
}
