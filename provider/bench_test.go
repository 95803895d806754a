package provider

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/awakend/awakend/provider/providertest"
	"github.com/awakend/awakend/registry"
)

const benchBody = `{"model":"m","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hello there, how are you today?"}],"max_tokens":64}`

// BenchmarkOpenAICall is one non-stream call through the openai adapter to
// a providertest upstream on loopback, body read and closed. The server's
// own work is part of the figure.
func BenchmarkOpenAICall(b *testing.B) {
	srv := providertest.NewServer(b)
	answer := `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the upstream."},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}`
	srv.Respond(func(*providertest.Request) providertest.Reply { return providertest.Reply{Body: answer} })
	e := newExec(b, registry.ProviderSpec{Adapter: "openai", BaseURL: srv.OpenAIURL(), APIKey: "sk-bench"}, 30*time.Second)
	req := &Request{Body: []byte(benchBody), UpstreamModel: "m", RequestID: "req-1"}
	buf := make([]byte, 4096)

	// baseline is the same exchange with a bare http.Client, for the
	// adapter's own cost by difference.
	b.Run("baseline", func(b *testing.B) {
		tr := &http.Transport{MaxIdleConnsPerHost: 64}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		u := srv.OpenAIURL() + "/chat/completions"
		b.ReportAllocs()
		for b.Loop() {
			hr, _ := http.NewRequestWithContext(b.Context(), "POST", u, bytes.NewReader(req.Body))
			hr.Header.Set("Content-Type", "application/json")
			hr.Header.Set("Authorization", "Bearer sk-bench")
			hr.Header.Set("X-Request-Id", "req-1")
			resp, err := c.Do(hr)
			if err != nil {
				b.Fatal(err)
			}
			for {
				if _, err := resp.Body.Read(buf); err != nil {
					break
				}
			}
			resp.Body.Close()
		}
	})
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			call(b, e, req, buf)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, 4096)
			for pb.Next() {
				call(b, e, req, buf)
			}
		})
	})
}

func call(b *testing.B, e *Executor, req *Request, buf []byte) {
	resp, err := e.Call(b.Context(), req)
	if err != nil {
		b.Fatal(err)
	}
	for {
		if _, err := resp.Body.Read(buf); err != nil {
			break
		}
	}
	resp.Body.Close()
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
			s := newAnthropicStream(io.NopCloser(&repeatReader{head: head, event: []byte(bc.event)}), true, created, nil)
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
		if _, _, err := toAnthropic(body, "claude", true); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMockCall is one non-stream mock call, body read.
func BenchmarkMockCall(b *testing.B) {
	e := newExec(b, registry.ProviderSpec{Adapter: "mock"}, time.Second)
	req := &Request{Body: []byte(benchBody), UpstreamModel: "m"}
	var out bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		resp, err := e.Call(b.Context(), req)
		if err != nil {
			b.Fatal(err)
		}
		out.Reset()
		io.Copy(&out, resp.Body)
		resp.Body.Close()
	}
}
