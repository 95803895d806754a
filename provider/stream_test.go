package provider

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/awakend/awakend/anthropic"
	"github.com/awakend/awakend/provider/providertest"
	"github.com/awakend/awakend/registry"
)

const streamStart = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"x\"}}\n\n"

// The bound holds through the executor: a stream that never ends its
// event fails on read, after its headers were passed.
func TestAnthropicStreamBoundThroughCall(t *testing.T) {
	srv := providertest.NewServer(t)
	srv.Enqueue(providertest.Reply{Body: streamStart + "data: " + strings.Repeat("x", 3<<20)})
	e := newExec(t, registry.ProviderSpec{Adapter: "anthropic", BaseURL: srv.AnthropicURL()}, 5*time.Second)
	resp, err := e.Call(t.Context(), &Request{Body: []byte(`{"messages":[{"role":"user","content":"x"}],"stream":true}`), Stream: true, UpstreamModel: "m"})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if ue := asError(t, err); ue.Class != ClassServer || !bytes.Contains(got, []byte(`"role":"assistant"`)) {
		t.Errorf("%v after %q", err, got)
	}
}

// newAnthropicStream is the executor's translation of an Anthropic stream,
// sec redacted from its error events.
func newAnthropicStream(body io.ReadCloser, includeUsage bool, created int64, sec secrets) chatStream {
	return chatStream{anthropic.NewChatStream(body, includeUsage, created, sec.redact)}
}

// chatCompletion and oaUsage are what the tests read of a chat.completion.
type chatCompletion struct {
	Choices []struct {
		Message struct {
			Content *string `json:"content"`
		} `json:"message"`
	} `json:"choices"`
}

type oaUsage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

// created is the "created" time of the answers the tests' executors build.
const created = 1700000000
