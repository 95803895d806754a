package inference

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/awakend/awakend/e2e/harness"
	"github.com/awakend/awakend/provider/providertest"
)

// The tests here are the openai-go SDK as a client of /v1/embeddings and
// /v1/responses: passed through to an openai provider with the model
// rewritten, embeddings answered by the mock adapter too, a clear 400
// where the adapter has neither.

func apisDir(t *testing.T, up *providertest.Server) string {
	return harness.ConfigDir(t, map[string]string{
		"providers.yaml": strings.NewReplacer("%OA%", up.OpenAIURL(), "%AN%", up.AnthropicURL()).Replace(messagesConfig),
		"models.yaml": `models:
  - {id: mm, provider_id: mock, upstream_model: mock-embed}
  - {id: emb, provider_id: oa, upstream_model: emb-up}
  - {id: gpt, provider_id: oa, upstream_model: gpt-up}
  - {id: claude, provider_id: an, upstream_model: claude-up}
`,
		"agents.yaml": `agents:
  - {id: oa-helper, model_id: gpt, system_prompt: You are the e2e agent.}
`,
	})
}

// upstreamBody returns the body the upstream received with X-Request-ID id.
func upstreamBody(t *testing.T, up *providertest.Server, id string) providertest.Request {
	t.Helper()
	i := slices.IndexFunc(up.Requests(), func(r providertest.Request) bool { return r.Header.Get("X-Request-Id") == id })
	if i < 0 {
		t.Fatalf("the upstream did not receive request %s", id)
	}
	return up.Requests()[i]
}

func wantBadRequest(t *testing.T, err error, parts ...string) {
	t.Helper()
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("error %v (%T), want *openai.Error", err, err)
	}
	if apiErr.StatusCode != http.StatusBadRequest || apiErr.Type != "invalid_request_error" {
		t.Errorf("HTTP %d type %q, want 400 invalid_request_error", apiErr.StatusCode, apiErr.Type)
	}
	for _, p := range parts {
		if !strings.Contains(apiErr.Message, p) {
			t.Errorf("message %q does not say %q", apiErr.Message, p)
		}
	}
}

func TestEmbeddings(t *testing.T) {
	t.Parallel()
	up := providertest.NewServer(t)
	d := start(t, apisDir(t, up), harness.Options{})
	c := d.newClient(t, "")

	t.Run("openai provider", func(t *testing.T) {
		var raw *http.Response
		e, err := c.Embeddings.New(t.Context(), openai.EmbeddingNewParams{
			Model: "emb",
			Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"one", "two"}},
		}, option.WithHeader("X-Request-ID", "emb-oa"), option.WithResponseInto(&raw))
		if err != nil {
			t.Fatal(err)
		}
		if len(e.Data) != 2 || len(e.Data[0].Embedding) != 4 || e.Model != "emb-up" || e.Data[1].Index != 1 {
			t.Errorf("embeddings %s", e.RawJSON())
		}
		if got := servedBy(raw.Header); got != (served{"emb", "oa", "1"}) {
			t.Errorf("served by %+v", got)
		}
		r := upstreamBody(t, up, "emb-oa")
		if r.Path != providertest.EmbeddingsPath || r.Model != "emb-up" || !strings.Contains(string(r.Body), `"input":["one","two"]`) {
			t.Errorf("upstream got %s %s", r.Path, r.Body)
		}
	})
	t.Run("mock", func(t *testing.T) {
		vec := func(input string, dims int64) []float64 {
			t.Helper()
			p := openai.EmbeddingNewParams{Model: "mm", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String(input)}}
			if dims > 0 {
				p.Dimensions = openai.Int(dims)
			}
			e, err := c.Embeddings.New(t.Context(), p)
			if err != nil {
				t.Fatal(err)
			}
			if len(e.Data) != 1 || e.Model != "mock-embed" || e.Usage.PromptTokens != int64(len(strings.Fields(input))) {
				t.Fatalf("embeddings %s", e.RawJSON())
			}
			return e.Data[0].Embedding
		}
		a, a2, b := vec("the same text", 0), vec("the same text", 0), vec("another text", 0)
		if len(a) != 8 || !slices.Equal(a, a2) || slices.Equal(a, b) {
			t.Errorf("vectors %v %v %v: want 8 components, equal for equal inputs only", a, a2, b)
		}
		var norm float64
		for _, x := range a {
			norm += x * x
		}
		if math.Abs(norm-1) > 1e-5 || slices.Max(a)-slices.Min(a) < 0.2 {
			t.Errorf("norm² %v, components %v: want a unit vector whose components differ", norm, a)
		}
		if v := vec("x", 32); len(v) != 32 {
			t.Errorf("%d components, want the 32 asked", len(v))
		}
	})
	t.Run("anthropic provider", func(t *testing.T) {
		_, err := c.Embeddings.New(t.Context(), openai.EmbeddingNewParams{Model: "claude", Input: openai.EmbeddingNewParamsInputUnion{OfString: openai.String("x")}})
		wantBadRequest(t, err, "provider 'an' (adapter anthropic)", "does not serve embeddings")
	})
}

func TestResponses(t *testing.T) {
	t.Parallel()
	up := providertest.NewServer(t)
	answerByModel(up)
	d := start(t, apisDir(t, up), harness.Options{})
	c := d.newClient(t, "")

	instructions := func(t *testing.T, id string) *string {
		t.Helper()
		var body struct {
			Instructions *string `json:"instructions"`
		}
		r := upstreamBody(t, up, id)
		if err := json.Unmarshal(r.Body, &body); err != nil {
			t.Fatal(err)
		}
		if r.Path != providertest.ResponsesPath || r.Model != "gpt-up" {
			t.Errorf("upstream got %s for %q", r.Path, r.Model)
		}
		return body.Instructions
	}
	for _, tt := range []struct {
		name, model, instructions string
		want                      string // the instructions the upstream gets
	}{
		{name: "model", model: "gpt"},
		{name: "agent", model: "oa-helper", want: "You are the e2e agent."},
		{name: "agent, client's instructions", model: "oa-helper", instructions: "Client says.", want: "Client says."},
	} {
		p := responses.ResponseNewParams{Model: tt.model, Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(prompt)}}
		if tt.instructions != "" {
			p.Instructions = openai.String(tt.instructions)
		}
		checkInstructions := func(t *testing.T, id string) {
			got := instructions(t, id)
			if tt.want == "" && got != nil || tt.want != "" && (got == nil || *got != tt.want) {
				t.Errorf("upstream instructions %v, want %q", got, tt.want)
			}
		}
		t.Run(tt.name, func(t *testing.T) {
			id := "resp-" + strings.ReplaceAll(tt.name, " ", "_")
			var raw *http.Response
			r, err := c.Responses.New(t.Context(), p, option.WithHeader("X-Request-ID", id), option.WithResponseInto(&raw))
			if err != nil {
				t.Fatal(err)
			}
			if r.OutputText() != upstreamText("gpt-up") || r.Status != "completed" || r.Usage.OutputTokens <= 0 {
				t.Errorf("response %s", r.RawJSON())
			}
			if got := servedBy(raw.Header); got != (served{"gpt", "oa", "1"}) {
				t.Errorf("served by %+v", got)
			}
			checkInstructions(t, id)
		})
		t.Run(tt.name+" stream", func(t *testing.T) {
			id := "resp-stream-" + strings.ReplaceAll(tt.name, " ", "_")
			s := c.Responses.NewStreaming(t.Context(), p, option.WithHeader("X-Request-ID", id))
			defer s.Close()
			var text strings.Builder
			var last string
			deltas := 0
			for s.Next() {
				ev := s.Current()
				if ev.Type == "response.output_text.delta" {
					text.WriteString(ev.Delta)
					deltas++
				}
				last = ev.Type
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			if text.String() != upstreamText("gpt-up") || last != "response.completed" || deltas < 2 {
				t.Errorf("stream of %d deltas to %q ending with %s", deltas, text.String(), last)
			}
			checkInstructions(t, id)
		})
	}
	for _, model := range []string{"claude", "mm"} {
		t.Run("not on "+model, func(t *testing.T) {
			_, err := c.Responses.New(t.Context(), responses.ResponseNewParams{Model: model, Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("x")}})
			wantBadRequest(t, err, "does not serve Responses", "adapter ")
		})
	}
}
