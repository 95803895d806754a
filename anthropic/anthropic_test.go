package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/awakend/awakend/internal/sse"
)

// sameJSON reports whether a and b hold the same JSON value.
func sameJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got invalid JSON %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want invalid JSON %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// The requests are the samples of Anthropic's Messages API documentation
// (a tool use loop, an image, a system prompt), and what an OpenAI server
// must receive for them.
func TestToChat(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   string
		o    Options
		want string
	}{
		{
			name: "text with system and sampling",
			in: `{"model":"claude-sonnet-4-5","max_tokens":1024,"system":"You are a pirate.","temperature":0.5,"top_p":0.9,"top_k":5,` +
				`"stop_sequences":["END"],"metadata":{"user_id":"u-1"},"messages":[{"role":"user","content":"Hello, world"}]}`,
			o: Options{Model: "gpt-up"},
			want: `{"model":"gpt-up","max_completion_tokens":1024,"temperature":0.5,"top_p":0.9,"stop":["END"],"user":"u-1",` +
				`"messages":[{"role":"system","content":"You are a pirate."},{"role":"user","content":"Hello, world"}]}`,
		},
		{
			name: "agent prompt before system blocks, stream",
			in: `{"model":"x","max_tokens":10,"stream":true,"system":[{"type":"text","text":"A"},{"type":"text","text":"B","cache_control":{"type":"ephemeral"}}],` +
				`"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`,
			o: Options{Model: "m", System: "You are the agent.", Effort: "low"},
			want: `{"model":"m","max_completion_tokens":10,"stream":true,"stream_options":{"include_usage":true},"reasoning_effort":"low",` +
				`"messages":[{"role":"system","content":"You are the agent."},{"role":"system","content":"A\n\nB"},{"role":"user","content":"hi"}]}`,
		},
		{
			name: "tool loop",
			in: `{"model":"x","max_tokens":1024,"tools":[{"name":"get_weather","description":"Get the current weather in a given location",` +
				`"input_schema":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}}],` +
				`"tool_choice":{"type":"any","disable_parallel_tool_use":true},"messages":[` +
				`{"role":"user","content":"What's the weather like in San Francisco?"},` +
				`{"role":"assistant","content":[{"type":"thinking","thinking":"Let me look.","signature":"sig"},{"type":"text","text":"I'll check."},` +
				`{"type":"tool_use","id":"toolu_01A09q90qw90lq917835lq9","name":"get_weather","input":{"location":"San Francisco, CA"}}]},` +
				`{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01A09q90qw90lq917835lq9","content":[{"type":"text","text":"15 degrees"}]},` +
				`{"type":"text","text":"And tomorrow?"}]}]}`,
			o: Options{Model: "m"},
			want: `{"model":"m","max_completion_tokens":1024,"tool_choice":"required","parallel_tool_calls":false,` +
				`"tools":[{"type":"function","function":{"name":"get_weather","description":"Get the current weather in a given location",` +
				`"parameters":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}}}],"messages":[` +
				`{"role":"user","content":"What's the weather like in San Francisco?"},` +
				`{"role":"assistant","content":"I'll check.","tool_calls":[{"id":"toolu_01A09q90qw90lq917835lq9","type":"function",` +
				`"function":{"name":"get_weather","arguments":"{\"location\":\"San Francisco, CA\"}"}}]},` +
				`{"role":"tool","tool_call_id":"toolu_01A09q90qw90lq917835lq9","content":"15 degrees"},` +
				`{"role":"user","content":"And tomorrow?"}]}`,
		},
		{
			name: "image, named tool choice, thinking budget, count",
			in: `{"model":"x","max_tokens":50,"thinking":{"type":"enabled","budget_tokens":10000},"tool_choice":{"type":"tool","name":"f"},` +
				`"tools":[{"name":"f","input_schema":{"type":"object"}}],"messages":[{"role":"user","content":[` +
				`{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},` +
				`{"type":"image","source":{"type":"url","url":"https://example.com/a.jpg"}},{"type":"text","text":"What is in these images?"}]}]}`,
			o: Options{Model: "m", Effort: "low", MaxTokens: 1, NoStream: true},
			want: `{"model":"m","max_completion_tokens":1,"reasoning_effort":"high","tool_choice":{"type":"function","function":{"name":"f"}},` +
				`"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"messages":[{"role":"user","content":[` +
				`{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},` +
				`{"type":"image_url","image_url":{"url":"https://example.com/a.jpg"}},{"type":"text","text":"What is in these images?"}]}]}`,
		},
		{
			name: "thinking disabled sends no effort",
			in:   `{"model":"x","max_tokens":5,"thinking":{"type":"disabled"},"output_config":{},"messages":[{"role":"user","content":"a"}]}`,
			o:    Options{Model: "m", Effort: "high"},
			want: `{"model":"m","max_completion_tokens":5,"messages":[{"role":"user","content":"a"}]}`,
		},
		{
			name: "output_config effort",
			in:   `{"model":"x","max_tokens":5,"output_config":{"effort":"max"},"messages":[{"role":"user","content":"a"}]}`,
			o:    Options{Model: "m"},
			want: `{"model":"m","max_completion_tokens":5,"reasoning_effort":"high","messages":[{"role":"user","content":"a"}]}`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := ToChat([]byte(tt.in), tt.o)
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, got, tt.want)
		})
	}
}

func TestToChatRefuses(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"not JSON", `[`, "not a Messages request"},
		{"document", `{"messages":[{"role":"user","content":[{"type":"document","source":{"type":"base64"}}]}]}`, `messages.0.content.0: a "document" block`},
		{"server tool", `{"messages":[],"tools":[{"type":"web_search_20250305","name":"web_search"}]}`, `tools.0: the tool type "web_search_20250305"`},
		{"bad role", `{"messages":[{"role":"system","content":"x"}]}`, `messages.0: role must be user or assistant`},
		{"file image", `{"messages":[{"role":"user","content":[{"type":"image","source":{"type":"file","file_id":"f"}}]}]}`, "base64 or url source"},
		{"image in tool result", `{"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"image"}]}]}]}`, "in a tool result"},
		{"bad tool choice", `{"messages":[],"tool_choice":{"type":"some"}}`, `tool_choice: unknown type "some"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ToChat([]byte(tt.in), Options{Model: "m"})
			if err == nil || !strings.Contains(err.Message, tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestFromChat(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{
			name: "text",
			in: `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-up","choices":[{"index":0,"message":{"role":"assistant",` +
				`"content":"Hi there","refusal":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,` +
				`"prompt_tokens_details":{"cached_tokens":2}}}`,
			want: `{"id":"msg_chatcmpl-1","type":"message","role":"assistant","model":"gpt-up","content":[{"type":"text","text":"Hi there"}],` +
				`"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":3,"cache_read_input_tokens":2}}`,
		},
		{
			name: "tool calls",
			in: `{"id":"c","model":"m","choices":[{"message":{"role":"assistant","content":null,"tool_calls":[` +
				`{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"Paris\"}"}},` +
				`{"id":"call_2","type":"function","function":{"name":"f","arguments":"not json"}}]},"finish_reason":"tool_calls"}]}`,
			want: `{"id":"msg_c","type":"message","role":"assistant","model":"m","content":[` +
				`{"type":"tool_use","id":"call_1","name":"get_weather","input":{"location":"Paris"}},{"type":"tool_use","id":"call_2","name":"f","input":{}}],` +
				`"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0,"cache_read_input_tokens":0}}`,
		},
		{
			name: "length, refusal",
			in:   `{"id":"c","model":"m","choices":[{"message":{"content":"","refusal":"I can't."},"finish_reason":"length"}],"usage":{"prompt_tokens":1,"completion_tokens":2}}`,
			want: `{"id":"msg_c","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"I can't."}],` +
				`"stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":1,"output_tokens":2,"cache_read_input_tokens":0}}`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FromChat([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			sameJSON(t, got, tt.want)
		})
	}
	if _, err := FromChat([]byte(`{"choices":[]}`)); err == nil {
		t.Error("no choices: no error")
	}
	got, err := CountFromChat([]byte(`{"choices":[],"usage":{"prompt_tokens":42,"completion_tokens":1}}`))
	if err != nil || string(got) != `{"input_tokens":42}` {
		t.Errorf("count: %s %v", got, err)
	}
	if _, err := CountFromChat([]byte(`{"choices":[]}`)); err == nil {
		t.Error("count without usage: no error")
	}
}

// events splits an SSE stream into "type data" lines, checking that each
// event's event field names its data's type.
func events(t *testing.T, stream string) []string {
	t.Helper()
	var out []string
	for _, ev := range strings.Split(strings.TrimSuffix(stream, "\n\n"), "\n\n") {
		name, data, ok := strings.Cut(ev, "\n")
		var v struct{ Type string }
		if !ok || json.Unmarshal([]byte(strings.TrimPrefix(data, "data: ")), &v) != nil || name != "event: "+v.Type {
			t.Fatalf("malformed event %q", ev)
		}
		out = append(out, strings.TrimPrefix(data, "data: "))
	}
	return out
}

func chunks(lines ...string) io.ReadCloser {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l + "\n\n")
	}
	return io.NopCloser(&b)
}

func TestStream(t *testing.T) {
	const p = `data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-up","choices":[`
	in := chunks(
		p+`{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
		": keep-alive",
		p+`{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}`,
		p+`{"index":0,"delta":{"content":"lo \u003c"},"finish_reason":null}]}`,
		p+`{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}`,
		p+`{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"loc"}}]},"finish_reason":null}]}`,
		p+`{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\":\"Paris\"}"}}]},"finish_reason":null}]}`,
		p+`{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`,
		p+`],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}`,
		"data: [DONE]",
	)
	out, err := io.ReadAll(NewStream(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`{"type":"message_start","message":{"id":"msg_c1","type":"message","role":"assistant","model":"gpt-up","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0,"cache_read_input_tokens":0}}}`,
		`{"type":"ping"}`,
		`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}`,
		`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"lo \u003c"}}`,
		`{"type":"content_block_stop","index":0}`,
		`{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"call_1","name":"get_weather","input":{}}}`,
		`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"loc"}}`,
		`{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\":\"Paris\"}"}}`,
		`{"type":"content_block_stop","index":1}`,
		`{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":9,"output_tokens":4,"cache_read_input_tokens":0}}`,
		`{"type":"message_stop"}`,
	}
	got := events(t, string(out))
	if len(got) != len(want) {
		t.Fatalf("%d events, want %d:\n%s", len(got), len(want), out)
	}
	for i := range want {
		sameJSON(t, []byte(got[i]), want[i])
	}
}

func TestStreamEnds(t *testing.T) {
	const p = `data: {"id":"c1","model":"m","choices":[`
	// An upstream error event becomes the last event.
	out, err := io.ReadAll(NewStream(chunks(p+`{"index":0,"delta":{"content":"a"}}]}`, `data: {"error":{"message":"overloaded","type":"server_error"}}`)))
	if err != nil {
		t.Fatal(err)
	}
	got := events(t, string(out))
	sameJSON(t, []byte(got[len(got)-1]), `{"type":"error","error":{"type":"api_error","message":"overloaded"}}`)

	// A stream cut before [DONE] is an error of the read.
	_, err = io.ReadAll(NewStream(chunks(p + `{"index":0,"delta":{"content":"a"}}]}`)))
	if err != io.ErrUnexpectedEOF {
		t.Errorf("cut stream: %v, want io.ErrUnexpectedEOF", err)
	}
	// An event over MaxEvent is refused.
	_, err = io.ReadAll(NewStream(chunks(p + strings.Repeat(" ", MaxEvent) + `]}`)))
	if tl := (*sse.ErrTooLong)(nil); !errors.As(err, &tl) {
		t.Errorf("long event: %v", err)
	}
}
