package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/awakend/awakend/provider"
	"github.com/awakend/awakend/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fake is a hand-written provider.Caller. Its answer comes from fn (by
// default a chat.completion naming the upstream model); every request it
// receives is recorded.
type fake struct {
	id     string
	fn     func(ctx context.Context, req *provider.Request) (*provider.Response, error)
	native []provider.API // served besides chat completions

	mu   sync.Mutex
	reqs []provider.Request
}

func (f *fake) Name() string           { return "fake" }
func (f *fake) Close() error           { return nil }
func (f *fake) Redact(b []byte) []byte { return b }
func (f *fake) Serves(api provider.API) bool {
	return api == provider.APIChat || slices.Contains(f.native, api)
}

func (f *fake) Call(ctx context.Context, req *provider.Request) (*provider.Response, error) {
	f.mu.Lock()
	r := *req
	r.Body = bytes.Clone(req.Body)
	f.reqs = append(f.reqs, r)
	fn := f.fn
	f.mu.Unlock()
	if fn == nil {
		if req.Stream {
			return sseAnswer(`{"object":"chat.completion.chunk","model":"`+req.UpstreamModel+`"}`, "[DONE]"), nil
		}
		return answer(req.UpstreamModel), nil
	}
	return fn(ctx, req)
}

func (f *fake) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func (f *fake) last(t testing.TB) provider.Request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		t.Fatalf("provider %s was not called", f.id)
	}
	return f.reqs[len(f.reqs)-1]
}

func (f *fake) set(fn func(ctx context.Context, req *provider.Request) (*provider.Response, error)) {
	f.mu.Lock()
	f.fn = fn
	f.mu.Unlock()
}

// answer is a chat.completion from upstream model.
func answer(model string) *provider.Response {
	body := `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"` + model +
		`","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`
	return &provider.Response{
		StatusCode: 200,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(strings.NewReader(body)),
	}
}

// sseAnswer is a streaming answer of the given events, each "data: …".
func sseAnswer(events ...string) *provider.Response {
	var b strings.Builder
	for _, e := range events {
		b.WriteString("data: " + e + "\n\n")
	}
	return &provider.Response{
		StatusCode: 200,
		Header:     http.Header{"Content-Type": {"text/event-stream"}},
		Body:       io.NopCloser(strings.NewReader(b.String())),
	}
}

// failing returns an fn that fails every call with class and status.
func failing(class provider.Class, status int, retryAfter time.Duration) func(context.Context, *provider.Request) (*provider.Response, error) {
	return func(context.Context, *provider.Request) (*provider.Response, error) {
		return nil, &provider.Error{Class: class, StatusCode: status, RetryAfter: retryAfter,
			Message: "upstream says " + string(class), Type: "upstream_type", Code: "upstream_code"}
	}
}

// world is a registry of fake providers, built with registry.Rebuild.
type world struct {
	fakes     map[string]*fake
	providers []registry.Provider
	models    []registry.ModelSpec
	pools     []registry.PoolSpec
	agents    []registry.AgentSpec
	clients   []registry.ClientSpec
}

func newWorld() *world { return &world{fakes: map[string]*fake{}} }

// provider adds a provider backed by a new fake.
func (w *world) provider(id string) *fake {
	f := &fake{id: id}
	w.fakes[id] = f
	w.providers = append(w.providers, registry.Provider{
		Spec:     registry.ProviderSpec{ID: id, Adapter: "mock", TimeoutSecs: registry.DefaultProviderTimeoutSecs},
		Executor: f,
	})
	return f
}

// model adds a model on a provider, upstream name "up-<id>".
func (w *world) model(id, providerID string) *world {
	w.models = append(w.models, registry.ModelSpec{ID: id, ProviderID: providerID, UpstreamModel: "up-" + id})
	return w
}

// pool adds a pool; members are "model" or "model:weight" or
// "model:failover".
func (w *world) pool(id string, home registry.HomeStrategy, sw registry.SwitchPolicy, members ...string) *world {
	p := registry.PoolSpec{ID: id, Routing: registry.PoolRouting{Home: home, StickyScope: registry.StickyThread}, Switch: sw}
	for _, m := range members {
		id, extra, _ := strings.Cut(m, ":")
		mem := registry.PoolMember{ModelID: id, Role: registry.RoleMember}
		switch {
		case extra == "failover":
			mem.Role = registry.RoleFailoverOnly
		case extra != "":
			var n uint32
			_ = json.Unmarshal([]byte(extra), &n)
			mem.Weight = &n
		}
		p.Members = append(p.Members, mem)
	}
	w.pools = append(w.pools, p)
	return w
}

func (w *world) agent(a registry.AgentSpec) *world {
	if a.MaxRounds == 0 {
		a.MaxRounds = registry.DefaultMaxRounds
	}
	a.AllowedToolPatterns = []string{"*"}
	w.agents = append(w.agents, a)
	return w
}

func (w *world) set(t testing.TB) *registry.Set {
	t.Helper()
	s, err := registry.Rebuild(nil, registry.Update{Providers: w.providers, Models: w.models, Pools: w.pools, Agents: w.agents, Clients: w.clients})
	if err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	return s
}

// clock is an injectable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Unix(1_700_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// gw builds a gateway over w with opts (Handle is set).
func (w *world) gw(t testing.TB, opts Options) (*Gateway, *registry.Handle) {
	t.Helper()
	h := registry.NewHandle(w.set(t))
	opts.Handle = h
	return New(opts), h
}

// result is an answer to a request.
type result struct {
	code   int
	header http.Header
	body   string
}

func (r result) json(t testing.TB) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, r.body)
	}
	return v
}

// errCode returns the envelope's error.code.
func (r result) errCode(t testing.TB) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// do sends a request straight to the handler.
func do(t testing.TB, h http.Handler, method, path, body string, header ...string) result {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return result{code: rec.Code, header: rec.Header(), body: rec.Body.String()}
}

// chatBody is a minimal request for model.
func chatReq(model string) string {
	return `{"model":"` + model + `","messages":[{"role":"user","content":"hello"}]}`
}

// discard is a logger that drops everything.
var discard = slog.New(slog.DiscardHandler)
