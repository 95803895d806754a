package provider

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/awakend/awakend/internal/chatschema"
	"github.com/awakend/awakend/registry"
)

func newMock(t *testing.T, o *registry.MockOptions) *Executor {
	t.Helper()
	return newExec(t, registry.ProviderSpec{Adapter: "mock", AdapterOptions: registry.AdapterOptions{Mock: o}}, time.Second)
}

func readAll(t *testing.T, resp *Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestMockReply(t *testing.T) {
	e := newMock(t, nil)
	body := `{"model":"alias","messages":[{"role":"system","content":"Be nice."},{"role":"user","content":"Hello  there"},{"role":"assistant","content":"Hi"},{"role":"user","content":[{"type":"text","text":"What is"},{"type":"text","text":"\"2+2\"?"}]}]}`
	resp, err := e.Call(t.Context(), &Request{Body: []byte(body), UpstreamModel: "mock-1"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"chatcmpl-mock-1","object":"chat.completion","created":1700000000,"model":"mock-1","choices":[{"index":0,"message":{"role":"assistant","content":"mock reply to: What is \"2+2\"?","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":8,"completion_tokens":6,"total_tokens":14}}`
	got := readAll(t, resp)
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	chatschema.CheckCompletion(t, []byte(got))
	if resp.Header.Get("Content-Type") != "application/json" || resp.StatusCode != 200 {
		t.Errorf("%d %v", resp.StatusCode, resp.Header)
	}
	// The id counts calls.
	resp, _ = e.Call(t.Context(), &Request{Body: []byte(body)})
	if got := readAll(t, resp); !strings.Contains(got, `"id":"chatcmpl-mock-2"`) || !strings.Contains(got, `"model":"alias"`) {
		t.Errorf("second call: %s", got)
	}
}

func TestMockEchoTruncated(t *testing.T) {
	e := newMock(t, &registry.MockOptions{})
	long := strings.Repeat("é", MockEchoLimit+50)
	resp, err := e.Call(t.Context(), &Request{Body: []byte(`{"messages":[{"role":"user","content":"` + long + `"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	var c chatCompletion
	if err := json.Unmarshal([]byte(readAll(t, resp)), &c); err != nil {
		t.Fatal(err)
	}
	if want := "mock reply to: " + strings.Repeat("é", MockEchoLimit); *c.Choices[0].Message.Content != want {
		t.Errorf("content %q", *c.Choices[0].Message.Content)
	}
}

func TestMockStream(t *testing.T) {
	e := newMock(t, &registry.MockOptions{Reply: "Hi there,  friend "})
	resp, err := e.Call(t.Context(), &Request{Body: []byte(`{"messages":[{"role":"user","content":"a b"}],"stream":true,"stream_options":{"include_usage":true}}`), UpstreamModel: "m", Stream: true})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	const p = `data: {"id":"chatcmpl-mock-1","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[`
	want := p + `{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}` + "\n\n" +
		p + `{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}]}` + "\n\n" +
		p + `{"index":0,"delta":{"content":" there,"},"logprobs":null,"finish_reason":null}]}` + "\n\n" +
		p + `{"index":0,"delta":{"content":"  friend "},"logprobs":null,"finish_reason":null}]}` + "\n\n" +
		p + `{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}` + "\n\n" +
		p + `],"usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}}` + "\n\n" +
		"data: [DONE]\n\n"
	got := readAll(t, resp)
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	chatschema.CheckChunks(t, []byte(got))

	// Without include_usage there is no usage chunk.
	resp, _ = e.Call(t.Context(), &Request{Body: []byte(`{"messages":[],"stream":true}`), Stream: true})
	if got := readAll(t, resp); strings.Contains(got, "usage") || !strings.HasSuffix(got, "data: [DONE]\n\n") {
		t.Errorf("got %s", got)
	}
}

func TestMockFailStatus(t *testing.T) {
	for status, class := range map[int]Class{429: ClassRateLimit, 503: ClassOverloaded, 500: ClassServer, 401: ClassAuth, 400: ClassInvalidRequest} {
		e := newMock(t, &registry.MockOptions{FailStatus: status})
		_, err := e.Call(t.Context(), &Request{Body: []byte(`{}`)})
		ue := asError(t, err)
		if ue.Class != class || ue.StatusCode != status || !strings.Contains(ue.Message, "mock failure") {
			t.Errorf("%d: %+v", status, ue)
		}
	}
}

func TestMockBadBody(t *testing.T) {
	_, err := newMock(t, nil).Call(t.Context(), &Request{Body: []byte(`nope`)})
	if ue := asError(t, err); ue.Class != ClassInvalidRequest {
		t.Errorf("%v", err)
	}
}

func TestMockTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newMock(t, &registry.MockOptions{LatencyMS: 300, ChunkDelayMS: 50, Reply: "one two three four"})
		start := time.Now()
		resp, err := e.Call(t.Context(), &Request{Body: []byte(`{"stream":true}`), Stream: true})
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 300*time.Millisecond {
			t.Errorf("answered after %v, want latency_ms", d)
		}
		readAll(t, resp)
		if d := time.Since(start); d != 300*time.Millisecond+3*50*time.Millisecond {
			t.Errorf("stream took %v, want latency + 3 chunk delays", d)
		}
	})
}

func TestMockCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newMock(t, &registry.MockOptions{LatencyMS: 10_000, ChunkDelayMS: 1000})
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(time.Second, cancel)
		_, err := e.Call(ctx, &Request{Body: []byte(`{}`)})
		if ue := asError(t, err); ue.Class != ClassCanceled || !errors.Is(err, context.Canceled) {
			t.Errorf("latency: %v", err)
		}

		e.ad.(*mockAdapter).opts.LatencyMS = 0
		ctx, cancel = context.WithCancel(t.Context())
		resp, err := e.Call(ctx, &Request{Body: []byte(`{"messages":[{"role":"user","content":"a b c"}]}`), Stream: true})
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		resp.Body.Read(buf) // role chunk
		resp.Body.Read(buf) // first word
		time.AfterFunc(500*time.Millisecond, cancel)
		if _, err := io.ReadAll(resp.Body); !errors.Is(err, context.Canceled) {
			t.Errorf("mid-stream: %v", err)
		}
		resp.Body.Close()
	})
}

// Offered tools and a user's last message: the mock calls a tool, with
// arguments from its schema; after the tool's result it answers in text.
func TestMockToolCall(t *testing.T) {
	e := newMock(t, nil)
	const tools = `"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object",` +
		`"properties":{"location":{"type":"string"},"unit":{"type":"string","enum":["celsius","fahrenheit"]},"days":{"type":"integer"}},` +
		`"required":["location","unit","days"]}}},{"type":"function","function":{"name":"other","parameters":{}}}]`
	body := `{"messages":[{"role":"user","content":"Paris"}],` + tools + `}`
	resp, err := e.Call(t.Context(), &Request{Body: []byte(body), UpstreamModel: "m"})
	if err != nil {
		t.Fatal(err)
	}
	got := readAll(t, resp)
	want := `"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_mock_1","type":"function","function":{"name":"get_weather",` +
		`"arguments":"{\"days\":1,\"location\":\"Paris\",\"unit\":\"celsius\"}"}}],"refusal":null},"logprobs":null,"finish_reason":"tool_calls"}]`
	if !strings.Contains(got, want) {
		t.Errorf("got\n%s\nwant it to contain\n%s", got, want)
	}
	chatschema.CheckCompletion(t, []byte(got))

	// tool_choice names the other tool; none calls no tool.
	resp, _ = e.Call(t.Context(), &Request{Body: []byte(`{"messages":[{"role":"user","content":"x"}],` + tools + `,"tool_choice":{"type":"function","function":{"name":"other"}}}`)})
	if got := readAll(t, resp); !strings.Contains(got, `"name":"other","arguments":"{}"`) {
		t.Errorf("named tool: %s", got)
	}
	resp, _ = e.Call(t.Context(), &Request{Body: []byte(`{"messages":[{"role":"user","content":"x"}],` + tools + `,"tool_choice":"none"}`)})
	if got := readAll(t, resp); !strings.Contains(got, `"content":"mock reply to: x"`) {
		t.Errorf("tool_choice none: %s", got)
	}

	// After the tool's result: text.
	body = `{"messages":[{"role":"user","content":"Paris"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_mock_1","type":"function",` +
		`"function":{"name":"get_weather","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_mock_1","content":"15 degrees"}],` + tools + `}`
	resp, _ = e.Call(t.Context(), &Request{Body: []byte(body)})
	if got := readAll(t, resp); !strings.Contains(got, `"content":"mock reply to tool result: 15 degrees"`) || !strings.Contains(got, `"finish_reason":"stop"`) {
		t.Errorf("after the result: %s", got)
	}

	// Streamed: a chunk naming the call, one with its arguments.
	resp, err = e.Call(t.Context(), &Request{Body: []byte(`{"messages":[{"role":"user","content":"Paris"}],` + tools + `}`), Stream: true, UpstreamModel: "m"})
	if err != nil {
		t.Fatal(err)
	}
	got = readAll(t, resp)
	for _, part := range []string{
		`"delta":{"tool_calls":[{"index":0,"id":"call_mock_5","type":"function","function":{"name":"get_weather","arguments":""}}]}`,
		`"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"days\":1,\"location\":\"Paris\",\"unit\":\"celsius\"}"}}]}`,
		`"finish_reason":"tool_calls"`, "data: [DONE]",
	} {
		if !strings.Contains(got, part) {
			t.Errorf("stream lacks %s:\n%s", part, got)
		}
	}
}

// Mock embeddings: unit vectors, equal for equal inputs, their components
// spread; base64 packs the same float32s.
func TestMockEmbeddings(t *testing.T) {
	e := newMock(t, nil)
	embed := func(body string) map[string]any {
		t.Helper()
		resp, err := e.Call(t.Context(), &Request{API: APIEmbeddings, Body: []byte(body), UpstreamModel: "emb"})
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(readAll(t, resp)), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	vec := func(v map[string]any, i int) []float64 {
		var out []float64
		for _, x := range v["data"].([]any)[i].(map[string]any)["embedding"].([]any) {
			out = append(out, x.(float64))
		}
		return out
	}
	v := embed(`{"input":["same","same","other"],"dimensions":16}`)
	a, b, c := vec(v, 0), vec(v, 1), vec(v, 2)
	if len(a) != 16 || !slices.Equal(a, b) || slices.Equal(a, c) || v["model"] != "emb" {
		t.Fatalf("vectors %v %v %v", a, b, c)
	}
	var norm float64
	for _, x := range a {
		norm += x * x
	}
	if math.Abs(norm-1) > 1e-5 || slices.Max(a)-slices.Min(a) < 0.2 {
		t.Errorf("norm² %v, spread %v: want a unit vector whose components differ", norm, slices.Max(a)-slices.Min(a))
	}
	v = embed(`{"input":"same","dimensions":16,"encoding_format":"base64"}`)
	raw, err := base64.StdEncoding.DecodeString(v["data"].([]any)[0].(map[string]any)["embedding"].(string))
	if err != nil || len(raw) != 64 {
		t.Fatalf("base64 %v, %d bytes", err, len(raw))
	}
	for i := range 16 {
		if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])); got != float32(a[i]) {
			t.Errorf("component %d: %v in base64, %v as floats", i, got, a[i])
		}
	}
	for _, bad := range []string{`{"input":[]}`, `{"input":7}`, `{"input":"x","dimensions":99999}`, `{`} {
		if _, err := e.Call(t.Context(), &Request{API: APIEmbeddings, Body: []byte(bad)}); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	if _, err := e.Call(t.Context(), &Request{API: APIResponses, Body: []byte(`{}`)}); err == nil || !strings.Contains(err.Error(), "does not serve Responses") {
		t.Errorf("responses on the mock: %v", err)
	}
}
