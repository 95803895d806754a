package provider

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/awakend/awakend/internal/chatschema"
	"github.com/awakend/awakend/provider/providertest"
	"github.com/awakend/awakend/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newExec builds an executor with a timeout in any unit, closed at cleanup.
// baseURL is srv's base_url for adapter.
func baseURL(srv *providertest.Server, adapter string) string {
	if adapter == "anthropic" {
		return srv.AnthropicURL()
	}
	return srv.OpenAIURL()
}

func newExec(t testing.TB, spec registry.ProviderSpec, timeout time.Duration) *Executor {
	t.Helper()
	if spec.ID == "" {
		spec.ID = "p"
	}
	e, err := build(spec, timeout)
	if err != nil {
		t.Fatal(err)
	}
	e.now = func() time.Time { return time.Unix(created, 0) }
	if e.tr != nil {
		e.tr.Proxy = nil // the tests' hosts are loopback or .invalid, never proxied
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// await waits for cond on srv's counts, for at most a few seconds.
func await(t *testing.T, srv *providertest.Server, what string, cond func(providertest.Stats) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := srv.Await(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v (stats %+v)", what, err, srv.Stats())
	}
}

// asError returns err as an *Error or fails the test.
func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *Error", err, err)
	}
	return e
}

func TestNew(t *testing.T) {
	for _, tt := range []struct{ adapter, kind string }{
		{"openai", registry.KindOpenAI}, {"ollama", registry.KindOpenAI}, {"groq", registry.KindOpenAI},
		{"anthropic", registry.KindAnthropic}, {"mock", registry.KindMock},
	} {
		ex, err := New(registry.ProviderSpec{ID: "p", Adapter: tt.adapter, TimeoutSecs: 5})
		if err != nil {
			t.Fatalf("%s: %v", tt.adapter, err)
		}
		if ex.Name() != tt.kind {
			t.Errorf("%s: Name = %q, want %q", tt.adapter, ex.Name(), tt.kind)
		}
		c, ok := ex.(Caller)
		if !ok {
			t.Fatalf("%s: %T is not a Caller", tt.adapter, ex)
		}
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}
	for _, spec := range []registry.ProviderSpec{
		{ID: "p", Adapter: "nope"},
		{ID: "p", Adapter: "openai", BaseURL: "localhost:8080"},
		{ID: "p", Adapter: "anthropic", BaseURL: "ftp://example.com"},
	} {
		if _, err := New(spec); err == nil {
			t.Errorf("%+v accepted", spec)
		}
	}
}

func TestEndpoint(t *testing.T) {
	for _, tt := range []struct{ adapter, base, want string }{
		{"openai", "", "https://api.openai.com/v1/chat/completions"},
		{"ollama", "", "http://127.0.0.1:11434/v1/chat/completions"},
		{"openai", "http://h:1/v1/", "http://h:1/v1/chat/completions"},
		{"anthropic", "", "https://api.anthropic.com/v1/messages"},
		{"anthropic", "https://proxy/anthropic/v1", "https://proxy/anthropic/v1/messages"},
	} {
		e := newExec(t, registry.ProviderSpec{Adapter: tt.adapter, BaseURL: tt.base}, time.Second)
		if got := e.url.String(); got != tt.want {
			t.Errorf("%s %q: endpoint %s, want %s", tt.adapter, tt.base, got, tt.want)
		}
	}
}

const passthroughBody = `{"model":"gpt-x","messages":[{"role":"user","content":"hi"}],"x_vendor":{"keep":[1,2,{"deep":null}]},"temperature":0.30000}`

func TestOpenAIPassthrough(t *testing.T) {
	srv := providertest.NewServer(t)
	answer := `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-x","choices":[{"index":0,"message":{"role":"assistant","content":"yo"},"finish_reason":"stop"}],"vendor_extra":true}`
	srv.Respond(func(*providertest.Request) providertest.Reply {
		return providertest.Reply{Body: answer, Header: http.Header{"Set-Cookie": {"a=b"}, "X-Upstream": {"1"}}}
	})

	for _, tt := range []struct {
		name, key, requestID string
		headers              map[string]string
		wantAuth             string
	}{
		{name: "with key", key: "sk-test-key-1234", wantAuth: "Bearer sk-test-key-1234"},
		{name: "without key (local server)"},
		{name: "custom headers", key: "k", headers: map[string]string{"OpenAI-Organization": "org-1", "X-Custom": "v"}, wantAuth: "Bearer k"},
		{name: "custom header overrides auth", key: "k", headers: map[string]string{"Authorization": "Token t"}, wantAuth: "Token t"},
		{name: "request id", requestID: "req-42"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := len(srv.Requests())
			e := newExec(t, registry.ProviderSpec{Adapter: "openai", BaseURL: srv.OpenAIURL(), APIKey: tt.key,
				AdapterOptions: registry.AdapterOptions{Headers: tt.headers}}, 5*time.Second)
			resp, err := e.Call(t.Context(), &Request{Body: []byte(passthroughBody), UpstreamModel: "gpt-x", RequestID: tt.requestID})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(got) != answer {
				t.Errorf("answer changed on the way:\n%s", got)
			}
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || len(resp.Header) != 1 {
				t.Errorf("status %d, header %v; want 200 with Content-Type only", resp.StatusCode, resp.Header)
			}

			reqs := srv.Requests()
			if len(reqs) != before+1 {
				t.Fatalf("%d requests upstream, want 1", len(reqs)-before)
			}
			r := reqs[len(reqs)-1]
			if r.Method != "POST" || r.Path != "/v1/chat/completions" {
				t.Errorf("%s %s", r.Method, r.Path)
			}
			if !bytes.Equal(r.Body, []byte(passthroughBody)) {
				t.Errorf("body changed on the way:\n%s", r.Body)
			}
			if got := r.Header.Get("Authorization"); got != tt.wantAuth {
				t.Errorf("Authorization = %q, want %q", got, tt.wantAuth)
			}
			if _, ok := r.Header["Authorization"]; !ok && tt.wantAuth != "" || ok && tt.wantAuth == "" {
				t.Errorf("Authorization present = %v", ok)
			}
			if r.Header.Get("Content-Type") != "application/json" {
				t.Errorf("Content-Type = %q", r.Header.Get("Content-Type"))
			}
			for k, v := range tt.headers {
				if r.Header.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, r.Header.Get(k), v)
				}
			}
			if r.Header.Get("X-Request-Id") != tt.requestID {
				t.Errorf("X-Request-Id = %q, want %q", r.Header.Get("X-Request-Id"), tt.requestID)
			}
			if r.Header.Get("Accept-Encoding") != "" {
				t.Errorf("Accept-Encoding = %q: answers must pass through uncompressed", r.Header.Get("Accept-Encoding"))
			}
		})
	}
	// Request ids must not leak into the shared header template.
	if e := newExec(t, registry.ProviderSpec{Adapter: "openai", BaseURL: srv.OpenAIURL()}, time.Second); e.header.Get("X-Request-Id") != "" {
		t.Error("template header modified")
	}
}

func TestOpenAIStreamBytes(t *testing.T) {
	srv := providertest.NewServer(t)
	e := newExec(t, registry.ProviderSpec{Adapter: "openai", BaseURL: srv.OpenAIURL()}, 5*time.Second)
	sse := "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}],\"x\":1}\n\n" +
		": comment lines pass too\n\n" +
		"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n" +
		"data: [DONE]\n\n"
	srv.Enqueue(providertest.Reply{Body: sse})
	resp, err := e.Call(t.Context(), &Request{Body: []byte(`{"stream":true,"messages":[{"role":"user","content":"x"}]}`), Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || string(got) != sse {
		t.Errorf("stream changed on the way (%v):\n%q", err, got)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type = %q", ct)
	}
}

// readUntil reads from r until the text read so far contains want.
func readUntil(t *testing.T, r io.Reader, want string) string {
	t.Helper()
	var got []byte
	buf := make([]byte, 512)
	for !bytes.Contains(got, []byte(want)) {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("reading for %q: %v; got %q", want, err, got)
		}
	}
	return string(got)
}

// TestStreamNoBuffering reads the first chunk while the upstream still
// holds the second: nothing between the upstream and the caller waits for
// more than what has arrived.
func TestStreamNoBuffering(t *testing.T) {
	for _, adapter := range []string{"openai", "anthropic"} {
		t.Run(adapter, func(t *testing.T) {
			srv := providertest.NewServer(t)
			base := baseURL(srv, adapter)
			e := newExec(t, registry.ProviderSpec{Adapter: adapter, BaseURL: base}, 5*time.Second)
			hold := make(chan struct{})
			srv.Enqueue(providertest.Reply{Chunks: []string{"first", " second"}, Hold: hold})
			resp, err := e.Call(t.Context(), &Request{Body: []byte(`{"stream":true,"messages":[{"role":"user","content":"x"}]}`), Stream: true, UpstreamModel: "m"})
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got := readUntil(t, resp.Body, `"content":"first"`)
			if strings.Contains(got, "second") {
				t.Fatal("the held chunk arrived")
			}
			close(hold)
			rest, err := io.ReadAll(resp.Body)
			if err != nil || !strings.Contains(string(rest), `"content":" second"`) || !strings.HasSuffix(string(rest), "data: [DONE]\n\n") {
				t.Errorf("rest of the stream (%v): %s", err, rest)
			}
		})
	}
}

// TestStreamTimeoutIsToHeaders: a stream may last longer than the
// provider's timeout, as long as its headers came in time.
func TestStreamTimeoutIsToHeaders(t *testing.T) {
	srv := providertest.NewServer(t)
	e := newExec(t, registry.ProviderSpec{Adapter: "openai", BaseURL: srv.OpenAIURL()}, 300*time.Millisecond)
	srv.Enqueue(providertest.Reply{Chunks: []string{"a", "b", "c", "d", "e"}, ChunkDelay: 120 * time.Millisecond})
	resp, err := e.Call(t.Context(), &Request{Body: []byte(`{"stream":true}`), Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, err := io.ReadAll(resp.Body); err != nil || !bytes.HasSuffix(b, []byte("[DONE]\n\n")) {
		t.Fatalf("stream cut: %v", err)
	}
}

// A stream whose upstream stalls ends once nothing arrived for the
// provider's timeout: the read fails with a timeout error that says so,
// and the upstream sees its connection close.
func TestStreamIdleTimeout(t *testing.T) {
	for _, adapter := range []string{"openai", "anthropic"} {
		t.Run(adapter, func(t *testing.T) {
			srv := providertest.NewServer(t)
			base := baseURL(srv, adapter)
			e := newExec(t, registry.ProviderSpec{Adapter: adapter, BaseURL: base}, 200*time.Millisecond)
			srv.Enqueue(providertest.Reply{Chunks: []string{"one", " two"}, Hold: make(chan struct{})})
			resp, err := e.Call(t.Context(), &Request{Body: []byte(`{"stream":true,"messages":[{"role":"user","content":"x"}]}`), Stream: true, UpstreamModel: "m"})
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			readUntil(t, resp.Body, `"content":"one"`)
			_, err = io.ReadAll(resp.Body)
			var ue *Error
			if !errors.As(err, &ue) || ue.Class != ClassTimeout || !strings.Contains(ue.Message, "sent nothing for 200ms") {
				t.Fatalf("read after the stall: %v, want a timeout saying so", err)
			}
			await(t, srv, "the upstream to see the connection close", func(s providertest.Stats) bool { return s.Canceled == 1 && s.InFlight == 0 })
		})
	}
}

func TestTimeout(t *testing.T) {
	for _, stream := range []bool{false, true} {
		srv := providertest.NewServer(t)
		e := newExec(t, registry.ProviderSpec{Adapter: "openai", BaseURL: srv.OpenAIURL()}, 100*time.Millisecond)
		srv.Enqueue(providertest.Reply{HeaderDelay: 10 * time.Second})
		_, err := e.Call(t.Context(), &Request{Body: []byte(`{}`), Stream: stream})
		ue := asError(t, err)
		if ue.Class != ClassTimeout || !ue.Retryable() {
			t.Errorf("stream %v: %v (class %s), want timeout", stream, err, ue.Class)
		}
		await(t, srv, "the upstream request to be abandoned", func(s providertest.Stats) bool { return s.Canceled == 1 && s.InFlight == 0 })
	}
	// A deadline of the caller's own is a timeout too.
	srv := providertest.NewServer(t)
	e := newExec(t, registry.ProviderSpec{Adapter: "openai", BaseURL: srv.OpenAIURL()}, 10*time.Second)
	srv.Enqueue(providertest.Reply{HeaderDelay: 10 * time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := e.Call(ctx, &Request{Body: []byte(`{}`)})
	if ue := asError(t, err); ue.Class != ClassTimeout {
		t.Errorf("caller deadline: %v", err)
	}
}

func TestCancel(t *testing.T) {
	t.Run("before headers", func(t *testing.T) {
		srv := providertest.NewServer(t)
		e := newExec(t, registry.ProviderSpec{Adapter: "openai", BaseURL: srv.OpenAIURL()}, 10*time.Second)
		srv.Enqueue(providertest.Reply{HeaderDelay: 10 * time.Second})
		ctx, cancel := context.WithCancel(t.Context())
		errc := make(chan error, 1)
		go func() {
			_, err := e.Call(ctx, &Request{Body: []byte(`{}`)})
			errc <- err
		}()
		await(t, srv, "the request upstream", func(s providertest.Stats) bool { return s.InFlight == 1 })
		cancel()
		err := <-errc
		ue := asError(t, err)
		if ue.Class != ClassCanceled || ue.Retryable() || !errors.Is(err, context.Canceled) {
			t.Errorf("%v (class %s), want canceled", err, ue.Class)
		}
		await(t, srv, "the upstream to see the cancel", func(s providertest.Stats) bool { return s.Canceled == 1 && s.InFlight == 0 })
	})
	for _, adapter := range []string{"openai", "anthropic"} {
		t.Run("mid-stream "+adapter, func(t *testing.T) {
			srv := providertest.NewServer(t)
			base := baseURL(srv, adapter)
			e := newExec(t, registry.ProviderSpec{Adapter: adapter, BaseURL: base}, 10*time.Second)
			srv.Enqueue(providertest.Reply{Chunks: []string{"one", " two"}, Hold: make(chan struct{})})
			ctx, cancel := context.WithCancel(t.Context())
			resp, err := e.Call(ctx, &Request{Body: []byte(`{"stream":true,"messages":[{"role":"user","content":"x"}]}`), Stream: true})
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			readUntil(t, resp.Body, `"content":"one"`)
			cancel()
			if _, err := io.ReadAll(resp.Body); err == nil {
				t.Error("the stream went on after cancel")
			}
			await(t, srv, "the upstream to see the cancel", func(s providertest.Stats) bool { return s.Canceled == 1 && s.InFlight == 0 })
		})
	}
}

func TestConnect(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + l.Addr().String() + "/v1"
	l.Close()
	srv := providertest.NewServer(t)
	for name, base := range map[string]string{
		"refused":         refused,
		"tls to http":     strings.Replace(srv.OpenAIURL(), "http://", "https://", 1),
		"unresolvable":    "http://awakend-test.invalid/v1",
		"refused (https)": strings.Replace(refused, "http://", "https://", 1),
	} {
		t.Run(name, func(t *testing.T) {
			e := newExec(t, registry.ProviderSpec{Adapter: "openai", BaseURL: base, APIKey: "sk-secret-connect"}, 3*time.Second)
			_, err := e.Call(t.Context(), &Request{Body: []byte(`{}`)})
			ue := asError(t, err)
			if ue.Class != ClassConnect || !ue.Retryable() {
				t.Errorf("%v (class %s), want connect", err, ue.Class)
			}
			if strings.Contains(err.Error(), "sk-secret") || strings.Contains(err.Error(), "/v1/chat") {
				t.Errorf("error shows the key or the URL: %v", err)
			}
		})
	}
}

func TestUpstreamErrors(t *testing.T) {
	for _, tt := range []struct {
		adapter    string
		reply      providertest.Reply
		class      Class
		retryAfter time.Duration
		typ        string
	}{
		{"openai", providertest.Reply{Status: 429, Header: http.Header{"Retry-After": {"2"}}}, ClassRateLimit, 2 * time.Second, "requests"},
		{"openai", providertest.Reply{Status: 503}, ClassOverloaded, 0, "server_error"},
		{"openai", providertest.Reply{Status: 500}, ClassServer, 0, "server_error"},
		{"openai", providertest.Reply{Status: 401}, ClassAuth, 0, "invalid_request_error"},
		{"openai", providertest.Reply{Status: 404}, ClassNotFound, 0, "invalid_request_error"},
		{"openai", providertest.Reply{Status: 400}, ClassInvalidRequest, 0, "invalid_request_error"},
		{"openai", providertest.Reply{Status: 302, Header: http.Header{"Location": {"https://elsewhere.example/v1?token=x"}}}, ClassNotFound, 0, "invalid_request_error"},
		{"anthropic", providertest.Reply{Status: 529}, ClassOverloaded, 0, "overloaded_error"},
		{"anthropic", providertest.Reply{Status: 429, Header: http.Header{"Retry-After": {"7"}}}, ClassRateLimit, 7 * time.Second, "rate_limit_error"},
		{"anthropic", providertest.Reply{Status: 401}, ClassAuth, 0, "authentication_error"},
		{"anthropic", providertest.Reply{Status: 403}, ClassAuth, 0, "permission_error"},
		{"anthropic", providertest.Reply{Status: 404}, ClassNotFound, 0, "not_found_error"},
		{"anthropic", providertest.Reply{Status: 413}, ClassInvalidRequest, 0, "request_too_large"},
		{"anthropic", providertest.Reply{Status: 500}, ClassServer, 0, "api_error"},
		{"anthropic", providertest.Reply{Status: 500, Body: `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`}, ClassOverloaded, 0, "overloaded_error"},
	} {
		t.Run(tt.adapter+" "+http.StatusText(tt.reply.Status), func(t *testing.T) {
			srv := providertest.NewServer(t)
			base := baseURL(srv, tt.adapter)
			e := newExec(t, registry.ProviderSpec{Adapter: tt.adapter, BaseURL: base}, 5*time.Second)
			srv.Enqueue(tt.reply, tt.reply)
			for _, stream := range []bool{false, true} {
				_, err := e.Call(t.Context(), &Request{Body: []byte(`{"messages":[{"role":"user","content":"x"}]}`), Stream: stream, UpstreamModel: "m"})
				ue := asError(t, err)
				if ue.Class != tt.class || ue.StatusCode != tt.reply.Status || ue.RetryAfter != tt.retryAfter || ue.Type != tt.typ {
					t.Errorf("stream %v: %+v; want class %s, status %d, retry after %v, type %s", stream, ue, tt.class, tt.reply.Status, tt.retryAfter, tt.typ)
				}
				if ue.Message == "" || strings.Contains(ue.Message, "token=x") {
					t.Errorf("message %q", ue.Message)
				}
			}
			// Error bodies are drained, so the connection is kept.
			if st := srv.Stats(); st.Conns != 1 {
				t.Errorf("%d connections for 2 calls", st.Conns)
			}
		})
	}
}

func TestNoSecretsInErrors(t *testing.T) {
	const key, hdr = "sk-live-0123456789abcdef", "hdr-secret-98765"
	srv := providertest.NewServer(t)
	for _, adapter := range []string{"openai", "anthropic"} {
		base := baseURL(srv, adapter)
		e := newExec(t, registry.ProviderSpec{Adapter: adapter, BaseURL: base, APIKey: key,
			AdapterOptions: registry.AdapterOptions{Headers: map[string]string{"X-Tenant-Token": hdr}}}, 5*time.Second)
		srv.Enqueue(providertest.Reply{Status: 401, Body: `{"error":{"message":"Incorrect API key provided: ` + key + ` (tenant ` + hdr + `)","type":"invalid_request_error","code":"invalid_api_key"}}`})
		_, err := e.Call(t.Context(), &Request{Body: []byte(`{"messages":[{"role":"user","content":"my prompt"}]}`)})
		msg := err.Error()
		if strings.Contains(msg, key) || strings.Contains(msg, hdr) || strings.Contains(msg, "my prompt") {
			t.Errorf("%s: error shows a secret or the request: %s", adapter, msg)
		}
		if !strings.Contains(msg, "[redacted]") {
			t.Errorf("%s: %s", adapter, msg)
		}
	}
}

func TestConnectionReuseAndClose(t *testing.T) {
	srv := providertest.NewServer(t)
	e := newExec(t, registry.ProviderSpec{Adapter: "openai", BaseURL: srv.OpenAIURL()}, 5*time.Second)
	for range 10 {
		resp, err := e.Call(t.Context(), &Request{Body: []byte(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if st := srv.Stats(); st.Requests != 10 || st.Conns != 1 {
		t.Fatalf("stats %+v, want 10 requests on 1 connection", st)
	}
	e.Close()
	await(t, srv, "the idle connection to close", func(s providertest.Stats) bool { return s.Conns == 0 })
}

// The anthropic-version sent is the provider's, else the current one; from
// 2026-10-21 on, the API has no sampling parameters and none is sent.
func TestAnthropicVersion(t *testing.T) {
	body := `{"messages":[{"role":"user","content":"hi"}],"temperature":0.2,"top_p":0.5,"top_k":3}`
	for _, tt := range []struct {
		version, want string
		sampling      bool
	}{
		{"", "2026-10-21", false},
		{"2023-06-01", "2023-06-01", true},
		{"2027-01-01", "2027-01-01", false},
	} {
		t.Run(tt.want, func(t *testing.T) {
			srv := providertest.NewServer(t)
			e := newExec(t, registry.ProviderSpec{Adapter: "anthropic", BaseURL: srv.AnthropicURL(),
				AdapterOptions: registry.AdapterOptions{AnthropicVersion: tt.version}}, 5*time.Second)
			resp, err := e.Call(t.Context(), &Request{Body: []byte(body), UpstreamModel: "m"})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			r := srv.Requests()[0]
			if got := r.Header.Get("Anthropic-Version"); got != tt.want {
				t.Errorf("anthropic-version %q, want %q", got, tt.want)
			}
			if got := strings.Contains(string(r.Body), `"temperature":0.2`) && strings.Contains(string(r.Body), `"top_k":3`); got != tt.sampling {
				t.Errorf("body %s: sampling sent %v, want %v", r.Body, got, tt.sampling)
			}
		})
	}
	// A passed-through request's own headers replace the executor's.
	srv := providertest.NewServer(t)
	e := newExec(t, registry.ProviderSpec{Adapter: "anthropic", BaseURL: srv.AnthropicURL()}, 5*time.Second)
	resp, err := e.Call(t.Context(), &Request{API: APIMessages, Body: []byte(`{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`),
		Header: http.Header{"Anthropic-Version": {"2023-06-01"}, "Anthropic-Beta": {"b1"}}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := srv.Requests()[0].Header; h.Get("Anthropic-Version") != "2023-06-01" || h.Get("Anthropic-Beta") != "b1" {
		t.Errorf("headers %v", h)
	}
}

func TestAnthropicCall(t *testing.T) {
	srv := providertest.NewServer(t)
	e := newExec(t, registry.ProviderSpec{Adapter: "anthropic", BaseURL: srv.AnthropicURL(), APIKey: "sk-ant-key",
		AdapterOptions: registry.AdapterOptions{Headers: map[string]string{"anthropic-beta": "prompt-caching-2024-07-31"}}}, 5*time.Second)
	body := `{"model":"alias","messages":[{"role":"system","content":"Be terse."},{"role":"user","content":"one two three"}],"max_tokens":64}`

	resp, err := e.Call(t.Context(), &Request{Body: []byte(body), UpstreamModel: "claude-x", RequestID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `{"id":"msg_providertest_1","object":"chat.completion","created":1700000000,"model":"claude-x","choices":[{"index":0,"message":{"role":"assistant","content":"` +
		providertest.DefaultText + `","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8,"prompt_tokens_details":{"cached_tokens":0}}}`
	if string(got) != want {
		t.Errorf("answer\n%s\nwant\n%s", got, want)
	}
	chatschema.CheckCompletion(t, got)
	if resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
	}

	r := srv.Requests()[0]
	for k, v := range map[string]string{
		"X-Api-Key": "sk-ant-key", "Anthropic-Version": AnthropicVersion, "Content-Type": "application/json",
		"Anthropic-Beta": "prompt-caching-2024-07-31", "X-Request-Id": "r1", "Authorization": "",
	} {
		if r.Header.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, r.Header.Get(k), v)
		}
	}
	if r.Path != "/v1/messages" {
		t.Errorf("path %s", r.Path)
	}
	chatschema.JSONEqual(t, r.Body, []byte(`{"model":"claude-x","max_tokens":64,"system":"Be terse.","messages":[{"role":"user","content":"one two three"}]}`))

	// The same as a stream, with the usage chunk.
	resp, err = e.Call(t.Context(), &Request{Body: []byte(strings.Replace(body, `"max_tokens"`, `"stream":true,"stream_options":{"include_usage":true},"max_tokens"`, 1)), UpstreamModel: "claude-x", Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	sse, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	chatschema.CheckChunks(t, sse)
	var text strings.Builder
	var usage *oaUsage
	sc := bufio.NewScanner(bytes.NewReader(sse))
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
			Usage *oaUsage `json:"usage"`
		}
		json.Unmarshal([]byte(data), &c)
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
		}
		if c.Usage != nil {
			usage = c.Usage
		}
	}
	if text.String() != providertest.DefaultText || usage == nil || usage.PromptTokens != 3 || usage.CompletionTokens != 5 {
		t.Errorf("stream text %q, usage %+v", text.String(), usage)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q", ct)
	}
	var sent struct {
		Stream bool `json:"stream"`
	}
	json.Unmarshal(srv.Requests()[1].Body, &sent)
	if !sent.Stream {
		t.Error("stream not asked of the upstream")
	}
}

func TestAnthropicStreamBreaks(t *testing.T) {
	srv := providertest.NewServer(t)
	e := newExec(t, registry.ProviderSpec{Adapter: "anthropic", BaseURL: srv.AnthropicURL()}, 5*time.Second)
	req := &Request{Body: []byte(`{"messages":[{"role":"user","content":"x"}],"stream":true}`), Stream: true, UpstreamModel: "m"}

	srv.Enqueue(providertest.Reply{Chunks: []string{"a", "b", "c"}, Break: providertest.BreakError, BreakAfter: 2})
	resp, err := e.Call(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !bytes.HasSuffix(got, []byte(`data: {"error":{"message":"Overloaded","type":"overloaded_error","param":null,"code":null}}`+"\n\n")) ||
		!bytes.Contains(got, []byte(`"content":"b"`)) || bytes.Contains(got, []byte(`"content":"c"`)) {
		t.Errorf("in-band error (%v):\n%s", err, got)
	}

	srv.Enqueue(providertest.Reply{Chunks: []string{"a", "b"}, Break: providertest.BreakAbort, BreakAfter: 1})
	resp, err = e.Call(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || !bytes.Contains(got, []byte(`"content":"a"`)) || bytes.Contains(got, []byte("[DONE]")) {
		t.Errorf("dropped connection: err %v\n%s", err, got)
	}
}

func TestAnthropicTranslationErrorSendsNothing(t *testing.T) {
	srv := providertest.NewServer(t)
	e := newExec(t, registry.ProviderSpec{Adapter: "anthropic", BaseURL: srv.AnthropicURL()}, 5*time.Second)
	_, err := e.Call(t.Context(), &Request{Body: []byte(`{"messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"f"}}]}]}`)})
	if ue := asError(t, err); ue.Class != ClassInvalidRequest {
		t.Errorf("%v", err)
	}
	if n := srv.Stats().Requests; n != 0 {
		t.Errorf("%d requests went upstream", n)
	}
}

// The headers passed on are the contract's set: rate limits, Retry-After,
// processing time and the upstream's request id (renamed), on a success
// and on a failure alike; cookies, framing and the upstream's
// infrastructure stay behind.
func TestHeaderPassThrough(t *testing.T) {
	upstream := http.Header{
		"X-Ratelimit-Limit-Requests":         {"60"},
		"X-Ratelimit-Remaining-Tokens":       {"149984"},
		"X-Ratelimit-Reset-Requests":         {"1s"},
		"Anthropic-Ratelimit-Requests-Limit": {"50"},
		"Anthropic-Ratelimit-Tokens-Reset":   {"2025-06-01T12:00:30Z"},
		"Retry-After":                        {"7"},
		"Retry-After-Ms":                     {"6500"},
		"Openai-Processing-Ms":               {"123"},
		"Set-Cookie":                         {"__cf_bm=abc; path=/"},
		"Server":                             {"cloudflare"},
		"Cf-Ray":                             {"8f1e"},
		"Alt-Svc":                            {`h3=":443"`},
		"Openai-Organization":                {"org-1"},
		UpstreamRequestIDHeader:              {"forged"},
	}
	passed := []string{"X-Ratelimit-Limit-Requests", "X-Ratelimit-Remaining-Tokens", "X-Ratelimit-Reset-Requests",
		"Anthropic-Ratelimit-Requests-Limit", "Anthropic-Ratelimit-Tokens-Reset", "Retry-After", "Retry-After-Ms", "Openai-Processing-Ms"}
	for _, tt := range []struct {
		adapter string
		ids     map[string]string // request id headers the upstream sends
		wantID  string
	}{
		{"openai", map[string]string{"X-Request-Id": "req_oa"}, "req_oa"},
		{"openai", map[string]string{"Request-Id": "req_other"}, "req_other"},
		{"anthropic", map[string]string{"Request-Id": "req_an", "X-Request-Id": "echoed"}, "req_an"},
	} {
		for _, status := range []int{200, 429} {
			for _, stream := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s %d stream %v %v", tt.adapter, status, stream, tt.ids), func(t *testing.T) {
					srv := providertest.NewServer(t)
					h := upstream.Clone()
					for k, v := range tt.ids {
						h.Set(k, v)
					}
					srv.Enqueue(providertest.Reply{Status: status, Header: h})
					e := newExec(t, registry.ProviderSpec{Adapter: tt.adapter, BaseURL: baseURL(srv, tt.adapter)}, 5*time.Second)
					resp, err := e.Call(t.Context(), &Request{Body: []byte(`{"messages":[{"role":"user","content":"x"}]}`), Stream: stream, UpstreamModel: "m"})
					var got http.Header
					want := map[string]bool{UpstreamRequestIDHeader: true}
					for _, k := range passed {
						want[k] = true
					}
					if status == 200 {
						if err != nil {
							t.Fatal(err)
						}
						readAll(t, resp)
						got = resp.Header
						want["Content-Type"] = true
					} else {
						got = asError(t, err).Header
					}
					for k := range got {
						if !want[k] {
							t.Errorf("%s passed on: %q", k, got[k])
						}
					}
					for k := range want {
						if k != "Content-Type" && k != UpstreamRequestIDHeader && !slices.Equal(got[k], h[k]) {
							t.Errorf("%s = %q, want %q", k, got[k], h[k])
						}
					}
					if id := got.Get(UpstreamRequestIDHeader); id != tt.wantID {
						t.Errorf("%s = %q, want %q", UpstreamRequestIDHeader, id, tt.wantID)
					}
				})
			}
		}
	}
}
