package inference

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	anthropicopt "github.com/anthropics/anthropic-sdk-go/v2/option"

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
	hc := &http.Client{Timeout: harness.Timeout, Transport: &http.Transport{
		TLSClientConfig: d.TLS, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 16, DisableCompression: true,
	}}
	tb.Cleanup(hc.CloseIdleConnections)
	return anthropic.NewClient(
		anthropicopt.WithBaseURL(d.URL+"/"),
		anthropicopt.WithAPIKey(key),
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
				m, err := c.Messages.New(t.Context(), messageParams(tt.model), anthropicopt.WithResponseInto(&raw), anthropicopt.WithHeader("X-Request-ID", id))
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
}
