// Package provider builds the executors that registry providers hold: one
// per provider spec, each a Caller that speaks OpenAI's chat completions
// wire format to the gateway whatever the provider speaks upstream.
//
// Three adapter kinds exist:
//
//   - openai: any OpenAI-compatible endpoint. The request body is sent as it
//     is and the answer, JSON or SSE, is passed back byte for byte.
//   - anthropic: Anthropic's Messages API. Requests, responses and stream
//     events are translated both ways (see anthropic.go for the mapping).
//   - mock: no network; deterministic replies shaped by adapter_options.mock.
//
// Each HTTP executor owns one http.Transport, so that a reload that keeps a
// provider's spec keeps its warm connections, and a changed or removed
// provider's connections can be closed once drained.
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

// AnthropicVersion is the anthropic-version header sent to the Messages API.
const AnthropicVersion = "2023-06-01"

// Executor calls one upstream provider. For the HTTP adapters it holds the
// provider's connection pool. It is safe for concurrent use.
type Executor struct {
	kind    string
	timeout time.Duration

	// HTTP adapters. All of these are read-only after construction and
	// shared by concurrent requests.
	url     *url.URL
	header  http.Header
	tr      *http.Transport // ResponseHeaderTimeout is the provider's timeout
	secrets []string        // scrubbed from every error message

	// Draining: once retired (Close), the last call to finish closes the
	// connections that calls in flight left idle.
	inflight atomic.Int64
	retired  atomic.Bool

	// mock adapter
	mock registry.MockOptions
	seq  atomic.Uint64

	now func() time.Time
}

var _ Caller = (*Executor)(nil)

// New returns the executor for spec: a Caller for every adapter kind. It
// opens no connection. The provider's timeout_secs is the total time of a
// non-stream call, and the time to the response headers of a stream.
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
	e := &Executor{kind: a.Kind, timeout: timeout, now: time.Now}
	if a.Kind == registry.KindMock {
		if spec.AdapterOptions.Mock != nil {
			e.mock = *spec.AdapterOptions.Mock
		}
		return e, nil
	}

	base := strings.TrimRight(spec.EffectiveBaseURL(), "/")
	var endpoint string
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", "awakend")
	switch a.Kind {
	case registry.KindOpenAI:
		endpoint = base + "/chat/completions"
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
		if spec.APIKey != "" {
			h.Set("X-Api-Key", spec.APIKey)
		}
		h.Set("Anthropic-Version", AnthropicVersion)
	default:
		return nil, fmt.Errorf("provider %q: adapter kind %q has no executor", spec.ID, a.Kind)
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("provider %q: base_url must be an absolute http or https URL", spec.ID)
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
	e.tr = &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   dial,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		// Answers pass through as the upstream sent them: asking for gzip
		// would make the transport decompress, and could hold stream
		// events back until a compressed block fills.
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

// Call sends one chat completion request upstream; see Caller.
func (e *Executor) Call(ctx context.Context, req *Request) (*Response, error) {
	switch e.kind {
	case registry.KindOpenAI:
		return e.callOpenAI(ctx, req)
	case registry.KindAnthropic:
		return e.callAnthropic(ctx, req)
	default:
		return e.callMock(ctx, req)
	}
}

// callOpenAI passes the request through and the answer back untouched.
func (e *Executor) callOpenAI(ctx context.Context, req *Request) (*Response, error) {
	resp, err := e.do(ctx, req.Body, req.Stream, req.RequestID)
	if err != nil {
		return nil, err
	}
	ct := contentTypeJSON
	if req.Stream {
		ct = contentTypeSSE
	}
	return &Response{StatusCode: resp.StatusCode, Header: keepHeaders(resp.Header, ct), Body: resp.Body}, nil
}

// do posts body to the executor's endpoint. It returns the response when the
// upstream answered 2xx, and an *Error otherwise; the caller owns the body.
// The executor's timeout bounds a whole answer; for a stream, the wait for
// its headers and then for each next byte (see idleBody).
func (e *Executor) do(ctx context.Context, body []byte, stream bool, requestID string) (*http.Response, error) {
	if !stream || e.timeout <= 0 {
		return e.send(ctx, body, stream, requestID)
	}
	sctx, cancel := context.WithCancelCause(ctx)
	resp, err := e.send(sctx, body, true, requestID)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	resp.Body = newIdleBody(resp.Body, e.timeout, sctx, cancel)
	return resp, nil
}

// send is do without a stream's idle bound.
//
// It calls the transport directly rather than through an http.Client: no
// redirect is followed (a 3xx is an error that says to fix base_url), and
// the total timeout of a non-stream call is a context deadline released
// when the body is closed, where http.Client.Timeout would start a
// goroutine per request.
func (e *Executor) send(ctx context.Context, body []byte, stream bool, requestID string) (*http.Response, error) {
	h := e.header
	if requestID != "" {
		h = make(http.Header, len(e.header)+1)
		for k, v := range e.header {
			h[k] = v // values are never modified, so sharing them is safe
		}
		h["X-Request-Id"] = []string{requestID}
	}
	rctx, cancel := ctx, context.CancelFunc(nil)
	if !stream && e.timeout > 0 {
		rctx, cancel = context.WithTimeout(ctx, e.timeout)
	}
	hr := (&http.Request{
		Method:        http.MethodPost,
		URL:           e.url,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          newBody(body),
		GetBody:       func() (io.ReadCloser, error) { return newBody(body), nil },
		ContentLength: int64(len(body)),
		Host:          e.url.Host,
	}).WithContext(rctx)

	e.begin()
	resp, err := e.tr.RoundTrip(hr)
	if err != nil {
		if cancel != nil {
			cancel()
		}
		e.end()
		return nil, e.transportError(ctx, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		err := e.statusError(resp) // reads and closes the body
		if cancel != nil {
			cancel()
		}
		e.end()
		return nil, err
	}
	resp.Body = &callBody{ReadCloser: resp.Body, cancel: cancel, e: e}
	return resp, nil
}

// callBody ends a call when its body is closed: it releases the call's
// deadline and, for a retired executor, its connection.
type callBody struct {
	io.ReadCloser
	cancel context.CancelFunc // nil without a deadline
	e      *Executor
	once   sync.Once
}

func (b *callBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() {
		if b.cancel != nil {
			b.cancel()
		}
		b.e.end()
	})
	return err
}

// idleBody is the body of a stream whose upstream may stall: when no
// byte arrived for the executor's timeout, it cancels the call (which
// closes the connection) and its Read says why. One timer per stream,
// re-armed only when it fires, rather than reset on every read.
type idleBody struct {
	io.ReadCloser
	ctx     context.Context
	cancel  context.CancelCauseFunc
	timeout time.Duration
	start   time.Time
	last    atomic.Int64 // when a read last returned bytes, as time since start
	timer   *time.Timer
}

func newIdleBody(rc io.ReadCloser, timeout time.Duration, ctx context.Context, cancel context.CancelCauseFunc) *idleBody {
	b := &idleBody{ReadCloser: rc, ctx: ctx, cancel: cancel, timeout: timeout, start: time.Now()}
	b.timer = time.AfterFunc(timeout, b.check)
	return b
}

// errIdle is the cause of a stream's cancellation by its idle bound.
type errIdle time.Duration

func (e errIdle) Error() string {
	return "the upstream sent nothing for " + time.Duration(e).String()
}

// check runs when the timer fires: it ends the stream if it has been idle
// for the whole timeout, and waits for the rest of it otherwise.
func (b *idleBody) check() {
	idle := time.Since(b.start) - time.Duration(b.last.Load())
	if idle < b.timeout {
		b.timer.Reset(b.timeout - idle)
		return
	}
	b.cancel(errIdle(b.timeout))
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.last.Store(int64(time.Since(b.start)))
	}
	if err != nil && err != io.EOF {
		if cause, ok := context.Cause(b.ctx).(errIdle); ok {
			err = &Error{Class: ClassTimeout, Message: cause.Error()}
		}
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.ReadCloser.Close()
	b.cancel(nil)
	return err
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

// keepHeaders strips h, in place, down to the headers worth forwarding to
// the gateway's client: Content-Type, set to ct when the upstream sent none.
// Everything else (cookies, upstream infrastructure, Content-Length of a
// body that may be translated) stays behind.
func keepHeaders(h http.Header, ct string) http.Header {
	for k := range h {
		if k != "Content-Type" {
			delete(h, k)
		}
	}
	if len(h["Content-Type"]) == 0 {
		h["Content-Type"] = []string{ct}
	}
	return h
}
