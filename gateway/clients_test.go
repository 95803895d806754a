package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/awakend/awakend/edge"
	"github.com/awakend/awakend/provider"
	"github.com/awakend/awakend/registry"
)

func ptr[T any](v T) *T { return &v }

// clientWorld: basicWorld with priced models and three clients: all (every
// model, key "k-all"), team (only m and on-pool, key given by hash),
// none (nothing).
func clientWorld() *world {
	w := basicWorld()
	for i := range w.models {
		w.models[i].InputTokenPricePerMillionUSD = ptr(2.0)
		w.models[i].OutputTokenPricePerMillionUSD = ptr(10.0)
	}
	sum := sha256.Sum256([]byte("k-team"))
	w.clients = []registry.ClientSpec{
		{ID: "all", Key: "k-all"},
		{ID: "team", KeySHA256: hex.EncodeToString(sum[:]), Models: []string{"m", "on-pool"}},
		{ID: "none", Key: "k-none", Models: []string{}},
	}
	return w
}

func bearer(key string) []string { return []string{"Authorization", "Bearer " + key} }

func TestClientKeys(t *testing.T) {
	g, _ := clientWorld().gw(t, Options{Keys: edge.NewKeysVar(edge.NewKeys("k-settings"))})
	for _, tt := range []struct {
		name, path, body string
		header           []string
		code             int
		errCode          string
	}{
		{"no key", "/v1/chat/completions", chatReq("m"), nil, 401, "invalid_api_key"},
		{"wrong key", "/v1/chat/completions", chatReq("m"), bearer("k-nope"), 401, "invalid_api_key"},
		{"unscoped client", "/v1/chat/completions", chatReq("n"), bearer("k-all"), 200, ""},
		{"client by hash, in scope", "/v1/chat/completions", chatReq("m"), bearer("k-team"), 200, ""},
		{"agent in scope", "/v1/chat/completions", chatReq("on-pool"), bearer("k-team"), 200, ""},
		{"out of scope", "/v1/chat/completions", chatReq("n"), bearer("k-team"), 404, "model_not_found"},
		{"out of scope, pool", "/v1/chat/completions", chatReq("pl"), bearer("k-team"), 404, "model_not_found"},
		{"empty scope", "/v1/chat/completions", chatReq("m"), bearer("k-none"), 404, "model_not_found"},
		{"out of scope, embeddings", "/v1/embeddings", `{"model":"n","input":"x"}`, bearer("k-team"), 404, "model_not_found"},
		{"out of scope, responses", "/v1/responses", `{"model":"n","input":"x"}`, bearer("k-team"), 404, "model_not_found"},
		{"out of scope, model item", "/v1/models/n", "", bearer("k-team"), 404, "model_not_found"},
		{"settings key beside clients", "/v1/chat/completions", chatReq("n"), bearer("k-settings"), 200, ""},
		{"x-api-key only on messages", "/v1/chat/completions", chatReq("m"), []string{"X-Api-Key", "k-all"}, 401, "invalid_api_key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			method := "POST"
			if tt.body == "" {
				method = "GET"
			}
			res := do(t, g, method, tt.path, tt.body, tt.header...)
			if res.code != tt.code {
				t.Fatalf("status %d, want %d: %s", res.code, tt.code, res.body)
			}
			if tt.errCode != "" && res.errCode(t) != tt.errCode {
				t.Errorf("code %q, want %q", res.errCode(t), tt.errCode)
			}
		})
	}
}

func TestClientScopeOnMessages(t *testing.T) {
	g, _ := clientWorld().gw(t, Options{})
	msg := `{"model":"MODEL","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`
	for _, path := range []string{"/v1/messages", "/v1/messages/count_tokens"} {
		res := do(t, g, "POST", path, strings.Replace(msg, "MODEL", "n", 1), "X-Api-Key", "k-team")
		if res.code != 404 || !strings.Contains(res.body, `"type":"not_found_error"`) || !strings.Contains(res.body, `"type":"error"`) {
			t.Errorf("%s out of scope: %d %s, want 404 in Anthropic's shape", path, res.code, res.body)
		}
		res = do(t, g, "POST", path, strings.Replace(msg, "MODEL", "m", 1))
		if res.code != 401 || !strings.Contains(res.body, `"authentication_error"`) {
			t.Errorf("%s without a key: %d %s, want 401 authentication_error", path, res.code, res.body)
		}
	}
	res := do(t, g, "POST", "/v1/messages", strings.Replace(msg, "MODEL", "m", 1), "X-Api-Key", "k-team")
	if res.code == 401 || res.code == 404 {
		t.Errorf("in scope with x-api-key: %d %s", res.code, res.body)
	}
}

func TestModelsFilteredByClient(t *testing.T) {
	g, _ := clientWorld().gw(t, Options{})
	for _, tt := range []struct {
		key  string
		want string
	}{
		{"k-team", "m,on-pool"},
		{"k-none", ""},
		{"k-all", "m,n,on-model,on-pool,pl"},
	} {
		res := do(t, g, "GET", "/v1/models", "", bearer(tt.key)...)
		if res.code != 200 {
			t.Fatalf("%s: status %d", tt.key, res.code)
		}
		var ids []string
		for _, m := range res.json(t)["data"].([]any) {
			ids = append(ids, m.(map[string]any)["id"].(string))
		}
		if got := strings.Join(ids, ","); got != tt.want {
			t.Errorf("%s lists %q, want %q", tt.key, got, tt.want)
		}
	}
}

func TestClientUsage(t *testing.T) {
	reg := prometheus.NewRegistry()
	g, _ := clientWorld().gw(t, Options{Metrics: reg})
	for range 2 {
		if res := do(t, g, "POST", "/v1/chat/completions", chatReq("on-pool"), bearer("k-team")...); res.code != 200 {
			t.Fatalf("status %d: %s", res.code, res.body)
		}
	}
	// The fake reports 7 prompt and 3 completion tokens per answer; m
	// costs $2 and $10 per million.
	u := g.ClientUsage("team")
	want := Counts{Requests: 2, InputTokens: 14, OutputTokens: 6, CostUSD: (14*2 + 6*10) / 1e6}
	if !sameCounts(u.Counts, want) || len(u.Models) != 1 || !sameCounts(u.Models["m"], want) {
		t.Errorf("usage %+v, want %+v under model m", u, want)
	}
	if got := testutil.ToFloat64(g.m.tokens.WithLabelValues("team", "m", "input")); got != 14 {
		t.Errorf("input tokens metric %v, want 14", got)
	}
	if got := testutil.ToFloat64(g.m.cost.WithLabelValues("team", "m")); math.Abs(got-want.CostUSD) > 1e-12 {
		t.Errorf("cost metric %v, want %v", got, want.CostUSD)
	}
	if u := g.ClientUsage("all"); u.Requests != 0 {
		t.Errorf("client all used %+v", u)
	}
}

// sameCounts compares counts, the cost to a rounding error.
func sameCounts(a, b Counts) bool {
	ca, cb := a.CostUSD, b.CostUSD
	a.CostUSD, b.CostUSD = 0, 0
	return a == b && math.Abs(ca-cb) < 1e-12
}

// TestNoClientUsage: the requests of no client are counted, in the metrics
// and ClientUsage, when the gateway exports metrics or logs its requests;
// with neither, their answers are not read for usage.
func TestNoClientUsage(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    func() Options
		counted bool
	}{
		{"metrics", func() Options { return Options{Metrics: prometheus.NewRegistry()} }, true},
		{"log", func() Options { return Options{Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))} }, true},
		{"neither", func() Options { return Options{Logger: discard} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, _ := basicWorld().gw(t, tc.opts())
			if res := do(t, g, "POST", "/v1/chat/completions", chatReq("n"), nil...); res.code != 200 {
				t.Fatalf("status %d: %s", res.code, res.body)
			}
			u := g.ClientUsage(NoClient)
			if !tc.counted {
				if u.Requests != 0 {
					t.Errorf("usage of no client %+v with no metrics and no log, want none", u)
				}
				return
			}
			if u.Requests != 1 || u.InputTokens != 7 || u.OutputTokens != 3 || u.CostUSD != 0 {
				t.Errorf("usage of no client %+v, want 1 request, 7 and 3 tokens, no price", u)
			}
			if got := testutil.ToFloat64(g.m.tokens.WithLabelValues(NoClient, "n", "input")); got != 7 {
				t.Errorf("awakend_tokens_total{client=%q, direction=input} = %v, want 7", NoClient, got)
			}
		})
	}
}

func TestClientRemovedByReload(t *testing.T) {
	w := clientWorld()
	g, h := w.gw(t, Options{})
	if res := do(t, g, "POST", "/v1/chat/completions", chatReq("m"), bearer("k-all")...); res.code != 200 {
		t.Fatalf("before: %d", res.code)
	}
	w.clients = w.clients[1:]
	h.Replace(w.set(t))
	if res := do(t, g, "POST", "/v1/chat/completions", chatReq("m"), bearer("k-all")...); res.code != 401 {
		t.Errorf("removed key: %d, want 401", res.code)
	}
	if u := g.ClientUsage("all"); u.Requests != 0 {
		t.Errorf("a removed client keeps usage %+v", u)
	}
}

// TestClientLimits: three requests a minute; the fourth is refused with
// Retry-After and the x-ratelimit headers; the limit outlives a reload and
// takes its new value from it.
func TestClientLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := clientWorld()
		w.clients[0].Limits = registry.ClientLimits{RequestsPerMinute: ptr[uint32](3), TokensPerMinute: ptr[uint32](1000)}
		g, h := w.gw(t, Options{})
		req := func() result { return do(t, g, "POST", "/v1/chat/completions", chatReq("m"), bearer("k-all")...) }
		for i := range 3 {
			res := req()
			if res.code != 200 {
				t.Fatalf("request %d: %d", i, res.code)
			}
			if got := res.header.Get("X-Ratelimit-Remaining-Requests"); got != fmt.Sprint(2-i) {
				t.Errorf("request %d: remaining requests %q, want %d", i, got, 2-i)
			}
		}
		res := req()
		if res.code != 429 || res.errCode(t) != "rate_limit_exceeded" {
			t.Fatalf("fourth request: %d %s", res.code, res.body)
		}
		// 3 a minute refill one every 20 s; 3 answers of 10 tokens used 30.
		for k, v := range map[string]string{
			"Retry-After":                    "20",
			"X-Ratelimit-Limit-Requests":     "3",
			"X-Ratelimit-Remaining-Requests": "0",
			"X-Ratelimit-Reset-Requests":     "1m0s",
			"X-Ratelimit-Limit-Tokens":       "1000",
			"X-Ratelimit-Remaining-Tokens":   "970",
			"X-Ratelimit-Reset-Tokens":       "1.8s",
		} {
			if got := res.header.Get(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		time.Sleep(20 * time.Second)
		if res := req(); res.code != 200 {
			t.Fatalf("after Retry-After: %d", res.code)
		}
		if res := req(); res.code != 429 {
			t.Fatalf("again at once: %d", res.code)
		}
		// A reload keeps the state and applies the new limit.
		w.clients[0].Limits.RequestsPerMinute = ptr[uint32](60)
		h.Replace(w.set(t))
		do(t, g, "GET", "/v1/models", "", bearer("k-all")...) // the gateway sees the new snapshot
		time.Sleep(time.Second)
		res = req()
		if res.code != 200 || res.header.Get("X-Ratelimit-Limit-Requests") != "60" {
			t.Fatalf("after raising the limit: %d, limit %q", res.code, res.header.Get("X-Ratelimit-Limit-Requests"))
		}
		if got := res.header.Get("X-Ratelimit-Remaining-Requests"); got != "0" {
			t.Errorf("remaining %q, want 0: the reload kept what was used", got)
		}
	})
}

// TestTokenLimit: tokens are taken after the fact; the request that finds
// none left is refused until the bucket has refilled.
func TestTokenLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := clientWorld()
		w.clients[0].Limits = registry.ClientLimits{TokensPerMinute: ptr[uint32](15)}
		g, _ := w.gw(t, Options{})
		req := func() result { return do(t, g, "POST", "/v1/chat/completions", chatReq("m"), bearer("k-all")...) }
		for i := range 2 { // 10 tokens each: 15, 5, -5
			if res := req(); res.code != 200 {
				t.Fatalf("request %d: %d", i, res.code)
			}
		}
		res := req()
		if res.code != 429 || res.header.Get("X-Ratelimit-Remaining-Tokens") != "0" || res.header.Get("X-Ratelimit-Limit-Requests") != "" {
			t.Fatalf("over the token limit: %d %v", res.code, res.header)
		}
		// -5 to 1 is 6 tokens at 15 a minute: 24 s.
		if got := res.header.Get("Retry-After"); got != "24" {
			t.Errorf("Retry-After %q, want 24", got)
		}
		time.Sleep(24 * time.Second)
		if res := req(); res.code != 200 {
			t.Fatalf("after Retry-After: %d", res.code)
		}
	})
}

// TestTokenDebtBounded: an answer far over the token limit leaves the
// client at most a minute's worth in debt.
func TestTokenDebtBounded(t *testing.T) {
	var l limiter
	l.set(registry.ClientLimits{TokensPerMinute: ptr[uint32](100)}, 0)
	l.spend(1_000_000, 0)
	if q := l.admit(0); q.retry != wait(101, 100) {
		t.Errorf("retry %v, want %v", q.retry, wait(101, 100))
	}
}

// TestClientLimitsOnStreams: a stream of a limited client carries the
// rate-limit headers over the upstream's, and the usage it reports is
// taken from its tokens.
func TestClientLimitsOnStreams(t *testing.T) {
	w := clientWorld()
	w.clients[0].Limits = registry.ClientLimits{RequestsPerMinute: ptr[uint32](10), TokensPerMinute: ptr[uint32](1000)}
	w.fakes["p"].set(func(_ context.Context, req *provider.Request) (*provider.Response, error) {
		if !req.Stream {
			return answer(req.UpstreamModel), nil
		}
		r := sseAnswer(`{"choices":[{"delta":{"content":"hi"}}]}`,
			`{"choices":[],"usage":{"prompt_tokens":40,"completion_tokens":60,"total_tokens":100}}`, "[DONE]")
		r.Header["X-Ratelimit-Limit-Requests"] = []string{"5000"}
		return r, nil
	})
	g, _ := w.gw(t, Options{})
	body := `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`
	res := do(t, g, "POST", "/v1/chat/completions", body, bearer("k-all")...)
	if res.code != 200 || !strings.Contains(res.body, "[DONE]") {
		t.Fatalf("stream: %d %s", res.code, res.body)
	}
	if got := res.header.Get("X-Ratelimit-Limit-Requests"); got != "10" {
		t.Errorf("X-Ratelimit-Limit-Requests %q, want the client's 10", got)
	}
	res = do(t, g, "POST", "/v1/chat/completions", chatReq("m"), bearer("k-all")...)
	// 100 tokens taken by the stream; this answer's own are taken after
	// its headers were sent.
	if got := res.header.Get("X-Ratelimit-Remaining-Tokens"); got != "900" {
		t.Errorf("X-Ratelimit-Remaining-Tokens %q after a stream of 100 tokens, want 900", got)
	}
	if u := g.ClientUsage("all"); u.InputTokens != 40+7 || u.OutputTokens != 60+3 {
		t.Errorf("usage %+v", u)
	}
}

func TestLimiterSet(t *testing.T) {
	var l limiter
	if l.on.Load() {
		t.Fatal("zero limiter is on")
	}
	l.set(registry.ClientLimits{RequestsPerMinute: ptr[uint32](10)}, 0)
	for range 10 {
		if q := l.admit(0); q.retry != 0 {
			t.Fatal("refused within the limit")
		}
	}
	l.set(registry.ClientLimits{RequestsPerMinute: ptr[uint32](5)}, 0)
	if q := l.admit(0); q.retry != 12*time.Second {
		t.Errorf("retry %v after lowering the limit, want 12s", q.retry)
	}
	l.set(registry.ClientLimits{}, 0)
	if l.on.Load() {
		t.Error("on without limits")
	}
}

// BenchmarkClientKey is the key check of a request among 10,000 clients:
// it must take no lock and allocate nothing.
func BenchmarkClientKey(b *testing.B) {
	w := basicWorld()
	for i := range 10000 {
		w.clients = append(w.clients, registry.ClientSpec{ID: fmt.Sprintf("c%05d", i), Key: fmt.Sprintf("sk-awakend-%040d", i)})
	}
	g, h := w.gw(b, Options{})
	t := g.tableFor(h.Current())
	r := httptest.NewRequest("POST", "/v1/chat/completions", nil)
	r.Header.Set("Authorization", "Bearer "+fmt.Sprintf("sk-awakend-%040d", 4242))
	rs := &reqState{}
	b.ReportAllocs()
	for b.Loop() {
		rs.client = nil
		if !g.authenticate(r, rs, t) || rs.client.id != "c04242" {
			b.Fatal("key not found")
		}
	}
}

var _ http.Handler = (*Gateway)(nil)
