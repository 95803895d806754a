package anthropic

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/awakend/awakend/internal/jsonscan"
	"github.com/awakend/awakend/internal/sse"
)

// Response mapping (both for a message and for a stream):
//
//   - id and model as Anthropic sent them; created is the time of the call;
//   - text blocks → message.content (null when there is none and the
//     model called tools); tool_use blocks → tool_calls of type function,
//     arguments the input as JSON text; thinking blocks → reasoning_content
//     (the field DeepSeek and others use) and, with their signatures,
//     thinking_blocks (redacted_thinking blocks too), which a client sends
//     back on the assistant message to continue a tool loop with thinking;
//   - stop_reason end_turn, stop_sequence, pause_turn → stop; max_tokens,
//     model_context_window_exceeded → length; tool_use → tool_calls;
//     refusal → content_filter;
//   - usage: prompt_tokens = input_tokens + cache_creation_input_tokens +
//     cache_read_input_tokens (Anthropic counts them apart, OpenAI does
//     not); completion_tokens = output_tokens;
//     prompt_tokens_details.cached_tokens = cache_read_input_tokens, and
//     cache_creation_tokens = cache_creation_input_tokens when not zero.
//
// A stream becomes chat.completion.chunk events: a role chunk at
// message_start, a content (or reasoning_content) chunk per text (or
// thinking) delta, a thinking_blocks chunk with the signature at a
// thinking block's signature_delta (its thinking is the reasoning_content
// since the block began) and with the data of a redacted_thinking block, a tool_calls chunk with id, type and name at each tool_use
// block start and one with an arguments fragment per input_json_delta (the
// tool call index counts tool_use blocks), a finish_reason chunk at
// message_delta, a usage chunk (choices empty) at message_stop when the
// request asked for stream_options.include_usage, then "data: [DONE]".
// ping events are dropped; an error event becomes an OpenAI error event,
// data: {"error": {"message", "type", "param", "code"}} (message and type
// redacted and cut short), which is the stream's last: no [DONE] follows.

// finishReason maps an Anthropic stop_reason to an OpenAI finish_reason.
func finishReason(stop string) string {
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	return "stop"
}

type anUsage struct {
	InputTokens              int64 `json:"input_tokens"`
	OutputTokens             int64 `json:"output_tokens"`
	CacheCreationInputTokens int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64 `json:"cache_read_input_tokens"`
}

type anResponse struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	Content []struct {
		Type      string          `json:"type"`
		Text      string          `json:"text"`
		ID        string          `json:"id"`
		Name      string          `json:"name"`
		Input     json.RawMessage `json:"input"`
		Thinking  string          `json:"thinking"`
		Signature string          `json:"signature"`
		Data      string          `json:"data"`
	} `json:"content"`
	StopReason string   `json:"stop_reason"`
	Usage      *anUsage `json:"usage"`
}

type ccCompletion struct {
	ID      string     `json:"id"`
	Object  string     `json:"object"`
	Created int64      `json:"created"`
	Model   string     `json:"model"`
	Choices []ccChoice `json:"choices"`
	Usage   *oaUsage   `json:"usage,omitempty"`
}

type ccChoice struct {
	Index        int       `json:"index"`
	Message      ccMessage `json:"message"`
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason string    `json:"finish_reason"`
}

type ccMessage struct {
	Role             string          `json:"role"`
	Content          *string         `json:"content"`
	Refusal          *string         `json:"refusal"` // always null: OpenAI's schema requires it
	ReasoningContent string          `json:"reasoning_content,omitempty"`
	ThinkingBlocks   []ThinkingBlock `json:"thinking_blocks,omitempty"`
	ToolCalls        []ccToolCall    `json:"tool_calls,omitempty"`
}

type ccToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type oaUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	TotalTokens         int64 `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens        int64 `json:"cached_tokens"`
		CacheCreationTokens int64 `json:"cache_creation_tokens,omitempty"`
	} `json:"prompt_tokens_details"`
}

func openAIUsage(u anUsage) *oaUsage {
	o := &oaUsage{
		PromptTokens:     u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens,
		CompletionTokens: u.OutputTokens,
	}
	o.TotalTokens = o.PromptTokens + o.CompletionTokens
	o.PromptTokensDetails.CachedTokens = u.CacheReadInputTokens
	o.PromptTokensDetails.CacheCreationTokens = u.CacheCreationInputTokens
	return o
}

// ChatFromMessage translates a Messages API response into a
// chat.completion created at created.
func ChatFromMessage(b []byte, created int64) ([]byte, *Error) {
	var in anResponse
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, refuse("upstream answered with an unreadable message: %v", err)
	}
	msg := ccMessage{Role: "assistant"}
	var text, reasoning []byte
	hasText := false
	for _, c := range in.Content {
		switch c.Type {
		case "text":
			text = append(text, c.Text...)
			hasText = true
		case "thinking":
			reasoning = append(reasoning, c.Thinking...)
			msg.ThinkingBlocks = append(msg.ThinkingBlocks, ThinkingBlock{Type: "thinking", Thinking: c.Thinking, Signature: c.Signature})
		case "redacted_thinking":
			msg.ThinkingBlocks = append(msg.ThinkingBlocks, ThinkingBlock{Type: "redacted_thinking", Data: c.Data})
		case "tool_use":
			tc := ccToolCall{ID: c.ID, Type: "function"}
			tc.Function.Name = c.Name
			var args bytes.Buffer
			if json.Compact(&args, c.Input) != nil || args.Len() == 0 {
				args.Reset()
				args.WriteString("{}")
			}
			tc.Function.Arguments = args.String()
			msg.ToolCalls = append(msg.ToolCalls, tc)
		}
	}
	if hasText || len(msg.ToolCalls) == 0 {
		s := string(text)
		msg.Content = &s
	}
	msg.ReasoningContent = string(reasoning)
	out := ccCompletion{
		ID: in.ID, Object: "chat.completion", Created: created, Model: in.Model,
		Choices: []ccChoice{{Message: msg, FinishReason: finishReason(in.StopReason)}},
	}
	if in.Usage != nil {
		out.Usage = openAIUsage(*in.Usage)
	}
	ob, err := json.Marshal(out)
	if err != nil {
		return nil, refuse("cannot encode the translated answer: %v", err)
	}
	return ob, nil
}

// ChatStream reads an Anthropic Messages SSE stream and yields it as
// OpenAI chat.completion.chunk events, one upstream event at a time: a Read
// never waits for more upstream events than the one it translates.
type ChatStream struct {
	body         io.ReadCloser
	r            *sse.Reader
	includeUsage bool
	created      int64
	redact       func(string) string

	prefix   []byte // `data: {"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":[`
	toolIdx  []int  // tool call index by content block index, -1 for other blocks
	tools    int
	usage    anUsage
	finished bool // a finish_reason chunk was sent

	data []byte // the current event's data
	out  []byte // translated output not yet read
	off  int
	err  error // returned once out is drained
}

// Bounds of the stream translation. An upstream event may hold at most
// maxAnthropicEvent bytes, which leaves room for what the translation adds
// to it (its chunk's prefix, whose id and model are at most maxPrefixValue
// bytes each, and framing) within the 1 MiB a relay's event may hold.
const (
	maxPrefixValue    = 256
	maxAnthropicEvent = MaxEvent
)

// Bounds of the texts an error event passes on: its message, and its type.
const (
	maxMessage = 512
	maxCode    = 128
)

// clip cuts s to n bytes at a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// NewChatStream returns the translation of the Messages stream body, its
// chunks created at created, with a usage chunk when includeUsage. redact,
// when set, scrubs the texts an error event passes on. Closing it closes
// body.
func NewChatStream(body io.ReadCloser, includeUsage bool, created int64, redact func(string) string) *ChatStream {
	if redact == nil {
		redact = func(s string) string { return s }
	}
	return &ChatStream{body: body, r: sse.NewReader(body, maxAnthropicEvent, 8<<10), includeUsage: includeUsage, created: created, redact: redact}
}

// Read implements io.Reader.
func (s *ChatStream) Read(p []byte) (int, error) {
	for s.off == len(s.out) {
		if s.err != nil {
			return 0, s.err
		}
		s.out, s.off = s.out[:0], 0
		s.err = s.next()
	}
	n := copy(p, s.out[s.off:])
	s.off += n
	return n, nil
}

// Close closes the upstream body; a Read under way, or any later one,
// fails.
func (s *ChatStream) Close() error { return s.body.Close() }

// next reads one upstream event and translates it into s.out. It returns
// io.EOF after the last event (message_stop, or an error event), the read
// error when the upstream breaks (io.ErrUnexpectedEOF for a stream cut
// before its end), and *sse.ErrTooLong for an event over
// maxAnthropicEvent.
func (s *ChatStream) next() error {
	ev, err := s.r.Next()
	if err != nil && err != io.EOF {
		return err
	}
	// event:, id:, retry: and comments carry nothing the data lacks.
	if s.data = sse.Data(s.data[:0], ev); len(s.data) > 0 && s.event(s.data) {
		return io.EOF
	}
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return nil
}

// Chunk fragments.
const (
	chunkTail   = `,"logprobs":null,"finish_reason":null}]}` + "\n\n"
	deltaOpen   = `{"index":0,"delta":{`
	doneEvent   = "data: [DONE]\n\n"
	fallbackIDs = `data: {"id":"","object":"chat.completion.chunk","created":0,"model":"","choices":[`
)

// event translates one event's data into s.out and reports whether the
// stream is over.
func (s *ChatStream) event(data []byte) bool {
	switch string(jsonscan.Field(data, "type")) {
	case `"message_start"`:
		msg := jsonscan.Field(data, "message")
		s.readUsage(jsonscan.Field(msg, "usage"))
		s.prefix = append(s.prefix[:0], `data: {"id":`...)
		s.prefix = appendRaw(s.prefix, prefixValue(jsonscan.Field(msg, "id")))
		s.prefix = append(s.prefix, `,"object":"chat.completion.chunk","created":`...)
		s.prefix = strconv.AppendInt(s.prefix, s.created, 10)
		s.prefix = append(s.prefix, `,"model":`...)
		s.prefix = appendRaw(s.prefix, prefixValue(jsonscan.Field(msg, "model")))
		s.prefix = append(s.prefix, `,"choices":[`...)
		s.chunk(`"role":"assistant","content":""}`, nil, "")

	case `"content_block_start"`:
		block := jsonscan.Field(data, "content_block")
		switch string(jsonscan.Field(block, "type")) {
		case `"tool_use"`:
			idx := s.toolIndex(jsonscan.Field(data, "index"), true)
			s.open()
			s.out = append(s.out, `"tool_calls":[{"index":`...)
			s.out = strconv.AppendInt(s.out, int64(idx), 10)
			s.out = append(s.out, `,"id":`...)
			s.out = appendRaw(s.out, jsonscan.Field(block, "id"))
			s.out = append(s.out, `,"type":"function","function":{"name":`...)
			s.out = appendRaw(s.out, jsonscan.Field(block, "name"))
			s.out = append(s.out, `,"arguments":""}}]}`...)
			s.out = append(s.out, chunkTail...)
		case `"text"`:
			if t := jsonscan.Field(block, "text"); jsonscan.IsString(t) && len(t) > 2 {
				s.chunk(`"content":`, t, "}")
			}
		case `"thinking"`:
			if t := jsonscan.Field(block, "thinking"); jsonscan.IsString(t) && len(t) > 2 {
				s.chunk(`"reasoning_content":`, t, "}")
			}
		case `"redacted_thinking"`:
			if d := jsonscan.Field(block, "data"); jsonscan.IsString(d) {
				s.chunk(`"thinking_blocks":[{"type":"redacted_thinking","data":`, d, "}]}")
			}
		}

	case `"content_block_delta"`:
		delta := jsonscan.Field(data, "delta")
		switch string(jsonscan.Field(delta, "type")) {
		case `"text_delta"`:
			s.chunk(`"content":`, jsonscan.Field(delta, "text"), "}")
		case `"thinking_delta"`:
			s.chunk(`"reasoning_content":`, jsonscan.Field(delta, "thinking"), "}")
		case `"signature_delta"`:
			if sig := jsonscan.Field(delta, "signature"); jsonscan.IsString(sig) {
				s.chunk(`"thinking_blocks":[{"type":"thinking","signature":`, sig, "}]}")
			}
		case `"input_json_delta"`:
			pj := jsonscan.Field(delta, "partial_json")
			if !jsonscan.IsString(pj) || len(pj) == 2 {
				break
			}
			idx := s.toolIndex(jsonscan.Field(data, "index"), false)
			if idx < 0 {
				break
			}
			s.open()
			s.out = append(s.out, `"tool_calls":[{"index":`...)
			s.out = strconv.AppendInt(s.out, int64(idx), 10)
			s.out = append(s.out, `,"function":{"arguments":`...)
			s.out = append(s.out, pj...)
			s.out = append(s.out, `}}]}`...)
			s.out = append(s.out, chunkTail...)
		}

	case `"message_delta"`:
		s.readUsage(jsonscan.Field(data, "usage"))
		if sr := jsonscan.Field(jsonscan.Field(data, "delta"), "stop_reason"); jsonscan.IsString(sr) {
			s.finish(string(sr[1 : len(sr)-1]))
		}

	case `"message_stop"`:
		if !s.finished {
			s.finish("end_turn")
		}
		if s.includeUsage {
			s.usageChunk()
		}
		s.out = append(s.out, doneEvent...)
		return true

	case `"error"`:
		e := jsonscan.Field(data, "error")
		s.out = append(s.out, `data: {"error":{"message":`...)
		s.out = jsonscan.AppendString(s.out, s.text(jsonscan.Field(e, "message"), "upstream stream error", maxMessage))
		s.out = append(s.out, `,"type":`...)
		s.out = jsonscan.AppendString(s.out, s.text(jsonscan.Field(e, "type"), "server_error", maxCode))
		s.out = append(s.out, `,"param":null,"code":null}}`+"\n\n"...)
		return true
	}
	// ping, content_block_stop and unknown events add nothing.
	return false
}

// text is the string of the raw JSON string token raw, with the
// provider's secrets redacted and then cut to n bytes, or def when raw is
// not a string or empty.
func (s *ChatStream) text(raw []byte, def string, n int) string {
	var t string
	if !jsonscan.IsString(raw) || json.Unmarshal(raw, &t) != nil || t == "" {
		return def
	}
	return clip(s.redact(t), n)
}

// prefixValue is raw, an id or model for the chunks' prefix, or "" when
// it is not a string of at most maxPrefixValue bytes: each chunk repeats
// it.
func prefixValue(raw []byte) []byte {
	if !jsonscan.IsString(raw) || len(raw) > maxPrefixValue {
		return []byte(`""`)
	}
	return raw
}

// open starts a chunk: the prefix and the opening of choice 0's delta.
func (s *ChatStream) open() {
	if len(s.prefix) == 0 {
		s.out = append(s.out, fallbackIDs...)
	} else {
		s.out = append(s.out, s.prefix...)
	}
	s.out = append(s.out, deltaOpen...)
}

// chunk appends a chunk whose delta is key, raw and closing; raw is a JSON
// value copied as it is (null when missing).
func (s *ChatStream) chunk(key string, raw []byte, closing string) {
	s.open()
	s.out = append(s.out, key...)
	if raw != nil {
		s.out = appendRaw(s.out, raw)
	}
	s.out = append(s.out, closing...)
	s.out = append(s.out, chunkTail...)
}

// finish appends the finish_reason chunk.
func (s *ChatStream) finish(stop string) {
	s.finished = true
	s.open()
	s.out = append(s.out, `},"logprobs":null,"finish_reason":"`...)
	s.out = append(s.out, finishReason(stop)...)
	s.out = append(s.out, `"}]}`+"\n\n"...)
}

// usageChunk appends the usage chunk of stream_options.include_usage.
func (s *ChatStream) usageChunk() {
	u := openAIUsage(s.usage)
	if len(s.prefix) == 0 {
		s.out = append(s.out, fallbackIDs...)
	} else {
		s.out = append(s.out, s.prefix...)
	}
	s.out = append(s.out, `],"usage":{"prompt_tokens":`...)
	s.out = strconv.AppendInt(s.out, u.PromptTokens, 10)
	s.out = append(s.out, `,"completion_tokens":`...)
	s.out = strconv.AppendInt(s.out, u.CompletionTokens, 10)
	s.out = append(s.out, `,"total_tokens":`...)
	s.out = strconv.AppendInt(s.out, u.TotalTokens, 10)
	s.out = append(s.out, `,"prompt_tokens_details":{"cached_tokens":`...)
	s.out = strconv.AppendInt(s.out, u.PromptTokensDetails.CachedTokens, 10)
	if n := u.PromptTokensDetails.CacheCreationTokens; n != 0 {
		s.out = append(s.out, `,"cache_creation_tokens":`...)
		s.out = strconv.AppendInt(s.out, n, 10)
	}
	s.out = append(s.out, `}}}`+"\n\n"...)
}

// readUsage takes the counts present in an Anthropic usage object; later
// events carry cumulative counts, so each present count replaces the last.
func (s *ChatStream) readUsage(u []byte) {
	if len(u) == 0 {
		return
	}
	if v := jsonscan.Field(u, "input_tokens"); v != nil {
		s.usage.InputTokens = jsonscan.Integer(v)
	}
	if v := jsonscan.Field(u, "output_tokens"); v != nil {
		s.usage.OutputTokens = jsonscan.Integer(v)
	}
	if v := jsonscan.Field(u, "cache_creation_input_tokens"); v != nil {
		s.usage.CacheCreationInputTokens = jsonscan.Integer(v)
	}
	if v := jsonscan.Field(u, "cache_read_input_tokens"); v != nil {
		s.usage.CacheReadInputTokens = jsonscan.Integer(v)
	}
}

// maxBlocks bounds the content block indexes the stream keeps track of.
const maxBlocks = 4096

// toolIndex returns the tool call index of the content block whose raw
// index is given; start assigns the next one. It is -1 for a block that is
// not a tool_use.
func (s *ChatStream) toolIndex(raw []byte, start bool) int {
	b := int(jsonscan.Integer(raw))
	if b < 0 || b >= maxBlocks {
		return -1
	}
	for len(s.toolIdx) <= b {
		s.toolIdx = append(s.toolIdx, -1)
	}
	if start {
		s.toolIdx[b] = s.tools
		s.tools++
	}
	return s.toolIdx[b]
}

// appendRaw appends a raw JSON value, or null when there is none.
func appendRaw(dst, raw []byte) []byte {
	if len(raw) == 0 {
		return append(dst, "null"...)
	}
	return append(dst, raw...)
}
