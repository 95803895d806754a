package anthropic

import (
	"encoding/json"
	"strconv"
)

// chatCompletion is a chat.completion object, as far as FromChat reads it.
type chatCompletion struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	Choices []struct {
		Message struct {
			Content   *string `json:"content"`
			Refusal   *string `json:"refusal"`
			ToolCalls []struct {
				ID       string       `json:"id"`
				Function chatFunction `json:"function"`
			} `json:"tool_calls"`
		} `json:"message"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage *chatUsage `json:"usage"`
}

type chatUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
}

// Usage is Anthropic's usage object: input_tokens excludes the tokens read
// from the prompt cache.
type Usage struct {
	InputTokens          int64 `json:"input_tokens"`
	OutputTokens         int64 `json:"output_tokens"`
	CacheReadInputTokens int64 `json:"cache_read_input_tokens"`
}

func usageOf(u *chatUsage) Usage {
	if u == nil {
		return Usage{}
	}
	var cached int64
	if u.PromptTokensDetails != nil {
		cached = u.PromptTokensDetails.CachedTokens
	}
	return Usage{InputTokens: u.PromptTokens - cached, OutputTokens: u.CompletionTokens, CacheReadInputTokens: cached}
}

// messageObject is Anthropic's message object.
type messageObject struct {
	ID           string            `json:"id"`
	Type         string            `json:"type"`
	Role         string            `json:"role"`
	Model        string            `json:"model"`
	Content      []json.RawMessage `json:"content"`
	StopReason   *string           `json:"stop_reason"`
	StopSequence *string           `json:"stop_sequence"`
	Usage        Usage             `json:"usage"`
}

type textBlock struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type toolUseBlock struct {
	Type  string          `json:"type"`
	ID    string          `json:"id"`
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
}

// StopReason maps a chat completion's finish_reason to Anthropic's
// stop_reason: stop → end_turn, length → max_tokens, tool_calls (and the
// legacy function_call) → tool_use, content_filter → refusal.
func StopReason(finish string) string {
	switch finish {
	case "length":
		return "max_tokens"
	case "tool_calls", "function_call":
		return "tool_use"
	case "content_filter":
		return "refusal"
	}
	return "end_turn"
}

// FromChat translates a chat.completion JSON body into Anthropic's message
// object: the first choice's text (or refusal) as a text block, its tool
// calls as tool_use blocks (arguments that are not a JSON object become
// an empty input), its finish reason, the usage.
func FromChat(b []byte) ([]byte, *Error) {
	var cc chatCompletion
	if err := json.Unmarshal(b, &cc); err != nil {
		return nil, refuse("the upstream's answer is not a chat completion: %v", err)
	}
	if len(cc.Choices) == 0 {
		return nil, refuse("the upstream's chat completion has no choices")
	}
	ch := cc.Choices[0]
	m := messageObject{ID: messageID(cc.ID), Type: "message", Role: "assistant", Model: cc.Model, Content: []json.RawMessage{}, Usage: usageOf(cc.Usage)}
	text := ""
	if ch.Message.Content != nil {
		text = *ch.Message.Content
	}
	if text == "" && ch.Message.Refusal != nil {
		text = *ch.Message.Refusal
	}
	if text != "" {
		m.Content = append(m.Content, marshal(textBlock{"text", text}))
	}
	for _, tc := range ch.Message.ToolCalls {
		m.Content = append(m.Content, marshal(toolUseBlock{"tool_use", tc.ID, tc.Function.Name, toolInput(tc.Function.Arguments)}))
	}
	stop := StopReason(ch.FinishReason)
	m.StopReason = &stop
	return marshal(m), nil
}

// CountFromChat is the count_tokens answer, {"input_tokens": N}, of the
// chat.completion an upstream answered: its prompt_tokens.
func CountFromChat(b []byte) ([]byte, *Error) {
	var cc chatCompletion
	if err := json.Unmarshal(b, &cc); err != nil {
		return nil, refuse("the upstream's answer is not a chat completion: %v", err)
	}
	if cc.Usage == nil {
		return nil, refuse("the upstream's chat completion reports no usage to count the input tokens from")
	}
	return []byte(`{"input_tokens":` + strconv.FormatInt(cc.Usage.PromptTokens, 10) + "}"), nil
}

// toolInput is a tool call's arguments as a tool_use input: a JSON object.
func toolInput(args string) json.RawMessage {
	var v map[string]json.RawMessage
	if json.Unmarshal([]byte(args), &v) != nil {
		return json.RawMessage("{}")
	}
	return json.RawMessage(args)
}

// messageID names the message of chat completion id.
func messageID(id string) string {
	if id == "" {
		return "msg_awakend"
	}
	return "msg_" + id
}

func marshal(v any) json.RawMessage {
	b, _ := json.Marshal(v) // plain structs and validated raw JSON: no error
	return b
}
