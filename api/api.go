// Package api owns awakend's HTTP API apart from inference: the registry read
// API under /api/v1, the admin reload route, /healthz, /readyz and /metrics;
// the admin-token and loopback checks that guard them; the error envelope;
// and the JSON views that keep secrets out of every response.
//
// It holds no state beyond the one registry snapshot each request reads at
// the edge and passes down.
//
// # Routes
//
//	GET  /api/v1/status                              200
//	GET  /api/v1/providers                           200
//	GET  /api/v1/providers/{id}                      200, 404
//	GET  /api/v1/providers/{id}/removal-preview      200, 404
//	GET  /api/v1/models, /api/v1/models/{id}         200, 404
//	GET  /api/v1/model-pools, /api/v1/model-pools/{id}  200, 404
//	GET  /api/v1/agents, /api/v1/agents/{id}         200, 404
//	GET  /api/v1/agents/{id}/resolve                 200, 404
//	POST /api/v1/reload[?force=false]                200 applied or unchanged, 422 rejected, 400 bad force, 503 loop stopped or request cancelled
//	GET  /healthz                                    200 while the process serves
//	GET  /readyz                                     200 once a snapshot serves, else 503
//	GET  /metrics                                    Options.Metrics
//
// Every GET route answers HEAD too. A known path with another method gets
// 405 with Allow; an unknown path gets 404. Every /api/v1 route answers 503
// while no snapshot serves. Errors use OpenAI's envelope
// {"error": {"message", "type", "code"}}.
//
// Every response carries X-Awakend-Config-Version, the version of the
// snapshot the request read (absent while none serves). POST /api/v1/reload
// carries the version serving when the reload finished.
//
// # Access
//
// With an admin token configured, every /api/v1 route (unknown ones included,
// so that routes cannot be probed) needs "Authorization: Bearer <token>" and
// answers 401 with WWW-Authenticate otherwise; /healthz, /readyz and /metrics
// stay open. Tokens are compared in constant time, as SHA-256 sums of equal
// length.
//
// Without a token, the read routes are open and POST /api/v1/reload is
// refused (403) unless the peer is a loopback address (127.0.0.0/8, ::1). The
// peer is the TCP peer, r.RemoteAddr: behind a reverse proxy every request
// comes from the proxy, so configure a token there. A peer address that is
// not an IP (a Unix socket) counts as non-loopback.
//
// # Secrets
//
// Provider API keys, provider header values and remote agents' bearer tokens
// are never served: providers show has_api_key and
// adapter_options.header_names, agents show endpoint.auth as
// {"type", "has_token"}, and the user information of URLs is masked.
package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/awakend/awakend/registry"
	"github.com/awakend/awakend/reload"
)

// VersionHeader is the response header carrying the registry version a
// response was computed from.
const VersionHeader = "X-Awakend-Config-Version"

// Reloader runs reloads and reports on them; *reload.Loop implements it.
type Reloader interface {
	// Reload asks for a reload and waits for its result.
	Reload(ctx context.Context, req reload.Request) (reload.Result, error)
	// Status reports the latest reloads and the watcher's health.
	Status() reload.Status
}

// Options configure the API handler.
type Options struct {
	// Handle serves the registry snapshots. Nil means no snapshot serves
	// yet: /readyz answers 503, and so does every /api/v1 read route.
	Handle *registry.Handle
	// Reloader runs POST /api/v1/reload and feeds /api/v1/status. Nil
	// leaves the status without reload information and the reload route
	// answering 503.
	Reloader Reloader
	// Metrics is served at GET /metrics; nil leaves the route out.
	Metrics http.Handler
	// AdminToken, when set, is required as a bearer token by every /api/v1
	// route. When empty, reloads are accepted from loopback peers only.
	AdminToken string
	// Diagnostics renders the error of a rejected reload as a JSON-able list
	// of diagnostics, e.g. a *config.Error's Diagnostics. It returns nil for
	// an error it does not know; the API then serves a registry
	// validation error's diagnostics, or [{"message": err.Error()}].
	Diagnostics func(error) any
	// Logger receives one line per admin action; nil discards.
	Logger *slog.Logger
	// Version is awakend's build version, served by the status route.
	Version string
	// Started is when the daemon started, served by the status route.
	Started time.Time
}

// server is the handler New returns.
type server struct {
	opts     Options
	log      *slog.Logger
	tokenSum [sha256.Size]byte // of opts.AdminToken, when set
	mux      *http.ServeMux
}

// handlerFunc serves one request from one snapshot.
type handlerFunc func(w http.ResponseWriter, r *http.Request, snap *registry.Snapshot)

// New returns the handler of the routes listed in the package comment.
func New(opts Options) http.Handler {
	s := &server{opts: opts, log: opts.Logger, mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if opts.AdminToken != "" {
		s.tokenSum = sha256.Sum256([]byte(opts.AdminToken))
	}

	routes := []struct {
		method, path string
		h            handlerFunc
	}{
		{http.MethodGet, "/api/v1/status", s.ready(s.status)},
		{http.MethodGet, "/api/v1/providers", s.ready(providers.list)},
		{http.MethodGet, "/api/v1/providers/{id}", s.ready(providers.item)},
		{http.MethodGet, "/api/v1/providers/{id}/removal-preview", s.ready(s.removalPreview)},
		{http.MethodGet, "/api/v1/models", s.ready(models.list)},
		{http.MethodGet, "/api/v1/models/{id}", s.ready(models.item)},
		{http.MethodGet, "/api/v1/model-pools", s.ready(pools.list)},
		{http.MethodGet, "/api/v1/model-pools/{id}", s.ready(pools.item)},
		{http.MethodGet, "/api/v1/agents", s.ready(agents.list)},
		{http.MethodGet, "/api/v1/agents/{id}", s.ready(agents.item)},
		{http.MethodGet, "/api/v1/agents/{id}/resolve", s.ready(s.resolveAgent)},
		{http.MethodPost, "/api/v1/reload", s.reload},
		{http.MethodGet, "/healthz", s.healthz},
		{http.MethodGet, "/readyz", s.readyz},
	}
	if opts.Metrics != nil {
		routes = append(routes, struct {
			method, path string
			h            handlerFunc
		}{http.MethodGet, "/metrics", func(w http.ResponseWriter, r *http.Request, _ *registry.Snapshot) {
			opts.Metrics.ServeHTTP(w, r)
		}})
	}

	allowed := map[string][]string{}
	var paths []string
	for _, rt := range routes {
		s.mux.Handle(rt.method+" "+rt.path, s.withSnapshot(rt.h))
		if allowed[rt.path] == nil {
			paths = append(paths, rt.path)
		}
		allowed[rt.path] = append(allowed[rt.path], rt.method)
		if rt.method == http.MethodGet {
			allowed[rt.path] = append(allowed[rt.path], http.MethodHead)
		}
	}
	// A path without a method matches what the patterns above do not: the
	// other methods, answered with 405 and the envelope (ServeMux's own 405
	// is plain text).
	for _, p := range paths {
		allow := strings.Join(allowed[p], ", ")
		s.mux.Handle(p, s.withSnapshot(func(w http.ResponseWriter, r *http.Request, _ *registry.Snapshot) {
			w.Header().Set("Allow", allow)
			writeError(w, http.StatusMethodNotAllowed, typeInvalidRequest, "method_not_allowed",
				"method "+r.Method+" is not allowed on "+r.URL.Path+" (allowed: "+allow+")")
		}))
	}
	s.mux.Handle("/", s.withSnapshot(func(w http.ResponseWriter, r *http.Request, _ *registry.Snapshot) {
		writeError(w, http.StatusNotFound, typeInvalidRequest, "not_found", "no route for "+r.Method+" "+r.URL.Path)
	}))
	return s
}

// snapshotKey is the context key of the request's snapshot.
type snapshotKey struct{}

// ServeHTTP reads the snapshot the request will be served from, stamps its
// version on the response, checks the admin token for /api routes, and
// routes.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var snap *registry.Snapshot
	if s.opts.Handle != nil {
		snap = s.opts.Handle.Current()
	}
	if snap != nil {
		w.Header().Set(VersionHeader, strconv.FormatUint(snap.Version, 10))
	}
	if r.URL.Path == "/api" || strings.HasPrefix(r.URL.Path, "/api/") {
		w.Header().Set("Cache-Control", "no-store")
		if s.opts.AdminToken != "" && !s.authorize(w, r) {
			return
		}
	}
	s.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), snapshotKey{}, snap)))
}

// withSnapshot adapts h to the mux, handing it the request's snapshot.
func (s *server) withSnapshot(h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		snap, _ := r.Context().Value(snapshotKey{}).(*registry.Snapshot)
		h(w, r, snap)
	})
}

// ready answers 503 while no snapshot serves, and runs h otherwise.
func (s *server) ready(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, snap *registry.Snapshot) {
		if snap == nil {
			writeError(w, http.StatusServiceUnavailable, typeServer, "not_ready", "no configuration is being served yet")
			return
		}
		h(w, r, snap)
	}
}

// authorize checks the bearer token and answers 401 when it is missing or
// wrong.
func (s *server) authorize(w http.ResponseWriter, r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="awakend"`)
		writeError(w, http.StatusUnauthorized, typeAuthentication, "missing_token",
			"this route needs the admin token as a bearer token (Authorization: Bearer <token>)")
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	if subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) != 1 {
		s.log.Debug("admin token rejected", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
		w.Header().Set("WWW-Authenticate", `Bearer realm="awakend", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, typeAuthentication, "invalid_token", "the bearer token is not the admin token")
		return false
	}
	return true
}

// loopback reports whether a request's peer address is a loopback address.
func loopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// Error types of the envelope, as OpenAI names them.
const (
	typeInvalidRequest = "invalid_request_error"
	typeAuthentication = "authentication_error"
	typePermission     = "permission_error"
	typeServer         = "server_error"
)

// errorBody is the inside of OpenAI's error envelope.
type errorBody struct {
	Message string `json:"message"`
	Type    string `json:"type"`
	Code    string `json:"code"`
}

// errorEnvelope is OpenAI's error envelope.
type errorEnvelope struct {
	Error errorBody `json:"error"`
}

// writeError writes an error envelope.
func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	writeJSON(w, status, errorEnvelope{errorBody{Message: msg, Type: typ, Code: code}})
}

// writeJSON writes v as the JSON body of a response with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a programming error gets here: every view marshals.
		status = http.StatusInternalServerError
		b, _ = json.Marshal(errorEnvelope{errorBody{Message: "encoding the response failed", Type: typeServer, Code: "internal_error"}})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// sortedKeys returns the keys of m in order, never nil.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
