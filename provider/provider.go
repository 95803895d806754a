// Package provider builds the executors that registry providers hold: one
// per provider spec, each a Caller that speaks OpenAI's chat completions
// wire format to the gateway whatever the provider speaks upstream, and
// passes through the other APIs its upstream speaks (see API).
//
// Three adapter kinds exist:
//
//   - openai: any OpenAI-compatible endpoint. The request body is sent as it
//     is and the answer, JSON or SSE, is passed back byte for byte (decoded
//     first if the upstream compressed it); embeddings and the Responses
//     API likewise.
//   - anthropic: Anthropic's Messages API. Chat completion requests,
//     responses and stream events are translated both ways (package
//     anthropic has the mapping); Messages and count_tokens requests are
//     passed through.
//   - mock: no network; deterministic replies shaped by adapter_options.mock,
//     tool calls and embeddings included.
//
// Each HTTP executor owns one http.Transport, so that a reload that keeps a
// provider's spec keeps its warm connections, and a changed or removed
// provider's connections can be closed once drained.
//
// Upstreams are not trusted: the size of an answer's headers, of a
// non-stream answer and of one stream event is bounded, and so is the time
// to each; a compressed answer is decoded whole or refused; the headers
// passed on are a fixed set; and the provider's secrets are scrubbed from
// every error and header passed on, before anything is cut short.
package provider

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/awakend/awakend/registry"
)

// AnthropicVersion is the anthropic-version header sent to the Messages API
// unless the provider's adapter_options.anthropic_version names another.
const AnthropicVersion = "2026-10-21"

// samplingRemoved is the first API version without temperature, top_p and
// top_k.
const samplingRemoved = "2026-10-21"

// UpstreamRequestIDHeader carries the upstream's own id of a call (OpenAI's
// x-request-id, Anthropic's request-id) in Response.Header and
// Error.Header, apart from the gateway's X-Request-ID.
const UpstreamRequestIDHeader = "X-Upstream-Request-Id"

// MaxStreamEvent bounds one event of a stream from an upstream, in bytes,
// line endings included: an event or a line over it fails the stream
// instead of growing memory. Each event of a stream the anthropic adapter
// translates fits in it too.
const MaxStreamEvent = 1 << 20

// maxResponseHeader bounds the status line and headers of an answer.
const maxResponseHeader = 64 << 10

// maxResponseBody bounds a non-stream answer read into memory, before and
// after decoding.
const maxResponseBody = 64 << 20

// Executor calls one upstream provider. For the HTTP adapters it holds the
// provider's connection pool. It is safe for concurrent use.
type Executor struct {
	kind    string
	timeout time.Duration

	// HTTP adapters. All of these are read-only after construction and
	// shared by concurrent requests.
	url     *url.URL           // chat completions, or what the adapter translates them to
	native  [apiCount]*url.URL // the endpoint of each API passed through; nil where none
	header  http.Header
	tr      *http.Transport
	secrets secrets // scrubbed from every error and header passed on

	// Draining: once retired (Close), the last call to finish closes the
	// connections that calls in flight left idle.
	inflight atomic.Int64
	retired  atomic.Bool

	// idKey names the upstream's request id header, altKey the other
	// name it may go by.
	idKey, altKey string

	// ad is what the adapter kind does, chosen once by New.
	ad adapter

	now func() time.Time
}

// adapter is what differs between the adapter kinds: one type each
// (openaiAdapter, anthropicAdapter, mockAdapter), chosen by New, the only
// place that looks at the kind.
type adapter interface {
	// call sends req, of an API that serves accepts, through e.
	call(ctx context.Context, e *Executor, req *Request) (*Response, error)
	// serves reports whether the adapter accepts requests of api.
	serves(e *Executor, api API) bool
}

// openaiAdapter passes every request through: chat completions,
// embeddings and the Responses API.
type openaiAdapter struct{}

func (openaiAdapter) call(ctx context.Context, e *Executor, req *Request) (*Response, error) {
	if req.API == APIChat {
		return e.pass(ctx, e.url, req)
	}
	return e.pass(ctx, e.native[req.API], req)
}

func (openaiAdapter) serves(e *Executor, api API) bool { return api == APIChat || e.native[api] != nil }

var _ Caller = (*Executor)(nil)

// New returns the executor for spec: a Caller for every adapter kind. It
// opens no connection. The provider's timeout_secs is the total time of a
// non-stream call; for a stream, the time to the response headers and then
// the longest wait for the next bytes.
func New(spec registry.ProviderSpec) (registry.Executor, error) {
	return build(spec, time.Duration(spec.TimeoutSecs)*time.Second)
}

// build is New with the timeout as a duration, so that tests need not wait
// whole seconds.
func build(spec registry.ProviderSpec, timeout time.Duration) (*Executor, error) {
	a, ok := registry.LookupAdapter(spec.Adapter)
	if !ok {
		return nil, fmt.Errorf("provider %q: unknown adapter %q", spec.ID, spec.Adapter)
	}
	e := &Executor{kind: a.Kind, timeout: timeout, now: time.Now, idKey: "X-Request-Id", altKey: "Request-Id"}
	if a.Kind == registry.KindMock {
		m := &mockAdapter{}
		if spec.AdapterOptions.Mock != nil {
			m.opts = *spec.AdapterOptions.Mock
		}
		e.ad = m
		return e, nil
	}

	base := strings.TrimRight(spec.EffectiveBaseURL(), "/")
	var endpoint string
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "awakend")
	var native [apiCount]string
	switch a.Kind {
	case registry.KindOpenAI:
		endpoint = base + "/chat/completions"
		native[APIEmbeddings] = base + "/embeddings"
		native[APIResponses] = base + "/responses"
		e.ad = openaiAdapter{}
		if spec.APIKey != "" {
			h.Set("Authorization", "Bearer "+spec.APIKey)
		}
	case registry.KindAnthropic:
		// Accept a base URL given with or without the /v1 suffix.
		if strings.HasSuffix(base, "/v1") {
			endpoint = base + "/messages"
		} else {
			endpoint = base + "/v1/messages"
		}
		native[APIMessages] = endpoint
		native[APICountTokens] = endpoint + "/count_tokens"
		if spec.APIKey != "" {
			h.Set("X-Api-Key", spec.APIKey)
		}
		version := AnthropicVersion
		if v := spec.AdapterOptions.AnthropicVersion; v != "" {
			version = v
		}
		h.Set("Anthropic-Version", version)
		e.ad = anthropicAdapter{version: version}
		e.idKey, e.altKey = "Request-Id", "X-Request-Id"
	default:
		return nil, fmt.Errorf("provider %q: adapter kind %q has no executor", spec.ID, a.Kind)
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("provider %q: base_url must be an absolute http or https URL", spec.ID)
	}
	for api, n := range native {
		if n != "" {
			e.native[api], _ = url.Parse(n) // endpoint parsed: so does n
		}
	}
	if spec.APIKey != "" {
		e.secrets = append(e.secrets, spec.APIKey)
	}
	for k, v := range spec.AdapterOptions.Headers {
		h.Set(k, v)
		if len(v) >= 8 { // header values may carry credentials
			e.secrets = append(e.secrets, v)
		}
	}
	e.url, e.header = u, h

	dial := 10 * time.Second
	if timeout > 0 && timeout < dial {
		dial = timeout
	}
	// No ResponseHeaderTimeout: the call's own timer (see callBody) bounds
	// the time to the headers, and a second one would only be set and
	// stopped on every request.
	e.tr = &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            (&net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    512,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    dial,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: maxResponseHeader,
		// An HTTP/2 connection that goes silent is probed, and closed
		// when the probe is not answered, rather than kept for its streams.
		HTTP2: &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second},
		// Asking for gzip could hold stream events back until a compressed
		// block fills; an upstream that compresses anyway is decoded (see
		// decode.go).
		DisableCompression: true,
	}
	return e, nil
}

// Name is the adapter kind: "openai", "anthropic" or "mock".
func (e *Executor) Name() string { return e.kind }

// Close retires the executor once no snapshot serves it: idle connections
// close now, and the connections of calls still in flight close as soon as
// the last of them finishes, so a provider replaced by a reload drains
// rather than leaking its pool.
func (e *Executor) Close() error {
	if e.tr == nil {
		return nil
	}
	e.retired.Store(true)
	e.tr.CloseIdleConnections()
	return nil
}

// begin and end bracket an upstream call; end closes the idle connections
// of a retired executor when its last call finishes.
func (e *Executor) begin() { e.inflight.Add(1) }

func (e *Executor) end() {
	if e.inflight.Add(-1) == 0 && e.retired.Load() {
		e.tr.CloseIdleConnections()
	}
}

// Serves reports whether the executor accepts requests of api (see
// Caller). Every executor serves APIChat.
func (e *Executor) Serves(api API) bool { return api < apiCount && e.ad.serves(e, api) }

// Call sends one request upstream; see Caller.
func (e *Executor) Call(ctx context.Context, req *Request) (*Response, error) {
	if !e.Serves(req.API) {
		return nil, invalid("the %s adapter does not serve %s", e.kind, req.API)
	}
	return e.ad.call(ctx, e, req)
}

// pass posts the request's body to u and returns the answer untouched.
func (e *Executor) pass(ctx context.Context, u *url.URL, req *Request) (*Response, error) {
	resp, err := e.do(ctx, u, req.Body, req.Stream, req.RequestID, req.Header)
	if err != nil {
		return nil, err
	}
	ct := contentTypeJSON
	if req.Stream {
		ct = contentTypeSSE
	}
	return &Response{StatusCode: resp.StatusCode, Header: e.passHeaders(resp.Header, ct), Body: resp.Body}, nil
}

// do posts body to the executor's endpoint. It returns the response when the
// upstream answered 2xx, its body decoded of any Content-Encoding, and an
// *Error otherwise; the caller owns the body.
//
// It calls the transport directly rather than through an http.Client: no
// redirect is followed (a 3xx is an error that says to fix base_url), and
// the executor's timeout is one timer per call (see callBody).
func (e *Executor) do(ctx context.Context, u *url.URL, body []byte, stream bool, requestID string, extra http.Header) (*http.Response, error) {
	h := e.header
	if requestID != "" || len(extra) > 0 {
		h = make(http.Header, len(e.header)+1+len(extra))
		for k, v := range e.header {
			h[k] = v // values are never modified, so sharing them is safe
		}
		if requestID != "" {
			h["X-Request-Id"] = []string{requestID}
		}
		for k, v := range extra {
			h[k] = v
		}
	}
	c := &callBody{e: e, stream: stream}
	rctx := ctx
	if e.timeout > 0 {
		rctx, c.cancel = context.WithCancelCause(ctx)
		c.ctx, c.start = rctx, time.Now()
		c.timer = time.AfterFunc(e.timeout, c.expire)
	}
	hr := (&http.Request{
		Method:        http.MethodPost,
		URL:           u,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          newBody(body),
		GetBody:       func() (io.ReadCloser, error) { return newBody(body), nil },
		ContentLength: int64(len(body)),
		Host:          u.Host,
	}).WithContext(rctx)

	e.begin()
	resp, err := e.tr.RoundTrip(hr)
	if err != nil {
		c.finish()
		if te := c.timedOut(); te != nil {
			return nil, te
		}
		return nil, e.transportError(ctx, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		err := e.statusError(resp) // reads and closes the body
		c.finish()
		return nil, err
	}
	coding, ok := contentCoding(resp.Header)
	if !ok {
		resp.Body.Close()
		c.finish()
		return nil, &Error{Class: ClassServer, StatusCode: resp.StatusCode, Type: defaultType(ClassServer),
			Message: "upstream answered in an unsupported Content-Encoding " + e.quote(coding), Header: e.passHeaders(resp.Header, "")}
	}
	// A non-stream answer is bounded as a whole, before and after decoding;
	// a stream's events are bounded one by one, by their reader.
	var limit int64
	if stream {
		c.streaming(time.Now())
	} else {
		limit = maxResponseBody
	}
	c.ReadCloser, c.bound = resp.Body, bound{limit: limit}
	resp.Body = c
	if coding != "" {
		resp.Body = &decodedBody{raw: c, coding: coding, bound: bound{limit: limit}}
	}
	return resp, nil
}

// callBody is one upstream call, and the body of its answer once it came:
// closing the body ends the call. It holds the executor's timeout: one
// timer that cancels the call when the whole of a non-stream call took too
// long, or when a stream took too long to its headers (the request written,
// the headers read, an error body read) or then waited too long for the
// next bytes. The timer is re-armed only when it fires, rather than reset
// on every read.
type callBody struct {
	io.ReadCloser // the upstream body, once the headers came
	e             *Executor
	stream        bool
	bound         // on a non-stream answer

	// Without a timeout these are zero.
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	start  time.Time
	idle   atomic.Bool  // the stream's headers came: the bound is between reads
	last   atomic.Int64 // when bytes last came, as time since start

	once sync.Once
}

// timeoutCause is why the executor's timeout canceled a call.
type timeoutCause struct {
	d    time.Duration
	idle bool // a stream, after its headers
}

func (t *timeoutCause) Error() string {
	if t.idle {
		return "the upstream sent nothing for " + t.d.String()
	}
	return "no answer within " + t.d.String()
}

// expire runs when the timer fires.
func (c *callBody) expire() {
	if c.idle.Load() {
		idle := time.Since(c.start) - time.Duration(c.last.Load())
		if idle < c.e.timeout {
			c.timer.Reset(c.e.timeout - idle)
			return
		}
	}
	c.cancel(&timeoutCause{d: c.e.timeout, idle: c.idle.Load()})
}

// streaming switches a stream's bound from the time to its headers, which
// came at t, to the time between reads.
func (c *callBody) streaming(t time.Time) {
	if c.timer == nil {
		return
	}
	c.last.Store(int64(t.Sub(c.start)))
	c.idle.Store(true)
}

// timedOut is the *Error of a call that the executor's timeout canceled
// (before the caller did), nil otherwise.
func (c *callBody) timedOut() *Error {
	if c.ctx == nil {
		return nil
	}
	cause, ok := context.Cause(c.ctx).(*timeoutCause)
	if !ok {
		return nil
	}
	return &Error{Class: ClassTimeout, Message: cause.Error(), Type: defaultType(ClassTimeout), cause: cause}
}

func (c *callBody) Read(p []byte) (int, error) {
	if c.passed() {
		return c.count(0, nil)
	}
	n, err := c.ReadCloser.Read(c.room(p))
	if n > 0 && c.stream && c.timer != nil {
		c.last.Store(int64(time.Since(c.start)))
	}
	if err != nil && err != io.EOF {
		if te := c.timedOut(); te != nil {
			err = te
		}
	}
	return c.count(n, err)
}

func (c *callBody) Close() error {
	err := c.ReadCloser.Close()
	c.finish()
	return err
}

// finish ends the call, once: it stops the timer, releases the call's
// context and, for a retired executor, its connection.
func (c *callBody) finish() {
	c.once.Do(func() {
		if c.timer != nil {
			c.timer.Stop()
			c.cancel(nil)
		}
		c.e.end()
	})
}

// newBody wraps a request body so that net/http knows it is in memory
// (a NopCloser around a *bytes.Reader) and sends it with the headers in
// one write, rather than flushing the headers first.
func newBody(b []byte) io.ReadCloser { return io.NopCloser(bytes.NewReader(b)) }

// Content types of the answers the gateway receives.
const (
	contentTypeJSON = "application/json"
	contentTypeSSE  = "text/event-stream"
)

// passHeaders strips h, in place, down to the headers the gateway's client
// may see (see Response.Header), the provider's secrets redacted from their
// values. ct is the Content-Type to set when the upstream sent none; an
// empty ct drops Content-Type (for an Error, whose body is not the
// upstream's).
func (e *Executor) passHeaders(h http.Header, ct string) http.Header {
	id := h[e.idKey]
	if len(id) == 0 {
		id = h[e.altKey]
	}
	for k, v := range h {
		if !passed(k) || ct == "" && k == "Content-Type" {
			delete(h, k)
			continue
		}
		for i := range v {
			v[i] = e.secrets.redact(v[i])
		}
	}
	if len(id) > 0 {
		h[UpstreamRequestIDHeader] = []string{e.secrets.redact(id[0])}
	}
	if ct != "" && len(h["Content-Type"]) == 0 {
		h["Content-Type"] = []string{ct}
	}
	return h
}

// passed reports whether the header named k (in canonical form, as
// net/http reads it) is one the gateway's client may see.
func passed(k string) bool {
	switch k {
	case "Content-Type", "Retry-After", "Retry-After-Ms", "Openai-Processing-Ms":
		return true
	}
	return strings.HasPrefix(k, "X-Ratelimit-") || strings.HasPrefix(k, "Anthropic-Ratelimit-")
}
