// Package chatschema checks JSON against the members OpenAI's schemas of
// chat.completion and chat.completion.chunk require, for the tests of the
// code that writes them (the mock adapter and the Anthropic translation).
package chatschema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// JSONEqual fails tb unless got and want hold the same JSON value.
func JSONEqual(t testing.TB, got, want []byte) {
	t.Helper()
	var g, w any
	dg, dw := json.NewDecoder(bytes.NewReader(got)), json.NewDecoder(bytes.NewReader(want))
	dg.UseNumber()
	dw.UseNumber()
	if err := dg.Decode(&g); err != nil {
		t.Fatalf("got invalid JSON: %v\n%s", err, got)
	}
	if err := dw.Decode(&w); err != nil {
		t.Fatalf("want invalid JSON: %v\n%s", err, want)
	}
	if !reflect.DeepEqual(g, w) {
		gi, _ := json.MarshalIndent(g, "", "  ")
		wi, _ := json.MarshalIndent(w, "", "  ")
		t.Errorf("got:\n%s\nwant:\n%s", gi, wi)
	}
}

// CheckChunks checks that every event of an OpenAI stream is data: [DONE],
// an error event, or a chat.completion.chunk as OpenAI's schema has it.
func CheckChunks(t testing.TB, sse []byte) {
	t.Helper()
	for _, ev := range strings.Split(strings.TrimSuffix(string(sse), "\n\n"), "\n\n") {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(data, "\n") {
			t.Errorf("malformed event %q", ev)
			continue
		}
		if data == "[DONE]" {
			continue
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(data), &v); err != nil {
			t.Errorf("event is not a JSON object: %v: %s", err, data)
			continue
		}
		if e, ok := v["error"].(map[string]any); ok {
			if _, ok := e["message"].(string); !ok || len(v) != 1 {
				t.Errorf("malformed error event: %s", data)
			}
			continue
		}
		for _, p := range Problems(v, "chat.completion.chunk") {
			t.Errorf("chunk %s: %s", data, p)
		}
	}
}

// CheckCompletion checks a chat.completion against OpenAI's schema.
func CheckCompletion(t testing.TB, b []byte) {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %s", err, b)
	}
	for _, p := range Problems(v, "chat.completion") {
		t.Errorf("answer %s: %s", b, p)
	}
}

// Problems lists how v departs from OpenAI's schema of a
// chat.completion or chat.completion.chunk: the required members and
// their types.
func Problems(v map[string]any, object string) []string {
	var out []string
	need := func(m map[string]any, key string, ok func(any) bool) {
		x, present := m[key]
		if !present || !ok(x) {
			out = append(out, fmt.Sprintf("%s is %v", key, x))
		}
	}
	str := func(x any) bool { _, ok := x.(string); return ok }
	num := func(x any) bool { _, ok := x.(float64); return ok }
	orNull := func(f func(any) bool) func(any) bool { return func(x any) bool { return x == nil || f(x) } }
	obj := func(x any) bool { _, ok := x.(map[string]any); return ok }
	need(v, "id", str)
	need(v, "object", func(x any) bool { return x == object })
	need(v, "created", num)
	need(v, "model", str)
	choices, _ := v["choices"].([]any)
	if _, ok := v["choices"].([]any); !ok {
		out = append(out, "choices is not an array")
	}
	if u, ok := v["usage"]; ok && !orNull(obj)(u) {
		out = append(out, "usage is not an object")
	}
	if object == "chat.completion.chunk" && len(choices) == 0 && !obj(v["usage"]) {
		out = append(out, "a chunk without choices and without usage")
	}
	if object == "chat.completion" && len(choices) == 0 {
		out = append(out, "no choices")
	}
	for _, c := range choices {
		ch, ok := c.(map[string]any)
		if !ok {
			out = append(out, "a choice is not an object")
			continue
		}
		need(ch, "index", num)
		if object == "chat.completion" {
			need(ch, "finish_reason", str)
			need(ch, "logprobs", orNull(obj))
			m, _ := ch["message"].(map[string]any)
			if m == nil {
				out = append(out, "message is not an object")
				continue
			}
			need(m, "role", func(x any) bool { return x == "assistant" })
			need(m, "content", orNull(str))
			need(m, "refusal", orNull(str))
			continue
		}
		need(ch, "finish_reason", orNull(str))
		need(ch, "delta", obj)
		if d, _ := ch["delta"].(map[string]any); d != nil {
			for k, x := range d {
				switch k {
				case "role":
					need(d, k, func(x any) bool { return x == "assistant" })
				case "content", "refusal", "reasoning_content":
					need(d, k, orNull(str))
				case "tool_calls", "thinking_blocks":
					if _, ok := x.([]any); !ok {
						out = append(out, "tool_calls is not an array")
					}
				default:
					out = append(out, "delta has "+k)
				}
			}
		}
	}
	return out
}
