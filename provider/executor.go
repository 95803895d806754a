package provider

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/awakend/awakend/registry"
)

// API is a wire format a request to an upstream speaks.
type API uint8

// The APIs. Every executor serves APIChat, translating it where its
// upstream speaks another; the others are passed through, each by the
// executors whose upstream speaks it (see Caller.Serves).
const (
	APIChat        API = iota // OpenAI chat completions
	APIMessages               // Anthropic's Messages API
	APICountTokens            // Anthropic's count_tokens
	APIEmbeddings             // OpenAI embeddings
	APIResponses              // OpenAI Responses API
	apiCount
)

var apiNames = [apiCount]string{"chat completions", "Messages", "count_tokens", "embeddings", "Responses"}

func (a API) String() string {
	if a < apiCount {
		return apiNames[a]
	}
	return "API " + strconv.Itoa(int(a))
}

// Caller is what the gateway needs of an executor: one chat completion,
// in OpenAI's wire format both ways, whatever the provider speaks; and
// the requests of the other APIs its upstream speaks, passed through.
type Caller interface {
	registry.Executor
	// Serves reports whether Call accepts requests of api. APIChat is
	// always served; another API is served only where the upstream speaks
	// it, its requests and answers passed through untouched.
	Serves(api API) bool
	// Call sends one request, of Request.API. It returns once the upstream
	// has answered with a success status and, for a stream, before any
	// event has been read, so that the caller can still fail over; any
	// failure up to then is an *Error. The Body of the Response is OpenAI's:
	// a chat.completion JSON object, or for Request.Stream an SSE stream of
	// chat.completion.chunk events ending with "data: [DONE]". Cancelling
	// ctx aborts the upstream call, the body included. For another API
	// than APIChat, the Body is the upstream's answer as it came.
	Call(ctx context.Context, req *Request) (*Response, error)
	// Redact returns text the upstream sent with the provider's secrets
	// removed; the gateway passes an in-band stream error event through it
	// before forwarding it.
	Redact(text []byte) []byte
	// Close closes idle connections once the executor is no longer served.
	Close() error
}

// Request is one request to send upstream.
type Request struct {
	// Body is the request JSON of API (for APIChat, the OpenAI chat
	// completion request), with "model" already set to UpstreamModel.
	// Passed-through APIs and OpenAI-compatible adapters send it as it is.
	Body []byte
	// UpstreamModel is the provider's name of the model.
	UpstreamModel string
	// RequestID is forwarded upstream as X-Request-ID when set.
	RequestID string
	// Header holds headers of the client's request that a passed-through
	// API forwards (Anthropic's anthropic-version and anthropic-beta, in
	// canonical form); they replace the executor's own. Nil for APIChat.
	Header http.Header
	// API is the wire format of Body; the zero value is APIChat.
	API API
	// Stream is true when the body asks for "stream": true.
	Stream bool
	// Adaptive says that the model takes Anthropic's effort setting
	// (adaptive thinking) rather than a thinking budget for a
	// reasoning_effort (registry.ThinkingAdaptive).
	Adaptive bool
}

// Response is a successful upstream answer, already in OpenAI's format.
type Response struct {
	StatusCode int
	// Header holds exactly the headers the gateway's client may see:
	// Content-Type (always set), the upstream's rate-limit headers
	// (x-ratelimit-*, anthropic-ratelimit-*), Retry-After, retry-after-ms,
	// openai-processing-ms, and the upstream's request id (x-request-id,
	// or Anthropic's request-id) as UpstreamRequestIDHeader. Their values
	// hold none of the provider's secrets. Everything else the upstream
	// sent (cookies, framing, encoding, its infrastructure) stays behind.
	Header http.Header
	// Body must be closed by the caller.
	Body io.ReadCloser
}

// Class is the kind of an upstream failure, for failover decisions.
type Class string

// Failure classes.
const (
	ClassRateLimit      Class = "rate_limit"      // 429; 402 (credits or quota exhausted)
	ClassOverloaded     Class = "overloaded"      // 503, 529, Anthropic overloaded_error
	ClassServer         Class = "server"          // other 5xx; a connection lost before the answer
	ClassTimeout        Class = "timeout"         // no answer within the provider's timeout; 408
	ClassConnect        Class = "connect"         // could not connect (refused, DNS, TLS)
	ClassAuth           Class = "auth"            // 401, 403
	ClassNotFound       Class = "not_found"       // 404: unknown model or path; 3xx: base_url redirects
	ClassInvalidRequest Class = "invalid_request" // 400, 413, 422, other 4xx: the request itself is wrong
	ClassCanceled       Class = "canceled"        // the client went away
)

// Error is an upstream call that failed: returned by Call, before any byte
// of the answer was passed on, or by a Read of the answer's body when the
// upstream broke a bound (a stream idle for the timeout, an event over
// MaxStreamEvent, an answer too large).
type Error struct {
	Class      Class
	StatusCode int           // upstream HTTP status, 0 if none
	RetryAfter time.Duration // from Retry-After, 0 if none
	// Message says what happened, without secrets.
	Message string
	// Type and Code are OpenAI's error envelope fields to answer with.
	Type, Code string
	// Header holds the headers of a failed upstream answer that the
	// gateway's client may see, filtered and redacted as Response.Header's
	// but without Content-Type (the client gets the gateway's envelope):
	// a 429's rate limits and Retry-After, the upstream's request id. It is
	// nil when no answer came.
	Header http.Header

	// cause is the transport or context error behind the failure, if any.
	cause error
}

func (e *Error) Error() string {
	if e.StatusCode != 0 {
		return fmt.Sprintf("upstream %s (HTTP %d): %s", e.Class, e.StatusCode, e.Message)
	}
	return fmt.Sprintf("upstream %s: %s", e.Class, e.Message)
}

// Unwrap returns the transport or context error behind e, if any, so that
// errors.Is(err, context.Canceled) holds for a call the client abandoned.
func (e *Error) Unwrap() error { return e.cause }

// Retryable reports whether another member of a pool may succeed where
// this one failed: rate limits, overload, server errors, timeouts and
// connection failures. Requests the upstream found wrong, and auth
// failures, are not retried elsewhere.
func (e *Error) Retryable() bool {
	switch e.Class {
	case ClassRateLimit, ClassOverloaded, ClassServer, ClassTimeout, ClassConnect:
		return true
	}
	return false
}
