// Package edge owns what awakend's HTTP routes share at the edge, where
// requests from clients that may not be trusted arrive: OpenAI's error
// envelope and its writer (and Anthropic's, for its routes), the
// bearer-token check, the Host/Origin guard of routes no token guards, the
// header that names the configuration version a response was computed
// from, and the TLS certificate, reloaded with the configuration.
//
// The api and gateway packages serve their routes with it. A Guard and a
// Keys are built from the settings and only read afterwards; a KeysVar and
// a Certificate are replaced whole by a reload while requests read them.
package edge

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// VersionHeader is the response header carrying the registry version a
// response was computed from.
const VersionHeader = "X-Awakend-Config-Version"

// Error types of the envelope, as OpenAI names them.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeAuthentication = "authentication_error"
	TypePermission     = "permission_error"
	TypeRateLimit      = "rate_limit_error"
	TypeServer         = "server_error"
)

// Error is the inside of OpenAI's error envelope. It marshals as
// {"message", "type", "param", "code"}, with param and code null when
// empty, as OpenAI sends them.
type Error struct {
	Message string
	Type    string
	Param   string
	Code    string
}

// NewError returns an envelope's error of type typ with code, param and
// message msg.
func NewError(typ, code, param, msg string) *Error {
	return &Error{Message: msg, Type: typ, Param: param, Code: code}
}

// UnknownURL is the 404 of a path under /v1, or /v1 itself, that the
// gateway does not serve: it names the routes that it does, since a client
// that gets here most often has a base URL or a path slightly wrong.
func UnknownURL(method, path string) *Error {
	return NewError(TypeInvalidRequest, "unknown_url", "", "Unknown request URL: "+method+" "+path+
		". The gateway serves POST /v1/chat/completions, POST /v1/messages, POST /v1/messages/count_tokens,"+
		" POST /v1/embeddings, POST /v1/responses, GET /v1/models and GET /v1/models/{id};"+
		" an OpenAI or Anthropic SDK takes http://<listen address>/v1 as its base URL.")
}

// MarshalJSON renders e in OpenAI's shape.
func (e Error) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	}{e.Message, e.Type, orNull(e.Param), orNull(e.Code)})
}

func orNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Envelope is OpenAI's error envelope, {"error": {...}}.
type Envelope struct {
	Error *Error `json:"error"`
}

// Marshal returns e's envelope as JSON.
func Marshal(e *Error) []byte {
	b, _ := json.Marshal(Envelope{e}) // strings only: it cannot fail
	return b
}

// WriteError answers status with e's envelope as the body.
func WriteError(w http.ResponseWriter, status int, e *Error) {
	b := Marshal(e)
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
