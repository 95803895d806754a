package provider

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/awakend/awakend/internal/chatschema"
	"github.com/awakend/awakend/provider/providertest"
	"github.com/awakend/awakend/registry"
)

func TestRedact(t *testing.T) {
	const key = "sk-live-0123456789abcdefghij" // 28 bytes
	for _, tt := range []struct {
		name string
		sec  secrets
		in   string
		want string
	}{
		{"none", secrets{key}, "nothing to see", "nothing to see"},
		{"whole", secrets{key}, "key " + key + " refused", "key [redacted] refused"},
		{"twice", secrets{key}, key + key + "!", "[redacted]!"},
		{"start cut", secrets{key}, "the key ends " + key[:20], "the key ends [redacted]"},
		{"end cut", secrets{key}, key[9:] + " was sent", "[redacted] was sent"},
		{"middle", secrets{key}, "<" + key[3:25] + ">", "<[redacted]>"},
		{"short run kept", secrets{key}, "sk-live-0123…hij", "sk-live-0123…hij"},
		{"short secret whole", secrets{"tok-12345"}, "a tok-12345 b", "a [redacted] b"},
		{"short secret partly", secrets{"tok-12345"}, "a tok-1234 b", "a tok-1234 b"},
		{"two secrets", secrets{key, "tok-12345"}, key + "/tok-12345", "[redacted]/[redacted]"},
		{"no secrets", nil, key, key},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.sec.redact(tt.in); got != tt.want {
				t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestRedactEscaped: an in-band stream error event that echoes the key
// JSON-escaped (every byte as \u00XX, a slash as \/, cut short) is
// redacted like a plain one; the rest of the event stays as it came.
func TestRedactEscaped(t *testing.T) {
	const key = "sk-live/0123456789abcdefghijklmnop"
	e, err := build(registry.ProviderSpec{ID: "p", Adapter: "openai", BaseURL: "http://127.0.0.1:1/v1", APIKey: key}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	event := func(msg string) string {
		return `data: {"error":{"message":"upstream saw ` + msg + `","type":"server_error","code":null}}` + "\n\n"
	}
	for _, tt := range []struct{ name, in, want string }{
		{"plain", event("Bearer " + key), event("Bearer [redacted]")},
		{"every byte escaped", event(jsonEscaped(key)), event("[redacted]")},
		{"slash escaped", event(strings.ReplaceAll(key, "/", `\/`)), event("[redacted]")},
		{"escaped and cut", event(jsonEscaped(key[:20]) + `\n`), event(`[redacted]\n`)},
		{"other escapes kept", event(`a \"quote\" and \u00e9`), event(`a \"quote\" and \u00e9`)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := string(e.Redact([]byte(tt.in)))
			if got != tt.want {
				t.Errorf("Redact(%q)\n = %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

// leaks reports whether s holds key or a run of minPartial of its bytes.
func leaks(s, key string) bool {
	for i := 0; i+minPartial <= len(key); i++ {
		if strings.Contains(s, key[i:i+minPartial]) {
			return true
		}
	}
	return strings.Contains(s, key)
}

// jsonEscaped writes every byte of s as a \u escape.
func jsonEscaped(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteString(`\u00`)
		b.WriteByte("0123456789abcdef"[s[i]>>4])
		b.WriteByte("0123456789abcdef"[s[i]&15])
	}
	return b.String()
}

// An upstream that echoes the credentials it got, in every field of its
// error and in its headers, leaves no trace of them in the *Error: not
// where the message is cut, not JSON-escaped, not cut short.
func TestUpstreamEchoesSecrets(t *testing.T) {
	const key, tenant = "sk-live-0123456789abcdefghijklmnopqrstuv", "tenant-secret-0987654321"
	for _, adapter := range []string{"openai", "anthropic"} {
		for _, tt := range []struct {
			name string
			// message builds the error message from the credential the
			// upstream received.
			message func(cred string) string
		}{
			// The key ends at byte 513: cut at 512 first, it would leave
			// all of it but its last byte.
			{"straddles the cut", func(cred string) string {
				return strings.Repeat("a", 513-len(key)) + key + " tail" + strings.Repeat("b", 600)
			}},
			{"json-escaped", func(cred string) string { return "got " + cred }},
			{"cut short by the upstream", func(cred string) string { return "got " + key[:24] + "…" }},
			{"header value", func(cred string) string { return "tenant " + tenant + " refused" }},
		} {
			t.Run(adapter+" "+tt.name, func(t *testing.T) {
				srv := providertest.NewServer(t)
				srv.Respond(func(r *providertest.Request) providertest.Reply {
					cred := r.Header.Get("Authorization") // the whole header value, "Bearer …"
					if adapter == "anthropic" {
						cred = r.Header.Get("X-Api-Key")
					}
					msg := tt.message(cred)
					msgJSON := `"` + msg + `"`
					if tt.name == "json-escaped" {
						msgJSON = `"got ` + jsonEscaped(cred) + `"`
					}
					return providertest.Reply{
						Status: 429,
						Header: http.Header{
							"X-Ratelimit-Reset-Requests": {"1s " + cred},
							"X-Request-Id":               {"req-" + key},
							"Request-Id":                 {"req-" + key},
							"Retry-After":                {tenant},
						},
						Body: `{"error":{"message":` + msgJSON + `,"type":"` + cred + `","code":"` + jsonEscaped(key[:20]) + `x"}}`,
					}
				})
				e := newExec(t, registry.ProviderSpec{Adapter: adapter, BaseURL: baseURL(srv, adapter), APIKey: key,
					AdapterOptions: registry.AdapterOptions{Headers: map[string]string{"X-Tenant": tenant}}}, 5*time.Second)
				for _, stream := range []bool{false, true} {
					_, err := e.Call(t.Context(), &Request{Body: []byte(`{"messages":[{"role":"user","content":"x"}]}`), Stream: stream, UpstreamModel: "m"})
					ue := asError(t, err)
					if ue.Class != ClassRateLimit || len(ue.Header) == 0 {
						t.Fatalf("%+v, want a rate limit with headers", ue)
					}
					fields := map[string]string{"Error()": err.Error(), "Message": ue.Message, "Type": ue.Type, "Code": ue.Code}
					for k, v := range ue.Header {
						fields["header "+k] = strings.Join(v, "\n")
					}
					for name, v := range fields {
						if leaks(v, key) || leaks(v, tenant) {
							t.Errorf("stream %v: %s shows a secret", stream, name) // not printed: it would be in the test's output
						}
					}
					if !strings.Contains(ue.Message, "[redacted]") {
						t.Errorf("message %q", ue.Message)
					}
				}
			})
		}
	}
}

// A transport error's text is redacted before it is cut short.
func TestTransportErrorRedacted(t *testing.T) {
	const key = "sk-live-0123456789abcdefghijklmnopqrstuv"
	e := newExec(t, registry.ProviderSpec{Adapter: "openai", APIKey: key}, time.Second)
	err := e.transportError(context.Background(), errors.New(strings.Repeat("x", 513-len(key))+key+" and more"))
	if leaks(err.Message, key) || leaks(err.Error(), key) {
		t.Error("the transport error shows the key")
	}
}

// An error event in an Anthropic stream becomes one OpenAI error event,
// redacted, and the stream ends there: the next Read is a plain io.EOF.
func TestAnthropicStreamErrorEvent(t *testing.T) {
	const key = "sk-ant-api03-0123456789abcdefghijklmnop"
	in := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"x\"}}\n\n" +
		"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"bad " + key + "\",\"message\":\"key \\u0073" + key[1:] + " is " + strings.Repeat("z", 600) + "\"}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	s := newAnthropicStream(io.NopCloser(strings.NewReader(in)), false, created, secrets{key})
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	chatschema.CheckChunks(t, got)
	events := strings.Split(strings.TrimSuffix(string(got), "\n\n"), "\n\n")
	last := events[len(events)-1]
	if len(events) != 2 || !strings.HasPrefix(last, `data: {"error":{"message":"key [redacted] is zzz`) ||
		!strings.HasSuffix(last, `…","type":"bad [redacted]","param":null,"code":null}}`) {
		t.Errorf("%d events, the last %d bytes long; want the role chunk and the redacted error", len(events), len(last))
	}
	if leaks(string(got), key) {
		t.Error("the key is in the stream")
	}
	if n, err := s.Read(make([]byte, 64)); n != 0 || err != io.EOF {
		t.Errorf("Read after the error event = %d, %v; want io.EOF", n, err)
	}
}
