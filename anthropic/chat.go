package anthropic

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/awakend/awakend/internal/jsonscan"
)

// The anthropic adapter's translation: OpenAI chat completions into
// Anthropic's Messages API (ToMessages) and the answers back (ChatFromMessage,
// NewChatStream).
//
// Request mapping:
//
//   - system and developer messages → system, their texts joined by a blank
//     line (an array of text blocks when a part carries cache_control);
//   - user messages → user messages; content parts text → text blocks,
//     image_url with a data: URL → a base64 image source, with an http(s)
//     URL → a url image source; other part types are refused;
//   - assistant messages → assistant messages; tool_calls → tool_use blocks
//     whose input is the parsed arguments (ids outside Anthropic's
//     [a-zA-Z0-9_-] get '_' for each other byte, in tool results too);
//   - tool messages → tool_result blocks in a user message;
//   - consecutive messages of the same role are merged into one;
//   - max_completion_tokens, else max_tokens, else DefaultMaxTokens →
//     max_tokens; temperature (clamped to Anthropic's 0…1), top_p, top_k;
//     stop (string or list) → stop_sequences; tools of type function →
//     tools with input_schema; tool_choice none/auto/required/{function} →
//     none/auto/any/tool; parallel_tool_calls false →
//     disable_parallel_tool_use; user (or safety_identifier) →
//     metadata.user_id; stream;
//   - thinking, an Anthropic extension some OpenAI clients send (and the
//     way to ask for an exact budget), passes through as it is; otherwise
//     reasoning_effort maps to thinking (see ThinkingBudget);
//   - n > 1 is refused; other fields (response_format, logprobs, seed, …)
//     have no Messages API equivalent and are dropped.

// DefaultMaxTokens is the max_tokens sent to Anthropic, which requires one,
// when the request sets neither max_tokens nor max_completion_tokens.
const DefaultMaxTokens = 4096

// MinThinkingBudget is the smallest thinking budget Anthropic accepts.
const MinThinkingBudget = 1024

// ThinkingBudget returns the thinking budget_tokens an OpenAI
// reasoning_effort stands for: none → 0 (thinking off), minimal → 1024
// (Anthropic's minimum), low → 2048, medium → 8192, high → 16384,
// xhigh and max → 32768. ok is false for an unknown effort.
//
// The budget counts against max_tokens, as reasoning tokens count against
// max_completion_tokens at OpenAI. When the request sets no limit,
// max_tokens becomes budget + DefaultMaxTokens; when it sets one, the
// budget shrinks to at most half of it, and thinking stays off if that is
// below MinThinkingBudget. With thinking on, temperature, top_p and top_k
// are dropped (Anthropic refuses most values of them then).
func ThinkingBudget(effort string) (budget int64, ok bool) {
	switch effort {
	case "", "none":
		return 0, true
	case "minimal":
		return MinThinkingBudget, true
	case "low":
		return 2048, true
	case "medium":
		return 8192, true
	case "high":
		return 16384, true
	case "xhigh", "max":
		return 32768, true
	}
	return 0, false
}

// OpenAI request, as far as the translation reads it.
type oaRequest struct {
	Model               string          `json:"model"`
	Messages            []oaMessage     `json:"messages"`
	MaxTokens           *int64          `json:"max_tokens"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                json.RawMessage `json:"top_p"`
	TopK                json.RawMessage `json:"top_k"`
	Stop                json.RawMessage `json:"stop"`
	N                   *int            `json:"n"`
	Tools               []oaTool        `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	ReasoningEffort  string          `json:"reasoning_effort"`
	Thinking         json.RawMessage `json:"thinking"`
	User             string          `json:"user"`
	SafetyIdentifier string          `json:"safety_identifier"`
}

type oaMessage struct {
	Role           string          `json:"role"`
	Content        json.RawMessage `json:"content"`
	ToolCalls      []oaToolCall    `json:"tool_calls"`
	ToolCallID     string          `json:"tool_call_id"`
	ThinkingBlocks []ThinkingBlock `json:"thinking_blocks"`
}

// ThinkingBlock is a thinking block of Anthropic's as an OpenAI-side
// message carries it, in thinking_blocks: what the model thought and the
// signature that lets it continue from there, or the data of a redacted
// one. A client that sends an assistant message back with them lets a
// tool loop with thinking go on.
type ThinkingBlock struct {
	Type      string `json:"type"` // thinking or redacted_thinking
	Thinking  string `json:"thinking,omitempty"`
	Signature string `json:"signature,omitempty"`
	Data      string `json:"data,omitempty"`
}

type oaPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	Refusal  string `json:"refusal"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url"`
	CacheControl json.RawMessage `json:"cache_control"`
}

type oaToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type oaTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
	CacheControl json.RawMessage `json:"cache_control"`
}

// Anthropic request.
type anRequest struct {
	Model         string          `json:"model"`
	MaxTokens     int64           `json:"max_tokens"`
	System        any             `json:"system,omitempty"` // string or []anBlock
	Messages      []anMessage     `json:"messages"`
	Temperature   *float64        `json:"temperature,omitempty"`
	TopP          json.RawMessage `json:"top_p,omitempty"`
	TopK          json.RawMessage `json:"top_k,omitempty"`
	StopSequences []string        `json:"stop_sequences,omitempty"`
	Tools         []anTool        `json:"tools,omitempty"`
	ToolChoice    *anToolChoice   `json:"tool_choice,omitempty"`
	Thinking      json.RawMessage `json:"thinking,omitempty"`
	OutputConfig  *anOutputConfig `json:"output_config,omitempty"`
	Metadata      *anMetadata     `json:"metadata,omitempty"`
	Stream        bool            `json:"stream,omitempty"`
}

type anMessage struct {
	Role    string `json:"role"`
	Content any    `json:"content"` // string or []anBlock
	blocks  []anBlock
}

type anBlock struct {
	Type         string          `json:"type"`
	Text         string          `json:"text,omitempty"`
	Source       *anSource       `json:"source,omitempty"`
	ID           string          `json:"id,omitempty"`
	Name         string          `json:"name,omitempty"`
	Input        json.RawMessage `json:"input,omitempty"`
	ToolUseID    string          `json:"tool_use_id,omitempty"`
	Content      any             `json:"content,omitempty"` // tool_result: string or []anBlock
	CacheControl json.RawMessage `json:"cache_control,omitempty"`
	Thinking     *string         `json:"thinking,omitempty"` // a thinking block's, "" included
	Signature    string          `json:"signature,omitempty"`
	Data         string          `json:"data,omitempty"`
}

type anSource struct {
	Type      string `json:"type"`
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

type anTool struct {
	Name         string          `json:"name"`
	Description  string          `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"input_schema"`
	CacheControl json.RawMessage `json:"cache_control,omitempty"`
}

type anToolChoice struct {
	Type                   string `json:"type"`
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

type anOutputConfig struct {
	Effort string `json:"effort"`
}

type anMetadata struct {
	UserID string `json:"user_id"`
}

// MessagesOptions shape a translated Messages request.
type MessagesOptions struct {
	// Model is the upstream model; "" keeps the body's.
	Model string
	// Stream asks for a stream.
	Stream bool
	// NoSampling leaves temperature, top_p and top_k out, whatever the
	// request says: API versions from 2026-10-21 refuse them all.
	NoSampling bool
	// Adaptive asks for adaptive thinking with an effort level
	// (output_config.effort) for a reasoning_effort, rather than a
	// thinking budget: the models that have the effort setting.
	Adaptive bool
}

// Effort returns the output_config.effort an OpenAI reasoning_effort
// stands for with adaptive thinking: minimal and low → low, medium,
// high, xhigh and max → max; "" for none (thinking off). ok is false for
// an unknown effort.
func Effort(reasoning string) (effort string, ok bool) {
	switch reasoning {
	case "", "none":
		return "", true
	case "minimal", "low":
		return "low", true
	case "medium", "high":
		return reasoning, true
	case "xhigh", "max":
		return "max", true
	}
	return "", false
}

// ToMessages translates an OpenAI chat completion request body into a
// Messages API body. It reports whether the client asked for a usage
// chunk at the end of a stream.
func ToMessages(body []byte, o MessagesOptions) ([]byte, bool, *Error) {
	model, stream := o.Model, o.Stream
	var in oaRequest
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, false, refuse("request body is not a chat completion request: %v", err)
	}
	if in.N != nil && *in.N > 1 {
		return nil, false, refuse("n > 1 is not supported by the anthropic adapter")
	}
	out := anRequest{Model: model, Stream: stream, Temperature: in.Temperature, TopP: nonNull(in.TopP), TopK: nonNull(in.TopK)}
	if out.Model == "" {
		out.Model = in.Model
	}
	if t := out.Temperature; t != nil && *t > 1 {
		one := 1.0
		out.Temperature = &one
	}

	system, msgs, err := convertMessages(in.Messages)
	if err != nil {
		return nil, false, err
	}
	if len(msgs) == 0 {
		return nil, false, refuse("messages: at least one user, assistant or tool message with content is required")
	}
	out.System, out.Messages = system, msgs

	if in.MaxCompletionTokens != nil {
		out.MaxTokens = *in.MaxCompletionTokens
	} else if in.MaxTokens != nil {
		out.MaxTokens = *in.MaxTokens
	}
	forced := forcedTool(in.ToolChoice)
	if th := nonNull(in.Thinking); th != nil {
		out.Thinking = th
		if string(jsonscan.Field(th, "type")) != `"disabled"` {
			if forced {
				return nil, false, refuse("thinking cannot be combined with a tool_choice that forces a tool (required or a named function); use auto or none")
			}
			if out.MaxTokens == 0 {
				out.MaxTokens = jsonscan.Integer(jsonscan.Field(th, "budget_tokens")) + DefaultMaxTokens
			}
			out.Temperature, out.TopP, out.TopK = nil, nil, nil
		}
	} else if o.Adaptive {
		effort, ok := Effort(in.ReasoningEffort)
		if !ok {
			return nil, false, refuse("unknown reasoning_effort %q", in.ReasoningEffort)
		}
		if effort != "" && !forced && !lostThinking(msgs) {
			if out.MaxTokens == 0 {
				budget, _ := ThinkingBudget(in.ReasoningEffort)
				out.MaxTokens = budget + DefaultMaxTokens
			}
			out.Thinking = json.RawMessage(`{"type":"adaptive"}`)
			out.OutputConfig = &anOutputConfig{Effort: effort}
			out.Temperature, out.TopP, out.TopK = nil, nil, nil
		}
	} else {
		budget, ok := ThinkingBudget(in.ReasoningEffort)
		if !ok {
			return nil, false, refuse("unknown reasoning_effort %q", in.ReasoningEffort)
		}
		if budget > 0 && out.MaxTokens > 0 {
			budget = min(budget, out.MaxTokens/2)
		}
		// Thinking from reasoning_effort is a preference: it stays off
		// where the API refuses it (a forced tool), and where a tool loop
		// goes on from an assistant turn whose thinking blocks the client
		// did not send back (the API requires them then).
		if budget >= MinThinkingBudget && !forced && !lostThinking(msgs) {
			if out.MaxTokens == 0 {
				out.MaxTokens = budget + DefaultMaxTokens
			}
			out.Thinking = json.RawMessage(`{"type":"enabled","budget_tokens":` + strconv.FormatInt(budget, 10) + `}`)
			out.Temperature, out.TopP, out.TopK = nil, nil, nil
		}
	}
	if out.MaxTokens <= 0 {
		out.MaxTokens = DefaultMaxTokens
	}
	if o.NoSampling {
		out.Temperature, out.TopP, out.TopK = nil, nil, nil
	}

	if s := nonNull(in.Stop); s != nil {
		var one string
		if json.Unmarshal(s, &one) == nil {
			out.StopSequences = []string{one}
		} else if json.Unmarshal(s, &out.StopSequences) != nil {
			return nil, false, refuse("stop must be a string or a list of strings")
		}
	}

	for _, t := range in.Tools {
		if t.Type != "function" {
			return nil, false, refuse("tool type %q is not supported by the anthropic adapter", t.Type)
		}
		schema := nonNull(t.Function.Parameters)
		if schema == nil {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		out.Tools = append(out.Tools, anTool{Name: t.Function.Name, Description: t.Function.Description, InputSchema: schema, CacheControl: nonNull(t.CacheControl)})
	}
	if tc := nonNull(in.ToolChoice); tc != nil {
		var mode string
		var fn struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		switch {
		case json.Unmarshal(tc, &mode) == nil:
			switch mode {
			case "none", "auto":
				out.ToolChoice = &anToolChoice{Type: mode}
			case "required":
				out.ToolChoice = &anToolChoice{Type: "any"}
			default:
				return nil, false, refuse("unknown tool_choice %q", mode)
			}
		case json.Unmarshal(tc, &fn) == nil && fn.Function.Name != "":
			out.ToolChoice = &anToolChoice{Type: "tool", Name: fn.Function.Name}
		default:
			return nil, false, refuse("tool_choice must be none, auto, required or a function")
		}
	}
	if p := in.ParallelToolCalls; p != nil && !*p && len(out.Tools) > 0 {
		if out.ToolChoice == nil {
			out.ToolChoice = &anToolChoice{Type: "auto"}
		}
		if out.ToolChoice.Type != "none" {
			out.ToolChoice.DisableParallelToolUse = true
		}
	}

	if u := in.User; u != "" {
		out.Metadata = &anMetadata{UserID: u}
	} else if u := in.SafetyIdentifier; u != "" {
		out.Metadata = &anMetadata{UserID: u}
	}

	b, merr := json.Marshal(out)
	if merr != nil {
		return nil, false, refuse("cannot encode the anthropic request: %v", merr)
	}
	return b, in.StreamOptions != nil && in.StreamOptions.IncludeUsage, nil
}

// convertMessages maps OpenAI messages to Anthropic's system and messages.
func convertMessages(in []oaMessage) (system any, out []anMessage, err *Error) {
	var sys []anBlock
	add := func(role string, blocks []anBlock) {
		if len(blocks) == 0 {
			return
		}
		if n := len(out); n > 0 && out[n-1].Role == role {
			out[n-1].blocks = append(out[n-1].blocks, blocks...)
			return
		}
		out = append(out, anMessage{Role: role, blocks: blocks})
	}
	for i, m := range in {
		switch m.Role {
		case "system", "developer":
			blocks, err := contentBlocks(m.Content, false, i)
			if err != nil {
				return nil, nil, err
			}
			sys = append(sys, blocks...)
		case "user":
			blocks, err := contentBlocks(m.Content, true, i)
			if err != nil {
				return nil, nil, err
			}
			add("user", blocks)
		case "assistant":
			blocks, err := thinkingBlocks(m.ThinkingBlocks, i)
			if err != nil {
				return nil, nil, err
			}
			text, err := contentBlocks(m.Content, false, i)
			if err != nil {
				return nil, nil, err
			}
			blocks = append(blocks, text...)
			for _, tc := range m.ToolCalls {
				args := json.RawMessage(strings.TrimSpace(tc.Function.Arguments))
				if len(args) == 0 {
					args = json.RawMessage(`{}`)
				}
				if !json.Valid(args) || args[0] != '{' {
					return nil, nil, refuse("messages[%d]: tool call %q: arguments are not a JSON object", i, tc.ID)
				}
				blocks = append(blocks, anBlock{Type: "tool_use", ID: toolID(tc.ID), Name: tc.Function.Name, Input: args})
			}
			add("assistant", blocks)
		case "tool":
			blocks, err := contentBlocks(m.Content, true, i)
			if err != nil {
				return nil, nil, err
			}
			res := anBlock{Type: "tool_result", ToolUseID: toolID(m.ToolCallID)}
			if s, ok := singleText(blocks); ok {
				res.Content = s
			} else if len(blocks) > 0 {
				res.Content = blocks
			}
			add("user", []anBlock{res})
		default:
			return nil, nil, refuse("messages[%d]: role %q is not supported by the anthropic adapter", i, m.Role)
		}
	}
	for i := range out {
		if s, ok := singleText(out[i].blocks); ok {
			out[i].Content = s
		} else {
			out[i].Content = out[i].blocks
		}
	}
	if len(sys) > 0 {
		cached := false
		texts := make([]string, len(sys))
		for i, b := range sys {
			texts[i] = b.Text
			cached = cached || b.CacheControl != nil
		}
		if cached {
			system = sys
		} else {
			system = strings.Join(texts, "\n\n")
		}
	}
	if out == nil {
		out = []anMessage{}
	}
	return system, out, nil
}

// thinkingBlocks maps an assistant message's thinking_blocks, which go
// first in its Anthropic message.
func thinkingBlocks(in []ThinkingBlock, i int) ([]anBlock, *Error) {
	var out []anBlock
	for j, b := range in {
		switch b.Type {
		case "thinking":
			if b.Signature == "" {
				return nil, refuse("messages[%d].thinking_blocks[%d]: a thinking block needs its signature", i, j)
			}
			t := b.Thinking
			out = append(out, anBlock{Type: "thinking", Thinking: &t, Signature: b.Signature})
		case "redacted_thinking":
			if b.Data == "" {
				return nil, refuse("messages[%d].thinking_blocks[%d]: a redacted_thinking block needs its data", i, j)
			}
			out = append(out, anBlock{Type: "redacted_thinking", Data: b.Data})
		default:
			return nil, refuse("messages[%d].thinking_blocks[%d]: type %q is not thinking or redacted_thinking", i, j, b.Type)
		}
	}
	return out, nil
}

// forcedTool reports whether an OpenAI tool_choice forces a tool call:
// required, or a named function.
func forcedTool(tc json.RawMessage) bool {
	tc = nonNull(tc)
	if tc == nil {
		return false
	}
	var mode string
	if json.Unmarshal(tc, &mode) == nil {
		return mode == "required"
	}
	return true
}

// lostThinking reports whether the conversation ends in a tool loop whose
// last assistant turn called tools without the thinking that preceded
// them: the API refuses thinking then.
func lostThinking(msgs []anMessage) bool {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role != "assistant" {
			continue
		}
		b := msgs[i].blocks
		uses := false
		for _, x := range b {
			uses = uses || x.Type == "tool_use"
		}
		return uses && (len(b) == 0 || b[0].Type != "thinking" && b[0].Type != "redacted_thinking")
	}
	return false
}

// toolID makes a tool call id acceptable to Anthropic, whose ids match
// ^[a-zA-Z0-9_-]+$: any other byte becomes '_', the same way in a tool_use
// and in the tool_result that answers it.
func toolID(id string) string {
	valid := func(c byte) bool {
		return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
	}
	for i := 0; i < len(id); i++ {
		if !valid(id[i]) {
			b := []byte(id)
			for j := i; j < len(b); j++ {
				if !valid(b[j]) {
					b[j] = '_'
				}
			}
			return string(b)
		}
	}
	return id
}

// singleText reports whether blocks are one plain text block, which
// Anthropic accepts as a bare string.
func singleText(blocks []anBlock) (string, bool) {
	if len(blocks) == 1 && blocks[0].Type == "text" && blocks[0].CacheControl == nil {
		return blocks[0].Text, true
	}
	return "", false
}

// contentBlocks maps an OpenAI message content, a string or a list of
// parts, to Anthropic blocks. Empty texts are dropped (Anthropic refuses
// them). Images are allowed where images allows.
func contentBlocks(content json.RawMessage, images bool, i int) ([]anBlock, *Error) {
	content = nonNull(content)
	if content == nil {
		return nil, nil
	}
	var s string
	if json.Unmarshal(content, &s) == nil {
		if s == "" {
			return nil, nil
		}
		return []anBlock{{Type: "text", Text: s}}, nil
	}
	var parts []oaPart
	if err := json.Unmarshal(content, &parts); err != nil {
		return nil, refuse("messages[%d]: content must be a string or a list of parts", i)
	}
	blocks := make([]anBlock, 0, len(parts))
	for _, p := range parts {
		switch p.Type {
		case "text", "refusal":
			t := p.Text
			if p.Type == "refusal" {
				t = p.Refusal
			}
			if t != "" {
				blocks = append(blocks, anBlock{Type: "text", Text: t, CacheControl: nonNull(p.CacheControl)})
			}
		case "image_url":
			if !images || p.ImageURL == nil {
				return nil, refuse("messages[%d]: an image_url part is not allowed here", i)
			}
			src, err := imageSource(p.ImageURL.URL)
			if err != nil {
				return nil, refuse("messages[%d]: %s", i, err)
			}
			blocks = append(blocks, anBlock{Type: "image", Source: src, CacheControl: nonNull(p.CacheControl)})
		default:
			return nil, refuse("messages[%d]: content part type %q is not supported by the anthropic adapter", i, p.Type)
		}
	}
	return blocks, nil
}

// imageSource maps an image_url URL to an Anthropic image source: a
// base64 source for a data: URL, a url source for http(s).
func imageSource(u string) (*anSource, error) {
	if rest, ok := strings.CutPrefix(u, "data:"); ok {
		meta, data, ok := strings.Cut(rest, ",")
		mediaType, enc, _ := strings.Cut(meta, ";")
		if !ok || enc != "base64" || mediaType == "" {
			return nil, fmt.Errorf("image data URL must be data:<media type>;base64,<data>")
		}
		return &anSource{Type: "base64", MediaType: mediaType, Data: data}, nil
	}
	if strings.HasPrefix(u, "https://") || strings.HasPrefix(u, "http://") {
		return &anSource{Type: "url", URL: u}, nil
	}
	return nil, fmt.Errorf("image URL must be an http(s) or data: URL")
}
