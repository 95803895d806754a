package anthropic

import (
	"encoding/json"
	"io"
	"strconv"

	"github.com/awakend/awakend/internal/sse"
)

// Stream translates a chat completion stream (chat.completion.chunk
// events ending with data: [DONE]) into Anthropic's events: message_start
// at the first chunk; a content block per run of text and per tool call
// (content_block_start, its text_delta or input_json_delta events,
// content_block_stop); at [DONE], message_delta with the stop reason and
// the usage of the include_usage chunk, then message_stop. A keep-alive
// comment becomes a ping event and an in-band error event an error event,
// the last. Text and argument fragments are copied as the raw JSON
// strings the upstream sent, so that an event is never larger than the
// chunk it came from by more than its framing.
type Stream struct {
	body io.ReadCloser
	r    *sse.Reader

	started bool
	block   int // index of the open block, -1 for none
	kind    byte
	tools   map[int]int // chat tool call index → block index
	next    int         // index of the next block
	stop    string
	usage   Usage

	data []byte
	out  []byte
	off  int
	err  error // returned once out is drained
}

// Block kinds.
const (
	kindText = 't'
	kindTool = 'u'
)

// MaxEvent bounds a chunk of the upstream stream; a translated event adds
// at most a few hundred bytes of framing to it.
const MaxEvent = 1<<20 - 4<<10

// NewStream returns the translation of the chat completion stream body.
// Closing it closes body.
func NewStream(body io.ReadCloser) *Stream {
	return &Stream{body: body, r: sse.NewReader(body, MaxEvent, 8<<10), block: -1}
}

// Read implements io.Reader. It returns io.EOF after message_stop or an
// error event, io.ErrUnexpectedEOF when the upstream stream ends before
// [DONE], the upstream's read error, or *sse.ErrTooLong.
func (s *Stream) Read(p []byte) (int, error) {
	for s.off == len(s.out) {
		if s.err != nil {
			return 0, s.err
		}
		s.out, s.off = s.out[:0], 0
		s.err = s.step()
	}
	n := copy(p, s.out[s.off:])
	s.off += n
	return n, nil
}

// Close closes the upstream body.
func (s *Stream) Close() error { return s.body.Close() }

// step translates one upstream event into s.out.
func (s *Stream) step() error {
	ev, err := s.r.Next()
	if err != nil && err != io.EOF {
		return err
	}
	if len(ev) > 0 && ev[0] == ':' {
		s.out = append(s.out, "event: ping\ndata: {\"type\":\"ping\"}\n\n"...)
		return err
	}
	s.data = sse.Data(s.data[:0], ev)
	if len(s.data) > 0 {
		if done := s.event(s.data); done {
			return io.EOF
		}
	}
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return nil
}

type chunk struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	Choices []struct {
		Delta struct {
			Content   json.RawMessage `json:"content"`
			Refusal   json.RawMessage `json:"refusal"`
			ToolCalls []struct {
				Index    int    `json:"index"`
				ID       string `json:"id"`
				Function struct {
					Name      string          `json:"name"`
					Arguments json.RawMessage `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *chatUsage      `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// event translates one chunk's data; it reports whether the stream ended.
func (s *Stream) event(data []byte) bool {
	if string(data) == "[DONE]" {
		s.closeBlock()
		s.begin("", "")
		stop := StopReason(s.stop)
		s.out = append(s.out, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"...)
		s.out = strconv.AppendQuote(s.out, stop)
		s.out = append(s.out, ",\"stop_sequence\":null},\"usage\":"...)
		s.out = append(s.out, marshal(s.usage)...)
		s.out = append(s.out, "}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"...)
		return true
	}
	var c chunk
	if err := json.Unmarshal(data, &c); err != nil {
		s.fail("api_error", "the upstream sent an event that is not a chat completion chunk")
		return true
	}
	if len(c.Error) > 0 && string(c.Error) != "null" {
		var e struct {
			Message string `json:"message"`
		}
		_ = json.Unmarshal(c.Error, &e)
		if e.Message == "" {
			e.Message = "the upstream's stream failed"
		}
		s.fail("api_error", e.Message)
		return true
	}
	s.begin(c.ID, c.Model)
	if c.Usage != nil {
		s.usage = usageOf(c.Usage)
	}
	if len(c.Choices) == 0 {
		return false
	}
	ch := &c.Choices[0]
	for _, text := range [2]json.RawMessage{ch.Delta.Content, ch.Delta.Refusal} {
		if len(text) < 3 || text[0] != '"' { // null, "" or not a string
			continue
		}
		if s.block < 0 || s.kind != kindText {
			s.closeBlock()
			s.open(kindText, `{"type":"text","text":""}`)
		}
		s.delta(`{"type":"text_delta","text":`, text)
	}
	for _, tc := range ch.Delta.ToolCalls {
		b, ok := s.tools[tc.Index]
		if !ok {
			s.closeBlock()
			if s.tools == nil {
				s.tools = map[int]int{}
			}
			s.tools[tc.Index] = s.next
			b = s.next
			s.open(kindTool, string(marshal(toolUseBlock{"tool_use", tc.ID, tc.Function.Name, json.RawMessage("{}")})))
		}
		if b != s.block { // the arguments of a call whose block closed: dropped
			continue
		}
		if a := tc.Function.Arguments; len(a) >= 3 && a[0] == '"' {
			s.delta(`{"type":"input_json_delta","partial_json":`, a)
		}
	}
	if ch.FinishReason != nil && *ch.FinishReason != "" {
		s.stop = *ch.FinishReason
	}
	return false
}

// begin writes message_start, once.
func (s *Stream) begin(id, model string) {
	if s.started {
		return
	}
	s.started = true
	s.out = append(s.out, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":"...)
	s.out = append(s.out, marshal(messageObject{ID: messageID(id), Type: "message", Role: "assistant", Model: model, Content: []json.RawMessage{}})...)
	s.out = append(s.out, "}\n\n"...)
}

func (s *Stream) open(kind byte, contentBlock string) {
	s.block, s.kind = s.next, kind
	s.next++
	s.out = append(s.out, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":"...)
	s.out = strconv.AppendInt(s.out, int64(s.block), 10)
	s.out = append(s.out, ",\"content_block\":"...)
	s.out = append(s.out, contentBlock...)
	s.out = append(s.out, "}\n\n"...)
}

// delta writes a content_block_delta of the open block: head, then the
// raw JSON string value, then the closing braces.
func (s *Stream) delta(head string, value []byte) {
	s.out = append(s.out, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":"...)
	s.out = strconv.AppendInt(s.out, int64(s.block), 10)
	s.out = append(s.out, ",\"delta\":"...)
	s.out = append(s.out, head...)
	s.out = append(s.out, value...)
	s.out = append(s.out, "}}\n\n"...)
}

func (s *Stream) closeBlock() {
	if s.block < 0 {
		return
	}
	s.out = append(s.out, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":"...)
	s.out = strconv.AppendInt(s.out, int64(s.block), 10)
	s.out = append(s.out, "}\n\n"...)
	s.block = -1
}

// fail writes the error event that ends the stream.
func (s *Stream) fail(typ, msg string) {
	s.out = append(s.out, ErrorEvent(typ, msg)...)
}

// ErrorEvent is Anthropic's in-band error event of type typ.
func ErrorEvent(typ, msg string) []byte {
	b := append([]byte("event: error\ndata: "), ErrorBody(typ, msg)...)
	return append(b, "\n\n"...)
}

// ErrorBody is Anthropic's error object,
// {"type":"error","error":{"type":…,"message":…}}.
func ErrorBody(typ, msg string) []byte {
	return marshal(struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}{Type: "error", Error: struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	}{typ, msg}})
}
