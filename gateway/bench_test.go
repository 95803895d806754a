package gateway

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/awakend/awakend/provider"
	"github.com/awakend/awakend/provider/providertest"
	"github.com/awakend/awakend/registry"
)

// benchAnswer is a typical small chat.completion.
var benchAnswer = []byte(`{"id":"chatcmpl-b","object":"chat.completion","created":1,"model":"up-m",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"finish_reason":"stop"}],` +
	`"usage":{"prompt_tokens":21,"completion_tokens":9,"total_tokens":30}}`)

// benchRequest is a typical small chat request (about 600 bytes).
var benchRequest = []byte(`{"model":"MODEL","messages":[` +
	`{"role":"system","content":"You are a helpful assistant. Answer briefly and precisely."},` +
	`{"role":"user","content":"What is the capital of France? Please answer in one word and explain nothing."},` +
	`{"role":"assistant","content":"Paris."},` +
	`{"role":"user","content":"And of Germany? Same rules as before, one word, no explanation, thanks."}],` +
	`"temperature":0.2,"max_tokens":256,"user":"user-1234","metadata":{"team":"research","ticket":"ABC-123"}}`)

func benchBody(model string) []byte {
	return bytes.Replace(benchRequest, []byte("MODEL"), []byte(model), 1)
}

// memCaller answers every call with benchAnswer from memory.
type memCaller struct{}

func (memCaller) Name() string                 { return "mem" }
func (memCaller) Close() error                 { return nil }
func (memCaller) Redact(b []byte) []byte       { return b }
func (memCaller) Serves(api provider.API) bool { return api == provider.APIChat }
func (memCaller) Call(_ context.Context, req *provider.Request) (*provider.Response, error) {
	return &provider.Response{StatusCode: 200, Header: jsonHeader, Body: &memBody{b: benchAnswer}}, nil
}

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

type memBody struct {
	b []byte
	i int
}

func (m *memBody) Read(p []byte) (int, error) {
	if m.i >= len(m.b) {
		return 0, io.EOF
	}
	n := copy(p, m.b[m.i:])
	m.i += n
	return n, nil
}

func (m *memBody) Close() error { return nil }

// nullWriter is a ResponseWriter that keeps nothing.
type nullWriter struct {
	h    http.Header
	code int
}

func (w *nullWriter) Header() http.Header         { return w.h }
func (w *nullWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nullWriter) WriteHeader(code int)        { w.code = code }

// benchWorld: model m, pool pl over m and n (deterministic), agent ag on
// pl, all on in-memory callers.
func benchWorld(b *testing.B) *registry.Handle {
	prov := func(id string) registry.Provider {
		return registry.Provider{Spec: registry.ProviderSpec{ID: id, Adapter: "mock", TimeoutSecs: 30}, Executor: memCaller{}}
	}
	set, err := registry.Rebuild(nil, registry.Update{
		Providers: []registry.Provider{prov("p"), prov("q")},
		Models: []registry.ModelSpec{
			{ID: "m", ProviderID: "p", UpstreamModel: "up-m"},
			{ID: "n", ProviderID: "q", UpstreamModel: "up-n"},
		},
		Pools: []registry.PoolSpec{{ID: "pl", Members: []registry.PoolMember{{ModelID: "m", Role: registry.RoleMember}, {ModelID: "n", Role: registry.RoleMember}},
			Routing: registry.DefaultPoolRouting(), Switch: registry.DefaultSwitchPolicy()}},
		Agents: []registry.AgentSpec{{ID: "ag", ModelID: "pl", SystemPrompt: "You are the research agent.",
			ReasoningEffort: &registry.ReasoningEffort{Level: "low"}, MaxRounds: 16, AllowedToolPatterns: []string{"*"}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	return registry.NewHandle(set)
}

// BenchmarkGatewayChat is the gateway's own cost for one non-streaming
// completion: parse, route, rewrite, call (an in-memory answer), relay,
// metrics and the (disabled) log line.
func BenchmarkGatewayChat(b *testing.B) {
	for _, model := range []string{"m", "pl", "ag", "pl/logged"} {
		b.Run(model, func(b *testing.B) {
			log := discard
			name, logged := strings.CutSuffix(model, "/logged")
			if logged {
				// The request line as production writes it, to nowhere.
				log = slog.New(slog.NewJSONHandler(io.Discard, nil))
			}
			g := New(Options{Handle: benchWorld(b), Logger: log})
			body := benchBody(name)
			w := &nullWriter{h: http.Header{}}
			rd := bytes.NewReader(body)
			req := httptest.NewRequest("POST", "/v1/chat/completions", rd)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				rd.Reset(body)
				req.Body = io.NopCloser(rd)
				clear(w.h)
				g.ServeHTTP(w, req)
				if w.code != 200 {
					b.Fatalf("status %d", w.code)
				}
			}
		})
	}
}

// BenchmarkGatewayChatParallel is BenchmarkGatewayChat on every core.
func BenchmarkGatewayChatParallel(b *testing.B) {
	g := New(Options{Handle: benchWorld(b), Logger: discard})
	body := benchBody("pl")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &nullWriter{h: http.Header{}}
		rd := bytes.NewReader(body)
		req := httptest.NewRequest("POST", "/v1/chat/completions", rd)
		for pb.Next() {
			rd.Reset(body)
			req.Body = io.NopCloser(rd)
			clear(w.h)
			g.ServeHTTP(w, req)
		}
	})
}

func newTransport() *http.Transport {
	return &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second}
}

// upstreamAndGateway starts a providertest upstream and a gateway serving
// model m through a real openai executor on it (upstream model up-m).
func upstreamAndGateway(b *testing.B) (*providertest.Server, *httptest.Server) {
	up := providertest.NewServer(b)
	spec := registry.ProviderSpec{ID: "p", Adapter: "openai", BaseURL: up.OpenAIURL(), TimeoutSecs: 30}
	ex, err := provider.New(spec)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ex.(provider.Caller).Close() })
	set, err := registry.Rebuild(nil, registry.Update{
		Providers: []registry.Provider{{Spec: spec, Executor: ex}},
		Models:    []registry.ModelSpec{{ID: "m", ProviderID: "p", UpstreamModel: "up-m"}},
	})
	if err != nil {
		b.Fatal(err)
	}
	gw := httptest.NewServer(New(Options{Handle: registry.NewHandle(set), Logger: discard}))
	b.Cleanup(gw.Close)
	return up, gw
}

// BenchmarkOverhead compares a client calling the providertest upstream
// directly with the same client calling it through the gateway and the
// real openai executor, over loopback HTTP, at concurrency 1 and 16
// in one run. The difference of ns/op at c1 is the latency the gateway
// adds; the ratio of ns/op at c16 is the share of direct throughput it
// keeps. On a small machine the gateway's extra HTTP legs compete with
// the client and upstream for the same cores.
func BenchmarkOverhead(b *testing.B) {
	up, gw := upstreamAndGateway(b)
	body := benchBody("m")
	direct := benchBody("up-m")

	for _, target := range []struct {
		name, url string
		body      []byte
	}{
		{"direct", up.OpenAIURL() + "/chat/completions", direct},
		{"gateway", gw.URL + "/v1/chat/completions", body},
	} {
		for _, conc := range []int{1, 16} {
			b.Run(target.name+"/c"+strconv.Itoa(conc), func(b *testing.B) {
				client := &http.Client{Transport: newTransport()}
				defer client.CloseIdleConnections()
				concurrently(b, conc, func() error {
					resp, err := client.Post(target.url, "application/json", bytes.NewReader(target.body))
					if err != nil {
						return err
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						return fmt.Errorf("status %d", resp.StatusCode)
					}
					return nil
				})
			})
		}
	}
}

// BenchmarkAddedLatency alternates one direct request and one through the
// gateway (concurrency 1, same upstream as BenchmarkOverhead), so that
// both see the same machine load, and reports the median and 99th
// percentile of each and of their difference.
func BenchmarkAddedLatency(b *testing.B) {
	up, gw := upstreamAndGateway(b)
	client := &http.Client{Transport: newTransport()}
	defer client.CloseIdleConnections()
	call := func(url string, body []byte) time.Duration {
		start := time.Now()
		resp, err := client.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(start)
	}
	directURL, gwURL := up.OpenAIURL()+"/chat/completions", gw.URL+"/v1/chat/completions"
	directBody, gwBody := benchBody("up-m"), benchBody("m")
	var direct, through []time.Duration
	for b.Loop() {
		direct = append(direct, call(directURL, directBody))
		through = append(through, call(gwURL, gwBody))
	}
	slices.Sort(direct)
	slices.Sort(through)
	q := func(d []time.Duration, p float64) float64 { return float64(d[int(p*float64(len(d)-1))].Microseconds()) }
	b.ReportMetric(q(direct, .5), "direct-p50-µs")
	b.ReportMetric(q(through, .5), "gateway-p50-µs")
	b.ReportMetric(q(through, .5)-q(direct, .5), "added-p50-µs")
	b.ReportMetric(q(direct, .99), "direct-p99-µs")
	b.ReportMetric(q(through, .99), "gateway-p99-µs")
	b.ReportMetric(q(through, .99)-q(direct, .99), "added-p99-µs")
}

// concurrently runs fn b.N times from conc goroutines; ns/op is then the
// inverse of the throughput (and the latency when conc is 1).
func concurrently(b *testing.B, conc int, fn func() error) {
	var next atomic.Int64
	n := int64(b.N)
	var wg sync.WaitGroup
	b.ResetTimer()
	for range conc {
		wg.Go(func() {
			for next.Add(1) <= n {
				if err := fn(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkUsage is the read of a non-streaming answer's token usage,
// which every served answer pays for its client's usage.
func BenchmarkUsage(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if p, c, ok := usage(benchAnswer); !ok || p != 21 || c != 9 {
			b.Fatal(p, c, ok)
		}
	}
}
