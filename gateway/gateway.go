// Package gateway owns awakend's inference endpoint under /v1: POST
// /v1/chat/completions (streaming and not), GET /v1/models and GET
// /v1/models/{id}, and the other client APIs of messages.go (Anthropic's
// Messages and count_tokens, OpenAI's embeddings and Responses). It routes
// each request through the registry: a model to its provider, a model
// pool to one of its members, an agent (with its system prompt and
// reasoning effort) to its model or pool. What follows describes chat
// completions; the other APIs share the routing, failover, breakers,
// headers, logs and metrics.
//
// Beyond the one snapshot a request reads at the edge, the gateway keeps
// only state that must outlive a reload: a circuit breaker per upstream target
// (provider id + model id), a round-robin counter per pool, and per client
// id its limiter and usage. What it derives from a snapshot (the routing
// table, the /v1/models answers) is computed once per snapshot and shared
// by the requests that read it.
//
// # Access
//
// With Options.APIKeys set or any client declared in the request's
// snapshot, every request needs one of those keys as a bearer token, or on
// Anthropic's routes as x-api-key (401 otherwise). Without keys, every
// request goes through Options.Guard instead: a loopback peer that names
// another Host (DNS rebinding) or a cross-origin POST from a browser is
// refused with 403.
//
// A client's key limits it to its scope (a name outside it is answered as
// one that does not exist, 404 model_not_found) and to its limits, token
// buckets per client id kept across reloads (429 with Retry-After beyond;
// OpenAI's x-ratelimit-* headers on every answer of a limited client).
// A settings key is no client: unscoped, unlimited, counted as NoClient.
//
// # Requests
//
// A body is read as its bytes arrive, within Options.BodyTimeout (408
// beyond) and up to Options.MaxBodyBytes (413 beyond, at once when the
// Content-Length says so). It is parsed once, cheaply: after a validity
// check, only the top-level members are scanned and only model, messages,
// stream, user, reasoning_effort and the sampling parameters (temperature,
// top_p, top_k) are looked at. The upstream body is the client's bytes
// with the model value replaced by the target's upstream model (and, for
// an agent, the system message and reasoning effort spliced in; for a
// model whose sampling rule is drop, the sampling parameters cut out):
// unknown fields and their formatting pass through byte for byte. A
// top-level key the gateway interprets that appears twice is refused (400),
// so that the gateway and the upstream cannot read different values of it.
//
// # Agents
//
// An agent's system_prompt is sent as a system message before the
// client's messages (a client's own system message follows it). Its
// reasoning_effort is sent when the client's body has no reasoning_effort
// member (an explicit null counts as set): low, medium and high are sent
// as they are; max becomes "high", OpenAI's highest level every reasoning
// model accepts; none and a token budget ({budget: N}) send nothing, since
// OpenAI has no budget and not every model accepts "none", so the
// upstream's default applies. Remote agents (endpoint set) are not served
// here: 400 with code remote_agent.
//
// # Pools
//
// The home member is chosen among the member-role targets by
// routing.home: deterministic is weighted rendezvous hashing of the
// session key (the X-Awakend-Session header, else the body's user field,
// else the request id, which spreads requests); round_robin is a per-pool
// counter over the members, each member getting a run as long as its
// weight; first_healthy is declaration order. After the home, the other
// members follow in the same order, then the failover_only members. A
// member whose breaker is open is skipped (that is not an attempt).
//
// Failover happens only before the first byte is written to the client
// and only on retryable upstream failures (429, 5xx and overload, connect
// errors, timeouts, and an upstream that fails before its first event).
// Other failures (400, 401, 403, 404, 422) are answered with the
// upstream's status and error. The pool's switch policy is honoured as
// follows:
//
//   - on_circuit_open: true skips members with an open breaker; false
//     calls them anyway (the breaker still counts).
//   - on_quota: false answers a 429 to the client instead of switching.
//   - quota_retry_after_threshold_secs: a 429 whose Retry-After is below
//     the threshold is answered to the client (it will soon succeed on
//     the same member); a longer one, or one without Retry-After, switches.
//   - max_switches_per_session: caps the attempts of one request at
//     1 + N. The gateway has no sessions across requests: a request is
//     the session.
//   - on_permanent: not used. The failures awaken calls permanent (auth,
//     unknown model, invalid request) are the client's answer here,
//     never a reason to switch.
//
// When every member failed, the last failure is answered: 429 (with
// Retry-After), 502, 503 or 504 in OpenAI's error envelope, with the
// X-Awakend-Attempts header. When every member was skipped for an open
// breaker: 503 with Retry-After.
//
// # Circuit breakers
//
// Each target has a breaker keyed by provider id and model id, shared by
// every model, pool and agent that reaches it and kept across reloads
// while the key stays in the registry. BreakerFailures (5) consecutive
// retryable failures before the first byte open it for BreakerOpen (30 s);
// then one probe request goes through (half-open): its success closes the
// breaker, its failure opens it again. Any success, and any answer from
// the upstream that is not a retryable failure, resets the count. A
// single model whose breaker is open fails fast: 503 with Retry-After.
// Failures after the first byte of a stream do not count.
//
// # Streaming
//
// With "stream": true the upstream's SSE body is forwarded event by
// event, each event written whole and flushed at once. Keep-alive
// comments (": ping") are forwarded like events: they keep the client's
// proxies from timing the stream out during long pauses. The first event
// forwarded commits the stream to its member: an upstream failure after
// it is sent as a final event data: {"error": {...}} with no [DONE]; so is
// an upstream event larger than the relay's bound, which before the first
// event is a failure that may fail over. An error event from the upstream
// itself is forwarded as the stream's last event, with none of the
// gateway's after it. A client that disconnects cancels the upstream
// call.
//
// # Responses
//
// Every response carries X-Awakend-Config-Version (the snapshot's version)
// and X-Request-ID (the client's, if it is 1 to 128 visible ASCII
// characters, else a generated one; it is forwarded upstream). Served
// completions carry X-Awakend-Model (the model id that served),
// X-Awakend-Provider and X-Awakend-Attempts. Errors use OpenAI's envelope
// {"error": {"message", "type", "param", "code"}}.
//
// The headers the provider passes on from the upstream's answer (rate
// limits, Retry-After, the upstream's request id as X-Upstream-Request-Id,
// ...) are copied onto the client's, a failed answer's included; the
// gateway's own headers and framing headers are never taken from an
// upstream.
//
// # Logs and metrics
//
// Each request logs one line at Info ("request") with its id, its client
// (NoClient for none), the name requested and the model that served,
// provider, attempts, status, stream, durations, config version and the
// token usage the upstream reported (a stream reports it when the client
// asked for it with stream_options.include_usage). No
// bodies, prompts or keys are logged. Metrics: awakend_requests_total
// {route, model, provider, code} where model is a registry id or
// "unknown", awakend_upstream_duration_seconds{provider},
// awakend_time_to_first_token_seconds{provider} (streams: request start
// to the first data event forwarded) and awakend_gateway_overhead_seconds
// (a request's total time minus its upstream time). The usage a served
// request reports is counted per client and serving model, with its cost
// at the model's prices: awakend_tokens_total{client, model, direction}
// and awakend_cost_usd_total{client, model}, and Gateway.ClientUsage
// (the usage of no client only while metrics or the log line take it, and
// read after its answer is sent). A client that went away is logged and
// counted with status 499, as nginx does.
package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/awakend/awakend/edge"
	"github.com/awakend/awakend/provider"
	"github.com/awakend/awakend/registry"
)

// Response and request headers of the gateway.
const (
	// ModelHeader names the model id that served a completion.
	ModelHeader = "X-Awakend-Model"
	// ProviderHeader names the provider id that served a completion.
	ProviderHeader = "X-Awakend-Provider"
	// AttemptsHeader counts the upstream calls a completion took.
	AttemptsHeader = "X-Awakend-Attempts"
	// SessionHeader, on a request, is the session key that homes it in a
	// deterministic pool; it takes precedence over the body's user field.
	SessionHeader = "X-Awakend-Session"
	// RequestIDHeader is the request id, taken from the client or
	// generated, echoed in the response and forwarded upstream.
	RequestIDHeader = "X-Request-ID"
)

// Defaults of Options.
const (
	DefaultMaxBodyBytes    = 16 << 20
	DefaultBodyTimeout     = 60 * time.Second
	DefaultBreakerFailures = 5
	DefaultBreakerOpen     = 30 * time.Second
)

// Options configure a Gateway.
type Options struct {
	// Handle serves the registry snapshots. Nil answers 503 on every
	// route.
	Handle *registry.Handle
	// Logger receives one line per request; nil discards.
	Logger *slog.Logger
	// Metrics, when set, is where the request metrics are registered.
	Metrics prometheus.Registerer
	// Keys holds the settings' client keys (gateway.api_keys), accepted as
	// bearer tokens on /v1/*; a reload may replace them. None, and no
	// client declared, leaves the gateway open, behind Guard.
	Keys *edge.KeysVar
	// Guard checks every request while no key is set; nil means
	// edge.NewGuard(), which knows no listen address.
	Guard *edge.Guard
	// MaxBodyBytes limits request bodies (413 beyond); 0 means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// BodyTimeout bounds the time a request body takes to arrive (408
	// beyond); 0 means DefaultBodyTimeout.
	BodyTimeout time.Duration
	// BreakerFailures is the number of consecutive retryable failures
	// that open a target's circuit breaker; 0 means
	// DefaultBreakerFailures.
	BreakerFailures int
	// BreakerOpen is how long an open breaker refuses calls before it
	// lets one probe through; 0 means DefaultBreakerOpen.
	BreakerOpen time.Duration
	// Now is the clock; nil means time.Now. Tests inject one to move
	// breakers through their states.
	Now func() time.Time
}

// Gateway serves the /v1 routes. It is safe for concurrent use.
type Gateway struct {
	handle   *registry.Handle
	log      *slog.Logger
	keys     *edge.KeysVar
	guard    *edge.Guard
	maxBody  int64
	bodyFor  time.Duration
	failures int32
	openFor  int64 // nanoseconds
	now      func() time.Time
	epoch    time.Time
	m        *gatewayMetrics

	idPrefix string
	idSeq    atomic.Uint64

	// table is the routing table of the newest snapshot served.
	table atomic.Pointer[table]

	mu       sync.Mutex // guards breakers, counters and table compilation
	breakers map[breakerKey]*breaker
	counters map[string]*atomic.Uint64
	accounts map[string]*account // by client id

	anon *account // the usage of requests no client key made
}

// New returns a gateway serving opts.Handle.
func New(opts Options) *Gateway {
	g := &Gateway{
		handle:   opts.Handle,
		log:      opts.Logger,
		keys:     opts.Keys,
		guard:    opts.Guard,
		maxBody:  opts.MaxBodyBytes,
		bodyFor:  opts.BodyTimeout,
		failures: int32(opts.BreakerFailures),
		openFor:  int64(opts.BreakerOpen),
		now:      opts.Now,
		m:        newMetrics(opts.Metrics),
		breakers: map[breakerKey]*breaker{},
		counters: map[string]*atomic.Uint64{},
		accounts: map[string]*account{},
		anon:     &account{id: NoClient},
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.guard == nil {
		g.guard = edge.NewGuard()
	}
	if g.maxBody <= 0 {
		g.maxBody = DefaultMaxBodyBytes
	}
	if g.bodyFor <= 0 {
		g.bodyFor = DefaultBodyTimeout
	}
	if g.failures <= 0 {
		g.failures = DefaultBreakerFailures
	}
	if g.openFor <= 0 {
		g.openFor = int64(DefaultBreakerOpen)
	}
	if g.now == nil {
		g.now = time.Now
	}
	g.epoch = g.now()
	var seed [4]byte
	_, _ = rand.Read(seed[:])
	g.idPrefix = hex.EncodeToString(seed[:]) + "-"
	if opts.Metrics != nil {
		// A second gateway on one registry (tests) keeps the first's.
		_ = opts.Metrics.Register(breakerCollector{g})
	}
	return g
}

// clock returns the time since the gateway started, in nanoseconds, for
// breaker deadlines.
func (g *Gateway) clock() int64 { return int64(g.now().Sub(g.epoch)) }

// Route names, the route label of awakend_requests_total.
const (
	routeChat        = "chat_completions"
	routeMessages    = "messages"
	routeCountTokens = "count_tokens"
	routeEmbeddings  = "embeddings"
	routeResponses   = "responses"
	routeModels      = "models"
	routeOther       = "other"
)

// ServeHTTP serves the /v1 routes from one registry snapshot.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rs := getState()
	defer putState(rs)
	g.m.inFlight.Inc()
	defer g.m.inFlight.Dec()
	rs.start = g.now()
	rs.id = g.requestID(r)
	h := w.Header()
	h["X-Request-Id"] = []string{rs.id}

	route := routeOther
	switch path := r.URL.Path; {
	case path == "/v1/chat/completions":
		route = routeChat
	case path == "/v1/messages":
		route, rs.api, rs.anthropic = routeMessages, provider.APIMessages, true
	case path == "/v1/messages/count_tokens":
		route, rs.api, rs.anthropic = routeCountTokens, provider.APICountTokens, true
	case path == "/v1/embeddings":
		route, rs.api = routeEmbeddings, provider.APIEmbeddings
	case path == "/v1/responses":
		route, rs.api = routeResponses, provider.APIResponses
	case path == "/v1/models" || strings.HasPrefix(path, "/v1/models/"):
		route = routeModels
	}
	rs.route = route

	if g.handle == nil {
		g.fail(w, rs, http.StatusServiceUnavailable, errNotReady)
		g.finish(r.Context(), w, rs)
		return
	}
	snap := g.handle.Current()
	t := g.tableFor(snap)
	rs.version = snap.Version
	h[edge.VersionHeader] = t.version

	open := g.keys.Load().Len() == 0 && t.clients == nil
	switch {
	case open && g.refused(w, r, rs):
	case !open && !g.authenticate(r, rs, t):
		how := "\"Authorization: Bearer <key>\""
		if rs.anthropic {
			how = "\"x-api-key: <key>\" or " + how
		}
		msg := "Incorrect API key provided. Send a key configured in awakend as " + how + "."
		if r.Header.Get("Authorization") == "" && (!rs.anthropic || r.Header.Get("X-Api-Key") == "") {
			msg = "You didn't provide an API key. Send a key configured in awakend as " + how + "."
		}
		h.Set("WWW-Authenticate", `Bearer realm="awakend"`)
		g.fail(w, rs, http.StatusUnauthorized, edge.NewError(edge.TypeInvalidRequest, "invalid_api_key", "", msg))
	case route == routeChat:
		if r.Method != http.MethodPost {
			g.methodNotAllowed(w, r, rs, "POST")
			break
		}
		g.chat(w, r, t, rs)
	case route != routeModels && route != routeOther:
		if r.Method != http.MethodPost {
			g.methodNotAllowed(w, r, rs, "POST")
			break
		}
		g.other(w, r, t, rs)
	case route == routeModels:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			g.methodNotAllowed(w, r, rs, "GET, HEAD")
			break
		}
		g.models(w, r, t, rs)
	default:
		g.fail(w, rs, http.StatusNotFound, edge.UnknownURL(r.Method, r.URL.Path))
	}
	g.finish(r.Context(), w, rs)
}

func (g *Gateway) methodNotAllowed(w http.ResponseWriter, r *http.Request, rs *reqState, allow string) {
	w.Header().Set("Allow", allow)
	g.fail(w, rs, http.StatusMethodNotAllowed, edge.NewError(edge.TypeInvalidRequest, "method_not_allowed", "",
		"Method "+r.Method+" is not allowed on "+r.URL.Path+" (allowed: "+allow+")."))
}

// refused answers a request the guard refuses, and reports whether it did.
func (g *Gateway) refused(w http.ResponseWriter, r *http.Request, rs *reqState) bool {
	status, e := g.guard.Check(r)
	if e == nil {
		return false
	}
	g.fail(w, rs, status, e)
	return true
}

// requestID returns the client's X-Request-ID when it is 1 to 128 visible
// ASCII characters, or a new id unique to this process.
func (g *Gateway) requestID(r *http.Request) string {
	if v := r.Header["X-Request-Id"]; len(v) == 1 && validID(v[0]) {
		return v[0]
	}
	var b [32]byte
	n := copy(b[:], g.idPrefix)
	return string(strconv.AppendUint(b[:n], g.idSeq.Add(1), 10))
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// finish sends the answer, then records the request's metrics and logs
// its line: the client does not wait for that bookkeeping (the log line
// is a write of its own).
func (g *Gateway) finish(ctx context.Context, w http.ResponseWriter, rs *reqState) {
	took := g.now().Sub(rs.start)
	// A client's usage is counted before the flush: a small non-streaming
	// answer is still in net/http's buffer, so the client's next request,
	// and GET /api/v1/clients, see this one's usage and tokens taken. The
	// usage of no client only feeds the metrics and the log line: it waits
	// until the answer is on its way, and is not read at all when neither
	// is there to take it.
	anon := rs.client == nil
	if !anon {
		g.account(rs)
	}
	if rs.status != statusClientClosed {
		if f, ok := w.(http.Flusher); ok {
			f.Flush() // every answer here has its Content-Length, or is a stream
		}
	}
	logged := g.log.Enabled(ctx, slog.LevelInfo)
	if anon && (g.m.exported || logged) {
		g.account(rs)
	}
	g.m.request(rs)
	if rs.attempts > 0 {
		g.m.overhead.Observe((took - rs.upstream).Seconds())
	}
	if !logged {
		return
	}
	clientID := NoClient
	if rs.client != nil {
		clientID = rs.client.id
	}
	attrs := make([]slog.Attr, 0, 17)
	attrs = append(attrs,
		slog.String("id", rs.id),
		slog.String("client", clientID),
		slog.String("route", rs.route),
		slog.String("requested", rs.requested),
		slog.String("served", rs.served),
		slog.String("provider", rs.provider),
		slog.Int("attempts", rs.attempts),
		slog.Int("status", rs.status),
		slog.Bool("stream", rs.stream),
		slog.Duration("took", took),
		slog.Duration("upstream", rs.upstream),
		slog.Uint64("version", rs.version),
	)
	if rs.stream && rs.ttft > 0 {
		attrs = append(attrs, slog.Duration("ttft", rs.ttft))
	}
	if rs.promptTokens >= 0 {
		attrs = append(attrs, slog.Int("prompt_tokens", rs.promptTokens), slog.Int("completion_tokens", rs.completionTokens))
	}
	if rs.errMsg != "" {
		attrs = append(attrs, slog.String("error", rs.errMsg))
	}
	g.log.LogAttrs(ctx, slog.LevelInfo, "request", attrs...)
}
