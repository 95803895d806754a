package api

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/awakend/awakend/edge"
	"github.com/awakend/awakend/registry"
	"github.com/awakend/awakend/reload"
)

// notFound answers 404 for a resource id.
func notFound(w http.ResponseWriter, noun, id string) {
	writeError(w, http.StatusNotFound, edge.TypeInvalidRequest, "not_found", noun+" '"+id+"' not found")
}

func (s *server) removalPreview(w http.ResponseWriter, r *http.Request, snap *registry.Snapshot) {
	id := r.PathValue("id")
	pv, err := snap.Set.PreviewRemoveProvider(id)
	if _, missing := errors.AsType[*registry.ProviderNotFoundError](err); missing {
		notFound(w, "provider", id)
		return
	}
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, pv)
}

// resolveAgent resolves agents only: a model or pool id is a 404 here.
func (s *server) resolveAgent(w http.ResponseWriter, r *http.Request, snap *registry.Snapshot) {
	id := r.PathValue("id")
	if _, ok := snap.Set.Agent(id); !ok {
		notFound(w, "agent", id)
		return
	}
	route, err := snap.Set.Resolve(id)
	if err != nil {
		// A validated set resolves every agent.
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, newRouteView(route))
}

// internalError answers 500 for what a validated snapshot should never
// produce.
func (s *server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	writeError(w, http.StatusInternalServerError, edge.TypeServer, "internal_error", err.Error())
}

func (s *server) healthz(w http.ResponseWriter, _ *http.Request, _ *registry.Snapshot) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) readyz(w http.ResponseWriter, _ *http.Request, snap *registry.Snapshot) {
	if snap == nil {
		writeError(w, http.StatusServiceUnavailable, edge.TypeServer, "not_ready", "no configuration is being served yet")
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Status  string `json:"status"`
		Version uint64 `json:"version"`
	}{"ready", snap.Version})
}

// statusView is the body of GET /api/v1/status.
type statusView struct {
	Version      uint64         `json:"version"`
	Fingerprint  *string        `json:"fingerprint"` // of the last applied reload
	LoadedAt     *time.Time     `json:"loaded_at"`   // when the last applied reload finished
	BuildVersion string         `json:"build_version"`
	StartedAt    *time.Time     `json:"started_at"`
	Resources    map[string]int `json:"resources"`
	LastReload   *reloadView    `json:"last_reload"`
	LastApplied  *reloadView    `json:"last_applied"`
	Reloads      []reloadCount  `json:"reloads"`
	Watcher      *watcherView   `json:"watcher"`
	Source       any            `json:"source,omitempty"` // a fleet's etcd: the pack served, whether it is stale
	Degraded     *degradedView  `json:"degraded"`         // null unless serving the last-known-good configuration
	// RestartRequired lists the settings changed in the settings file
	// that apply only after a restart, "key: running → new".
	RestartRequired []string `json:"restart_required"`
}

// degradedView is Degraded in the status.
type degradedView struct {
	Reason        string            `json:"reason"`
	Since         time.Time         `json:"since"`
	LastKnownGood lastKnownGoodView `json:"last_known_good"`
}

// lastKnownGoodView is the configuration served while degraded.
type lastKnownGoodView struct {
	SavedAt     time.Time `json:"saved_at"`
	Fingerprint string    `json:"fingerprint"`
}

// reloadView is one reload in the status.
type reloadView struct {
	Trigger         reload.Trigger `json:"trigger"`
	Result          reload.Outcome `json:"result"`
	At              time.Time      `json:"at"` // when it finished
	DurationSeconds float64        `json:"duration_seconds"`
	Version         uint64         `json:"version"`
	Fingerprint     string         `json:"fingerprint,omitempty"`
	Pack            string         `json:"pack,omitempty"`
	Changes         string         `json:"changes"`
	Error           string         `json:"error,omitempty"`
	Diagnostics     any            `json:"diagnostics,omitempty"`
}

// reloadCount counts finished reloads of one trigger and result.
type reloadCount struct {
	Trigger reload.Trigger `json:"trigger"`
	Result  reload.Outcome `json:"result"`
	Count   uint64         `json:"count"`
}

// watcherView is the directory watcher's health.
type watcherView struct {
	Up        bool        `json:"up"`
	Mode      reload.Mode `json:"mode"`
	Dirs      int         `json:"dirs"`
	LastError string      `json:"last_error,omitempty"`
	Files     *filesView  `json:"files,omitempty"` // the input files outside the tree, if any
}

// filesView is the health of the watches on input files outside the tree.
type filesView struct {
	Count     int    `json:"count"`
	Up        bool   `json:"up"`
	LastError string `json:"last_error,omitempty"`
}

func (s *server) status(w http.ResponseWriter, _ *http.Request, snap *registry.Snapshot) {
	v := statusView{
		Version:      snap.Version,
		BuildVersion: s.opts.Version,
		Resources: map[string]int{
			registry.NSProviders:  len(snap.Set.ProviderIDs()),
			registry.NSModels:     len(snap.Set.ModelIDs()),
			registry.NSModelPools: len(snap.Set.PoolIDs()),
			registry.NSAgents:     len(snap.Set.AgentIDs()),
			registry.NSClients:    len(snap.Set.ClientIDs()),
		},
		Reloads:         []reloadCount{},
		RestartRequired: []string{},
	}
	if !s.opts.Started.IsZero() {
		v.StartedAt = &s.opts.Started
	}
	if s.opts.Source != nil {
		v.Source = s.opts.Source()
	}
	if s.opts.Reloader != nil {
		st := s.opts.Reloader.Status()
		v.LastReload = s.reloadView(st.Last)
		if v.LastApplied = s.reloadView(st.LastApplied); v.LastApplied != nil {
			v.Fingerprint, v.LoadedAt = &v.LastApplied.Fingerprint, &v.LastApplied.At
		}
		for k, n := range st.Counts {
			v.Reloads = append(v.Reloads, reloadCount{k.Trigger, k.Outcome, n})
		}
		slices.SortFunc(v.Reloads, func(a, b reloadCount) int {
			return cmp.Or(cmp.Compare(a.Trigger, b.Trigger), cmp.Compare(a.Result, b.Result))
		})
		v.Watcher = &watcherView{Up: st.Watcher.Up, Mode: st.Watcher.Mode, Dirs: st.Watcher.Dirs, LastError: st.Watcher.LastError}
		if st.Watcher.Files > 0 {
			v.Watcher.Files = &filesView{Count: st.Watcher.Files, Up: st.Watcher.FilesUp, LastError: st.Watcher.FilesError}
		}
		if st.Restart != nil {
			v.RestartRequired = st.Restart
		}
	}
	if s.opts.Degraded != nil {
		if d := s.opts.Degraded(); d != nil {
			v.Degraded = &degradedView{Reason: d.Reason, Since: d.Since,
				LastKnownGood: lastKnownGoodView{SavedAt: d.SavedAt, Fingerprint: d.Fingerprint}}
		}
	}
	writeJSON(w, http.StatusOK, v)
}

// reloadView renders a reload; nil for the zero Result (no reload yet).
func (s *server) reloadView(res reload.Result) *reloadView {
	if res.Outcome == "" && res.Err == nil && res.Started.IsZero() {
		return nil
	}
	v := &reloadView{
		Trigger:         res.Trigger,
		Result:          outcome(res),
		At:              res.Started.Add(res.Duration),
		DurationSeconds: res.Duration.Seconds(),
		Version:         res.Version,
		Fingerprint:     res.Fingerprint,
		Pack:            res.Pack,
		Changes:         res.Changes,
	}
	if res.Err != nil {
		v.Error = res.Err.Error()
		v.Diagnostics = s.diagnostics(res.Err)
	}
	return v
}

// outcome is a result's outcome; an error without one is a rejection, as
// the loop counts it.
func outcome(res reload.Result) reload.Outcome {
	if res.Outcome == "" && res.Err != nil {
		return reload.OutcomeRejected
	}
	return res.Outcome
}

// diagnostics renders err as a JSON-able list of diagnostics: the injected
// renderer's, else a registry validation error's, else the message alone.
func (s *server) diagnostics(err error) any {
	if s.opts.Diagnostics != nil {
		if d := s.opts.Diagnostics(err); !isNil(d) {
			return d
		}
	}
	if ve, ok := errors.AsType[*registry.ValidationError](err); ok && len(ve.Diagnostics) > 0 {
		return ve.Diagnostics
	}
	return []map[string]string{{"message": err.Error()}}
}

// isNil reports whether v is nil or a nil slice, map or pointer, which would
// serve as null rather than a list.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Slice, reflect.Map, reflect.Pointer:
		return rv.IsNil()
	}
	return false
}

// reloadDone is the body of a successful POST /api/v1/reload.
type reloadDone struct {
	Result          reload.Outcome `json:"result"`
	Trigger         reload.Trigger `json:"trigger"`
	Version         uint64         `json:"version"`
	Changes         string         `json:"changes"`
	DurationSeconds float64        `json:"duration_seconds"`
	Fingerprint     string         `json:"fingerprint"`
	// RestartRequired lists the settings that apply only after a restart.
	RestartRequired []string `json:"restart_required,omitempty"`
}

// reloadRejected is the body of a rejected POST /api/v1/reload: the error
// envelope plus the diagnostics and the version still serving.
type reloadRejected struct {
	Result          reload.Outcome `json:"result"`
	Error           edge.Error     `json:"error"`
	Diagnostics     any            `json:"diagnostics"`
	Version         uint64         `json:"version"`
	Trigger         reload.Trigger `json:"trigger"`
	DurationSeconds float64        `json:"duration_seconds"`
	Fingerprint     string         `json:"fingerprint,omitempty"`
}

// reload runs a reload and waits for it. It forces a rebuild unless
// ?force=false: `systemctl reload` comes here, and operators expect it to
// re-read secrets as SIGHUP does.
func (s *server) reload(w http.ResponseWriter, r *http.Request, _ *registry.Snapshot) {
	remote := r.RemoteAddr
	if s.opts.Admin.Load().Len() == 0 && !edge.Loopback(remote) && !s.certified(r) {
		s.log.Warn("admin reload refused", "remote", remote, "reason", "no admin token configured and peer is not loopback")
		writeError(w, http.StatusForbidden, edge.TypePermission, "forbidden",
			"reloads are accepted from loopback addresses only unless an admin token is configured (or an admin's client certificate is given)")
		return
	}
	if s.opts.Reloader == nil {
		writeError(w, http.StatusServiceUnavailable, edge.TypeServer, "reload_unavailable", "this server cannot reload")
		return
	}
	force := true
	if q := r.URL.Query().Get("force"); q != "" {
		b, err := strconv.ParseBool(q)
		if err != nil {
			writeError(w, http.StatusBadRequest, edge.TypeInvalidRequest, "invalid_parameter",
				"force must be true or false, not "+strconv.Quote(q))
			return
		}
		force = b
	}

	res, err := s.opts.Reloader.Reload(r.Context(), reload.Request{Trigger: reload.TriggerAPI, Force: force})
	// The header tells the version serving now, not the one read before.
	serving := uint64(0)
	if s.opts.Handle != nil {
		serving = s.opts.Handle.Version()
		w.Header().Set(edge.VersionHeader, strconv.FormatUint(serving, 10))
	}
	if err != nil {
		s.log.Warn("admin reload failed", "remote", remote, "force", force, "error", err)
		if errors.Is(err, reload.ErrStopped) {
			writeError(w, http.StatusServiceUnavailable, edge.TypeServer, "reload_unavailable",
				"the reload loop has stopped (the daemon is shutting down)")
			return
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			writeError(w, http.StatusServiceUnavailable, edge.TypeServer, "reload_cancelled",
				"the request ended before the reload finished; the reload still runs")
			return
		}
		writeError(w, http.StatusServiceUnavailable, edge.TypeServer, "reload_unavailable", err.Error())
		return
	}

	out := outcome(res)
	version := cmp.Or(res.Version, serving)
	if out == reload.OutcomeRejected {
		s.log.Warn("admin reload", "remote", remote, "force", force, "trigger", res.Trigger,
			"result", out, "version", version, "took", res.Duration)
		msg := "configuration rejected"
		if res.Err != nil {
			msg += ": " + res.Err.Error()
		}
		var diags any = []any{}
		if res.Err != nil {
			diags = s.diagnostics(res.Err)
		}
		writeJSON(w, http.StatusUnprocessableEntity, reloadRejected{
			Result:          out,
			Error:           edge.Error{Message: msg, Type: edge.TypeInvalidRequest, Code: "config_rejected"},
			Diagnostics:     diags,
			Version:         version,
			Trigger:         res.Trigger,
			DurationSeconds: res.Duration.Seconds(),
			Fingerprint:     res.Fingerprint,
		})
		return
	}
	s.log.Info("admin reload", "remote", remote, "force", force, "trigger", res.Trigger,
		"result", out, "version", version, "took", res.Duration)
	writeJSON(w, http.StatusOK, reloadDone{
		Result:          out,
		Trigger:         res.Trigger,
		Version:         version,
		Changes:         res.Changes,
		DurationSeconds: res.Duration.Seconds(),
		Fingerprint:     res.Fingerprint,
		RestartRequired: res.Restart,
	})
}

// resource serves one kind of resource: its list, sorted by id, and its
// items by id, each through view (which keeps secrets out).
type resource[S, V any] struct {
	noun string                                // for 404s: "model pool"
	ids  func(*registry.Set) []string          // sorted
	get  func(*registry.Set, string) (S, bool) // one item
	view func(S) V                             // what is served
}

func (k resource[S, V]) list(w http.ResponseWriter, _ *http.Request, snap *registry.Snapshot) {
	ids := k.ids(snap.Set)
	data := make([]V, 0, len(ids))
	for _, id := range ids {
		v, _ := k.get(snap.Set, id)
		data = append(data, k.view(v))
	}
	writeJSON(w, http.StatusOK, list[V]{data})
}

func (k resource[S, V]) item(w http.ResponseWriter, r *http.Request, snap *registry.Snapshot) {
	id := r.PathValue("id")
	v, ok := k.get(snap.Set, id)
	if !ok {
		notFound(w, k.noun, id)
		return
	}
	writeJSON(w, http.StatusOK, k.view(v))
}

func same[T any](v T) T { return v }

var (
	providers = resource[registry.Provider, providerView]{"provider", (*registry.Set).ProviderIDs, (*registry.Set).Provider,
		func(p registry.Provider) providerView { return newProviderView(p.Spec) }}
	models = resource[registry.ModelSpec, registry.ModelSpec]{"model", (*registry.Set).ModelIDs, (*registry.Set).Model, same[registry.ModelSpec]}
	pools  = resource[registry.PoolSpec, registry.PoolSpec]{"model pool", (*registry.Set).PoolIDs, (*registry.Set).Pool, same[registry.PoolSpec]}
	agents = resource[registry.AgentSpec, agentView]{"agent", (*registry.Set).AgentIDs, (*registry.Set).Agent, newAgentView}
)
