package anthropic

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/awakend/awakend/internal/sse"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// repeated yields s over and over, up to n bytes.
func repeated(s string, n int) io.Reader {
	return io.LimitReader(&repeatReader{event: []byte(strings.Repeat(s, 1+4096/len(s)))}, int64(n))
}

const streamStart = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"x\"}}\n\n"

// An upstream event over the bound fails the stream once the bound is
// passed: what the translator read, and so what it could have buffered, is
// the bound and one read buffer, however long the upstream goes on.
func TestAnthropicStreamEventBound(t *testing.T) {
	const upstream = 8 << 20
	for _, tt := range []struct {
		name string
		body io.Reader
	}{
		{"no newline at all", repeated("x", upstream)},
		{"a data line without end", io.MultiReader(strings.NewReader("data: {\"type\":\"content_block_delta\",\"text\":\""), repeated("y", upstream))},
		{"lines but no blank line", repeated("data: {\"type\":\"ping\"}\n", upstream)},
		{"crlf lines but no blank line", repeated("data: z\r\n", upstream)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src := &countingReader{r: io.MultiReader(strings.NewReader(streamStart), tt.body)}
			s := NewChatStream(io.NopCloser(src), false, created, nil)
			got, err := io.ReadAll(s)
			var tl *sse.ErrTooLong
			if !errors.As(err, &tl) {
				t.Fatalf("err = %v, want *sse.ErrTooLong", err)
			}
			if !bytes.Contains(got, []byte(`"role":"assistant"`)) {
				t.Errorf("the event before the long one was lost: %q", got)
			}
			if limit := len(streamStart) + maxAnthropicEvent + 8<<10; src.n > limit {
				t.Errorf("read %d bytes of the upstream before failing, want at most %d", src.n, limit)
			}
			if cap(s.data) > maxAnthropicEvent || cap(s.out) > 64<<10 {
				t.Errorf("buffers of %d and %d bytes", cap(s.data), cap(s.out))
			}
		})
	}
}

// An event just within the bound is translated, and its chunk fits in
// 1 MiB, the bound of a relay, so that a reader of the translated stream
// can hold it to the same bound.
func TestAnthropicStreamLargestEvent(t *testing.T) {
	head := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"" + strings.Repeat("i", maxPrefixValue-2) +
		"\",\"model\":\"" + strings.Repeat("m", maxPrefixValue-2) + "\"}}\n\n"
	open := "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\""
	end := "\"}}\n\n"
	text := strings.Repeat("t", maxAnthropicEvent-len(open)-len(end))
	in := head + open + text + end + "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	got, err := translateStream(t, strings.NewReader(in), false)
	if err != nil {
		t.Fatal(err)
	}
	r := sse.NewReader(bytes.NewReader(got), 1<<20, 8<<10)
	n := 0
	for {
		if _, err := r.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("translated event %d: %v", n, err)
		}
		n++
	}
	if !bytes.Contains(got, []byte(text)) || n != 4 {
		t.Errorf("%d events, text passed %v", n, bytes.Contains(got, []byte(text)))
	}
	// An id or model too long to repeat in every chunk is dropped.
	long := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"" + strings.Repeat("i", 4096) + "\",\"model\":\"x\"}}\n\n"
	got, _ = translateStream(t, strings.NewReader(long), false)
	if !bytes.HasPrefix(got, []byte(`data: {"id":"","object"`)) {
		t.Errorf("long id: %.80s", got)
	}
}

// repeatReader yields head once, then event forever.
type repeatReader struct {
	head, event []byte
	off         int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if len(r.head) > 0 {
		n := copy(p, r.head)
		r.head = r.head[n:]
		return n, nil
	}
	n := copy(p, r.event[r.off:])
	r.off = (r.off + n) % len(r.event)
	return n, nil
}

// BenchmarkAnthropicStreamEvent is the translation of one Anthropic
// stream event into an OpenAI chunk.
func BenchmarkAnthropicStreamEvent(b *testing.B) {
	head := []byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-20250514\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n" +
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"get_weather\",\"input\":{}}}\n\n")
	for _, bc := range []struct{ name, event string }{
		{"text_delta", "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" the quick brown fox\"}}\n\n"},
		{"input_json_delta", "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\": \\\"San\"}}\n\n"},
		{"ping", "event: ping\ndata: {\"type\": \"ping\"}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := NewChatStream(io.NopCloser(&repeatReader{head: head, event: []byte(bc.event)}), true, created, nil)
			buf := make([]byte, 4096)
			for range 3 { // role chunk, tool start, first event
				s.Read(buf)
			}
			b.SetBytes(int64(len(bc.event)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAnthropicRequest is the translation of a typical request.
func BenchmarkAnthropicRequest(b *testing.B) {
	body := []byte(`{"model":"m","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"What is the weather like in Boston today?"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Boston, MA\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"22 degrees"}],"tools":[{"type":"function","function":{"name":"get_weather","description":"Get the weather","parameters":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}}}],"stream":true,"max_tokens":512}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ToMessages(body, MessagesOptions{Model: "claude", Stream: true}); err != nil {
			b.Fatal(err)
		}
	}
}
