package provider

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/awakend/awakend/internal/sse"
	"github.com/awakend/awakend/provider/providertest"
	"github.com/awakend/awakend/registry"
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
			s := newAnthropicStream(io.NopCloser(src), false, created, nil)
			got, err := io.ReadAll(s)
			var ue *Error
			var tl *sse.ErrTooLong
			if !errors.As(err, &ue) || ue.Class != ClassServer || !strings.Contains(ue.Message, "event over") || !errors.As(err, &tl) {
				t.Fatalf("err = %v, want a server failure for the event's size", err)
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
// MaxStreamEvent, so that a reader of the translated stream can hold it
// to the same bound.
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
	r := sse.NewReader(bytes.NewReader(got), MaxStreamEvent, 8<<10)
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
