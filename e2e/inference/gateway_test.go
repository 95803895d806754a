package inference

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/awakend/awakend/e2e/harness"
	"github.com/awakend/awakend/provider/providertest"
)

// prompt is the user message of every test request.
const prompt = "Say hello to the e2e suite"

// params is a one-message chat completion request for model.
func params(model string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
	}
}

// streamParams is params asking for the usage chunk too.
func streamParams(model string) openai.ChatCompletionNewParams {
	p := params(model)
	p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	return p
}

// upstreamText is what the providertest upstreams of these tests answer:
// several words, so that a stream has several chunks.
func upstreamText(model string) string { return "answer from " + model + " via providertest" }

// answerByModel programs srv to answer with upstreamText.
func answerByModel(srv *providertest.Server) {
	srv.Respond(func(r *providertest.Request) providertest.Reply {
		return providertest.Reply{Text: upstreamText(r.Model)}
	})
}

// served is what a completion's headers say about who served it.
type served struct {
	model, provider, attempts string
}

func servedBy(h http.Header) served {
	return served{h.Get("X-Awakend-Model"), h.Get("X-Awakend-Provider"), h.Get("X-Awakend-Attempts")}
}

// checkUsage checks token counts that an upstream actually counted.
func checkUsage(t *testing.T, u openai.CompletionUsage) {
	t.Helper()
	if u.PromptTokens <= 0 || u.CompletionTokens <= 0 || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
		t.Errorf("usage %+v, want prompt and completion tokens and their sum", u)
	}
}

// streamResult is a stream read to its end through the SDK.
type streamResult struct {
	acc    openai.ChatCompletionAccumulator
	chunks int // chunks with choices (the usage chunk has none)
	header http.Header
}

// readStream reads a whole stream; the stream must end without error.
func readStream(t *testing.T, ctx context.Context, c openai.Client, p openai.ChatCompletionNewParams, opts ...option.RequestOption) streamResult {
	t.Helper()
	var raw *http.Response
	s := c.Chat.Completions.NewStreaming(ctx, p, append(opts, option.WithResponseInto(&raw))...)
	defer s.Close()
	var r streamResult
	for s.Next() {
		ch := s.Current()
		if !r.acc.AddChunk(ch) {
			t.Fatalf("chunk %d does not continue the stream: %s", r.chunks, ch.RawJSON())
		}
		if len(ch.Choices) > 0 {
			r.chunks++
		}
	}
	if err := s.Err(); err != nil {
		t.Fatalf("stream of %s: %v", p.Model, err)
	}
	if raw == nil {
		t.Fatal("no HTTP response recorded")
	}
	r.header = raw.Header
	return r
}

// TestCompletions sends a completion and a stream through the daemon to
// every adapter: an agent on the mock adapter, a model and an agent on an
// openai provider, a model on an anthropic provider (translated both
// ways). Each answer must arrive in OpenAI's shape, with the right text,
// model, usage and routing headers; a stream's chunks must assemble to
// the same text.
func TestCompletions(t *testing.T) {
	t.Parallel()
	up := providertest.NewServer(t)
	answerByModel(up)
	dir := harness.ConfigDir(t, map[string]string{
		"providers.yaml": `providers:
  - {id: mock, adapter: mock}
  - {id: oa, adapter: openai, base_url: "` + up.OpenAIURL() + `", api_key: sk-upstream-openai}
  - {id: an, adapter: anthropic, base_url: "` + up.AnthropicURL() + `", api_key: sk-upstream-anthropic}
`,
		"models.yaml": `models:
  - {id: mm, provider_id: mock, upstream_model: mock-1}
  - {id: gpt, provider_id: oa, upstream_model: gpt-up}
  - {id: claude, provider_id: an, upstream_model: claude-up}
`,
		"agents.yaml": `agents:
  - {id: helper, model_id: mm, system_prompt: You help.}
  - {id: oa-helper, model_id: gpt, system_prompt: You are the e2e agent.}
`,
	})
	d := start(t, dir, harness.Options{})
	c := d.newClient(t, "")

	tests := []struct {
		name, model   string
		text          string // the answer
		upstreamModel string // the answer's model
		served        served
		path          string // upstream path on up; "" for the mock
		system        string // the system message the upstream must see first
	}{
		{name: "mock agent", model: "helper", text: "mock reply to: " + prompt, upstreamModel: "mock-1",
			served: served{"mm", "mock", "1"}},
		{name: "openai model", model: "gpt", text: upstreamText("gpt-up"), upstreamModel: "gpt-up",
			served: served{"gpt", "oa", "1"}, path: providertest.OpenAIPath},
		{name: "openai agent", model: "oa-helper", text: upstreamText("gpt-up"), upstreamModel: "gpt-up",
			served: served{"gpt", "oa", "1"}, path: providertest.OpenAIPath, system: "You are the e2e agent."},
		{name: "anthropic model", model: "claude", text: upstreamText("claude-up"), upstreamModel: "claude-up",
			served: served{"claude", "an", "1"}, path: providertest.AnthropicPath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Run("complete", func(t *testing.T) {
				id := "complete-" + tt.model
				var raw *http.Response
				cc, err := c.Chat.Completions.New(t.Context(), params(tt.model),
					option.WithResponseInto(&raw), option.WithHeader("X-Request-ID", id))
				if err != nil {
					t.Fatal(err)
				}
				if len(cc.Choices) != 1 || cc.Choices[0].Message.Content != tt.text || cc.Choices[0].FinishReason != "stop" {
					t.Errorf("answer %s, want one choice %q finishing with stop", cc.RawJSON(), tt.text)
				}
				if cc.Model != tt.upstreamModel || cc.ID == "" {
					t.Errorf("model %q id %q, want model %q and an id", cc.Model, cc.ID, tt.upstreamModel)
				}
				checkUsage(t, cc.Usage)
				if got := servedBy(raw.Header); got != tt.served {
					t.Errorf("served by %+v, want %+v", got, tt.served)
				}
				if raw.Header.Get("X-Request-Id") != id {
					t.Errorf("X-Request-ID %q, want %q", raw.Header.Get("X-Request-Id"), id)
				}
				harness.Version(t, raw.Header)
				checkUpstream(t, up, id, tt.path, tt.upstreamModel, tt.system)
			})
			t.Run("stream", func(t *testing.T) {
				id := "stream-" + tt.model
				r := readStream(t, t.Context(), c, streamParams(tt.model), option.WithHeader("X-Request-ID", id))
				if len(r.acc.Choices) != 1 || r.acc.Choices[0].Message.Content != tt.text || r.acc.Choices[0].FinishReason != "stop" {
					t.Errorf("stream assembled to %+v, want one choice %q finishing with stop", r.acc.Choices, tt.text)
				}
				// A role chunk, one chunk per word, the finish chunk.
				if words := len(strings.Fields(tt.text)); r.chunks < words {
					t.Errorf("%d chunks for %d words: the stream was not streamed", r.chunks, words)
				}
				if r.acc.Model != tt.upstreamModel {
					t.Errorf("stream model %q, want %q", r.acc.Model, tt.upstreamModel)
				}
				checkUsage(t, r.acc.Usage)
				if got := servedBy(r.header); got != tt.served {
					t.Errorf("served by %+v, want %+v", got, tt.served)
				}
				if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
					t.Errorf("Content-Type %q", ct)
				}
				harness.Version(t, r.header)
				checkUpstream(t, up, id, tt.path, tt.upstreamModel, tt.system)
			})
		})
	}

	t.Run("models", func(t *testing.T) {
		page, err := c.Models.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range page.Data {
			ids = append(ids, m.ID)
		}
		for _, want := range []string{"mm", "gpt", "claude", "helper", "oa-helper"} {
			if !slices.Contains(ids, want) {
				t.Errorf("GET /v1/models lists %q, not %q", ids, want)
			}
		}
	})
}

// checkUpstream checks the request the upstream received with X-Request-ID
// id: its path, its model, and the system message first when system is set.
// path "" means no upstream request is expected (the mock adapter).
func checkUpstream(t *testing.T, up *providertest.Server, id, path, model, system string) {
	t.Helper()
	i := slices.IndexFunc(up.Requests(), func(r providertest.Request) bool { return r.Header.Get("X-Request-Id") == id })
	if path == "" {
		if i >= 0 {
			t.Errorf("request %s reached the upstream", id)
		}
		return
	}
	if i < 0 {
		t.Fatalf("the upstream did not receive request %s", id)
	}
	r := up.Requests()[i]
	if r.Path != path || r.Model != model {
		t.Errorf("upstream got %s for model %q, want %s for %q", r.Path, r.Model, path, model)
	}
	if system == "" {
		return
	}
	var body struct {
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Messages) != 2 || body.Messages[0].Role != "system" || body.Messages[0].Content != system ||
		body.Messages[1].Content != prompt {
		t.Errorf("upstream messages %+v, want the agent's system prompt, then the user's", body.Messages)
	}
}

// TestUnknownModel: a model the registry does not have is the SDK's
// *openai.Error with OpenAI's status and code, streaming or not.
func TestUnknownModel(t *testing.T) {
	t.Parallel()
	d := start(t, harness.ConfigDir(t, map[string]string{"mock.yaml": mockConfig}), harness.Options{})
	c := d.newClient(t, "")

	check := func(t *testing.T, err error) {
		t.Helper()
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) {
			t.Fatalf("error %v (%T), want *openai.Error", err, err)
		}
		if apiErr.StatusCode != http.StatusNotFound || apiErr.Code != "model_not_found" || apiErr.Message == "" {
			t.Errorf("HTTP %d code %q message %q, want 404 model_not_found", apiErr.StatusCode, apiErr.Code, apiErr.Message)
		}
	}
	t.Run("complete", func(t *testing.T) {
		_, err := c.Chat.Completions.New(t.Context(), params("no-such-model"))
		check(t, err)
	})
	t.Run("stream", func(t *testing.T) {
		s := c.Chat.Completions.NewStreaming(t.Context(), params("no-such-model"))
		defer s.Close()
		if s.Next() {
			t.Fatalf("a chunk: %s", s.Current().RawJSON())
		}
		check(t, s.Err())
	})
}

// TestUnknownURL: /v1 itself, /v1/ and a path under it that serves
// nothing answer 404 in OpenAI's envelope, the same one whichever side of
// the daemon's routing they fall on, naming the routes the gateway serves.
func TestUnknownURL(t *testing.T) {
	t.Parallel()
	d := start(t, harness.ConfigDir(t, map[string]string{"mock.yaml": mockConfig}), harness.Options{})
	for _, tt := range []struct{ method, path string }{
		{"GET", "/v1"}, {"POST", "/v1"}, {"GET", "/v1/"}, {"POST", "/v1/completions"},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), tt.method, d.URL+tt.path, strings.NewReader(`{}`))
		resp, err := d.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error struct{ Message, Type, Code string }
		}
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusNotFound || e.Error.Code != "unknown_url" || e.Error.Type != "invalid_request_error" {
			t.Errorf("%s %s: HTTP %d, %+v (%v), want 404 unknown_url", tt.method, tt.path, resp.StatusCode, e.Error, err)
			continue
		}
		for _, want := range []string{tt.method + " " + tt.path + ".", "POST /v1/chat/completions", "GET /v1/models"} {
			if !strings.Contains(e.Error.Message, want) {
				t.Errorf("%s %s: message %q does not name %q", tt.method, tt.path, e.Error.Message, want)
			}
		}
	}
}

// mockConfig serves model m (and agent a on it) from the mock adapter.
const mockConfig = `providers:
  - {id: p, adapter: mock}
models:
  - {id: m, provider_id: p, upstream_model: mock-1}
agents:
  - {id: a, model_id: m, system_prompt: You help.}
`

// TestPoolFailover: a pool of two openai models on two upstreams, its home
// the first. A 503 from the home fails over to the other member before any
// byte reaches the client, so the client gets the other's answer with
// X-Awakend-Attempts: 2; a 400 is the client's answer and is not failed
// over.
func TestPoolFailover(t *testing.T) {
	t.Parallel()
	a, b := providertest.NewServer(t), providertest.NewServer(t)
	answerByModel(a)
	answerByModel(b)
	d := start(t, harness.ConfigDir(t, map[string]string{"pool.yaml": `providers:
  - {id: pa, adapter: openai, base_url: "` + a.OpenAIURL() + `"}
  - {id: pb, adapter: openai, base_url: "` + b.OpenAIURL() + `"}
models:
  - {id: ma, provider_id: pa, upstream_model: up-a}
  - {id: mb, provider_id: pb, upstream_model: up-b}
model_pools:
  - id: pl
    members: [{model_id: ma}, {model_id: mb}]
    routing: {home: first_healthy}
`}), harness.Options{})
	c := d.newClient(t, "")

	// The steps share the upstreams' counts: they run in order.
	t.Run("503 fails over", func(t *testing.T) {
		a.Enqueue(providertest.Reply{Status: http.StatusServiceUnavailable})
		var raw *http.Response
		cc, err := c.Chat.Completions.New(t.Context(), params("pl"), option.WithResponseInto(&raw))
		if err != nil {
			t.Fatal(err)
		}
		if got := cc.Choices[0].Message.Content; got != upstreamText("up-b") {
			t.Errorf("answer %q, want the second member's", got)
		}
		if got, want := servedBy(raw.Header), (served{"mb", "pb", "2"}); got != want {
			t.Errorf("served by %+v, want %+v", got, want)
		}
		if sa, sb := a.Stats().Requests, b.Stats().Requests; sa != 1 || sb != 1 {
			t.Errorf("upstream requests: home %d, other %d; want 1 and 1", sa, sb)
		}
	})
	t.Run("503 fails over a stream", func(t *testing.T) {
		a.Enqueue(providertest.Reply{Status: http.StatusServiceUnavailable})
		r := readStream(t, t.Context(), c, params("pl"))
		if got := r.acc.Choices[0].Message.Content; got != upstreamText("up-b") {
			t.Errorf("stream %q, want the second member's", got)
		}
		if got, want := servedBy(r.header), (served{"mb", "pb", "2"}); got != want {
			t.Errorf("served by %+v, want %+v", got, want)
		}
	})
	t.Run("400 is not failed over", func(t *testing.T) {
		before := b.Stats().Requests
		a.Enqueue(providertest.Reply{Status: http.StatusBadRequest})
		_, err := c.Chat.Completions.New(t.Context(), params("pl"))
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest {
			t.Fatalf("error %v, want the home member's 400 as *openai.Error", err)
		}
		if got := apiErr.Response.Header.Get("X-Awakend-Attempts"); got != "1" {
			t.Errorf("X-Awakend-Attempts %q, want 1", got)
		}
		if after := b.Stats().Requests; after != before {
			t.Errorf("the other member got %d requests after a 400", after-before)
		}
	})
	t.Run("home answers again", func(t *testing.T) {
		var raw *http.Response
		cc, err := c.Chat.Completions.New(t.Context(), params("pl"), option.WithResponseInto(&raw))
		if err != nil {
			t.Fatal(err)
		}
		if got := cc.Choices[0].Message.Content; got != upstreamText("up-a") {
			t.Errorf("answer %q, want the home member's", got)
		}
		if got, want := servedBy(raw.Header), (served{"ma", "pa", "1"}); got != want {
			t.Errorf("served by %+v, want %+v", got, want)
		}
	})
}

// TestClientAPIKeys: with gateway.api_keys set (here from the
// environment), /v1 needs one of the keys as a bearer token.
func TestClientAPIKeys(t *testing.T) {
	t.Parallel()
	d := start(t, harness.ConfigDir(t, map[string]string{"mock.yaml": mockConfig}),
		harness.Options{Env: []string{"AWAKEND_GATEWAY__API_KEYS=k1"}})

	for _, tt := range []struct {
		name, key string
		ok        bool
	}{
		{"no key", "", false},
		{"wrong key", "k2", false},
		{"key", "k1", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := d.newClient(t, tt.key)
			cc, err := c.Chat.Completions.New(t.Context(), params("a"))
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				if got := cc.Choices[0].Message.Content; got != "mock reply to: "+prompt {
					t.Errorf("answer %q", got)
				}
				return
			}
			var apiErr *openai.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %v (%T), want *openai.Error", err, err)
			}
			if apiErr.StatusCode != http.StatusUnauthorized || apiErr.Code != "invalid_api_key" {
				t.Errorf("HTTP %d code %q, want 401 invalid_api_key", apiErr.StatusCode, apiErr.Code)
			}
			if got := apiErr.Response.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate %q", got)
			}
		})
	}
}
