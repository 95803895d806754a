package provider

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/awakend/awakend/internal/jsonscan"
	"github.com/awakend/awakend/registry"
)

// The mock adapter answers without a network, deterministically:
//
//   - the text is adapter_options.mock.reply, or "mock reply to: " and the
//     text of the last user message cut to MockEchoLimit characters;
//   - the id is "chatcmpl-mock-N", N counting the executor's calls from 1;
//     the model is the request's upstream model;
//   - usage counts words: prompt_tokens those of every message, completion
//     tokens those of the reply;
//   - latency_ms passes before the answer, fail_status fails the call as an
//     upstream answering that status would;
//   - a stream is a role chunk, one chunk per word (with the whitespace
//     before it), chunk_delay_ms between two words, a finish_reason chunk,
//     the usage chunk when stream_options.include_usage, and data: [DONE];
//   - a request that offers function tools (and a tool_choice other than
//     none) and whose last message is the user's is answered with one call
//     of a tool (the named one of tool_choice, else the first), id
//     "call_mock_N": its arguments give each required parameter (each
//     parameter when none is required) a value of its schema's type, a
//     string being the user's text cut to MockEchoLimit characters, an
//     enum its first value; finish_reason tool_calls; streamed as a chunk
//     naming the call and one with its arguments;
//   - when the last message is a tool result, the text is "mock reply to
//     tool result: " and the result.

// MockEchoLimit is how many characters of the last user message a mock
// reply echoes.
const MockEchoLimit = 200

// mockAdapter answers chat completions and embeddings itself.
type mockAdapter struct {
	opts registry.MockOptions
	seq  atomic.Uint64 // calls so far
}

func (*mockAdapter) serves(_ *Executor, api API) bool { return api == APIChat || api == APIEmbeddings }

func (m *mockAdapter) call(ctx context.Context, e *Executor, req *Request) (*Response, error) {
	if req.API == APIEmbeddings {
		return m.embeddings(ctx, e, req)
	}
	return m.chat(ctx, e, req)
}

func (m *mockAdapter) chat(ctx context.Context, e *Executor, req *Request) (*Response, error) {
	if d := time.Duration(m.opts.LatencyMS) * time.Millisecond; d > 0 {
		if !sleep(ctx, d) {
			return nil, canceled(ctx)
		}
	} else if ctx.Err() != nil {
		return nil, canceled(ctx)
	}
	if st := m.opts.FailStatus; st != 0 {
		body := `{"error":{"message":"mock failure (fail_status ` + strconv.Itoa(st) + `)","type":"","code":null}}`
		return nil, classify(st, nil, []byte(body), e.now(), nil)
	}

	var in struct {
		Model    string `json:"model"`
		Messages []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
		Tools      []mockTool      `json:"tools"`
		ToolChoice json.RawMessage `json:"tool_choice"`
	}
	if err := json.Unmarshal(req.Body, &in); err != nil {
		return nil, invalid("request body is not a chat completion request: %v", err)
	}
	var prompt int64
	last, lastRole := "", ""
	for _, m := range in.Messages {
		t := messageText(m.Content)
		prompt += int64(countWords(t))
		if m.Role == "user" {
			last = t
		}
		lastRole = m.Role
		if lastRole == "tool" {
			last = t
		}
	}
	seq := strconv.FormatUint(m.seq.Add(1), 10)
	var call *mockCall
	if lastRole == "user" {
		call = toolCall(in.Tools, in.ToolChoice, truncate(last, MockEchoLimit))
		if call != nil {
			call.id = "call_mock_" + seq
		}
	}
	text := m.opts.Reply
	switch {
	case call != nil:
		text = ""
	case text != "":
	case lastRole == "tool":
		text = "mock reply to tool result: " + truncate(last, MockEchoLimit)
	default:
		text = "mock reply to: " + truncate(last, MockEchoLimit)
	}
	model := req.UpstreamModel
	if model == "" {
		model = in.Model
	}
	id := "chatcmpl-mock-" + seq
	created := e.now().Unix()
	completion := int64(countWords(text))
	if call != nil {
		completion = int64(countWords(call.args)) + 1
	}

	if !req.Stream {
		b := make([]byte, 0, 256+len(text)+len(model))
		b = append(b, `{"id":"`...)
		b = append(b, id...)
		b = append(b, `","object":"chat.completion","created":`...)
		b = strconv.AppendInt(b, created, 10)
		b = append(b, `,"model":`...)
		b = jsonscan.AppendString(b, model)
		b = append(b, `,"choices":[{"index":0,"message":{"role":"assistant","content":`...)
		if call != nil {
			b = append(b, `null,"tool_calls":[`...)
			b = call.append(b, true)
			b = append(b, `],"refusal":null},"logprobs":null,"finish_reason":"tool_calls"}],"usage":`...)
		} else {
			b = jsonscan.AppendString(b, text)
			b = append(b, `,"refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":`...)
		}
		b = appendUsage(b, prompt, completion)
		b = append(b, "}"...)
		return &Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {contentTypeJSON}}, Body: &bytesBody{b: b}}, nil
	}

	s := &mockStream{
		ctx:          ctx,
		text:         text,
		call:         call,
		delay:        time.Duration(m.opts.ChunkDelayMS) * time.Millisecond,
		includeUsage: in.StreamOptions != nil && in.StreamOptions.IncludeUsage,
		prompt:       prompt,
		completion:   completion,
	}
	s.prefix = append(s.prefix, `data: {"id":"`...)
	s.prefix = append(s.prefix, id...)
	s.prefix = append(s.prefix, `","object":"chat.completion.chunk","created":`...)
	s.prefix = strconv.AppendInt(s.prefix, created, 10)
	s.prefix = append(s.prefix, `,"model":`...)
	s.prefix = jsonscan.AppendString(s.prefix, model)
	s.prefix = append(s.prefix, `,"choices":[`...)
	return &Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {contentTypeSSE}}, Body: s}, nil
}

func appendUsage(b []byte, prompt, completion int64) []byte {
	b = append(b, `{"prompt_tokens":`...)
	b = strconv.AppendInt(b, prompt, 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, completion, 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, prompt+completion, 10)
	return append(b, '}')
}

// sleep waits d, or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// messageText is the text of an OpenAI message content: the string, or
// the text parts joined by spaces.
func messageText(content json.RawMessage) string {
	var s string
	if json.Unmarshal(content, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(content, &parts) != nil {
		return ""
	}
	for _, p := range parts {
		if p.Type == "text" && p.Text != "" {
			if s != "" {
				s += " "
			}
			s += p.Text
		}
	}
	return s
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// countWords counts runs of non-space bytes.
func countWords(s string) int {
	n, in := 0, false
	for i := 0; i < len(s); i++ {
		if isSpace(s[i]) {
			in = false
		} else if !in {
			in = true
			n++
		}
	}
	return n
}

// truncate cuts s to at most n runes.
func truncate(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// bytesBody is a response body held in memory.
type bytesBody struct {
	b   []byte
	off int
}

func (r *bytesBody) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

// WriteTo lets io.Copy write the body in one call.
func (r *bytesBody) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(r.b[r.off:])
	r.off += n
	return int64(n), err
}

func (r *bytesBody) Close() error { return nil }

// Chunk fragments.
const (
	chunkTail = `,"logprobs":null,"finish_reason":null}]}` + "\n\n"
	doneEvent = "data: [DONE]\n\n"
)

// Stream states.
const (
	mockRole = iota
	mockCallName
	mockCallArgs
	mockWords
	mockFinish
	mockUsage
	mockDone
	mockEOF
)

// mockStream yields a mock reply as chat.completion.chunk events.
type mockStream struct {
	// ctx is the call's: like an upstream body, the stream ends with the
	// call. It lives only as long as the body.
	ctx          context.Context
	prefix       []byte
	text         string
	call         *mockCall
	pos          int
	words        int
	state        int
	delay        time.Duration
	timer        *time.Timer
	includeUsage bool
	prompt       int64
	completion   int64
	closed       atomic.Bool

	out []byte
	off int
}

// Read implements io.Reader.
func (s *mockStream) Read(p []byte) (int, error) {
	for s.off == len(s.out) {
		if s.closed.Load() {
			return 0, io.ErrClosedPipe
		}
		if s.state == mockEOF {
			return 0, io.EOF
		}
		if err := s.ctx.Err(); err != nil {
			return 0, err
		}
		if s.state == mockWords && s.words > 0 && s.delay > 0 {
			if s.timer == nil {
				s.timer = time.NewTimer(s.delay)
			} else {
				s.timer.Reset(s.delay)
			}
			select {
			case <-s.timer.C:
			case <-s.ctx.Done():
				return 0, s.ctx.Err()
			}
		}
		s.out, s.off = s.out[:0], 0
		s.step()
	}
	n := copy(p, s.out[s.off:])
	s.off += n
	return n, nil
}

// step appends the next event to s.out.
func (s *mockStream) step() {
	switch s.state {
	case mockRole:
		s.out = append(s.out, s.prefix...)
		s.out = append(s.out, `{"index":0,"delta":{"role":"assistant","content":""}`+chunkTail...)
		s.state = mockWords
		switch {
		case s.call != nil:
			s.state = mockCallName
		case countWords(s.text) == 0:
			s.state = mockFinish
		}
	case mockCallName:
		s.out = append(s.out, s.prefix...)
		s.out = append(s.out, `{"index":0,"delta":{"tool_calls":[`...)
		s.out = s.call.append(s.out, false)
		s.out = append(s.out, "]}"+chunkTail...)
		s.state = mockCallArgs
	case mockCallArgs:
		s.out = append(s.out, s.prefix...)
		s.out = append(s.out, `{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":`...)
		s.out = jsonscan.AppendString(s.out, s.call.args)
		s.out = append(s.out, "}}]}"+chunkTail...)
		s.state = mockFinish
	case mockWords:
		i := s.pos
		for i < len(s.text) && isSpace(s.text[i]) {
			i++
		}
		for i < len(s.text) && !isSpace(s.text[i]) {
			i++
		}
		j := i
		for j < len(s.text) && isSpace(s.text[j]) {
			j++
		}
		if j == len(s.text) { // the last word takes the trailing space along
			i = j
			s.state = mockFinish
		}
		s.out = append(s.out, s.prefix...)
		s.out = append(s.out, `{"index":0,"delta":{"content":`...)
		s.out = jsonscan.AppendString(s.out, s.text[s.pos:i])
		s.out = append(s.out, "}"+chunkTail...)
		s.pos = i
		s.words++
	case mockFinish:
		reason := "stop"
		if s.call != nil {
			reason = "tool_calls"
		}
		s.out = append(s.out, s.prefix...)
		s.out = append(s.out, `{"index":0,"delta":{},"logprobs":null,"finish_reason":"`+reason+`"}]}`+"\n\n"...)
		s.state = mockUsage
		if !s.includeUsage {
			s.state = mockDone
		}
	case mockUsage:
		s.out = append(s.out, s.prefix...)
		s.out = append(s.out, `],"usage":`...)
		s.out = appendUsage(s.out, s.prompt, s.completion)
		s.out = append(s.out, "}\n\n"...)
		s.state = mockDone
	case mockDone:
		s.out = append(s.out, doneEvent...)
		s.state = mockEOF
	}
}

// Close ends the stream.
func (s *mockStream) Close() error {
	s.closed.Store(true)
	return nil
}

// MockDimensions is the length of a mock embedding when the request names
// no dimensions.
const MockDimensions = 8

// maxMockDimensions bounds the dimensions a mock embedding request may ask.
const maxMockDimensions = 4096

// embeddings answers an embeddings request with deterministic unit
// vectors (see mockVector), equal for equal inputs. Inputs are
// strings or arrays of strings (token arrays are hashed as their JSON);
// encoding_format base64 packs the float32 components little-endian, as
// OpenAI does. Usage counts the inputs' words.
func (m *mockAdapter) embeddings(ctx context.Context, e *Executor, req *Request) (*Response, error) {
	if ctx.Err() != nil {
		return nil, canceled(ctx)
	}
	if st := m.opts.FailStatus; st != 0 {
		body := `{"error":{"message":"mock failure (fail_status ` + strconv.Itoa(st) + `)","type":"","code":null}}`
		return nil, classify(st, nil, []byte(body), e.now(), nil)
	}
	var in struct {
		Input          json.RawMessage `json:"input"`
		Dimensions     int             `json:"dimensions"`
		EncodingFormat string          `json:"encoding_format"`
	}
	if err := json.Unmarshal(req.Body, &in); err != nil {
		return nil, invalid("request body is not an embeddings request: %v", err)
	}
	var inputs []string
	var one string
	var list []json.RawMessage
	switch {
	case json.Unmarshal(in.Input, &one) == nil:
		inputs = []string{one}
	case json.Unmarshal(in.Input, &list) == nil && len(list) > 0:
		for _, item := range list {
			var s string
			if json.Unmarshal(item, &s) != nil {
				s = string(item)
			}
			inputs = append(inputs, s)
		}
	default:
		return nil, invalid("input must be a string or a non-empty array")
	}
	dims := in.Dimensions
	if dims == 0 {
		dims = MockDimensions
	}
	if dims < 1 || dims > maxMockDimensions {
		return nil, invalid("dimensions must be between 1 and %d", maxMockDimensions)
	}
	b64 := in.EncodingFormat == "base64"
	var words int64
	b := []byte(`{"object":"list","data":[`)
	vec := make([]float64, dims)
	for i, s := range inputs {
		words += int64(countWords(s))
		mockVector(vec, s)
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"object":"embedding","index":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `,"embedding":`...)
		if b64 {
			raw := make([]byte, 4*dims)
			for j, v := range vec {
				binary.LittleEndian.PutUint32(raw[4*j:], math.Float32bits(float32(v)))
			}
			b = jsonscan.AppendString(b, base64.StdEncoding.EncodeToString(raw))
		} else {
			b = append(b, '[')
			for j, v := range vec {
				if j > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendFloat(b, v, 'g', -1, 32)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = append(b, `],"model":`...)
	b = jsonscan.AppendString(b, req.UpstreamModel)
	b = append(b, `,"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, words, 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, words, 10)
	b = append(b, "}}"...)
	return &Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {contentTypeJSON}}, Body: &bytesBody{b: b}}, nil
}

// mockVector fills v with the unit vector of s: component i from the
// FNV-1a hash of s mixed with i (SplitMix64's finalizer, so that every
// component differs, not only its low bits).
func mockVector(v []float64, s string) {
	h := fnv.New64a()
	h.Write([]byte(s))
	seed := h.Sum64()
	var norm float64
	for i := range v {
		z := seed + uint64(i+1)*0x9e3779b97f4a7c15
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		z ^= z >> 31
		x := float64(z>>11)/float64(1<<53)*2 - 1
		v[i] = x
		norm += x * x
	}
	norm = math.Sqrt(norm)
	if norm == 0 {
		norm = 1
	}
	for i := range v {
		v[i] = float64(float32(v[i] / norm))
	}
}

// mockTool is a tool a request offers, as far as the mock reads it.
type mockTool struct {
	Type     string `json:"type"`
	Function struct {
		Name       string `json:"name"`
		Parameters struct {
			Properties map[string]struct {
				Type json.RawMessage   `json:"type"`
				Enum []json.RawMessage `json:"enum"`
			} `json:"properties"`
			Required []string `json:"required"`
		} `json:"parameters"`
	} `json:"function"`
}

// mockCall is the tool call a mock answers with.
type mockCall struct {
	id, name, args string
}

// append writes the call as an element of tool_calls: whole in a message,
// or as a stream's first chunk of it (arguments empty, index 0).
func (c *mockCall) append(b []byte, whole bool) []byte {
	if !whole {
		b = append(b, `{"index":0,`...)
	} else {
		b = append(b, '{')
	}
	b = append(b, `"id":`...)
	b = jsonscan.AppendString(b, c.id)
	b = append(b, `,"type":"function","function":{"name":`...)
	b = jsonscan.AppendString(b, c.name)
	b = append(b, `,"arguments":`...)
	if whole {
		b = jsonscan.AppendString(b, c.args)
	} else {
		b = append(b, `""`...)
	}
	return append(b, "}}"...)
}

// toolCall picks the tool to call, nil for none: the function tool_choice
// names, else the first function tool unless tool_choice is none.
func toolCall(tools []mockTool, choice json.RawMessage, text string) *mockCall {
	var mode string
	var named struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(choice, &mode) != nil {
		_ = json.Unmarshal(choice, &named)
	}
	if mode == "none" {
		return nil
	}
	for _, t := range tools {
		if t.Type != "function" || named.Function.Name != "" && t.Function.Name != named.Function.Name {
			continue
		}
		p := t.Function.Parameters
		keys := p.Required
		if len(keys) == 0 {
			for k := range p.Properties {
				keys = append(keys, k)
			}
		}
		args := make(map[string]json.RawMessage, len(keys))
		for _, k := range keys {
			args[k] = mockValue(p.Properties[k].Type, p.Properties[k].Enum, text)
		}
		b, _ := json.Marshal(args) // keys sorted: deterministic
		return &mockCall{name: t.Function.Name, args: string(b)}
	}
	return nil
}

// mockValue is a value of a JSON schema type: the first of enum, text for
// a string, 1, true, [] or {}.
func mockValue(typ json.RawMessage, enum []json.RawMessage, text string) json.RawMessage {
	if len(enum) > 0 {
		return enum[0]
	}
	var t string
	if json.Unmarshal(typ, &t) != nil {
		var ts []string
		if json.Unmarshal(typ, &ts) == nil && len(ts) > 0 {
			t = ts[0]
		}
	}
	switch t {
	case "integer", "number":
		return json.RawMessage("1")
	case "boolean":
		return json.RawMessage("true")
	case "array":
		return json.RawMessage("[]")
	case "object":
		return json.RawMessage("{}")
	case "null":
		return json.RawMessage("null")
	}
	b, _ := json.Marshal(text)
	return b
}
