package inference

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"

	"github.com/awakend/awakend/e2e/harness"
	"github.com/awakend/awakend/provider/providertest"
)

// TestThinkingToolLoop runs a tool loop of three tool turns and an answer
// through the anthropic adapter with an agent that thinks
// (reasoning_effort), streaming and not, through the openai-go SDK. The
// upstream refuses to go on from a tool turn whose signed thinking block
// did not come back unchanged, so the loop proves that thinking blocks
// and their signatures reach the client and return.
func TestThinkingToolLoop(t *testing.T) {
	t.Parallel()
	up := providertest.NewServer(t)
	up.Respond(func(r *providertest.Request) providertest.Reply {
		n := strings.Count(string(r.Body), `"type":"tool_result"`)
		if n < 3 {
			return providertest.Reply{
				Thinking: fmt.Sprintf("Turn %d: I need the weather in city %d.", n+1, n+1),
				ToolCall: &providertest.ToolCall{ID: fmt.Sprintf("toolu_%d", n+1), Name: "get_weather", Input: fmt.Sprintf(`{"location":"city %d"}`, n+1)},
			}
		}
		return providertest.Reply{Thinking: "I have all three.", Text: "All three cities are sunny."}
	})
	dir := harness.ConfigDir(t, map[string]string{
		"providers.yaml": `providers:
  - {id: an, adapter: anthropic, base_url: "` + up.AnthropicURL() + `", api_key: sk-upstream-anthropic}
`,
		"models.yaml": `models:
  - {id: claude, provider_id: an, upstream_model: claude-up}
`,
		"agents.yaml": `agents:
  - {id: thinker, model_id: claude, reasoning_effort: medium}
`,
	})
	d := start(t, dir, harness.Options{})
	c := d.newClient(t, "")
	tool := openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
		Name:       "get_weather",
		Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"location": map[string]any{"type": "string"}}},
	})

	// turn is one answer as the loop needs it.
	type turn struct {
		finish, text, reasoning string
		id, name, args          string // the tool call
		assistant               openai.ChatCompletionAssistantMessageParam
		blocks                  json.RawMessage // thinking_blocks
	}
	complete := func(t *testing.T, p openai.ChatCompletionNewParams) turn {
		cc, err := c.Chat.Completions.New(t.Context(), p)
		if err != nil {
			t.Fatal(err)
		}
		m := cc.Choices[0].Message
		tr := turn{finish: cc.Choices[0].FinishReason, text: m.Content, assistant: m.ToAssistantMessageParam()}
		if len(m.ToolCalls) > 0 {
			tc := m.ToolCalls[0]
			tr.id, tr.name, tr.args = tc.ID, tc.Function.Name, tc.Function.Arguments
		}
		_ = json.Unmarshal([]byte(m.JSON.ExtraFields["reasoning_content"].Raw()), &tr.reasoning)
		tr.blocks = json.RawMessage(m.JSON.ExtraFields["thinking_blocks"].Raw())
		return tr
	}
	stream := func(t *testing.T, p openai.ChatCompletionNewParams) turn {
		s := c.Chat.Completions.NewStreaming(t.Context(), p)
		defer s.Close()
		var acc openai.ChatCompletionAccumulator
		var reasoning, sig strings.Builder
		for s.Next() {
			ch := s.Current()
			acc.AddChunk(ch)
			if len(ch.Choices) == 0 {
				continue
			}
			ex := ch.Choices[0].Delta.JSON.ExtraFields
			var piece string
			if json.Unmarshal([]byte(ex["reasoning_content"].Raw()), &piece) == nil {
				reasoning.WriteString(piece)
			}
			var blocks []struct{ Type, Signature string }
			if json.Unmarshal([]byte(ex["thinking_blocks"].Raw()), &blocks) == nil {
				for _, b := range blocks {
					sig.WriteString(b.Signature)
				}
			}
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		m := acc.Choices[0].Message
		tr := turn{finish: acc.Choices[0].FinishReason, text: m.Content, reasoning: reasoning.String(), assistant: m.ToAssistantMessageParam()}
		if len(m.ToolCalls) > 0 {
			tc := m.ToolCalls[0]
			tr.id, tr.name, tr.args = tc.ID, tc.Function.Name, tc.Function.Arguments
		}
		tr.blocks, _ = json.Marshal([]map[string]string{{"type": "thinking", "thinking": tr.reasoning, "signature": sig.String()}})
		return tr
	}

	for name, call := range map[string]func(*testing.T, openai.ChatCompletionNewParams) turn{"complete": complete, "stream": stream} {
		t.Run(name, func(t *testing.T) {
			p := openai.ChatCompletionNewParams{
				Model:    "thinker",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is the weather in three cities?")},
				Tools:    []openai.ChatCompletionToolUnionParam{tool},
			}
			before := len(up.Requests())
			turns := 0
			for ; turns < 6; turns++ {
				tr := call(t, p)
				if !strings.HasPrefix(tr.reasoning, "Turn ") && !strings.HasPrefix(tr.reasoning, "I have") {
					t.Fatalf("turn %d: reasoning %q, want the model's thinking", turns+1, tr.reasoning)
				}
				if tr.finish != "tool_calls" {
					if tr.text != "All three cities are sunny." || turns != 3 {
						t.Fatalf("turn %d: %s %q, want the answer after three tool turns", turns+1, tr.finish, tr.text)
					}
					break
				}
				if want := fmt.Sprintf(`{"location":"city %d"}`, turns+1); tr.name != "get_weather" || tr.args != want {
					t.Fatalf("turn %d: call %s(%s), want get_weather(%s)", turns+1, tr.name, tr.args, want)
				}
				// The client sends the assistant message back with its
				// thinking blocks, as a client of this gateway does.
				tr.assistant.SetExtraFields(map[string]any{"thinking_blocks": tr.blocks})
				p.Messages = append(p.Messages, openai.ChatCompletionMessageParamUnion{OfAssistant: &tr.assistant},
					openai.ToolMessage("sunny", tr.id))
			}
			// Every upstream request thought: the gateway never had to
			// turn thinking off for want of a thinking block.
			reqs := up.Requests()[before:]
			if len(reqs) != 4 {
				t.Fatalf("%d upstream requests, want 4", len(reqs))
			}
			for i, r := range reqs {
				if !strings.Contains(string(r.Body), `"thinking":{"type":"enabled","budget_tokens":8192}`) {
					t.Errorf("upstream request %d without thinking: %s", i+1, r.Body)
				}
			}
		})
	}

	// A client that drops the thinking blocks still gets its loop
	// answered: thinking is off for the turn that lost them.
	t.Run("blocks dropped", func(t *testing.T) {
		p := openai.ChatCompletionNewParams{
			Model:    "thinker",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is the weather?")},
			Tools:    []openai.ChatCompletionToolUnionParam{tool},
		}
		tr := complete(t, p)
		p.Messages = append(p.Messages, openai.ChatCompletionMessageParamUnion{OfAssistant: &tr.assistant}, openai.ToolMessage("sunny", tr.id))
		cc, err := c.Chat.Completions.New(t.Context(), p)
		if err != nil || cc.Choices[0].FinishReason != "tool_calls" {
			t.Fatalf("%v, want the next tool turn", err)
		}
		last := up.Requests()[len(up.Requests())-1]
		if strings.Contains(string(last.Body), `"thinking":{`) {
			t.Errorf("thinking sent without the blocks it needs: %s", last.Body)
		}
	})
}
