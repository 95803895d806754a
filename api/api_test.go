package api_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/awakend/awakend/api"
	"github.com/awakend/awakend/edge"
	"github.com/awakend/awakend/metrics"
	"github.com/awakend/awakend/registry"
	"github.com/awakend/awakend/reload"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Distinctive secrets, one per secret-bearing field.
const (
	secretAPIKey   = "sk-SECRET-apikey-7f3a0c"
	secretHeader   = "SECRET-header-value-91c2"
	secretToken    = "SECRET-bearer-token-55d1"
	secretURLPass  = "SECRET-url-password-3e8b"
	secretURLUser  = "SECRET-url-user-b7f0"
	secretEndpoint = "SECRET-endpoint-pass-c4d2"
	secretClient   = "SECRET-client-key-a19e"
	adminToken     = "admin-token-for-tests"
)

var secrets = []string{secretAPIKey, secretHeader, secretToken, secretURLPass, secretURLUser, secretEndpoint, secretClient, secretClientHash}

// secretClientHash is the key_sha256 of client "batch": not a secret, but
// served nowhere either.
const secretClientHash = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"

type executor struct{}

func (executor) Name() string { return "test" }

func u32(n uint32) *uint32 { return &n }

// testSet is a small registry with a secret in every secret field:
//
//	providers openai (key, headers, credentials in base_url), mock
//	models    gpt → openai, local → mock
//	pools     fast: gpt, local (failover_only)
//	agents    writer → gpt, pooled → fast, remote (endpoint with bearer token)
func testSet(t testing.TB) *registry.Set {
	t.Helper()
	d := registry.NewDraft(nil)
	d.Providers["openai"] = registry.Provider{Executor: executor{}, Spec: registry.ProviderSpec{
		ID: "openai", Adapter: "openai", APIKey: secretAPIKey, TimeoutSecs: 300,
		BaseURL:        "https://" + secretURLUser + ":" + secretURLPass + "@llm.example.com/v1",
		AdapterOptions: registry.AdapterOptions{Headers: map[string]string{"X-Org": secretHeader, "Authorization": "Bearer " + secretHeader}},
	}}
	d.Providers["mock"] = registry.Provider{Executor: executor{}, Spec: registry.ProviderSpec{ID: "mock", Adapter: "mock", TimeoutSecs: 30}}
	d.Models["gpt"] = registry.ModelSpec{ID: "gpt", ProviderID: "openai", UpstreamModel: "gpt-4o", ContextWindow: u32(128000)}
	d.Models["local"] = registry.ModelSpec{ID: "local", ProviderID: "mock", UpstreamModel: "echo"}
	d.Pools["fast"] = registry.PoolSpec{
		ID: "fast",
		Members: []registry.PoolMember{
			{ModelID: "gpt", Role: registry.RoleMember},
			{ModelID: "local", Role: registry.RoleFailoverOnly, Weight: u32(2)},
		},
		Routing: registry.DefaultPoolRouting(),
		Switch:  registry.DefaultSwitchPolicy(),
	}
	d.Agents["writer"] = registry.AgentSpec{ID: "writer", ModelID: "gpt", SystemPrompt: "You write.", MaxRounds: 16, AllowedToolPatterns: []string{"*"}}
	d.Agents["pooled"] = registry.AgentSpec{ID: "pooled", ModelID: "fast", MaxRounds: 16}
	d.Agents["remote"] = registry.AgentSpec{ID: "remote", MaxRounds: 16, Endpoint: &registry.Endpoint{
		Backend: "a2a", BaseURL: "https://agent:" + secretEndpoint + "@agents.example.com", TimeoutMS: 1000,
		Auth: &registry.EndpointAuth{Type: "bearer", Token: secretToken},
	}}
	d.Clients["team"] = registry.ClientSpec{ID: "team", Description: "The team.", Key: secretClient,
		Models: []string{"writer", "fast"}, Limits: registry.ClientLimits{RequestsPerMinute: u32(60)}}
	d.Clients["batch"] = registry.ClientSpec{ID: "batch", KeySHA256: secretClientHash, Models: []string{}}
	s, err := d.Build()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// otherSet is a different registry: one mock provider, one model.
func otherSet(t testing.TB) *registry.Set {
	t.Helper()
	d := registry.NewDraft(nil)
	d.Providers["other"] = registry.Provider{Executor: executor{}, Spec: registry.ProviderSpec{ID: "other", Adapter: "mock", TimeoutSecs: 30}}
	d.Models["m"] = registry.ModelSpec{ID: "m", ProviderID: "other", UpstreamModel: "m"}
	s, err := d.Build()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeReloader is a hand-written Reloader.
type fakeReloader struct {
	mu       sync.Mutex
	result   reload.Result
	err      error
	wait     bool   // block until the request's context ends
	onReload func() // runs inside Reload, before it returns
	onStatus func() // runs inside Status, before it returns
	status   reload.Status
	requests []reload.Request
}

func (f *fakeReloader) Reload(ctx context.Context, req reload.Request) (reload.Result, error) {
	f.mu.Lock()
	f.requests = append(f.requests, req)
	res, err, wait, hook := f.result, f.err, f.wait, f.onReload
	f.mu.Unlock()
	if wait {
		<-ctx.Done()
		return reload.Result{}, ctx.Err()
	}
	if hook != nil {
		hook()
	}
	res.Trigger = req.Trigger
	return res, err
}

func (f *fakeReloader) Status() reload.Status {
	f.mu.Lock()
	st, hook := f.status, f.onStatus
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	return st
}

func (f *fakeReloader) lastRequest(t *testing.T) reload.Request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.requests) == 0 {
		t.Fatal("no reload requested")
	}
	return f.requests[len(f.requests)-1]
}

// serve runs one request against h, with Host testHost. remote "" keeps
// httptest's default peer, 192.0.2.1 (not loopback).
func serve(h http.Handler, method, target, remote, token string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	r.Host = testHost
	if remote != "" {
		r.RemoteAddr = remote
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

const loopbackPeer = "127.0.0.1:40000"

// testHost is the Host of the tests' requests: a name the guard allows a
// loopback peer.
const testHost = "localhost:8700"

// decode parses a JSON body into a generic value.
func decode(t *testing.T, w *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, w.Body)
	}
	return v
}

// ids returns the "id" of each element of body.data.
func ids(t *testing.T, body map[string]any) []string {
	t.Helper()
	data, ok := body["data"].([]any)
	if !ok {
		t.Fatalf("no data list in %v", body)
	}
	var out []string
	for _, d := range data {
		out = append(out, d.(map[string]any)["id"].(string))
	}
	return out
}

// errorCode returns the envelope's error.code, checking its shape.
func errorCode(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	e, ok := decode(t, w)["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error envelope: %s", w.Body)
	}
	for _, k := range []string{"message", "type", "code"} {
		if s, _ := e[k].(string); s == "" {
			t.Errorf("error.%s is empty: %s", k, w.Body)
		}
	}
	return e["code"].(string)
}

func newServer(t testing.TB, opts api.Options) (http.Handler, *registry.Handle, *fakeReloader) {
	t.Helper()
	h := registry.NewHandle(testSet(t))
	f := &fakeReloader{}
	opts.Handle, opts.Reloader = h, f
	if opts.Metrics == nil {
		opts.Metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "up 1") })
	}
	return api.New(opts), h, f
}

func TestRoutes(t *testing.T) {
	handler, _, f := newServer(t, api.Options{})
	f.result = reload.Result{Outcome: reload.OutcomeUnchanged, Version: 1}

	tests := []struct {
		method, path string
		remote       string
		status       int
		code         string // error code, for errors
		check        func(t *testing.T, body map[string]any)
	}{
		{method: "GET", path: "/api/v1/status", status: 200, check: func(t *testing.T, b map[string]any) {
			if b["version"] != 1.0 {
				t.Errorf("version = %v", b["version"])
			}
		}},
		{method: "POST", path: "/api/v1/status", status: 405, code: "method_not_allowed"},

		{method: "GET", path: "/api/v1/providers", status: 200, check: wantIDs("mock", "openai")},
		{method: "GET", path: "/api/v1/providers/openai", status: 200, check: wantField("id", "openai")},
		{method: "GET", path: "/api/v1/providers/nope", status: 404, code: "not_found"},
		{method: "DELETE", path: "/api/v1/providers", status: 405, code: "method_not_allowed"},
		{method: "DELETE", path: "/api/v1/providers/openai", status: 405, code: "method_not_allowed"},

		{method: "GET", path: "/api/v1/providers/openai/removal-preview", status: 200, check: func(t *testing.T, b map[string]any) {
			if got := fmt.Sprint(b["model_ids"], b["model_pool_ids"], b["agent_ids"]); got != "[gpt] [fast] [pooled writer]" {
				t.Errorf("preview = %s", got)
			}
		}},
		{method: "GET", path: "/api/v1/providers/nope/removal-preview", status: 404, code: "not_found"},
		{method: "POST", path: "/api/v1/providers/openai/removal-preview", status: 405, code: "method_not_allowed"},

		{method: "GET", path: "/api/v1/models", status: 200, check: wantIDs("gpt", "local")},
		{method: "GET", path: "/api/v1/models/gpt", status: 200, check: wantField("upstream_model", "gpt-4o")},
		{method: "GET", path: "/api/v1/models/fast", status: 404, code: "not_found"},
		{method: "PUT", path: "/api/v1/models/gpt", status: 405, code: "method_not_allowed"},

		{method: "GET", path: "/api/v1/model-pools", status: 200, check: wantIDs("fast")},
		{method: "GET", path: "/api/v1/model-pools/fast", status: 200, check: wantField("id", "fast")},
		{method: "GET", path: "/api/v1/model-pools/gpt", status: 404, code: "not_found"},
		{method: "POST", path: "/api/v1/model-pools", status: 405, code: "method_not_allowed"},

		{method: "GET", path: "/api/v1/agents", status: 200, check: wantIDs("pooled", "remote", "writer")},
		{method: "GET", path: "/api/v1/agents/writer", status: 200, check: wantField("system_prompt", "You write.")},
		{method: "GET", path: "/api/v1/agents/nope", status: 404, code: "not_found"},
		{method: "PATCH", path: "/api/v1/agents/writer", status: 405, code: "method_not_allowed"},

		{method: "GET", path: "/api/v1/clients", status: 200, check: wantIDs("batch", "team")},
		{method: "GET", path: "/api/v1/clients/team", status: 200, check: func(t *testing.T, b map[string]any) {
			if got := fmt.Sprintf("%v %v %v %v", b["has_key"], b["key_form"], b["models"], b["limits"]); got != "true key [writer fast] map[requests_per_minute:60 tokens_per_minute:<nil>]" {
				t.Errorf("client = %s", got)
			}
		}},
		{method: "GET", path: "/api/v1/clients/batch", status: 200, check: func(t *testing.T, b map[string]any) {
			if got := fmt.Sprintf("%v %v %v", b["has_key"], b["key_form"], b["models"]); got != "true key_sha256 []" {
				t.Errorf("client = %s", got)
			}
		}},
		{method: "GET", path: "/api/v1/clients/nope", status: 404, code: "not_found"},

		{method: "GET", path: "/api/v1/agents/pooled/resolve", status: 200, check: func(t *testing.T, b map[string]any) {
			if b["kind"] != "agent" || b["model_pool_id"] != "fast" || len(b["targets"].([]any)) != 2 {
				t.Errorf("route = %v", b)
			}
		}},
		{method: "GET", path: "/api/v1/agents/gpt/resolve", status: 404, code: "not_found"}, // models resolve elsewhere
		{method: "GET", path: "/api/v1/agents/nope/resolve", status: 404, code: "not_found"},
		{method: "POST", path: "/api/v1/agents/writer/resolve", status: 405, code: "method_not_allowed"},

		{method: "POST", path: "/api/v1/reload", remote: loopbackPeer, status: 200, check: wantField("result", "unchanged")},
		{method: "GET", path: "/api/v1/reload", status: 405, code: "method_not_allowed"},

		{method: "GET", path: "/healthz", status: 200, check: wantField("status", "ok")},
		{method: "POST", path: "/healthz", status: 405, code: "method_not_allowed"},
		{method: "GET", path: "/readyz", status: 200, check: wantField("status", "ready")},
		{method: "DELETE", path: "/readyz", status: 405, code: "method_not_allowed"},
		{method: "GET", path: "/metrics", status: 200},
		{method: "POST", path: "/metrics", status: 405, code: "method_not_allowed"},

		{method: "GET", path: "/api/v1/nope", status: 404, code: "not_found"},
		{method: "GET", path: "/api/v1/providers/openai/nope", status: 404, code: "not_found"},
		{method: "GET", path: "/api/v2/status", status: 404, code: "not_found"},
		{method: "GET", path: "/nope", status: 404, code: "not_found"},
		{method: "HEAD", path: "/api/v1/models", status: 200},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			w := serve(handler, tc.method, tc.path, tc.remote, "")
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if got := w.Header().Get(edge.VersionHeader); got != "1" {
				t.Errorf("%s = %q, want 1", edge.VersionHeader, got)
			}
			if tc.path == "/metrics" && tc.status == 200 {
				if w.Body.String() != "up 1\n" {
					t.Errorf("metrics body = %q", w.Body)
				}
				return
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if tc.method == "HEAD" {
				return
			}
			if tc.code != "" {
				if got := errorCode(t, w); got != tc.code {
					t.Errorf("error code = %q, want %q", got, tc.code)
				}
			}
			if tc.status == 405 {
				allow := w.Header().Get("Allow")
				if allow == "" || strings.Contains(allow, tc.method) {
					t.Errorf("Allow = %q for a %s", allow, tc.method)
				}
			}
			if tc.check != nil {
				tc.check(t, decode(t, w))
			}
		})
	}
}

func wantIDs(want ...string) func(*testing.T, map[string]any) {
	return func(t *testing.T, b map[string]any) {
		t.Helper()
		if got := ids(t, b); !slices.Equal(got, want) {
			t.Errorf("ids = %v, want %v", got, want)
		}
	}
}

func wantField(key, want string) func(*testing.T, map[string]any) {
	return func(t *testing.T, b map[string]any) {
		t.Helper()
		if b[key] != want {
			t.Errorf("%s = %v, want %q", key, b[key], want)
		}
	}
}

func TestNotFoundMessage(t *testing.T) {
	handler, _, _ := newServer(t, api.Options{})
	w := serve(handler, "GET", "/api/v1/models/x", "", "")
	want := `{"error":{"message":"model 'x' not found","type":"invalid_request_error","param":null,"code":"not_found"}}` + "\n"
	if w.Body.String() != want {
		t.Errorf("body = %s, want %s", w.Body, want)
	}
}

// TestV1: /v1 alone, which the gateway's /v1/ does not cover, answers the
// gateway's 404 naming its routes.
func TestV1(t *testing.T) {
	handler, _, _ := newServer(t, api.Options{})
	for _, method := range []string{"GET", "POST"} {
		w := serve(handler, method, "/v1", "", "")
		b := w.Body.String()
		if w.Code != http.StatusNotFound || !strings.Contains(b, `"code":"unknown_url"`) ||
			!strings.Contains(b, "Unknown request URL: "+method+" /v1.") || !strings.Contains(b, "POST /v1/chat/completions") {
			t.Errorf("%s /v1: %d %s, want 404 unknown_url naming the gateway's routes", method, w.Code, b)
		}
	}
}

func TestAllowHeader(t *testing.T) {
	handler, _, _ := newServer(t, api.Options{})
	for path, want := range map[string]string{
		"/api/v1/providers": "GET, HEAD",
		"/api/v1/reload":    "POST",
	} {
		if got := serve(handler, "PUT", path, "", "").Header().Get("Allow"); got != want {
			t.Errorf("Allow for %s = %q, want %q", path, got, want)
		}
	}
}

func TestStatus(t *testing.T) {
	t0 := time.Date(2026, 4, 1, 10, 0, 0, 0, time.UTC)
	applied := reload.Result{
		Trigger: reload.TriggerStartup, Outcome: reload.OutcomeApplied, Version: 1,
		Fingerprint: "sha256:abc", Changes: "+2 providers", Started: t0, Duration: 40 * time.Millisecond,
	}
	rejected := reload.Result{
		Trigger: reload.TriggerWatch, Outcome: reload.OutcomeRejected, Version: 1,
		Fingerprint: "sha256:def", Err: errors.New("config rejected: 1 error"),
		Started: t0.Add(time.Hour), Duration: 5 * time.Millisecond,
	}
	type diag struct {
		File    string `json:"file"`
		Line    int    `json:"line"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	render := func(err error) any {
		if err == rejected.Err {
			return []diag{{File: "models/gpt.yaml", Line: 12, Code: "unknown_field", Message: `unknown field "prot"`}}
		}
		return nil
	}
	watcher := reload.WatcherStatus{Up: true, Mode: reload.ModeFsnotify, Dirs: 3}

	tests := []struct {
		name     string
		status   reload.Status
		diags    func(error) any
		degraded func() *api.Degraded
		check    func(t *testing.T, b map[string]any)
	}{
		{
			name: "no reload yet",
			check: func(t *testing.T, b map[string]any) {
				if b["last_reload"] != nil || b["last_applied"] != nil || b["fingerprint"] != nil || b["loaded_at"] != nil {
					t.Errorf("reload fields set before any reload: %v", b)
				}
				if v, ok := b["degraded"]; !ok || v != nil {
					t.Errorf("degraded = %v (present %v), want null", v, ok)
				}
			},
		},
		{
			name:     "not degraded",
			degraded: func() *api.Degraded { return nil },
			check: func(t *testing.T, b map[string]any) {
				if b["degraded"] != nil {
					t.Errorf("degraded = %v, want null", b["degraded"])
				}
			},
		},
		{
			name:   "serving the last-known-good configuration",
			status: reload.Status{Last: rejected},
			degraded: func() *api.Degraded {
				return &api.Degraded{Since: t0, SavedAt: t0.Add(-24 * time.Hour), Fingerprint: "sha256:old", Reason: "config rejected: 1 error"}
			},
			check: func(t *testing.T, b map[string]any) {
				wantJSON(t, b["degraded"], `{"reason":"config rejected: 1 error","since":"2026-04-01T10:00:00Z",`+
					`"last_known_good":{"saved_at":"2026-03-31T10:00:00Z","fingerprint":"sha256:old"}}`)
			},
		},
		{
			name: "after an applied reload",
			status: reload.Status{
				Last: applied, LastApplied: applied, Watcher: watcher,
				Counts: map[reload.Key]uint64{{Trigger: reload.TriggerStartup, Outcome: reload.OutcomeApplied}: 1},
			},
			check: func(t *testing.T, b map[string]any) {
				last := b["last_reload"].(map[string]any)
				if last["result"] != "applied" || last["trigger"] != "startup" || last["changes"] != "+2 providers" ||
					last["duration_seconds"] != 0.04 || last["version"] != 1.0 {
					t.Errorf("last_reload = %v", last)
				}
				if _, ok := last["error"]; ok {
					t.Errorf("applied reload has an error: %v", last)
				}
				if b["fingerprint"] != "sha256:abc" || b["loaded_at"] != "2026-04-01T10:00:00.04Z" {
					t.Errorf("fingerprint, loaded_at = %v, %v", b["fingerprint"], b["loaded_at"])
				}
				wantJSON(t, b["reloads"], `[{"trigger":"startup","result":"applied","count":1}]`)
				wantJSON(t, b["watcher"], `{"up":true,"mode":"fsnotify","dirs":3}`)
				wantJSON(t, b["restart_required"], `[]`)
			},
		},
		{
			name:   "settings waiting for a restart",
			status: reload.Status{Last: applied, LastApplied: applied, Restart: []string{"listen: 127.0.0.1:8700 → 0.0.0.0:8700"}},
			check: func(t *testing.T, b map[string]any) {
				wantJSON(t, b["restart_required"], `["listen: 127.0.0.1:8700 → 0.0.0.0:8700"]`)
			},
		},
		{
			name:  "after a rejected reload",
			diags: render,
			status: reload.Status{
				Last: rejected, LastApplied: applied, Watcher: watcher,
				Counts: map[reload.Key]uint64{
					{Trigger: reload.TriggerStartup, Outcome: reload.OutcomeApplied}: 1,
					{Trigger: reload.TriggerWatch, Outcome: reload.OutcomeRejected}:  2,
				},
			},
			check: func(t *testing.T, b map[string]any) {
				last := b["last_reload"].(map[string]any)
				if last["result"] != "rejected" || last["error"] != "config rejected: 1 error" {
					t.Errorf("last_reload = %v", last)
				}
				wantJSON(t, last["diagnostics"], `[{"file":"models/gpt.yaml","line":12,"code":"unknown_field","message":"unknown field \"prot\""}]`)
				if b["last_applied"].(map[string]any)["fingerprint"] != "sha256:abc" || b["fingerprint"] != "sha256:abc" {
					t.Errorf("fingerprint is not the applied one: %v", b)
				}
				wantJSON(t, b["reloads"], `[{"trigger":"startup","result":"applied","count":1},{"trigger":"watch","result":"rejected","count":2}]`)
			},
		},
		{
			name: "rejected, no renderer",
			status: reload.Status{
				Last: rejected, LastApplied: applied,
			},
			check: func(t *testing.T, b map[string]any) {
				wantJSON(t, b["last_reload"].(map[string]any)["diagnostics"], `[{"message":"config rejected: 1 error"}]`)
			},
		},
		{
			name:  "rejected by registry validation, renderer declines",
			diags: func(error) any { return []diag(nil) },
			status: reload.Status{Last: reload.Result{
				Outcome: reload.OutcomeRejected, Started: t0,
				Err: fmt.Errorf("reload: %w", &registry.ValidationError{Diagnostics: []registry.Diagnostic{{
					Code: registry.CodeAgentMissingModel, Severity: registry.SeverityError,
					Resource: registry.Ref{Namespace: registry.NSAgents, ID: "a"}, Message: "agent 'a' references missing model 'm'",
				}}}),
			}},
			check: func(t *testing.T, b map[string]any) {
				wantJSON(t, b["last_reload"].(map[string]any)["diagnostics"],
					`[{"code":"agent_missing_model","severity":"error","resource":{"namespace":"agents","id":"a"},"message":"agent 'a' references missing model 'm'"}]`)
			},
		},
	}
	started := time.Date(2026, 4, 1, 9, 59, 0, 0, time.UTC)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			handler, _, f := newServer(t, api.Options{Diagnostics: tc.diags, Version: "v1.2.3", Started: started, Degraded: tc.degraded})
			f.status = tc.status
			w := serve(handler, "GET", "/api/v1/status", "", "")
			if w.Code != 200 {
				t.Fatalf("status = %d: %s", w.Code, w.Body)
			}
			b := decode(t, w)
			if b["build_version"] != "v1.2.3" || b["started_at"] != "2026-04-01T09:59:00Z" || b["version"] != 1.0 {
				t.Errorf("build_version, started_at, version = %v, %v, %v", b["build_version"], b["started_at"], b["version"])
			}
			wantJSON(t, b["resources"], `{"agents":3,"clients":2,"model_pools":1,"models":2,"providers":2}`)
			tc.check(t, b)
		})
	}
}

// wantJSON compares the JSON encoding of got with want.
func wantJSON(t *testing.T, got any, want string) {
	t.Helper()
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %s: %v", want, err)
	}
	wb, _ := json.Marshal(w)
	if !bytes.Equal(b, wb) {
		t.Errorf("got  %s\nwant %s", b, wb)
	}
}

func TestReload(t *testing.T) {
	rejectErr := errors.New("models/gpt.yaml:3:1: unknown field")
	tests := []struct {
		name        string
		query       string
		result      reload.Result
		err         error
		replace     bool // the reload publishes a new version
		status      int
		wantForce   bool
		wantVersion string // header and body
		check       func(t *testing.T, b map[string]any)
	}{
		{
			name:    "applied",
			result:  reload.Result{Outcome: reload.OutcomeApplied, Version: 2, Changes: "-2 agents", Fingerprint: "fp2", Duration: 1500 * time.Millisecond},
			replace: true, status: 200, wantForce: true, wantVersion: "2",
			check: func(t *testing.T, b map[string]any) {
				wantJSON(t, b, `{"result":"applied","trigger":"api","version":2,"changes":"-2 agents","duration_seconds":1.5,"fingerprint":"fp2"}`)
			},
		},
		{
			name:   "unchanged without force",
			query:  "?force=false",
			result: reload.Result{Outcome: reload.OutcomeUnchanged, Version: 1, Fingerprint: "fp1"},
			status: 200, wantForce: false, wantVersion: "1",
			check: wantField("result", "unchanged"),
		},
		{
			name:   "rejected",
			query:  "?force=true",
			result: reload.Result{Outcome: reload.OutcomeRejected, Version: 1, Err: rejectErr, Fingerprint: "fp3"},
			status: 422, wantForce: true, wantVersion: "1",
			check: func(t *testing.T, b map[string]any) {
				if b["result"] != "rejected" {
					t.Errorf("result = %v", b["result"])
				}
				e := b["error"].(map[string]any)
				if e["code"] != "config_rejected" || !strings.Contains(e["message"].(string), rejectErr.Error()) || e["type"] == "" {
					t.Errorf("error = %v", e)
				}
				wantJSON(t, b["diagnostics"], `[{"file":"models/gpt.yaml","line":3}]`)
			},
		},
		{
			// The same files that were rejected before, without force: a
			// repeated rejection is still a rejection.
			name:   "repeated rejection",
			query:  "?force=false",
			result: reload.Result{Outcome: reload.OutcomeRejected, Repeated: true, Version: 1, Err: rejectErr, Fingerprint: "fp3"},
			status: 422, wantForce: false, wantVersion: "1",
			check: wantField("result", "rejected"),
		},
		{
			name:   "stopped loop",
			err:    reload.ErrStopped,
			status: 503, wantForce: true, wantVersion: "1",
			check: func(t *testing.T, b map[string]any) {
				if b["error"].(map[string]any)["code"] != "reload_unavailable" {
					t.Errorf("body = %v", b)
				}
			},
		},
		{
			name:   "bad force",
			query:  "?force=maybe",
			status: 400, wantVersion: "1",
			check: func(t *testing.T, b map[string]any) {
				if b["error"].(map[string]any)["code"] != "invalid_parameter" {
					t.Errorf("body = %v", b)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			diags := func(err error) any {
				if err == rejectErr {
					return []map[string]any{{"file": "models/gpt.yaml", "line": 3}}
				}
				return nil
			}
			handler, h, f := newServer(t, api.Options{Diagnostics: diags})
			f.result, f.err = tc.result, tc.err
			if tc.replace {
				f.onReload = func() { h.Replace(otherSet(t)) }
			}
			w := serve(handler, "POST", "/api/v1/reload"+tc.query, loopbackPeer, "")
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if got := w.Header().Get(edge.VersionHeader); got != tc.wantVersion {
				t.Errorf("%s = %q, want %q", edge.VersionHeader, got, tc.wantVersion)
			}
			b := decode(t, w)
			if v, ok := b["version"]; ok && strconv.FormatFloat(v.(float64), 'f', -1, 64) != tc.wantVersion {
				t.Errorf("body version = %v, want %s", v, tc.wantVersion)
			}
			if tc.status != 400 {
				if req := f.lastRequest(t); req.Trigger != reload.TriggerAPI || req.Force != tc.wantForce {
					t.Errorf("request = %+v, want api force=%v", req, tc.wantForce)
				}
			}
			tc.check(t, b)
		})
	}
}

func TestReloadHonoursRequestCancellation(t *testing.T) {
	handler, _, f := newServer(t, api.Options{})
	f.wait = true
	ctx, cancel := context.WithCancel(t.Context())
	r := httptest.NewRequestWithContext(ctx, "POST", "/api/v1/reload", nil)
	r.Host = testHost
	r.RemoteAddr = loopbackPeer
	w := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		handler.ServeHTTP(w, r)
	}()
	for {
		f.mu.Lock()
		n := len(f.requests)
		f.mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if w.Code != 503 || errorCode(t, w) != "reload_cancelled" {
		t.Errorf("status = %d: %s", w.Code, w.Body)
	}
}

func TestAuth(t *testing.T) {
	const remote = "10.1.2.3:5555"
	tests := []struct {
		name         string
		token        string // configured
		next         string // the token the settings name now, if not token
		method, path string
		peer, bearer string
		rawAuth      string // overrides bearer
		status       int
		authenticate bool // WWW-Authenticate expected
		errCode      string
	}{
		{name: "token: no header", token: adminToken, method: "GET", path: "/api/v1/providers", status: 401, authenticate: true, errCode: "missing_token"},
		{name: "token: wrong token", token: adminToken, method: "GET", path: "/api/v1/providers", bearer: "nope", status: 401, authenticate: true, errCode: "invalid_token"},
		{name: "token: prefix of token", token: adminToken, method: "GET", path: "/api/v1/providers", bearer: adminToken[:5], status: 401, authenticate: true, errCode: "invalid_token"},
		{name: "token: basic scheme", token: adminToken, method: "GET", path: "/api/v1/providers", rawAuth: "Basic " + adminToken, status: 401, authenticate: true, errCode: "missing_token"},
		{name: "token: right token", token: adminToken, method: "GET", path: "/api/v1/providers", bearer: adminToken, status: 200},
		{name: "token: lower-case scheme", token: adminToken, method: "GET", path: "/api/v1/status", rawAuth: "bearer " + adminToken, status: 200},
		{name: "token: unknown route needs it too", token: adminToken, method: "GET", path: "/api/v1/secret-route", status: 401, authenticate: true},
		{name: "token: unknown route with token", token: adminToken, method: "GET", path: "/api/v1/secret-route", bearer: adminToken, status: 404},
		{name: "token: reload without header", token: adminToken, method: "POST", path: "/api/v1/reload", peer: loopbackPeer, status: 401, authenticate: true},
		{name: "token: reload remote with token", token: adminToken, method: "POST", path: "/api/v1/reload", peer: remote, bearer: adminToken, status: 200},
		{name: "token: healthz open", token: adminToken, method: "GET", path: "/healthz", status: 200},
		{name: "token: readyz open", token: adminToken, method: "GET", path: "/readyz", status: 200},
		{name: "token: metrics open", token: adminToken, method: "GET", path: "/metrics", status: 200},

		{name: "changed: reload with the new token", token: adminToken, next: "new-token", method: "POST", path: "/api/v1/reload", peer: remote, bearer: "new-token", status: 200},
		{name: "changed: reload with the old token", token: adminToken, next: "new-token", method: "POST", path: "/api/v1/reload", peer: remote, bearer: adminToken, status: 200},
		{name: "changed: reads need the running token", token: adminToken, next: "new-token", method: "GET", path: "/api/v1/status", bearer: "new-token", status: 401, authenticate: true, errCode: "invalid_token"},
		{name: "changed: reload with another token", token: adminToken, next: "new-token", method: "POST", path: "/api/v1/reload", peer: remote, bearer: "nope", status: 401, authenticate: true},
		{name: "removed: reload without a token from loopback", token: adminToken, next: "-", method: "POST", path: "/api/v1/reload", peer: loopbackPeer, status: 200},
		{name: "removed: reload without a token from afar", token: adminToken, next: "-", method: "POST", path: "/api/v1/reload", peer: remote, status: 401, authenticate: true},

		{name: "no token: reload from 127.0.0.1", method: "POST", path: "/api/v1/reload", peer: loopbackPeer, status: 200},
		{name: "no token: reload from 127.9.9.9", method: "POST", path: "/api/v1/reload", peer: "127.9.9.9:1", status: 200},
		{name: "no token: reload from ::1", method: "POST", path: "/api/v1/reload", peer: "[::1]:40000", status: 200},
		{name: "no token: reload from mapped 127.0.0.1", method: "POST", path: "/api/v1/reload", peer: "[::ffff:127.0.0.1]:40000", status: 200},
		{name: "no token: reload from 10.1.2.3", method: "POST", path: "/api/v1/reload", peer: remote, status: 403, errCode: "forbidden"},
		{name: "no token: reload from a unix socket", method: "POST", path: "/api/v1/reload", peer: "@", status: 403, errCode: "forbidden"},
		{name: "no token: bearer does not help", method: "POST", path: "/api/v1/reload", peer: remote, bearer: "anything", status: 403},
		{name: "no token: reads open remotely", method: "GET", path: "/api/v1/agents", peer: remote, status: 200},
		{name: "no token: status open remotely", method: "GET", path: "/api/v1/status", peer: remote, status: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := api.Options{Admin: edge.NewKeysVar(edge.NewKeys(tc.token))}
			if tc.next != "" {
				next := strings.TrimPrefix(tc.next, "-")
				opts.NextAdmin = func(token string) bool { return token == next }
			}
			handler, _, f := newServer(t, opts)
			f.result = reload.Result{Outcome: reload.OutcomeUnchanged, Version: 1}
			r := httptest.NewRequest(tc.method, tc.path, nil)
			r.Host = testHost
			if tc.peer != "" {
				r.RemoteAddr = tc.peer
			}
			switch {
			case tc.rawAuth != "":
				r.Header.Set("Authorization", tc.rawAuth)
			case tc.bearer != "":
				r.Header.Set("Authorization", "Bearer "+tc.bearer)
			}
			w := httptest.NewRecorder()
			handler.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if got := w.Header().Get("WWW-Authenticate"); (got != "") != tc.authenticate || (got != "" && !strings.HasPrefix(got, "Bearer")) {
				t.Errorf("WWW-Authenticate = %q", got)
			}
			if w.Header().Get(edge.VersionHeader) != "1" {
				t.Errorf("%s missing on a %d", edge.VersionHeader, w.Code)
			}
			if tc.errCode != "" {
				if got := errorCode(t, w); got != tc.errCode {
					t.Errorf("error code = %q, want %q", got, tc.errCode)
				}
			}
			f.mu.Lock()
			reloads := len(f.requests)
			f.mu.Unlock()
			if tc.status != 200 && reloads != 0 {
				t.Errorf("a refused request reloaded")
			}
		})
	}
}

// TestSecretsNeverServed puts a distinctive secret in every secret field and
// looks for them in every route's response, while checking that their
// presence is still reported.
func TestSecretsNeverServed(t *testing.T) {
	var logs bytes.Buffer
	handler, h, f := newServer(t, api.Options{
		Admin:  edge.NewKeysVar(edge.NewKeys(adminToken)),
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	f.result = reload.Result{Outcome: reload.OutcomeApplied, Version: 1, Changes: "~1 provider (api_key)"}
	f.status = reload.Status{Last: f.result, LastApplied: f.result}

	var paths []string
	snap := h.Current()
	paths = append(paths, "/api/v1/status", "/healthz", "/readyz", "/metrics", "/api/v1/nope")
	for _, kind := range []struct {
		path string
		ids  []string
	}{
		{"/api/v1/providers", snap.Set.ProviderIDs()},
		{"/api/v1/models", snap.Set.ModelIDs()},
		{"/api/v1/model-pools", snap.Set.PoolIDs()},
		{"/api/v1/agents", snap.Set.AgentIDs()},
	} {
		paths = append(paths, kind.path)
		for _, id := range kind.ids {
			paths = append(paths, kind.path+"/"+id)
		}
	}
	for _, id := range snap.Set.ProviderIDs() {
		paths = append(paths, "/api/v1/providers/"+id+"/removal-preview")
	}
	for _, id := range snap.Set.AgentIDs() {
		paths = append(paths, "/api/v1/agents/"+id+"/resolve")
	}

	bodies := map[string]string{}
	for _, p := range paths {
		for _, token := range []string{adminToken, "", "wrong"} {
			w := serve(handler, "GET", p, "", token)
			bodies["GET "+p+" token="+token] = w.Body.String() + fmt.Sprint(w.Header())
		}
	}
	w := serve(handler, "POST", "/api/v1/reload", "", adminToken)
	bodies["POST /api/v1/reload"] = w.Body.String() + fmt.Sprint(w.Header())
	bodies["logs"] = logs.String()

	for name, body := range bodies {
		for _, s := range secrets {
			if strings.Contains(body, s) {
				t.Errorf("%s serves secret %q:\n%s", name, s, body)
			}
		}
	}
	if strings.Contains(logs.String(), adminToken) {
		t.Errorf("logs hold the admin token:\n%s", logs.String())
	}

	// The views still say what is configured.
	p := decode(t, serve(handler, "GET", "/api/v1/providers/openai", "", adminToken))
	wantJSON(t, p, `{"id":"openai","adapter":"openai","base_url":"https://xxxxx@llm.example.com/v1","timeout_secs":300,"has_api_key":true,"adapter_options":{"header_names":["Authorization","X-Org"]}}`)
	m := decode(t, serve(handler, "GET", "/api/v1/providers/mock", "", adminToken))
	wantJSON(t, m, `{"id":"mock","adapter":"mock","timeout_secs":30,"has_api_key":false}`)
	a := decode(t, serve(handler, "GET", "/api/v1/agents/remote", "", adminToken))
	wantJSON(t, a["endpoint"], `{"backend":"a2a","base_url":"https://xxxxx@agents.example.com","auth":{"type":"bearer","has_token":true},"timeout_ms":1000}`)
}

// TestOneSnapshotPerRequest replaces the snapshot while a request is being
// served: the response must describe one snapshot, the one its header names.
func TestOneSnapshotPerRequest(t *testing.T) {
	t.Run("status", func(t *testing.T) {
		handler, h, f := newServer(t, api.Options{})
		f.onStatus = func() { h.Replace(otherSet(t)) } // after the handler read its snapshot
		w := serve(handler, "GET", "/api/v1/status", "", "")
		b := decode(t, w)
		if w.Header().Get(edge.VersionHeader) != "1" || b["version"] != 1.0 {
			t.Fatalf("header %s, body version %v, want 1 and 1", w.Header().Get(edge.VersionHeader), b["version"])
		}
		wantJSON(t, b["resources"], `{"agents":3,"clients":2,"model_pools":1,"models":2,"providers":2}`)
		if h.Version() != 2 {
			t.Fatalf("the handle was not replaced during the request")
		}
	})

	t.Run("lists under concurrent replacement", func(t *testing.T) {
		// Odd versions serve testSet, even ones otherSet.
		handler, h, _ := newServer(t, api.Options{})
		sets := [2]*registry.Set{otherSet(t), testSet(t)}
		want := map[bool][]string{true: {"mock", "openai"}, false: {"other"}}
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		wg.Go(func() {
			for ctx.Err() == nil {
				h.Replace(sets[(h.Version()+1)%2])
			}
		})
		defer func() { cancel(); wg.Wait() }()
		seen := map[bool]bool{}
		for range 300 {
			w := serve(handler, "GET", "/api/v1/providers", "", "")
			v, err := strconv.ParseUint(w.Header().Get(edge.VersionHeader), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			odd := v%2 == 1
			seen[odd] = true
			if got := ids(t, decode(t, w)); !slices.Equal(got, want[odd]) {
				t.Fatalf("version %d served %v, want %v", v, got, want[odd])
			}
		}
		if !seen[true] || !seen[false] {
			t.Logf("only one parity seen: %v", seen)
		}
	})
}

func TestNotReady(t *testing.T) {
	handler := api.New(api.Options{Reloader: &fakeReloader{}})
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/healthz", 200},
		{"/readyz", 503},
		{"/api/v1/providers", 503},
		{"/api/v1/status", 503},
		{"/metrics", 404}, // no metrics handler configured
	} {
		w := serve(handler, "GET", tc.path, "", "")
		if w.Code != tc.status {
			t.Errorf("%s: status = %d, want %d: %s", tc.path, w.Code, tc.status, w.Body)
		}
		if got := w.Header().Get(edge.VersionHeader); got != "" {
			t.Errorf("%s: %s = %q with no snapshot", tc.path, edge.VersionHeader, got)
		}
	}
}

func TestAdminActionsAreLogged(t *testing.T) {
	var logs bytes.Buffer
	handler, _, f := newServer(t, api.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	f.result = reload.Result{Outcome: reload.OutcomeApplied, Version: 2}
	serve(handler, "POST", "/api/v1/reload", loopbackPeer, "")
	serve(handler, "POST", "/api/v1/reload", "10.0.0.1:1", "")
	serve(handler, "GET", "/api/v1/providers", "", "")
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one line per admin action, got:\n%s", logs.String())
	}
	if !strings.Contains(lines[0], `msg="admin reload"`) || !strings.Contains(lines[0], "result=applied") || !strings.Contains(lines[0], "remote=127.0.0.1:40000") {
		t.Errorf("reload line = %s", lines[0])
	}
	if !strings.Contains(lines[1], `msg="admin reload refused"`) || !strings.Contains(lines[1], "level=WARN") {
		t.Errorf("refusal line = %s", lines[1])
	}
}

// TestMetricsScrape serves the real metrics through the API, open even
// with an admin token, and finds the reload counters and registry gauges.
func TestMetricsScrape(t *testing.T) {
	h := registry.NewHandle(testSet(t))
	m := metrics.New(h, func() reload.WatcherStatus { return reload.WatcherStatus{Up: true, Mode: reload.ModeFsnotify} })
	handler := api.New(api.Options{Handle: h, Metrics: m.Handler(), Admin: edge.NewKeysVar(edge.NewKeys(adminToken))})
	m.ObserveReload(reload.Result{Trigger: reload.TriggerAPI, Outcome: reload.OutcomeApplied, Version: 1, Started: time.Now(), Duration: 3 * time.Millisecond})
	m.ObserveReload(reload.Result{Trigger: reload.TriggerWatch, Outcome: reload.OutcomeRejected, Version: 1, Err: errors.New("bad")})

	w := serve(handler, "GET", "/metrics", "", "")
	if w.Code != 200 {
		t.Fatalf("status = %d", w.Code)
	}
	body := w.Body.String()
	for _, line := range []string{
		`awakend_config_reloads_total{result="applied",trigger="api"} 1`,
		`awakend_config_reloads_total{result="rejected",trigger="watch"} 1`,
		`awakend_config_last_reload_successful 0`,
		`awakend_config_reload_duration_seconds_count 2`,
		`awakend_registry_version 1`,
		`awakend_registry_resources{kind="agents"} 3`,
		`awakend_registry_resources{kind="providers"} 2`,
		`awakend_watcher_up 1`,
	} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("scrape lacks %q", line)
		}
	}
}

// TestGuard: a route no token guards refuses a loopback peer that names
// another host (DNS rebinding) and a cross-origin POST; a route the admin
// token guards leaves them to the token.
func TestGuard(t *testing.T) {
	const evil = "evil.example:8700"
	tests := []struct {
		name         string
		token        string // configured
		method, path string
		peer, host   string
		bearer       string
		header       []string
		status       int
		code         string
	}{
		{name: "no token: rebinding read", method: "GET", path: "/api/v1/agents", peer: loopbackPeer, host: evil, status: 403, code: "host_not_allowed"},
		{name: "no token: rebinding reload", method: "POST", path: "/api/v1/reload", peer: loopbackPeer, host: evil, status: 403, code: "host_not_allowed"},
		{name: "no token: rebinding unknown path", method: "GET", path: "/nope", peer: loopbackPeer, host: evil, status: 403, code: "host_not_allowed"},
		{name: "no token: rebinding healthz", method: "GET", path: "/healthz", peer: loopbackPeer, host: evil, status: 403, code: "host_not_allowed"},
		{name: "no token: localhost", method: "GET", path: "/api/v1/agents", peer: loopbackPeer, host: "localhost:8700", status: 200},
		{name: "no token: 127.0.0.1", method: "GET", path: "/api/v1/agents", peer: loopbackPeer, host: "127.0.0.1:8700", status: 200},
		{name: "no token: [::1]", method: "GET", path: "/api/v1/agents", peer: "[::1]:40000", host: "[::1]:8700", status: 200},
		{name: "no token: listen address", method: "GET", path: "/api/v1/agents", peer: loopbackPeer, host: "192.0.2.10:8700", status: 200},
		{name: "no token: remote peer not Host-checked", method: "GET", path: "/api/v1/agents", peer: "10.1.2.3:5555", host: evil, status: 200},
		{name: "no token: cross-site reload", method: "POST", path: "/api/v1/reload", peer: loopbackPeer, host: "localhost:8700",
			header: []string{"Sec-Fetch-Site", "cross-site"}, status: 403, code: "cross_origin_request"},
		{name: "no token: foreign Origin reload", method: "POST", path: "/api/v1/reload", peer: loopbackPeer, host: "localhost:8700",
			header: []string{"Origin", "http://evil.example"}, status: 403, code: "cross_origin_request"},
		{name: "no token: same-origin reload", method: "POST", path: "/api/v1/reload", peer: loopbackPeer, host: "localhost:8700",
			header: []string{"Sec-Fetch-Site", "same-origin", "Origin", "http://localhost:8700"}, status: 200},
		{name: "no token: non-browser reload", method: "POST", path: "/api/v1/reload", peer: loopbackPeer, host: "localhost:8700", status: 200},

		{name: "token: rebinding read with the token", token: adminToken, method: "GET", path: "/api/v1/agents", peer: loopbackPeer, host: evil, bearer: adminToken, status: 200},
		{name: "token: rebinding read without it", token: adminToken, method: "GET", path: "/api/v1/agents", peer: loopbackPeer, host: evil, status: 401, code: "missing_token"},
		{name: "token: reload under any name", token: adminToken, method: "POST", path: "/api/v1/reload", peer: loopbackPeer, host: evil, bearer: adminToken, status: 200},
		{name: "token: healthz is not guarded by it", token: adminToken, method: "GET", path: "/healthz", peer: loopbackPeer, host: evil, status: 403, code: "host_not_allowed"},
		{name: "token: metrics is not guarded by it", token: adminToken, method: "GET", path: "/metrics", peer: loopbackPeer, host: evil, bearer: adminToken, status: 403, code: "host_not_allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			handler, _, f := newServer(t, api.Options{Admin: edge.NewKeysVar(edge.NewKeys(tc.token)), Guard: edge.NewGuard("192.0.2.10:8700")})
			f.result = reload.Result{Outcome: reload.OutcomeUnchanged, Version: 1}
			r := httptest.NewRequest(tc.method, tc.path, nil)
			r.RemoteAddr, r.Host = tc.peer, tc.host
			if tc.bearer != "" {
				r.Header.Set("Authorization", "Bearer "+tc.bearer)
			}
			for i := 0; i+1 < len(tc.header); i += 2 {
				r.Header.Set(tc.header[i], tc.header[i+1])
			}
			answered(t, handler, r, tc.status, tc.code)
			f.mu.Lock()
			reloads := len(f.requests)
			f.mu.Unlock()
			if tc.status != 200 && reloads != 0 {
				t.Error("a refused request reloaded")
			}
		})
	}
}

// answered serves r and checks the answer's status and, if code is set,
// its error code.
func answered(t *testing.T, h http.Handler, r *http.Request, status int, code string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != status {
		t.Fatalf("status = %d, want %d: %s", w.Code, status, w.Body)
	}
	if code != "" {
		if got := errorCode(t, w); got != code {
			t.Errorf("error code = %q, want %q", got, code)
		}
	}
	return w
}

// TestClientCertificate: over TLS, the admin's client certificate stands
// for the admin token, and reloads from any peer; a refused one, or none,
// does not; and a browser that sends it by itself is still guarded.
func TestClientCertificate(t *testing.T) {
	const remote, evil = "10.1.2.3:5555", "evil.example:8700"
	admin := &x509.Certificate{Subject: pkix.Name{CommonName: "alice"}}
	stranger := &x509.Certificate{Subject: pkix.Name{CommonName: "mallory"}}
	tests := []struct {
		name         string
		token        string // configured
		method, path string
		peer, host   string
		cert         *x509.Certificate // nil: none
		plain        bool              // plain HTTP, not TLS
		header       []string
		status       int
		code         string
		logged       string // in the log
	}{
		{name: "token: reads", token: adminToken, method: "GET", path: "/api/v1/agents", peer: remote, cert: admin, status: 200},
		{name: "token: reload from afar", token: adminToken, method: "POST", path: "/api/v1/reload", peer: remote, cert: admin, status: 200},
		{name: "token: unknown route", token: adminToken, method: "GET", path: "/api/v1/nope", peer: remote, cert: admin, status: 404},
		{name: "token: refused certificate", token: adminToken, method: "GET", path: "/api/v1/agents", peer: remote, cert: stranger,
			status: 401, code: "missing_token", logged: "client certificate refused"},
		{name: "token: no certificate", token: adminToken, method: "GET", path: "/api/v1/agents", peer: remote, status: 401},
		{name: "token: plain HTTP", token: adminToken, method: "GET", path: "/api/v1/agents", peer: remote, plain: true, status: 401},
		{name: "token: cross-site reload", token: adminToken, method: "POST", path: "/api/v1/reload", peer: remote, host: "awakend.lan:8700", cert: admin,
			header: []string{"Origin", "https://evil.example"}, status: 403, code: "cross_origin_request"},
		{name: "token: rebinding", token: adminToken, method: "GET", path: "/api/v1/agents", peer: loopbackPeer, host: evil, cert: admin, status: 403, code: "host_not_allowed"},

		{name: "no token: reload from afar", method: "POST", path: "/api/v1/reload", peer: remote, cert: admin, status: 200},
		{name: "no token: refused certificate from afar", method: "POST", path: "/api/v1/reload", peer: remote, cert: stranger,
			status: 403, code: "forbidden", logged: "client certificate refused"},
		{name: "no token: cross-site reload", method: "POST", path: "/api/v1/reload", peer: remote, host: "awakend.lan:8700", cert: admin,
			header: []string{"Sec-Fetch-Site", "cross-site"}, status: 403, code: "cross_origin_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log strings.Builder
			handler, _, f := newServer(t, api.Options{
				Admin:  edge.NewKeysVar(edge.NewKeys(tc.token)),
				Guard:  edge.NewGuard("192.0.2.10:8700"),
				Logger: slog.New(slog.NewTextHandler(&log, nil)),
				ClientAdmin: func(r *http.Request) (string, bool, error) {
					if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
						return "", false, edge.ErrNoClientCert
					}
					c := r.TLS.PeerCertificates[0]
					if c != admin {
						return c.Subject.String(), true, errors.New("x509: certificate signed by unknown authority")
					}
					return c.Subject.String(), true, nil
				},
			})
			f.result = reload.Result{Outcome: reload.OutcomeUnchanged, Version: 1}
			r := httptest.NewRequest(tc.method, tc.path, nil)
			r.RemoteAddr, r.Host = tc.peer, cmp.Or(tc.host, testHost)
			if !tc.plain {
				r.TLS = &tls.ConnectionState{}
				if tc.cert != nil {
					r.TLS.PeerCertificates = []*x509.Certificate{tc.cert}
				}
			}
			for i := 0; i+1 < len(tc.header); i += 2 {
				r.Header.Set(tc.header[i], tc.header[i+1])
			}
			answered(t, handler, r, tc.status, tc.code)
			if tc.logged != "" && !strings.Contains(log.String(), tc.logged) {
				t.Errorf("log %q, want %q", log.String(), tc.logged)
			}
			f.mu.Lock()
			reloads := len(f.requests)
			f.mu.Unlock()
			if tc.status != 200 && reloads != 0 {
				t.Error("a refused request reloaded")
			}
		})
	}
	// A refusal known from an earlier request of the connection is not
	// logged again.
	var log strings.Builder
	handler, _, _ := newServer(t, api.Options{
		Admin:  edge.NewKeysVar(edge.NewKeys(adminToken)),
		Logger: slog.New(slog.NewTextHandler(&log, nil)),
		ClientAdmin: func(*http.Request) (string, bool, error) {
			return "CN=mallory", false, errors.New("x509: certificate signed by unknown authority")
		},
	})
	r := httptest.NewRequest("GET", "/api/v1/agents", nil)
	r.Host, r.TLS = testHost, &tls.ConnectionState{PeerCertificates: []*x509.Certificate{stranger}}
	answered(t, handler, r, http.StatusUnauthorized, "missing_token")
	if strings.Contains(log.String(), "client certificate refused") {
		t.Errorf("a kept refusal was logged again: %s", log.String())
	}
	// Without ClientAdmin, a certificate is worth nothing.
	handler, _, _ = newServer(t, api.Options{Admin: edge.NewKeysVar(edge.NewKeys(adminToken))})
	r = httptest.NewRequest("GET", "/api/v1/agents", nil)
	r.Host, r.TLS = testHost, &tls.ConnectionState{PeerCertificates: []*x509.Certificate{admin}}
	answered(t, handler, r, http.StatusUnauthorized, "missing_token")
}

// TestClientUsage: a client is served with what Options.Usage says of it,
// and never with its key.
func TestClientUsage(t *testing.T) {
	handler, _, _ := newServer(t, api.Options{Usage: func(id string) any {
		return map[string]any{"requests": len(id)}
	}})
	for _, path := range []string{"/api/v1/clients/team", "/api/v1/clients"} {
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != 200 {
			t.Fatalf("%s: %d", path, w.Code)
		}
		if !strings.Contains(w.Body.String(), `"usage":{"requests":4}`) {
			t.Errorf("%s: no usage of team: %s", path, w.Body)
		}
	}
}
