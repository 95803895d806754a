package inference

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	anthropicopt "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"

	"github.com/awakend/awakend/e2e/harness"
	"github.com/awakend/awakend/provider/providertest"
)

// The tests here are Anthropic's official Go SDK as a client of
// /v1/messages: a model on an anthropic provider (the body passed
// through), on an openai provider and on the mock adapter (translated to
// chat completions and back). The providertest upstream refuses what the
// real APIs refuse (see providertest.broken), so a translation that
// breaks a documented rule fails here.

// newAnthropic returns an Anthropic SDK client of the daemon: no retries,
// key as its x-api-key, its own connection pool.
func (d *daemon) newAnthropic(tb testing.TB, key string) anthropic.Client {
	return d.newAnthropicAuth(tb, anthropicopt.WithAPIKey(key))
}

// newAnthropicAuth is newAnthropic with its credentials given by auth.
func (d *daemon) newAnthropicAuth(tb testing.TB, auth anthropicopt.RequestOption) anthropic.Client {
	hc := &http.Client{Timeout: harness.Timeout, Transport: &http.Transport{
		TLSClientConfig: d.TLS, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 16, DisableCompression: true,
	}}
	tb.Cleanup(hc.CloseIdleConnections)
	return anthropic.NewClient(
		anthropicopt.WithBaseURL(d.URL+"/"),
		auth,
		anthropicopt.WithHTTPClient(hc),
		anthropicopt.WithMaxRetries(0),
	)
}

const messagesConfig = `providers:
  - {id: mock, adapter: mock}
  - {id: oa, adapter: openai, base_url: "%OA%", api_key: sk-upstream-openai}
  - {id: an, adapter: anthropic, base_url: "%AN%", api_key: sk-upstream-anthropic}
`

func messagesDir(t *testing.T, up *providertest.Server) string {
	return harness.ConfigDir(t, map[string]string{
		"providers.yaml": strings.NewReplacer("%OA%", up.OpenAIURL(), "%AN%", up.AnthropicURL()).Replace(messagesConfig),
		"models.yaml": `models:
  - {id: mm, provider_id: mock, upstream_model: mock-1}
  - {id: gpt, provider_id: oa, upstream_model: gpt-up}
  - {id: claude, provider_id: an, upstream_model: claude-up}
`,
		"agents.yaml": `agents:
  - {id: an-helper, model_id: claude, system_prompt: You are the e2e agent.}
  - {id: oa-helper, model_id: gpt, system_prompt: You are the e2e agent.}
`,
	})
}

func messageParams(model string) anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model:     anthropic.Model(model),
		MaxTokens: 256,
		System:    []anthropic.TextBlockParam{{Text: "Be brief."}},
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(prompt))},
	}
}

// text joins a message's text blocks.
func text(m *anthropic.Message) string {
	var b strings.Builder
	for _, c := range m.Content {
		if c.Type == "text" {
			b.WriteString(c.Text)
		}
	}
	return b.String()
}

// upstreamSystem returns the system texts, in order, of the request the
// upstream received with X-Request-ID id: Anthropic's system blocks, or
// the system messages of a chat completion.
func upstreamSystem(t *testing.T, up *providertest.Server, id string) (path, model string, system []string) {
	t.Helper()
	i := slices.IndexFunc(up.Requests(), func(r providertest.Request) bool { return r.Header.Get("X-Request-Id") == id })
	if i < 0 {
		t.Fatalf("the upstream did not receive request %s", id)
	}
	r := up.Requests()[i]
	var body struct {
		System   json.RawMessage `json:"system"`
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatal(err)
	}
	var blocks []struct{ Text string }
	_ = json.Unmarshal(body.System, &blocks)
	for _, b := range blocks {
		system = append(system, b.Text)
	}
	for _, m := range body.Messages {
		var s string
		if m.Role == "system" && json.Unmarshal(m.Content, &s) == nil {
			system = append(system, s)
		}
	}
	return r.Path, r.Model, system
}

// TestMessages: create, stream and count tokens through each adapter.
func TestMessages(t *testing.T) {
	t.Parallel()
	up := providertest.NewServer(t)
	answerByModel(up)
	d := start(t, messagesDir(t, up), harness.Options{})
	c := d.newAnthropic(t, "")

	for _, tt := range []struct {
		name, model   string
		text          string
		upstreamModel string
		served        served
		path          string // upstream path; "" for the mock
		system        []string
	}{
		{name: "anthropic model", model: "claude", text: upstreamText("claude-up"), upstreamModel: "claude-up",
			served: served{"claude", "an", "1"}, path: providertest.AnthropicPath, system: []string{"Be brief."}},
		{name: "anthropic agent", model: "an-helper", text: upstreamText("claude-up"), upstreamModel: "claude-up",
			served: served{"claude", "an", "1"}, path: providertest.AnthropicPath, system: []string{"You are the e2e agent.", "Be brief."}},
		{name: "openai model", model: "gpt", text: upstreamText("gpt-up"), upstreamModel: "gpt-up",
			served: served{"gpt", "oa", "1"}, path: providertest.OpenAIPath, system: []string{"Be brief."}},
		{name: "openai agent", model: "oa-helper", text: upstreamText("gpt-up"), upstreamModel: "gpt-up",
			served: served{"gpt", "oa", "1"}, path: providertest.OpenAIPath, system: []string{"You are the e2e agent.", "Be brief."}},
		{name: "mock model", model: "mm", text: "mock reply to: " + prompt, upstreamModel: "mock-1", served: served{"mm", "mock", "1"},
			system: []string{"Be brief."}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checkUp := func(t *testing.T, id, path string) {
				t.Helper()
				if tt.path == "" {
					return
				}
				gotPath, model, system := upstreamSystem(t, up, id)
				if gotPath != path || model != tt.upstreamModel || !slices.Equal(system, tt.system) {
					t.Errorf("upstream got %s for %q with system %q, want %s for %q with %q", gotPath, model, system, path, tt.upstreamModel, tt.system)
				}
			}
			t.Run("create", func(t *testing.T) {
				id := "msg-create-" + tt.model
				var raw *http.Response
				m, err := c.Messages.New(t.Context(), messageParams(tt.model), anthropicopt.WithResponseInto(&raw), anthropicopt.WithHeader("X-Request-ID", id),
					anthropicopt.WithHeader("anthropic-beta", "e2e-beta-1"))
				if err != nil {
					t.Fatal(err)
				}
				if text(m) != tt.text || m.StopReason != anthropic.StopReasonEndTurn || m.Role != "assistant" || m.Model != anthropic.Model(tt.upstreamModel) {
					t.Errorf("message %s, want %q ending with end_turn from %s", m.RawJSON(), tt.text, tt.upstreamModel)
				}
				if m.Usage.InputTokens <= 0 || m.Usage.OutputTokens <= 0 {
					t.Errorf("usage %+v", m.Usage)
				}
				if got := servedBy(raw.Header); got != tt.served {
					t.Errorf("served by %+v, want %+v", got, tt.served)
				}
				harness.Version(t, raw.Header)
				checkUp(t, id, tt.path)
				if tt.path == providertest.AnthropicPath {
					// The body passed through goes with the version it was
					// written for, and the betas it asks for.
					h := upstreamBody(t, up, id).Header
					if sent := raw.Request.Header.Get("Anthropic-Version"); h.Get("Anthropic-Version") != sent || h.Get("Anthropic-Beta") != "e2e-beta-1" {
						t.Errorf("upstream anthropic-version %q beta %q, want the client's %q and e2e-beta-1", h.Get("Anthropic-Version"), h.Get("Anthropic-Beta"), sent)
					}
				}
			})
			t.Run("stream", func(t *testing.T) {
				id := "msg-stream-" + tt.model
				var raw *http.Response
				s := c.Messages.NewStreaming(t.Context(), messageParams(tt.model), anthropicopt.WithResponseInto(&raw), anthropicopt.WithHeader("X-Request-ID", id))
				defer s.Close()
				var m anthropic.Message
				deltas := 0
				for s.Next() {
					ev := s.Current()
					if err := m.Accumulate(ev); err != nil {
						t.Fatal(err)
					}
					if ev.Type == "content_block_delta" {
						deltas++
					}
				}
				if err := s.Err(); err != nil {
					t.Fatal(err)
				}
				if text(&m) != tt.text || m.StopReason != anthropic.StopReasonEndTurn {
					t.Errorf("stream assembled to %q (%s), want %q ending with end_turn", text(&m), m.StopReason, tt.text)
				}
				if words := len(strings.Fields(tt.text)); deltas < words {
					t.Errorf("%d deltas for %d words: the stream was not streamed", deltas, words)
				}
				if m.Usage.InputTokens <= 0 || m.Usage.OutputTokens <= 0 {
					t.Errorf("usage %+v", m.Usage)
				}
				if got := servedBy(raw.Header); got != tt.served {
					t.Errorf("served by %+v, want %+v", got, tt.served)
				}
				if ct := raw.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
					t.Errorf("Content-Type %q", ct)
				}
				checkUp(t, id, tt.path)
			})
			t.Run("count tokens", func(t *testing.T) {
				id := "msg-count-" + tt.model
				n, err := c.Messages.CountTokens(t.Context(), anthropic.MessageCountTokensParams{
					Model:    anthropic.Model(tt.model),
					System:   anthropic.MessageCountTokensParamsSystemUnion{OfTextBlockArray: []anthropic.TextBlockParam{{Text: "Be brief."}}},
					Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(prompt))},
				}, anthropicopt.WithHeader("X-Request-ID", id))
				if err != nil {
					t.Fatal(err)
				}
				// Every upstream here counts words: the prompt's and the
				// system texts'.
				want := int64(len(strings.Fields(prompt)))
				for _, s := range tt.system {
					want += int64(len(strings.Fields(s)))
				}
				if n.InputTokens != want {
					t.Errorf("input_tokens %d, want %d", n.InputTokens, want)
				}
				if tt.path == providertest.AnthropicPath {
					checkUp(t, id, providertest.CountTokensPath)
				} else {
					checkUp(t, id, tt.path)
				}
			})
		})
	}
	checkMessagesMetrics(t, d)
}

// weatherTool is the tool of the tool-use tests, as the Anthropic SDK
// declares it.
var weatherTool = anthropic.ToolUnionParam{OfTool: &anthropic.ToolParam{
	Name:        "get_weather",
	Description: anthropic.String("Get the current weather in a given location"),
	InputSchema: anthropic.ToolInputSchemaParam{
		Properties: map[string]any{"location": map[string]any{"type": "string"}},
		Required:   []string{"location"},
	},
}}

// toolUpstream answers, in the wire format and mode of each request, with
// a call of get_weather for Paris when the request offers tools and its
// last message is the user's text, and with the tool's result as text once
// the last message carries it.
func toolUpstream(srv *providertest.Server) {
	srv.Respond(func(r *providertest.Request) providertest.Reply {
		var in struct {
			Tools    []json.RawMessage `json:"tools"`
			Messages []struct {
				Role    string          `json:"role"`
				Content json.RawMessage `json:"content"`
			} `json:"messages"`
		}
		_ = json.Unmarshal(r.Body, &in)
		last := in.Messages[len(in.Messages)-1]
		result := last.Role == "tool" || strings.Contains(string(last.Content), `"tool_result"`)
		if result {
			var s string
			_ = json.Unmarshal(last.Content, &s)
			if s == "" { // Anthropic: the text of the tool_result block
				var blocks []struct {
					Content []struct{ Text string } `json:"content"`
				}
				_ = json.Unmarshal(last.Content, &blocks)
				s = blocks[0].Content[0].Text
			}
			return providertest.Reply{Text: "It is " + s + " in Paris."}
		}
		if len(in.Tools) == 0 {
			return providertest.Reply{}
		}
		anthropicAPI := r.Path == providertest.AnthropicPath
		switch {
		case anthropicAPI && !r.Stream:
			return providertest.Reply{Body: `{"id":"msg_tool","type":"message","role":"assistant","model":"` + r.Model + `","content":[` +
				`{"type":"text","text":"Let me check."},{"type":"tool_use","id":"toolu_01","name":"get_weather","input":{"location":"Paris"}}],` +
				`"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":20,"output_tokens":9}}`}
		case anthropicAPI:
			return providertest.Reply{Body: "event: message_start\ndata: " + `{"type":"message_start","message":{"id":"msg_tool","type":"message","role":"assistant",` +
				`"content":[],"model":"` + r.Model + `","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":20,"output_tokens":1}}}` + "\n\n" +
				"event: content_block_start\ndata: " + `{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_01","name":"get_weather","input":{}}}` + "\n\n" +
				"event: content_block_delta\ndata: " + `{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"location\":"}}` + "\n\n" +
				"event: content_block_delta\ndata: " + `{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":" \"Paris\"}"}}` + "\n\n" +
				"event: content_block_stop\ndata: " + `{"type":"content_block_stop","index":0}` + "\n\n" +
				"event: message_delta\ndata: " + `{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":9}}` + "\n\n" +
				"event: message_stop\ndata: " + `{"type":"message_stop"}` + "\n\n"}
		case !r.Stream:
			return providertest.Reply{Body: `{"id":"chatcmpl-tool","object":"chat.completion","created":1,"model":"` + r.Model + `","choices":[{"index":0,` +
				`"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_01","type":"function","function":{"name":"get_weather",` +
				`"arguments":"{\"location\":\"Paris\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":20,"completion_tokens":9,"total_tokens":29}}`}
		}
		p := `data: {"id":"chatcmpl-tool","object":"chat.completion.chunk","created":1,"model":"` + r.Model + `","choices":[`
		return providertest.Reply{Body: p + `{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_01","type":"function",` +
			`"function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}` + "\n\n" +
			p + `{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"location\":"}}]},"finish_reason":null}]}` + "\n\n" +
			p + `{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":" \"Paris\"}"}}]},"finish_reason":null}]}` + "\n\n" +
			p + `{"index":0,"delta":{},"finish_reason":"tool_calls"}]}` + "\n\n" +
			p + `],"usage":{"prompt_tokens":20,"completion_tokens":9,"total_tokens":29}}` + "\n\n" +
			"data: [DONE]\n\n"}
	})
}

// checkMessagesMetrics checks the request counter of the daemon: one create, one
// stream and one count of each model of TestMessages.
func checkMessagesMetrics(t *testing.T, d *daemon) {
	t.Helper()
	for _, tt := range []struct{ route, model, provider string }{
		{"messages", "claude", "an"}, {"messages", "oa-helper", "oa"}, {"count_tokens", "mm", "mock"},
	} {
		want := 2.0
		if tt.route == "count_tokens" {
			want = 1
		}
		if got := d.Metric("awakend_requests_total", "route", tt.route, "model", tt.model, "provider", tt.provider, "code", "200"); got != want {
			t.Errorf("awakend_requests_total{route=%s,model=%s,provider=%s,code=200} = %v, want %v", tt.route, tt.model, tt.provider, got, want)
		}
	}
}

// TestMessagesToolUse runs a tool loop through the SDK, streaming and
// not, on an anthropic and an openai provider: the model calls the tool,
// the client answers with its result, the model answers in text.
func TestMessagesToolUse(t *testing.T) {
	t.Parallel()
	up := providertest.NewServer(t)
	toolUpstream(up)
	d := start(t, messagesDir(t, up), harness.Options{})
	c := d.newAnthropic(t, "")

	create := func(t *testing.T, stream bool, p anthropic.MessageNewParams) *anthropic.Message {
		t.Helper()
		if !stream {
			m, err := c.Messages.New(t.Context(), p)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		s := c.Messages.NewStreaming(t.Context(), p)
		defer s.Close()
		var m anthropic.Message
		for s.Next() {
			if err := m.Accumulate(s.Current()); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		return &m
	}
	for _, model := range []string{"claude", "gpt"} {
		for _, stream := range []bool{false, true} {
			name := model + map[bool]string{false: "", true: " stream"}[stream]
			t.Run(name, func(t *testing.T) {
				p := messageParams(model)
				p.Tools = []anthropic.ToolUnionParam{weatherTool}
				m := create(t, stream, p)
				if m.StopReason != anthropic.StopReasonToolUse {
					t.Fatalf("stop reason %q, want tool_use: %+v", m.StopReason, m.Content)
				}
				i := slices.IndexFunc(m.Content, func(b anthropic.ContentBlockUnion) bool { return b.Type == "tool_use" })
				if i < 0 {
					t.Fatalf("no tool_use block in %+v", m.Content)
				}
				use := m.Content[i].AsToolUse()
				var input struct{ Location string }
				if err := json.Unmarshal(use.Input, &input); err != nil || use.Name != "get_weather" || input.Location != "Paris" || use.ID == "" {
					t.Fatalf("tool use %s %s (%v), want get_weather for Paris", use.Name, use.Input, err)
				}

				p.Messages = append(p.Messages, m.ToParam(),
					anthropic.NewUserMessage(anthropic.NewToolResultBlock(use.ID, "15 degrees", false)))
				m = create(t, stream, p)
				if got := text(m); got != "It is 15 degrees in Paris." || m.StopReason != anthropic.StopReasonEndTurn {
					t.Errorf("after the tool: %q (%s)", got, m.StopReason)
				}
			})
		}
	}
}

// TestMessagesErrors: failures reach the SDK as *anthropic.Error in
// Anthropic's shape, with Anthropic's status codes.
func TestMessagesErrors(t *testing.T) {
	t.Parallel()
	up := providertest.NewServer(t)
	d := start(t, messagesDir(t, up), harness.Options{})
	c := d.newAnthropic(t, "")

	orphan := messageParams("claude")
	orphan.Messages = append(orphan.Messages, anthropic.NewAssistantMessage(anthropic.NewTextBlock("No tools here.")),
		anthropic.NewUserMessage(anthropic.NewToolResultBlock("toolu_none", "15 degrees", false)))
	orphanGPT := orphan
	orphanGPT.Model = "gpt"
	document := messageParams("gpt")
	document.Messages = []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewDocumentBlock(anthropic.PlainTextSourceParam{Data: "a text"}))}

	for _, tt := range []struct {
		name    string
		p       anthropic.MessageNewParams
		reply   *providertest.Reply
		status  int
		typ     string
		message string // a part of the error's message
	}{
		{name: "unknown model", p: messageParams("nope"), status: 404, typ: "not_found_error", message: "The model 'nope' does not exist"},
		{name: "overloaded upstream", p: messageParams("claude"), reply: &providertest.Reply{Status: 529}, status: 529, typ: "overloaded_error"},
		{name: "rate limited upstream", p: messageParams("gpt"), reply: &providertest.Reply{Status: 429, Header: http.Header{"Retry-After": {"7"}}},
			status: 429, typ: "rate_limit_error"},
		{name: "upstream refuses (anthropic)", p: orphan, status: 400, typ: "invalid_request_error", message: "unexpected `tool_use_id`"},
		{name: "upstream refuses (openai)", p: orphanGPT, status: 400, typ: "invalid_request_error", message: "must be a response to a preceding message"},
		{name: "untranslatable", p: document, status: 400, typ: "invalid_request_error", message: `a "document" block has no chat completions equivalent`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.reply != nil {
				up.Enqueue(*tt.reply)
			}
			_, err := c.Messages.New(t.Context(), tt.p)
			var apiErr *anthropic.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("error %v (%T), want *anthropic.Error", err, err)
			}
			if apiErr.StatusCode != tt.status || string(apiErr.Type()) != tt.typ || !strings.Contains(apiErr.Message, tt.message) {
				t.Errorf("HTTP %d %s %q, want %d %s with %q", apiErr.StatusCode, apiErr.Type(), apiErr.Message, tt.status, tt.typ, tt.message)
			}
			var body struct {
				Type  string `json:"type"`
				Error struct {
					Type, Message string
				} `json:"error"`
			}
			if json.Unmarshal([]byte(apiErr.RawJSON()), &body) != nil || body.Type != "error" || body.Error.Type != tt.typ {
				t.Errorf("body %s, not Anthropic's error shape", apiErr.RawJSON())
			}
			if strings.Contains(apiErr.RawJSON(), "sk-upstream") {
				t.Errorf("an upstream key in %s", apiErr.RawJSON())
			}
		})
	}

	t.Run("upstream error event, passed through", func(t *testing.T) {
		up.Enqueue(providertest.Reply{Break: providertest.BreakError, BreakAfter: 2})
		s := c.Messages.NewStreaming(t.Context(), messageParams("claude"))
		defer s.Close()
		var m anthropic.Message
		for s.Next() {
			_ = m.Accumulate(s.Current())
		}
		if err := s.Err(); err == nil || !strings.Contains(err.Error(), "overloaded_error") {
			t.Errorf("stream error %v, want the upstream's overloaded_error event", err)
		}
	})
	t.Run("stream broken after its first event", func(t *testing.T) {
		up.Enqueue(providertest.Reply{Break: providertest.BreakAbort, BreakAfter: 2})
		s := c.Messages.NewStreaming(t.Context(), messageParams("gpt"))
		defer s.Close()
		var m anthropic.Message
		for s.Next() {
			_ = m.Accumulate(s.Current())
		}
		err := s.Err()
		if err == nil || !strings.Contains(err.Error(), "api_error") {
			t.Errorf("stream error %v, want the gateway's api_error event", err)
		}
		if text(&m) == "" {
			t.Error("no text before the error: the stream was not committed")
		}
	})
}

// TestMessagesClientKeys: with client keys, /v1/messages takes one as
// x-api-key (what the Anthropic SDK sends) or as a bearer token.
func TestMessagesClientKeys(t *testing.T) {
	t.Parallel()
	d := start(t, harness.ConfigDir(t, map[string]string{"mock.yaml": mockConfig}),
		harness.Options{Env: []string{"AWAKEND_GATEWAY__API_KEYS=k1"}})
	p := messageParams("a")
	for _, tt := range []struct {
		name string
		auth anthropicopt.RequestOption
		ok   bool
	}{
		{"x-api-key", anthropicopt.WithAPIKey("k1"), true},
		{"bearer", anthropicopt.WithAuthToken("k1"), true},
		{"wrong key", anthropicopt.WithAPIKey("k2"), false},
		{"no key", anthropicopt.WithAPIKey(""), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := d.newAnthropicAuth(t, tt.auth)
			m, err := c.Messages.New(t.Context(), p)
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				if got := text(m); got != "mock reply to: "+prompt {
					t.Errorf("answer %q", got)
				}
				return
			}
			var apiErr *anthropic.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized || apiErr.Type() != "authentication_error" {
				t.Fatalf("error %v, want 401 authentication_error", err)
			}
			if !strings.Contains(apiErr.Message, "x-api-key") {
				t.Errorf("message %q does not say how to send a key", apiErr.Message)
			}
		})
	}
}

// TestMockToolLoop: the mock adapter calls the tool a request offers, so
// a tool loop runs with no upstream, on either API.
func TestMockToolLoop(t *testing.T) {
	t.Parallel()
	d := start(t, harness.ConfigDir(t, map[string]string{"mock.yaml": mockConfig}), harness.Options{})

	t.Run("messages", func(t *testing.T) {
		c := d.newAnthropic(t, "")
		p := messageParams("a")
		p.Messages = []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Paris"))}
		p.Tools = []anthropic.ToolUnionParam{weatherTool}
		m, err := c.Messages.New(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		if m.StopReason != anthropic.StopReasonToolUse || len(m.Content) != 1 {
			t.Fatalf("message %s, want one tool_use", m.RawJSON())
		}
		use := m.Content[0].AsToolUse()
		if use.Name != "get_weather" || string(use.Input) != `{"location":"Paris"}` {
			t.Fatalf("tool use %s %s", use.Name, use.Input)
		}
		p.Messages = append(p.Messages, m.ToParam(), anthropic.NewUserMessage(anthropic.NewToolResultBlock(use.ID, "15 degrees", false)))
		m, err = c.Messages.New(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		if got := text(m); got != "mock reply to tool result: 15 degrees" || m.StopReason != anthropic.StopReasonEndTurn {
			t.Errorf("after the tool: %q (%s)", got, m.StopReason)
		}
	})
	t.Run("chat completions", func(t *testing.T) {
		c := d.newClient(t, "")
		p := openai.ChatCompletionNewParams{
			Model:    "a",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Paris")},
			Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
				Name:       "get_weather",
				Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"location": map[string]any{"type": "string"}}, "required": []string{"location"}},
			})},
		}
		cc, err := c.Chat.Completions.New(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		msg := cc.Choices[0].Message
		if cc.Choices[0].FinishReason != "tool_calls" || len(msg.ToolCalls) != 1 || msg.ToolCalls[0].Function.Arguments != `{"location":"Paris"}` {
			t.Fatalf("completion %s, want a call of get_weather", cc.RawJSON())
		}
		p.Messages = append(p.Messages, msg.ToParam(), openai.ToolMessage("15 degrees", msg.ToolCalls[0].ID))
		cc, err = c.Chat.Completions.New(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		if got := cc.Choices[0].Message.Content; got != "mock reply to tool result: 15 degrees" {
			t.Errorf("after the tool: %q", got)
		}
	})
}
