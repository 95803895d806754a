package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/awakend/awakend/provider"
	"github.com/awakend/awakend/provider/providertest"
	"github.com/awakend/awakend/registry"
)

// These tests run the gateway over the real executors of package provider,
// against its providertest upstream.

// realProvider builds a provider with the real executor, closed at the end
// of the test.
func realProvider(t *testing.T, spec registry.ProviderSpec) registry.Provider {
	t.Helper()
	if spec.TimeoutSecs == 0 {
		spec.TimeoutSecs = 30
	}
	ex, err := provider.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ex.(provider.Caller).Close() })
	return registry.Provider{Spec: spec, Executor: ex}
}

// realGateway serves providers and models (and pools) through a gateway on
// a loopback server; it returns the server's URL.
func realGateway(t *testing.T, u registry.Update) string {
	t.Helper()
	set, err := registry.Rebuild(nil, u)
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, New(Options{Handle: registry.NewHandle(set), Logger: discard}))
	return srv.URL
}

func TestRealOpenAI(t *testing.T) {
	up := providertest.NewServer(t)
	url := realGateway(t, registry.Update{
		Providers: []registry.Provider{realProvider(t, registry.ProviderSpec{ID: "oa", Adapter: "openai", BaseURL: up.OpenAIURL(), APIKey: "sk-upstream"})},
		Models:    []registry.ModelSpec{{ID: "m", ProviderID: "oa", UpstreamModel: "gpt-up"}},
	})

	req, _ := http.NewRequestWithContext(t.Context(), "POST", url+"/v1/chat/completions", strings.NewReader(chatReq("m")))
	req.Header.Set("X-Request-ID", "rid-real")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), providertest.DefaultText) || resp.Header.Get(ProviderHeader) != "oa" {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
	}
	got := up.Requests()[0]
	if got.Model != "gpt-up" || got.Header.Get("X-Request-Id") != "rid-real" || got.Header.Get("Authorization") != "Bearer sk-upstream" {
		t.Errorf("upstream saw model %q, id %q, auth %q", got.Model, got.Header.Get("X-Request-Id"), got.Header.Get("Authorization"))
	}

	res := post(t, t.Context(), url, `{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}`)
	stream, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.Header.Get("Content-Type") != "text/event-stream" || !strings.HasSuffix(string(stream), "data: [DONE]\n\n") {
		t.Fatalf("stream %v:\n%s", res.Header, stream)
	}
}

// realPool serves pool "pl" over models a (on upstream a) and b (on b),
// first healthy, through real openai executors; it returns the gateway's URL.
func realPool(t *testing.T, a, b *providertest.Server) string {
	t.Helper()
	return realGateway(t, registry.Update{
		Providers: []registry.Provider{
			realProvider(t, registry.ProviderSpec{ID: "pa", Adapter: "openai", BaseURL: a.OpenAIURL()}),
			realProvider(t, registry.ProviderSpec{ID: "pb", Adapter: "openai", BaseURL: b.OpenAIURL()}),
		},
		Models: []registry.ModelSpec{{ID: "a", ProviderID: "pa", UpstreamModel: "a-up"}, {ID: "b", ProviderID: "pb", UpstreamModel: "b-up"}},
		Pools: []registry.PoolSpec{{ID: "pl", Routing: registry.PoolRouting{Home: registry.HomeFirstHealthy},
			Switch:  registry.DefaultSwitchPolicy(),
			Members: []registry.PoolMember{{ModelID: "a", Role: registry.RoleMember}, {ModelID: "b", Role: registry.RoleMember}}}},
	})
}

func TestRealFailover(t *testing.T) {
	a, b := providertest.NewServer(t), providertest.NewServer(t)
	url := realPool(t, a, b)

	for _, tt := range []struct {
		name     string
		reply    providertest.Reply
		code     int
		served   string
		attempts string
	}{
		{"429 fails over", providertest.Reply{Status: 429, Header: http.Header{"Retry-After": {"2"}}}, 200, "b", "2"},
		{"503 fails over", providertest.Reply{Status: 503}, 200, "b", "2"},
		{"400 does not", providertest.Reply{Status: 400}, 400, "", "1"},
		{"401 does not", providertest.Reply{Status: 401}, 401, "", "1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a.Enqueue(tt.reply)
			before := b.Stats().Requests
			res := post(t, t.Context(), url, chatReq("pl"))
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.code || res.Header.Get(ModelHeader) != tt.served || res.Header.Get(AttemptsHeader) != tt.attempts {
				t.Fatalf("%d from %q after %s attempts: %s", res.StatusCode, res.Header.Get(ModelHeader), res.Header.Get(AttemptsHeader), body)
			}
			if tt.code != 200 {
				if !strings.Contains(string(body), `"error"`) || b.Stats().Requests != before {
					t.Errorf("answer %s, b called %d times", body, b.Stats().Requests-before)
				}
			}
		})
	}
}

func TestRealStreamBreaksAfterFirstChunk(t *testing.T) {
	a, b := providertest.NewServer(t), providertest.NewServer(t)
	url := realPool(t, a, b)
	a.Enqueue(providertest.Reply{Break: providertest.BreakAbort, BreakAfter: 1})
	res := post(t, t.Context(), url, `{"model":"pl","messages":[],"stream":true}`)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	s := string(body)
	if res.StatusCode != 200 || !strings.Contains(s, "chat.completion.chunk") ||
		!strings.HasSuffix(s, "\n\n") || !strings.Contains(s[strings.LastIndex(s[:len(s)-2], "\n\n"):], `data: {"error":`) ||
		strings.Contains(s, "[DONE]") {
		t.Fatalf("%d:\n%s", res.StatusCode, s)
	}
	if n := b.Stats().Requests; n != 0 {
		t.Errorf("failed over mid-stream: %d requests to b", n)
	}
}

func TestRealDisconnectCancelsUpstream(t *testing.T) {
	up := providertest.NewServer(t)
	url := realGateway(t, registry.Update{
		Providers: []registry.Provider{realProvider(t, registry.ProviderSpec{ID: "oa", Adapter: "openai", BaseURL: up.OpenAIURL()})},
		Models:    []registry.ModelSpec{{ID: "m", ProviderID: "oa", UpstreamModel: "up"}},
	})
	hold := make(chan struct{})
	defer close(hold)
	up.Enqueue(providertest.Reply{Hold: hold})
	ctx, cancel := context.WithCancel(t.Context())
	res := post(t, ctx, url, `{"model":"m","messages":[],"stream":true}`)
	buf := make([]byte, 1)
	if _, err := res.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	res.Body.Close()
	wctx, wcancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer wcancel()
	if err := up.Await(wctx, func(s providertest.Stats) bool { return s.Canceled == 1 && s.InFlight == 0 }); err != nil {
		t.Fatalf("the upstream request was not cancelled: %+v", up.Stats())
	}
}

func TestRealAnthropicAndMock(t *testing.T) {
	up := providertest.NewServer(t)
	url := realGateway(t, registry.Update{
		Providers: []registry.Provider{
			realProvider(t, registry.ProviderSpec{ID: "an", Adapter: "anthropic", BaseURL: up.AnthropicURL(), APIKey: "k"}),
			realProvider(t, registry.ProviderSpec{ID: "mo", Adapter: "mock", AdapterOptions: registry.AdapterOptions{Mock: &registry.MockOptions{Reply: "mocked"}}}),
		},
		Models: []registry.ModelSpec{{ID: "claude", ProviderID: "an", UpstreamModel: "claude-up"}, {ID: "mock", ProviderID: "mo", UpstreamModel: "mock-up"}},
	})
	for _, tt := range []struct{ model, text string }{{"claude", providertest.DefaultText}, {"mock", "mocked"}} {
		res := post(t, t.Context(), url, `{"model":"`+tt.model+`","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`)
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(body), `"chat.completion"`) || !strings.Contains(string(body), tt.text) {
			t.Errorf("%s: %d %s", tt.model, res.StatusCode, body)
		}
		res = post(t, t.Context(), url, `{"model":"`+tt.model+`","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
		body, _ = io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || !strings.Contains(string(body), "chat.completion.chunk") || !strings.HasSuffix(string(body), "data: [DONE]\n\n") {
			t.Errorf("%s stream: %d %s", tt.model, res.StatusCode, body)
		}
	}
}

// TestOpenAISDK drives the gateway with OpenAI's official Go SDK.
func TestOpenAISDK(t *testing.T) {
	up := providertest.NewServer(t)
	url := realGateway(t, registry.Update{
		Providers: []registry.Provider{realProvider(t, registry.ProviderSpec{ID: "oa", Adapter: "openai", BaseURL: up.OpenAIURL()})},
		Models:    []registry.ModelSpec{{ID: "m", ProviderID: "oa", UpstreamModel: "up"}},
	})
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	client := openai.NewClient(option.WithBaseURL(url+"/v1/"), option.WithAPIKey("unused"), option.WithMaxRetries(0), option.WithHTTPClient(hc))
	params := openai.ChatCompletionNewParams{Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")}}

	c, err := client.Chat.Completions.New(t.Context(), params)
	if err != nil {
		t.Fatal(err)
	}
	if c.Choices[0].Message.Content != providertest.DefaultText || c.Usage.TotalTokens == 0 {
		t.Errorf("completion %+v", c)
	}

	stream := client.Chat.Completions.NewStreaming(t.Context(), params)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if got := acc.Choices[0].Message.Content; got != providertest.DefaultText {
		t.Errorf("streamed %q", got)
	}

	params.Model = "nope"
	_, err = client.Chat.Completions.New(t.Context(), params)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" || apiErr.Param != "model" {
		t.Errorf("unknown model: %v", err)
	}

	list, err := client.Models.List(t.Context())
	if err != nil || len(list.Data) != 1 || list.Data[0].ID != "m" || list.Data[0].OwnedBy != "oa" {
		t.Errorf("models %+v %v", list, err)
	}
}
