// Package api owns awakend's HTTP API apart from inference: the registry read
// API under /api/v1, the admin reload route, /healthz, /readyz and /metrics;
// which of them the admin token guards and which the edge's Host/Origin
// guard does; and the JSON views that keep secrets out of every response.
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
//	GET  /api/v1/clients, /api/v1/clients/{id}       200, 404 (never a key; usage since start)
//	POST /api/v1/reload[?force=false]                200 applied or unchanged, 422 rejected, 400 bad force, 503 loop stopped or request cancelled
//	GET  /healthz                                    200 while the process serves
//	GET  /readyz                                     200 once a snapshot serves, else 503
//	GET  /metrics                                    Options.Metrics
//
// Every GET route answers HEAD too. A known path with another method gets
// 405 with Allow; an unknown path gets 404. Every /api/v1 route answers 503
// while no snapshot serves. Errors use OpenAI's envelope
// {"error": {"message", "type", "param", "code"}}.
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
// stay open.
//
// Without a token, the read routes are open and POST /api/v1/reload is
// refused (403) unless the peer is a loopback address (127.0.0.0/8, ::1). The
// peer is the TCP peer, r.RemoteAddr: behind a reverse proxy every request
// comes from the proxy, so configure a token there. A peer address that is
// not an IP (a Unix socket) counts as non-loopback.
//
// Over TLS with client CAs (Options.ClientAdmin), a client certificate one
// of them issued stands for the token: it passes every route the token
// guards, and reloads from any peer. Being ambient, as a cookie is, it
// does not spare the request the guard.
//
// Every route no token guards (all of them without a token; /healthz,
// /readyz, /metrics and paths outside /api always) goes through
// Options.Guard first: a loopback peer naming another Host, or a
// cross-origin POST, is refused with 403.
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
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/awakend/awakend/edge"
	"github.com/awakend/awakend/registry"
	"github.com/awakend/awakend/reload"
)

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
	// Admin holds the admin token (a reload may replace it): when set, it
	// is required as a bearer token by every /api/v1 route. When none is,
	// reloads are accepted from loopback peers only.
	Admin *edge.KeysVar
	// NextAdmin, if set, reports whether token is the admin token the
	// settings name now, which the next reload applies ("" when they name
	// none). POST /api/v1/reload accepts it in place of the current one, so
	// that `awakend reload`, which reads the settings, applies a changed
	// token rather than being refused by the old one.
	NextAdmin func(token string) bool
	// ClientAdmin, if set, checks the client certificate of a request's TLS
	// connection, as edge.Certificate.ClientAdmin does: nil when it is the
	// admin's (tls.client_ca_file), which then counts as the admin token
	// does; edge.ErrNoClientCert when there is none to check; otherwise why
	// it was refused. It returns the certificate's subject for the log,
	// and whether it checked the certificate now: a refusal is logged
	// once per check, not once per request.
	ClientAdmin func(r *http.Request) (subject string, checked bool, err error)
	// Guard checks the requests of every route no token guards; nil means
	// edge.NewGuard(), which knows no listen address.
	Guard *edge.Guard
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
	// Source, if set, describes where the config comes from beyond a
	// directory (a fleet's etcd), served as the status route's "source".
	Source func() any
	// Usage, if set, returns a client's usage since start by client id,
	// served as the client's "usage" (a JSON-encodable value, such as the
	// gateway's ClientUsage); nil leaves it out.
	Usage func(client string) any
	// Degraded, if set, says whether the daemon serves a configuration
	// other than its directory's; nil from it, or a nil Degraded, means it
	// does not.
	Degraded func() *Degraded
}

// Degraded describes a daemon that serves its last-known-good
// configuration because its config directory did not validate when it
// started. It lasts until a configuration from the directory is applied.
type Degraded struct {
	// Since is when the daemon started serving it.
	Since time.Time
	// SavedAt is when that configuration was saved, as it went live.
	SavedAt time.Time
	// Fingerprint is the saved configuration's.
	Fingerprint string
	// Reason is why the directory was rejected.
	Reason string
}

// server is the handler New returns.
type server struct {
	opts  Options
	log   *slog.Logger
	guard *edge.Guard
	mux   *http.ServeMux
}

// handlerFunc serves one request from one snapshot.
type handlerFunc func(w http.ResponseWriter, r *http.Request, snap *registry.Snapshot)

// New returns the handler of the routes listed in the package comment.
func New(opts Options) http.Handler {
	s := &server{opts: opts, log: opts.Logger, guard: opts.Guard, mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.guard == nil {
		s.guard = edge.NewGuard()
	}

	clients := resource[registry.ClientSpec, clientView]{"client", (*registry.Set).ClientIDs, (*registry.Set).Client,
		func(c registry.ClientSpec) clientView {
			v := newClientView(c)
			if opts.Usage != nil {
				v.Usage = opts.Usage(c.ID)
			}
			return v
		}}
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
		{http.MethodGet, "/api/v1/clients", s.ready(clients.list)},
		{http.MethodGet, "/api/v1/clients/{id}", s.ready(clients.item)},
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
			writeError(w, http.StatusMethodNotAllowed, edge.TypeInvalidRequest, "method_not_allowed",
				"method "+r.Method+" is not allowed on "+r.URL.Path+" (allowed: "+allow+")")
		}))
	}
	// The gateway serves /v1/ and below; /v1 alone, where a client with a
	// slightly wrong base URL lands, gets the gateway's 404 naming its
	// routes rather than this one's.
	s.mux.HandleFunc("/v1", func(w http.ResponseWriter, r *http.Request) {
		edge.WriteError(w, http.StatusNotFound, edge.UnknownURL(r.Method, r.URL.Path))
	})
	s.mux.Handle("/", s.withSnapshot(func(w http.ResponseWriter, r *http.Request, _ *registry.Snapshot) {
		writeError(w, http.StatusNotFound, edge.TypeInvalidRequest, "not_found", "no route for "+r.Method+" "+r.URL.Path)
	}))
	return s
}

// snapshotKey is the context key of the request's snapshot.
type snapshotKey struct{}

// ServeHTTP reads the snapshot the request will be served from, stamps its
// version on the response, checks the admin token for /api routes when one
// is set and the guard on every other route, and routes.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var snap *registry.Snapshot
	if s.opts.Handle != nil {
		snap = s.opts.Handle.Current()
	}
	if snap != nil {
		w.Header().Set(edge.VersionHeader, strconv.FormatUint(snap.Version, 10))
	}
	guarded := false
	if r.URL.Path == "/api" || strings.HasPrefix(r.URL.Path, "/api/") {
		w.Header().Set("Cache-Control", "no-store")
		guarded = s.opts.Admin.Load().Len() > 0
	}
	if guarded && !s.authorize(w, r) {
		return
	}
	if !guarded {
		if status, e := s.guard.Check(r); e != nil {
			s.log.Warn("request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "host", r.Host, "reason", e.Code)
			edge.WriteError(w, status, e)
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
			writeError(w, http.StatusServiceUnavailable, edge.TypeServer, "not_ready", "no configuration is being served yet")
			return
		}
		h(w, r, snap)
	}
}

// authorize checks the bearer token and answers 401 when it is missing or
// wrong. A reload request may instead carry the token the settings name now
// (none, from a loopback peer, when they name none). An admin's client
// certificate passes too, once the guard let the request through (see
// certified).
func (s *server) authorize(w http.ResponseWriter, r *http.Request) bool {
	token, ok := edge.Bearer(r)
	if ok && s.opts.Admin.Load().Match(token) {
		return true
	}
	if s.isReload(r) && s.opts.NextAdmin != nil && (ok || edge.Loopback(r.RemoteAddr)) && s.opts.NextAdmin(token) {
		s.log.Info("admin reload with the token the settings name now", "remote", r.RemoteAddr)
		return true
	}
	if s.certified(r) {
		if status, e := s.guard.Check(r); e != nil {
			s.log.Warn("request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "host", r.Host, "reason", e.Code)
			edge.WriteError(w, status, e)
			return false
		}
		return true
	}
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="awakend"`)
		writeError(w, http.StatusUnauthorized, edge.TypeAuthentication, "missing_token",
			"this route needs the admin token as a bearer token (Authorization: Bearer <token>)")
		return false
	}
	s.log.Debug("admin token rejected", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
	w.Header().Set("WWW-Authenticate", `Bearer realm="awakend", error="invalid_token"`)
	writeError(w, http.StatusUnauthorized, edge.TypeAuthentication, "invalid_token", "the bearer token is not the admin token")
	return false
}

// certified reports whether r came with the admin's client certificate,
// and logs a certificate that was refused. A browser sends a client
// certificate by itself, as it sends a cookie, so a request it admits
// still goes through the guard, as on a route no token guards.
func (s *server) certified(r *http.Request) bool {
	if r.TLS == nil || s.opts.ClientAdmin == nil {
		return false
	}
	subject, checked, err := s.opts.ClientAdmin(r)
	switch {
	case err == nil:
		return true
	case checked && !errors.Is(err, edge.ErrNoClientCert):
		s.log.Warn("client certificate refused", "subject", subject, "remote", r.RemoteAddr, "error", err)
	}
	return false
}

// isReload reports whether r asks for a reload.
func (s *server) isReload(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Path == "/api/v1/reload"
}

// writeError answers status with OpenAI's error envelope.
func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	edge.WriteError(w, status, edge.NewError(typ, code, "", msg))
}

// writeJSON writes v as the JSON body of a response with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a programming error gets here: every view marshals.
		edge.WriteError(w, http.StatusInternalServerError, edge.NewError(edge.TypeServer, "internal_error", "", "encoding the response failed"))
		return
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
