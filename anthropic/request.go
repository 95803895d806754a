// Package anthropic owns the translation between Anthropic's Messages API
// and OpenAI's chat completions, both ways.
//
// For clients that speak Messages to a provider that speaks chat
// completions, a Messages request becomes a chat completion request
// (ToChat), and the answer, a chat.completion object (FromChat,
// CountFromChat) or a stream of chat.completion.chunk events (NewStream),
// becomes Anthropic's message object or its stream of events.
//
// For clients that speak chat completions to an anthropic provider (the
// anthropic adapter), a chat completion request becomes a Messages request
// (ToMessages), and the answer, a message (ChatFromMessage) or a stream of
// events (NewChatStream), becomes a chat.completion or its chunks.
//
// It is pure: no I/O but the stream it is handed, no logging, no state
// shared between calls.
package anthropic

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Options shape one translated request.
type Options struct {
	// Model is the upstream model the chat request names.
	Model string
	// System, when set, is sent as a system message before the client's
	// own system text (an agent's system prompt).
	System string
	// Effort is the reasoning_effort to send when the client's request
	// says nothing of thinking (an agent's); "" sends none.
	Effort string
	// MaxTokens, when positive, replaces the client's max_tokens (the
	// count of a count_tokens request asks for one token).
	MaxTokens int64
	// NoStream sends a non-stream request whatever the client asked
	// (count_tokens).
	NoStream bool
}

// Error is a request the translation refuses: what the client sent has no
// chat completions equivalent, or is not a Messages request.
type Error struct{ Message string }

func (e *Error) Error() string { return e.Message }

func refuse(format string, args ...any) *Error { return &Error{Message: fmt.Sprintf(format, args...)} }

// request is a Messages API request, as far as the translation reads it.
type request struct {
	MaxTokens     *int64          `json:"max_tokens"`
	System        json.RawMessage `json:"system"`
	Messages      []message       `json:"messages"`
	Temperature   json.RawMessage `json:"temperature"`
	TopP          json.RawMessage `json:"top_p"`
	StopSequences []string        `json:"stop_sequences"`
	Tools         []tool          `json:"tools"`
	ToolChoice    *toolChoice     `json:"tool_choice"`
	Thinking      *struct {
		Type         string `json:"type"`
		BudgetTokens int64  `json:"budget_tokens"`
	} `json:"thinking"`
	OutputConfig *struct {
		Effort string `json:"effort"`
	} `json:"output_config"`
	Metadata *struct {
		UserID string `json:"user_id"`
	} `json:"metadata"`
	Stream bool `json:"stream"`
}

type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type block struct {
	Type      string          `json:"type"`
	Text      string          `json:"text"`
	Source    *source         `json:"source"`
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Input     json.RawMessage `json:"input"`
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
}

type source struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type"`
	Data      string `json:"data"`
	URL       string `json:"url"`
}

type tool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	InputSchema json.RawMessage `json:"input_schema"`
}

type toolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use"`
}

// Chat completion request, as the translation writes it.
type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []chatMessage   `json:"messages"`
	MaxCompletionTokens int64           `json:"max_completion_tokens,omitempty"`
	Temperature         json.RawMessage `json:"temperature,omitempty"`
	TopP                json.RawMessage `json:"top_p,omitempty"`
	Stop                []string        `json:"stop,omitempty"`
	Tools               []chatTool      `json:"tools,omitempty"`
	ToolChoice          any             `json:"tool_choice,omitempty"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls,omitempty"`
	ReasoningEffort     string          `json:"reasoning_effort,omitempty"`
	User                string          `json:"user,omitempty"`
	Stream              bool            `json:"stream,omitempty"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options,omitempty"`
}

type chatMessage struct {
	Role       string         `json:"role"`
	Content    any            `json:"content"` // string, []chatPart, or nil beside tool calls
	ToolCalls  []chatToolCall `json:"tool_calls,omitempty"`
	ToolCallID string         `json:"tool_call_id,omitempty"`
}

type chatPart struct {
	Type     string `json:"type"`
	Text     string `json:"text,omitempty"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url,omitempty"`
}

type chatToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function chatFunction `json:"function"`
}

type chatFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type chatTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Parameters  json.RawMessage `json:"parameters,omitempty"`
	} `json:"function"`
}

// ToChat translates a Messages API request body into a chat completion
// request body (see the README for the mapping). It reports whether the
// chat request streams.
func ToChat(body []byte, o Options) ([]byte, bool, *Error) {
	var in request
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, false, refuse("the request body is not a Messages request: %v", err)
	}
	out := chatRequest{Model: o.Model, Temperature: nonNull(in.Temperature), TopP: nonNull(in.TopP), Stop: in.StopSequences}
	if in.MaxTokens != nil {
		out.MaxCompletionTokens = *in.MaxTokens
	}
	if o.MaxTokens > 0 {
		out.MaxCompletionTokens = o.MaxTokens
	}
	if in.Stream && !o.NoStream {
		out.Stream = true
		out.StreamOptions = &struct {
			IncludeUsage bool `json:"include_usage"`
		}{true} // message_delta reports the usage
	}
	if in.Metadata != nil {
		out.User = in.Metadata.UserID
	}
	out.ReasoningEffort = effort(&in, o.Effort)

	if o.System != "" {
		out.Messages = append(out.Messages, chatMessage{Role: "system", Content: o.System})
	}
	if sys, err := systemText(in.System); err != nil {
		return nil, false, err
	} else if sys != "" {
		out.Messages = append(out.Messages, chatMessage{Role: "system", Content: sys})
	}
	for i, m := range in.Messages {
		msgs, err := chatMessages(m, i)
		if err != nil {
			return nil, false, err
		}
		out.Messages = append(out.Messages, msgs...)
	}

	for i, t := range in.Tools {
		if t.Type != "" && t.Type != "custom" {
			return nil, false, refuse("tools.%d: the tool type %q is Anthropic's own and has no chat completions equivalent", i, t.Type)
		}
		var ct chatTool
		ct.Type = "function"
		ct.Function.Name, ct.Function.Description, ct.Function.Parameters = t.Name, t.Description, nonNull(t.InputSchema)
		out.Tools = append(out.Tools, ct)
	}
	if tc := in.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto":
			out.ToolChoice = "auto"
		case "any":
			out.ToolChoice = "required"
		case "none":
			out.ToolChoice = "none"
		case "tool":
			out.ToolChoice = map[string]any{"type": "function", "function": map[string]string{"name": tc.Name}}
		default:
			return nil, false, refuse("tool_choice: unknown type %q", tc.Type)
		}
		if tc.DisableParallelToolUse && len(out.Tools) > 0 {
			f := false
			out.ParallelToolCalls = &f
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, false, refuse("the request cannot be translated: %v", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), out.Stream, nil
}

// effort is the reasoning_effort of a request: from its thinking budget
// or output_config.effort, else the agent's when the request says
// nothing of thinking. Thinking disabled sends none.
func effort(in *request, agent string) string {
	if in.OutputConfig != nil && in.OutputConfig.Effort != "" {
		switch e := in.OutputConfig.Effort; e {
		case "low", "medium", "high":
			return e
		case "max", "xhigh":
			return "high"
		}
	}
	if th := in.Thinking; th != nil {
		switch th.Type {
		case "enabled":
			switch {
			case th.BudgetTokens <= 2048:
				return "low"
			case th.BudgetTokens <= 8192:
				return "medium"
			}
			return "high"
		case "adaptive":
			return "medium"
		}
		return ""
	}
	return agent
}

// nonNull returns raw, or nil when it is absent or JSON null.
func nonNull(raw json.RawMessage) json.RawMessage {
	if t := bytes.TrimSpace(raw); len(t) == 0 || string(t) == "null" {
		return nil
	}
	return raw
}

// systemText reads the system member: a string, or text blocks joined by
// a blank line.
func systemText(raw json.RawMessage) (string, *Error) {
	if len(nonNull(raw)) == 0 {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var blocks []block
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return "", refuse("system: expected a string or an array of text blocks")
	}
	texts := make([]string, 0, len(blocks))
	for i, b := range blocks {
		if b.Type != "text" {
			return "", refuse("system.%d: expected a text block, not %q", i, b.Type)
		}
		texts = append(texts, b.Text)
	}
	return strings.Join(texts, "\n\n"), nil
}

// chatMessages translates message i: a user message's tool results
// become tool messages, before the user message with the rest of its
// content; an assistant message's tool_use blocks become its tool calls.
func chatMessages(m message, i int) ([]chatMessage, *Error) {
	if m.Role != "user" && m.Role != "assistant" {
		return nil, refuse("messages.%d: role must be user or assistant, not %q", i, m.Role)
	}
	var s string
	if json.Unmarshal(m.Content, &s) == nil {
		return []chatMessage{{Role: m.Role, Content: s}}, nil
	}
	var blocks []block
	if err := json.Unmarshal(m.Content, &blocks); err != nil {
		return nil, refuse("messages.%d.content: expected a string or an array of content blocks", i)
	}
	if m.Role == "assistant" {
		return assistantMessage(blocks, i)
	}
	var out []chatMessage
	var parts []chatPart
	for j, b := range blocks {
		switch b.Type {
		case "text":
			parts = append(parts, chatPart{Type: "text", Text: b.Text})
		case "image":
			p, err := imagePart(b.Source, i, j)
			if err != nil {
				return nil, err
			}
			parts = append(parts, p)
		case "tool_result":
			text, err := resultText(b.Content, i, j)
			if err != nil {
				return nil, err
			}
			out = append(out, chatMessage{Role: "tool", ToolCallID: b.ToolUseID, Content: text})
		default:
			return nil, refuse("messages.%d.content.%d: a %q block has no chat completions equivalent", i, j, b.Type)
		}
	}
	if len(parts) > 0 {
		if len(parts) == 1 && parts[0].Type == "text" {
			out = append(out, chatMessage{Role: "user", Content: parts[0].Text})
		} else {
			out = append(out, chatMessage{Role: "user", Content: parts})
		}
	}
	return out, nil
}

// assistantMessage joins an assistant message's text blocks and turns its
// tool_use blocks into tool calls. Thinking blocks are dropped: chat
// completions have no place for them.
func assistantMessage(blocks []block, i int) ([]chatMessage, *Error) {
	var texts []string
	var calls []chatToolCall
	for j, b := range blocks {
		switch b.Type {
		case "text":
			texts = append(texts, b.Text)
		case "tool_use":
			args := string(nonNull(b.Input))
			if args == "" {
				args = "{}"
			}
			calls = append(calls, chatToolCall{ID: b.ID, Type: "function", Function: chatFunction{Name: b.Name, Arguments: args}})
		case "thinking", "redacted_thinking":
		default:
			return nil, refuse("messages.%d.content.%d: a %q block has no chat completions equivalent", i, j, b.Type)
		}
	}
	m := chatMessage{Role: "assistant", ToolCalls: calls}
	if len(texts) > 0 || len(calls) == 0 {
		m.Content = strings.Join(texts, "")
	}
	return []chatMessage{m}, nil
}

// imagePart is an image block as an image_url part: a data: URL for a
// base64 source.
func imagePart(src *source, i, j int) (chatPart, *Error) {
	p := chatPart{Type: "image_url", ImageURL: &struct {
		URL string `json:"url"`
	}{}}
	switch {
	case src != nil && src.Type == "base64":
		p.ImageURL.URL = "data:" + src.MediaType + ";base64," + src.Data
	case src != nil && src.Type == "url":
		p.ImageURL.URL = src.URL
	default:
		return p, refuse("messages.%d.content.%d: an image needs a base64 or url source", i, j)
	}
	return p, nil
}

// resultText is a tool_result's content as text: a string, or its text
// blocks joined.
func resultText(raw json.RawMessage, i, j int) (string, *Error) {
	if len(nonNull(raw)) == 0 {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var blocks []block
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return "", refuse("messages.%d.content.%d.content: expected a string or an array of content blocks", i, j)
	}
	var sb strings.Builder
	for k, b := range blocks {
		if b.Type != "text" {
			return "", refuse("messages.%d.content.%d.content.%d: a %q block in a tool result has no chat completions equivalent", i, j, k, b.Type)
		}
		sb.WriteString(b.Text)
	}
	return sb.String(), nil
}
