package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/awakend/awakend/edge"
	"github.com/awakend/awakend/internal/sse"
	"github.com/awakend/awakend/provider"
	"github.com/awakend/awakend/registry"
)

// reqState is one request's bookkeeping and buffers; pooled.
type reqState struct {
	start     time.Time
	id        string
	route     string
	api       provider.API // the API the client speaks
	anthropic bool         // errors in Anthropic's shape
	fwd       http.Header  // the client's headers a passed-through API forwards
	version   uint64
	stream    bool
	attempts  int
	status    int

	client  *client // nil: no client key (none declared, or a settings key)
	quota   quota   // the client's limits after admitting the request
	limited bool    // quota is set
	tg      *target // the target that served

	requested, served, provider string
	okCounter                   prometheus.Counter
	upstream, ttft              time.Duration
	promptTokens                int
	completionTokens            int
	errMsg                      string

	in        []byte     // the client's body
	out       []byte     // a non-streaming upstream answer
	forwarded bool       // out was forwarded whole
	ord       [8]*target // backing array of the attempt order
}

// maxPooledBuf is the largest buffer kept for reuse.
const maxPooledBuf = 1 << 20

var statePool = sync.Pool{New: func() any { return new(reqState) }}

func getState() *reqState {
	rs := statePool.Get().(*reqState)
	rs.promptTokens, rs.completionTokens = -1, -1
	return rs
}

func putState(rs *reqState) {
	in, out := rs.in[:0], rs.out[:0]
	if cap(in) > maxPooledBuf {
		in = nil
	}
	if cap(out) > maxPooledBuf {
		out = nil
	}
	*rs = reqState{in: in, out: out}
	statePool.Put(rs)
}

func (rs *reqState) modelLabel() string {
	if rs.requested == "" {
		return "unknown"
	}
	return rs.requested
}

func (rs *reqState) providerLabel() string {
	if rs.provider == "" {
		return "none"
	}
	return rs.provider
}

// chat serves POST /v1/chat/completions.
func (g *Gateway) chat(w http.ResponseWriter, r *http.Request, t *table, rs *reqState) {
	if !g.read(w, r, rs) {
		return
	}
	body, perr := parseChat(rs.in)
	if perr != nil {
		g.fail(w, rs, http.StatusBadRequest, perr)
		return
	}
	rs.stream = body.stream
	rt := g.lookup(w, rs, t, body.stringValue(body.model))
	if rt == nil || !g.admit(w, rs) {
		return
	}
	g.dispatch(w, r, rs, rt, &body)
}

// read reads the request body into rs.in; false when it failed, and the
// failure was answered.
func (g *Gateway) read(w http.ResponseWriter, r *http.Request, rs *reqState) bool {
	var err error
	rs.in, err = g.readRequest(w, r, rs.in[:0])
	if err == nil {
		return true
	}
	w.Header().Set("Connection", "close") // the rest of the body stays unread
	switch {
	case errors.Is(err, errBodyTooLarge):
		g.fail(w, rs, http.StatusRequestEntityTooLarge, edge.NewError(edge.TypeInvalidRequest, "request_too_large", "",
			"The request body exceeds the gateway's limit of "+strconv.FormatInt(g.maxBody, 10)+" bytes."))
	case errors.Is(err, os.ErrDeadlineExceeded):
		g.fail(w, rs, http.StatusRequestTimeout, edge.NewError(edge.TypeInvalidRequest, "request_timeout", "",
			"The request body did not arrive within "+g.bodyFor.String()+"."))
	case r.Context().Err() != nil:
		rs.status = statusClientClosed
	default:
		g.fail(w, rs, http.StatusBadRequest, edge.NewError(edge.TypeInvalidRequest, "invalid_body", "", "Reading the request body failed."))
	}
	return false
}

// lookup returns the local route of name; nil when there is none, and
// that was answered.
func (g *Gateway) lookup(w http.ResponseWriter, rs *reqState, t *table, name []byte) *route {
	rt := t.routes[string(name)]
	if rt == nil || rs.client != nil && !rs.client.may(rt.name) {
		// Out of the client's scope is answered as OpenAI does: the
		// model does not exist, to this key.
		g.fail(w, rs, http.StatusNotFound, edge.NewError(edge.TypeInvalidRequest, "model_not_found", "model",
			"The model '"+clip(name)+"' does not exist"))
		return nil
	}
	rs.requested = rt.name
	if rt.remote {
		g.fail(w, rs, http.StatusBadRequest, edge.NewError(edge.TypeInvalidRequest, "remote_agent", "model",
			"The agent '"+rt.name+"' runs on a remote backend (endpoint); this gateway serves only local agents, models and model pools."))
		return nil
	}
	return rt
}

// dispatch tries the targets of rt's plan in order until one serves the
// request (body, of the API rs.api), failing over as the plan allows, and
// answers the last failure when none did.
func (g *Gateway) dispatch(w http.ResponseWriter, r *http.Request, rs *reqState, rt *route, body *chatBody) {
	p := rt.plan
	var key uint64
	if p.pool && p.home != registry.HomeRoundRobin && p.home != registry.HomeFirstHealthy {
		switch {
		case r.Header.Get(SessionHeader) != "":
			key = fnv64(r.Header.Get(SessionHeader))
		case body.user.ok():
			key = fnv64b(body.stringValue(body.user))
		default:
			key = fnv64(rs.id)
		}
	}
	order := p.order(key, rs.ord[:0])

	ctx := r.Context()
	var last *provider.Error
	var openWait time.Duration
	var dropped *chatBody // body without its sampling members, once needed
	for _, tg := range order {
		if rs.attempts >= p.maxTry {
			break
		}
		if tg.caller == nil {
			last = &provider.Error{Class: provider.ClassServer, Message: "provider '" + tg.providerID + "' cannot serve chat completions", Code: "provider_unsupported"}
			rs.provider = tg.providerID
			continue
		}
		if rs.api > provider.APICountTokens && !tg.caller.Serves(rs.api) {
			last = unsupported(tg, rs.api)
			rs.provider = tg.providerID
			continue
		}
		b := body
		if tg.sampling != "" && tg.sampling != registry.SamplingPass {
			if names := body.sampled(); len(names) > 0 {
				if tg.sampling == registry.SamplingRefuse {
					last = refusedSampling(tg, names)
					rs.provider = tg.providerID
					continue
				}
				if dropped == nil {
					var perr *edge.Error
					if dropped, perr = withoutSampling(body, rs.api); perr != nil {
						g.fail(w, rs, http.StatusBadRequest, perr)
						return
					}
				}
				b = dropped
			}
		}
		now := g.clock()
		ok, probe, wait := tg.breaker.allow(now)
		if !ok && p.skipOpen() {
			if openWait == 0 || wait < openWait {
				openWait = wait
			}
			continue
		}
		rs.attempts++
		if rs.attempts > 1 && p.pool {
			g.m.failover.WithLabelValues(p.id).Inc()
		}
		rs.provider = tg.providerID
		var o outcome
		switch rs.api {
		case provider.APIChat:
			o = g.attempt(ctx, w, rs, rt, tg, b)
		case provider.APIMessages, provider.APICountTokens:
			o = g.attemptMessages(ctx, w, rs, rt, tg, b)
		default:
			o = g.attemptPass(ctx, w, rs, rt, tg, b)
		}
		e := o.failed
		switch {
		case o.gone || e != nil && e.Class == provider.ClassCanceled:
			tg.breaker.release(probe)
			rs.status, rs.errMsg = statusClientClosed, o.msg
			if e != nil {
				rs.errMsg = e.Message
			}
			return
		case o.committed:
			// The stream failed after its first event: the upstream did
			// answer, and the error event is sent.
			tg.breaker.success()
			return
		case e == nil:
			tg.breaker.success()
			return
		case e.Retryable():
			tg.breaker.failure(g.clock(), g.openFor, g.failures, probe)
		default:
			tg.breaker.success() // the upstream answered
		}
		last = e
		if !p.mayFailOver(e) {
			break
		}
	}
	g.failAll(w, rs, p, last, openWait)
}

// readRequest reads the request body into dst within the body timeout. The
// read deadline is cleared afterwards, so that it bounds the body alone and
// never the answer that follows (a stream can take minutes).
func (g *Gateway) readRequest(w http.ResponseWriter, r *http.Request, dst []byte) ([]byte, error) {
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(g.bodyFor)) == nil {
		defer func() { _ = rc.SetReadDeadline(time.Time{}) }()
	}
	return readBody(dst, r.Body, g.maxBody, r.ContentLength)
}

// outcome is how an attempt ended: the answer served (the zero value),
// the upstream's failure before the first byte was written (the request
// may fail over), the client gone, or a stream broken after its first
// event (committed: the client was told in the stream). The last two are
// the gateway's, not failures of the upstream.
type outcome struct {
	failed          *provider.Error
	gone, committed bool
	msg             string // what happened, when gone or committed
}

// failed is the outcome of an upstream failure.
func failed(e *provider.Error) outcome { return outcome{failed: e} }

// ended is the outcome of an error an upstream call or its body returned:
// the client's leaving wins over what the upstream did.
func ended(ctx context.Context, err error) outcome {
	if ctx.Err() != nil {
		return outcome{gone: true, msg: "the client closed the request"}
	}
	return failed(classify(err))
}

// failAll answers a request no target served.
func (g *Gateway) failAll(w http.ResponseWriter, rs *reqState, p *plan, last *provider.Error, openWait time.Duration) {
	h := w.Header()
	h[AttemptsHeader] = []string{strconv.Itoa(rs.attempts)}
	if last == nil {
		// Every target was skipped for an open breaker.
		h["Retry-After"] = []string{retryAfterSecs(openWait)}
		what := "model '" + p.id + "' is"
		if p.pool {
			what = "every member of model pool '" + p.id + "' is"
		}
		g.fail(w, rs, http.StatusServiceUnavailable, edge.NewError(edge.TypeServer, "circuit_open", "",
			"The "+what+" unavailable: the upstream failed repeatedly and its circuit breaker is open."))
		return
	}
	copyHeader(h, last.Header)
	if last.Class == provider.ClassRateLimit && last.RetryAfter > 0 {
		h["Retry-After"] = []string{retryAfterSecs(last.RetryAfter)}
	}
	g.fail(w, rs, statusOf(last), envelopeOf(last))
}

// attempt calls one target and, if it answers, forwards the answer. It
// returns the outcome: served once the answer is forwarded, failed before
// the first byte was written (the request may fail over), the client
// gone, or committed for a stream that broke after its first event
// (already reported to the client).
func (g *Gateway) attempt(ctx context.Context, w http.ResponseWriter, rs *reqState, rt *route, tg *target, body *chatBody) outcome {
	req := provider.Request{
		Body:          body.upstream(nil, tg.upstream, rt.sysMsg, rt.effort),
		UpstreamModel: tg.upstreamName,
		Stream:        body.stream,
		RequestID:     rs.id,
		Adaptive:      tg.adaptive,
	}
	return g.call(ctx, rs, tg, &req,
		func(resp *provider.Response) outcome { return g.stream(ctx, w, rs, rt, tg, resp) },
		func(resp *provider.Response) outcome { return g.forward(ctx, w, rs, rt, tg, resp) })
}

// call sends req to tg and hands its answer to stream or to whole, timing
// the upstream call for the metrics either way.
func (g *Gateway) call(ctx context.Context, rs *reqState, tg *target, req *provider.Request, stream, whole func(*provider.Response) outcome) outcome {
	start := g.now()
	defer g.observeUpstream(rs, tg, start)
	resp, err := tg.caller.Call(ctx, req)
	switch {
	case err != nil:
		return ended(ctx, err)
	case req.Stream:
		return stream(resp)
	}
	return whole(resp)
}

func (g *Gateway) observeUpstream(rs *reqState, tg *target, start time.Time) {
	d := g.now().Sub(start)
	rs.upstream += d
	tg.upstreamObs.Observe(d.Seconds())
}

// maxAnswer bounds a non-streaming answer read into memory.
const maxAnswer = 64 << 20

// forward relays a non-streaming answer: read whole (so that a failure
// while reading can still fail over), then written at once.
func (g *Gateway) forward(ctx context.Context, w http.ResponseWriter, rs *reqState, rt *route, tg *target, resp *provider.Response) outcome {
	defer resp.Body.Close()
	var err error
	rs.out, err = readBody(rs.out[:0], resp.Body, maxAnswer, -1)
	if err != nil {
		if ctx.Err() != nil {
			return ended(ctx, err)
		}
		return failed(&provider.Error{Class: provider.ClassServer, Message: "reading the upstream answer failed: " + err.Error()})
	}
	h := w.Header()
	copyHeader(h, resp.Header)
	if len(h["Content-Type"]) == 0 {
		h["Content-Type"] = jsonContentType
	}
	h["Content-Length"] = []string{strconv.Itoa(len(rs.out))}
	g.served(h, rs, rt, tg)
	status := resp.StatusCode
	if status == 0 {
		status = http.StatusOK
	}
	rs.status = status
	w.WriteHeader(status)
	_, _ = w.Write(rs.out)
	rs.forwarded = true // its usage is read for the log line, after the answer is sent
	return outcome{}
}

// startStream commits a stream's answer: the upstream's headers passed
// through, the event-stream headers, who served it, and 200.
func (g *Gateway) startStream(w http.ResponseWriter, resp *provider.Response, rs *reqState, rt *route, tg *target) {
	h := w.Header()
	copyHeader(h, resp.Header)
	for k, v := range sseHeaders {
		h[k] = v
	}
	g.served(h, rs, rt, tg)
	rs.status = http.StatusOK
	w.WriteHeader(http.StatusOK)
}

// served stamps the headers of a served completion and records who served.
func (g *Gateway) served(h http.Header, rs *reqState, rt *route, tg *target) {
	h[ModelHeader] = tg.modelHdr
	h[ProviderHeader] = tg.provHdr
	h[AttemptsHeader] = attemptsValue(rs.attempts)
	if rs.limited {
		rs.quota.stamp(h) // over the upstream's own
	}
	rs.served, rs.tg = tg.modelID, tg
	rs.okCounter = g.m.okCounter(rs.route, rt, tg)
}

var attemptValues = [...][]string{{"0"}, {"1"}, {"2"}, {"3"}, {"4"}}

func attemptsValue(n int) []string {
	if n < len(attemptValues) {
		return attemptValues[n]
	}
	return []string{strconv.Itoa(n)}
}

// copyHeader copies the headers of an upstream answer onto the client's.
// The provider passes on only those the client may see (rate limits,
// Retry-After, the upstream's request id, ...); as a safety net, the
// gateway's own headers and those that frame a message or belong to the
// upstream's origin are never copied.
func copyHeader(dst, src http.Header) {
	for k, v := range src {
		k = http.CanonicalHeaderKey(k)
		if !ownHeader(k) {
			dst[k] = v
		}
	}
}

// ownHeader reports whether the canonical header name k is the gateway's
// or net/http's to set, never an upstream's.
func ownHeader(k string) bool {
	switch k {
	case "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
		"Te", "Trailer", "Upgrade", "X-Request-Id", "Set-Cookie", "Alt-Svc", "Strict-Transport-Security":
		return true
	}
	return len(k) >= len(awakendPrefix) && k[:len(awakendPrefix)] == awakendPrefix
}

// awakendPrefix starts the gateway's own headers (X-Awakend-Model, ...).
const awakendPrefix = "X-Awakend-"

var sseHeaders = map[string][]string{
	"Content-Type":      {"text/event-stream"},
	"Cache-Control":     {"no-cache"},
	"X-Accel-Buffering": {"no"},
}

// maxStreamEvent bounds one event of an upstream stream: the provider's
// bound, which every event it translates fits.
const maxStreamEvent = provider.MaxStreamEvent

var sseReaders = sync.Pool{New: func() any { return sse.NewReader(nil, maxStreamEvent, 32<<10) }}

// getSSE takes a bounded event reader of body from the pool; putSSE gives
// it back, holding nothing of the stream.
func getSSE(body io.Reader) *sse.Reader {
	rd := sseReaders.Get().(*sse.Reader)
	rd.Reset(body)
	return rd
}

func putSSE(rd *sse.Reader) {
	rd.Reset(nil)
	sseReaders.Put(rd)
}

// stream relays an SSE answer event by event, each written whole and
// flushed. Nothing is written before the first event, so an upstream that
// fails before it can still fail over. The stream ends after [DONE] or an
// upstream error event, forwarded; any other end, or an event over
// maxStreamEvent, fails over before the first event and is told in one
// error event after it.
func (g *Gateway) stream(ctx context.Context, w http.ResponseWriter, rs *reqState, rt *route, tg *target, resp *provider.Response) outcome {
	defer resp.Body.Close()
	rd := getSSE(resp.Body)
	defer putSSE(rd)
	rc := http.NewResponseController(w)
	written, data := false, false
	for {
		ev, err := rd.Next()
		if err == io.EOF && sse.IsDone(ev) {
			// [DONE] without its blank line.
			ev, err = append(bytes.TrimRight(ev, "\r\n"), "\n\n"...), nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ended(ctx, err)
			}
			msg := "the upstream stream ended before [DONE]"
			if err != io.EOF { // a broken stream, or *sse.ErrTooLong
				msg = "the upstream stream failed: " + err.Error()
			}
			if !written {
				return failed(&provider.Error{Class: provider.ClassServer, Message: msg})
			}
			g.streamError(w, rc, rs, msg)
			return outcome{committed: true, msg: msg}
		}
		comment := ev[0] == ':'
		if !written {
			g.startStream(w, resp, rs, rt, tg)
			written = true
		}
		if !comment && !data {
			data = true
			rs.ttft = g.now().Sub(rs.start)
			tg.ttft.Observe(rs.ttft.Seconds())
		}
		if !comment {
			streamUsage(ev, rs)
		}
		failed := sse.IsError(ev)
		if failed {
			// An upstream may echo what it was sent, the key included.
			ev = tg.caller.Redact(ev)
		}
		if _, werr := w.Write(ev); werr != nil {
			return outcome{gone: true, msg: "writing to the client failed"}
		}
		if rc.Flush() != nil {
			return outcome{gone: true, msg: "writing to the client failed"}
		}
		if sse.IsDone(ev) {
			return outcome{}
		}
		if failed {
			// The upstream's own account of its failure ends the stream.
			rs.errMsg = "the upstream stream sent an error event"
			return outcome{committed: true, msg: rs.errMsg}
		}
	}
}

// usageKey starts a chunk's usage member; the last chunk of a stream
// carries the counts when the client asked for them
// (stream_options.include_usage), the others "usage":null or none.
var usageKey = []byte(`"usage"`)

// streamUsage records the token counts of a stream's usage chunk, ev (one
// "data: {…}" event).
func streamUsage(ev []byte, rs *reqState) {
	if !bytes.Contains(ev, usageKey) {
		return
	}
	b := bytes.TrimSpace(ev)
	b, ok := bytes.CutPrefix(b, []byte("data:"))
	if !ok {
		return
	}
	if p, c, ok := usage(bytes.TrimSpace(b)); ok {
		rs.promptTokens, rs.completionTokens = p, c
	}
}

// streamError ends a committed stream with an error event, and no [DONE].
func (g *Gateway) streamError(w http.ResponseWriter, rc *http.ResponseController, rs *reqState, msg string) {
	rs.errMsg = msg
	b := edge.Marshal(edge.NewError(edge.TypeServer, "upstream_stream_error", "", msg))
	ev := make([]byte, 0, len(b)+8)
	ev = append(ev, "data: "...)
	ev = append(ev, b...)
	ev = append(ev, "\n\n"...)
	_, _ = w.Write(ev)
	_ = rc.Flush()
}

// clip returns at most 200 bytes of a client's name, for messages.
func clip[T []byte | string](name T) string {
	if len(name) > 200 {
		return string(name[:200]) + "…"
	}
	return string(name)
}

// models serves GET /v1/models and GET /v1/models/{id}.
func (g *Gateway) models(w http.ResponseWriter, r *http.Request, t *table, rs *reqState) {
	body := t.list
	if rs.client != nil {
		body = rs.client.modelsFor(t)
	}
	if id, ok := strings.CutPrefix(r.URL.Path, "/v1/models/"); ok {
		rt := t.routes[id]
		if rt == nil || rt.remote || rs.client != nil && !rs.client.may(rt.name) {
			g.fail(w, rs, http.StatusNotFound, edge.NewError(edge.TypeInvalidRequest, "model_not_found", "model",
				"The model '"+clip(id)+"' does not exist"))
			return
		}
		rs.requested = rt.name
		b, _ := json.Marshal(rt.object())
		body = append(b, '\n')
	}
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	rs.status = http.StatusOK
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
