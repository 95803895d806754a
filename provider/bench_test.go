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
