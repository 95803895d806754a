package anthropic

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/awakend/awakend/internal/chatschema"
)

var update = flag.Bool("update", false, "rewrite expected translation outputs in testdata from the current code")

// created is the "created" time of translated answers in the tests.
const created = 1700000000

// testModel is the upstream model of translated requests in the tests.
const testModel = "claude-sonnet-4-20250514"

// txtCase is a testdata case: a comment header and named sections.
type txtCase struct {
	header   string
	names    []string
	sections map[string][]byte
}

func readCase(t *testing.T, path string) *txtCase {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := &txtCase{sections: map[string][]byte{}}
	name := ""
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if n, ok := strings.CutPrefix(strings.TrimRight(line, "\n"), "-- "); ok && strings.HasSuffix(n, " --") {
			name = strings.TrimSuffix(n, " --")
			c.names = append(c.names, name)
			c.sections[name] = []byte{}
			continue
		}
		if name == "" {
			c.header += line
			continue
		}
		c.sections[name] = append(c.sections[name], line...)
	}
	if !strings.Contains(c.header, "Source:") {
		t.Errorf("%s: the header names no source", path)
	}
	return c
}

func (c *txtCase) write(t *testing.T, path string) {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(c.header)
	for _, n := range c.names {
		b.WriteString("-- " + n + " --\n")
		b.Write(c.sections[n])
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func cases(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases in testdata/%s: %v", dir, err)
	}
	return files
}

func TestTranslateRequest(t *testing.T) {
	for _, path := range cases(t, "request") {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			c := readCase(t, path)
			in := c.sections["openai.json"]
			var probe struct {
				Stream bool `json:"stream"`
			}
			if err := json.Unmarshal(in, &probe); err != nil {
				t.Fatal(err)
			}
			got, _, err := ToMessages(in, MessagesOptions{Model: testModel, Stream: probe.Stream})
			if err != nil {
				t.Fatal(err)
			}
			chatschema.JSONEqual(t, got, c.sections["anthropic.json"])
		})
	}
}

func TestTranslateRequestIncludeUsage(t *testing.T) {
	for body, want := range map[string]bool{
		`{"messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":true}}`:  true,
		`{"messages":[{"role":"user","content":"x"}],"stream":true,"stream_options":{"include_usage":false}}`: false,
		`{"messages":[{"role":"user","content":"x"}],"stream":true}`:                                          false,
	} {
		if _, got, err := ToMessages([]byte(body), MessagesOptions{Model: "m", Stream: true}); err != nil || got != want {
			t.Errorf("%s: include_usage = %v, %v; want %v", body, got, err, want)
		}
	}
}

func TestTranslateRequestErrors(t *testing.T) {
	for _, tt := range []struct{ name, body, want string }{
		{"not json", `{`, "not a chat completion request"},
		{"n", `{"messages":[{"role":"user","content":"x"}],"n":2}`, "n > 1"},
		{"audio part", `{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"x","format":"wav"}}]}]}`, `content part type "input_audio"`},
		{"bad data url", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,xyz"}}]}]}`, "data:<media type>;base64"},
		{"ftp image", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x/y.png"}}]}]}`, "http(s) or data: URL"},
		{"image in system", `{"messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}]}`, "not allowed here"},
		{"tool args", `{"messages":[{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`, "not a JSON object"},
		{"role", `{"messages":[{"role":"function","name":"f","content":"x"}]}`, `role "function"`},
		{"effort", `{"messages":[{"role":"user","content":"x"}],"reasoning_effort":"extreme"}`, `unknown reasoning_effort "extreme"`},
		{"tool type", `{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"custom","custom":{"name":"x"}}]}`, `tool type "custom"`},
		{"tool_choice", `{"messages":[{"role":"user","content":"x"}],"tool_choice":"sometimes"}`, `unknown tool_choice "sometimes"`},
		{"stop", `{"messages":[{"role":"user","content":"x"}],"stop":7}`, "stop must be"},
		{"no messages", `{"messages":[{"role":"system","content":"x"},{"role":"user","content":""}]}`, "at least one user, assistant or tool message"},
		{"thinking and a forced tool", `{"messages":[{"role":"user","content":"x"}],"thinking":{"type":"enabled","budget_tokens":2000},"tool_choice":"required"}`, "forces a tool"},
		{"thinking block unsigned", `{"messages":[{"role":"assistant","content":"x","thinking_blocks":[{"type":"thinking","thinking":"t"}]}]}`, "needs its signature"},
		{"thinking block type", `{"messages":[{"role":"assistant","content":"x","thinking_blocks":[{"type":"summary"}]}]}`, `type "summary"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ToMessages([]byte(tt.body), MessagesOptions{Model: "m", Stream: false})
			if err == nil {
				t.Fatal("translated")
			}
			if !strings.Contains(err.Message, tt.want) {
				t.Errorf("got %v; want an error with %q", err, tt.want)
			}
		})
	}
}

func TestTranslateToolIDs(t *testing.T) {
	body := `{"messages":[{"role":"assistant","tool_calls":[{"id":"functions.get:0","type":"function","function":{"name":"get","arguments":""}}]},{"role":"tool","tool_call_id":"functions.get:0","content":"ok"}]}`
	got, _, err := ToMessages([]byte(body), MessagesOptions{Model: "m", Stream: false})
	if err != nil {
		t.Fatal(err)
	}
	chatschema.JSONEqual(t, got, []byte(`{"model":"m","max_tokens":4096,"messages":[`+
		`{"role":"assistant","content":[{"type":"tool_use","id":"functions_get_0","name":"get","input":{}}]},`+
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"functions_get_0","content":"ok"}]}]}`))
}

func TestReasoningEffort(t *testing.T) {
	for _, tt := range []struct {
		name      string
		body      string
		maxTokens int64
		thinking  string // "" for none
		sampling  bool   // temperature kept
	}{
		{"none", `"reasoning_effort":"none","temperature":0.5`, DefaultMaxTokens, "", true},
		{"minimal", `"reasoning_effort":"minimal"`, 1024 + DefaultMaxTokens, `{"type":"enabled","budget_tokens":1024}`, false},
		{"low", `"reasoning_effort":"low","temperature":0.5`, 2048 + DefaultMaxTokens, `{"type":"enabled","budget_tokens":2048}`, false},
		{"medium", `"reasoning_effort":"medium"`, 8192 + DefaultMaxTokens, `{"type":"enabled","budget_tokens":8192}`, false},
		{"high", `"reasoning_effort":"high"`, 16384 + DefaultMaxTokens, `{"type":"enabled","budget_tokens":16384}`, false},
		{"xhigh", `"reasoning_effort":"xhigh"`, 32768 + DefaultMaxTokens, `{"type":"enabled","budget_tokens":32768}`, false},
		{"max", `"reasoning_effort":"max"`, 32768 + DefaultMaxTokens, `{"type":"enabled","budget_tokens":32768}`, false},
		{"fits under the cap", `"reasoning_effort":"medium","max_completion_tokens":32000`, 32000, `{"type":"enabled","budget_tokens":8192}`, false},
		{"shrinks to half the cap", `"reasoning_effort":"high","max_tokens":10000`, 10000, `{"type":"enabled","budget_tokens":5000}`, false},
		{"too small a cap", `"reasoning_effort":"high","max_tokens":2000,"temperature":0.5`, 2000, "", true},
		{"thinking passes through", `"thinking":{"type":"enabled","budget_tokens":5000},"reasoning_effort":"low","temperature":0.5`, 5000 + DefaultMaxTokens, `{"type":"enabled","budget_tokens":5000}`, false},
		{"thinking disabled", `"thinking":{"type":"disabled"},"temperature":0.5`, DefaultMaxTokens, `{"type":"disabled"}`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, _, err := ToMessages([]byte(`{"messages":[{"role":"user","content":"hi"}],`+tt.body+`}`), MessagesOptions{Model: "m"})
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				MaxTokens   int64           `json:"max_tokens"`
				Thinking    json.RawMessage `json:"thinking"`
				Temperature *float64        `json:"temperature"`
			}
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if got.MaxTokens != tt.maxTokens {
				t.Errorf("max_tokens = %d, want %d", got.MaxTokens, tt.maxTokens)
			}
			if tt.thinking == "" && got.Thinking != nil {
				t.Errorf("thinking = %s, want none", got.Thinking)
			}
			if tt.thinking != "" {
				chatschema.JSONEqual(t, got.Thinking, []byte(tt.thinking))
			}
			if (got.Temperature != nil) != tt.sampling {
				t.Errorf("temperature = %v, want kept %v", got.Temperature, tt.sampling)
			}
		})
	}
}

func TestTranslateResponse(t *testing.T) {
	for _, path := range cases(t, "response") {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			c := readCase(t, path)
			got, err := ChatFromMessage(c.sections["anthropic.json"], created)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				var v any
				_ = json.Unmarshal(got, &v)
				ind, _ := json.MarshalIndent(v, "", "  ")
				c.sections["openai.json"] = append(ind, '\n')
				c.write(t, path)
				return
			}
			chatschema.JSONEqual(t, got, c.sections["openai.json"])
			chatschema.CheckCompletion(t, got)
		})
	}
}

func TestTranslateResponseInvalid(t *testing.T) {
	_, err := ChatFromMessage([]byte(`<html>`), created)
	if err == nil || !strings.Contains(err.Message, "unreadable message") {
		t.Fatalf("got %v, want an unreadable message", err)
	}
}

// translateStream runs an Anthropic SSE body through the stream translator.
func translateStream(t *testing.T, r io.Reader, includeUsage bool) ([]byte, error) {
	t.Helper()
	return io.ReadAll(NewChatStream(io.NopCloser(r), includeUsage, created, nil))
}

func TestTranslateStream(t *testing.T) {
	for _, path := range cases(t, "stream") {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			c := readCase(t, path)
			in := c.sections["anthropic.sse"]
			for _, v := range []struct {
				section string
				usage   bool
			}{{"openai.sse", false}, {"openai-usage.sse", true}} {
				want, ok := c.sections[v.section]
				if !ok {
					continue
				}
				got, err := translateStream(t, bytes.NewReader(in), v.usage)
				if err != nil {
					t.Fatalf("%s: %v", v.section, err)
				}
				chatschema.CheckChunks(t, got)
				if *update {
					c.sections[v.section] = got
					continue
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s:\ngot:\n%s\nwant:\n%s", v.section, got, want)
				}
				// However the upstream body is cut into reads, the
				// translation is the same.
				for name, r := range map[string]io.Reader{
					"one byte":  iotest.OneByteReader(bytes.NewReader(in)),
					"half":      iotest.HalfReader(bytes.NewReader(in)),
					"crlf":      bytes.NewReader(bytes.ReplaceAll(in, []byte("\n"), []byte("\r\n"))),
					"data-only": bytes.NewReader(dropEventLines(in)),
				} {
					if got2, err := translateStream(t, r, v.usage); err != nil || !bytes.Equal(got2, got) {
						t.Errorf("%s, %s reads: %v\n%s", v.section, name, err, got2)
					}
				}
			}
			if *update {
				c.write(t, path)
			}
		})
	}
}

func dropEventLines(b []byte) []byte {
	var out []byte
	for _, l := range bytes.SplitAfter(b, []byte("\n")) {
		if !bytes.HasPrefix(l, []byte("event:")) {
			out = append(out, l...)
		}
	}
	return out
}

func TestTranslateStreamCut(t *testing.T) {
	in := "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"x\"}}\n\n" +
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n"
	got, err := translateStream(t, strings.NewReader(in), false)
	if err != io.ErrUnexpectedEOF {
		t.Errorf("err = %v, want io.ErrUnexpectedEOF", err)
	}
	if !bytes.Contains(got, []byte(`"content":"Hi"`)) {
		t.Errorf("the events before the cut were lost: %s", got)
	}
}

// TestTranslateStreamEventByEvent proves that the translator yields each
// event as soon as it has read it, without waiting for the next one.
func TestTranslateStreamEventByEvent(t *testing.T) {
	pr, pw := io.Pipe()
	s := NewChatStream(pr, false, created, nil)
	events := []struct{ in, want string }{
		{`{"type":"message_start","message":{"id":"m1","model":"x"}}`, `"role":"assistant"`},
		{`{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t1","name":"f","input":{}}}`, `"id":"t1","type":"function","function":{"name":"f","arguments":""}`},
		{`{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}`, `"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]`},
	}
	buf := make([]byte, 4096)
	for _, ev := range events {
		go func() { fmt.Fprintf(pw, "event: x\ndata: %s\n\n", ev.in) }()
		n, err := s.Read(buf)
		if err != nil || !strings.Contains(string(buf[:n]), ev.want) {
			t.Fatalf("Read = %q, %v; want %s", buf[:n], err, ev.want)
		}
	}
	pw.Close()
	if _, err := s.Read(buf); err != io.ErrUnexpectedEOF {
		t.Fatalf("after the cut: %v", err)
	}
}

// A tool loop with thinking: the thinking blocks an assistant message
// carries go first in its Anthropic message, and thinking from
// reasoning_effort stays on; without them, or with a forced tool, thinking
// from reasoning_effort is off, as the API requires.
func TestThinkingToolLoop(t *testing.T) {
	const loop = `{"role":"user","content":"weather?"},{"role":"assistant","content":null,%s"tool_calls":[{"id":"t1","type":"function","function":{"name":"get","arguments":"{}"}}]},` +
		`{"role":"tool","tool_call_id":"t1","content":"sunny"}`
	blocks := `"thinking_blocks":[{"type":"thinking","thinking":"I should look.","signature":"sig-1"},{"type":"redacted_thinking","data":"opaque"}],`
	for _, tt := range []struct {
		name, msgs, extra string
		thinking          bool
	}{
		{"blocks sent back", fmt.Sprintf(loop, blocks), "", true},
		{"blocks lost", fmt.Sprintf(loop, ""), "", false},
		{"forced tool", `{"role":"user","content":"weather?"}`, `,"tool_choice":"required","tools":[{"type":"function","function":{"name":"get"}}]`, false},
		{"named tool", `{"role":"user","content":"weather?"}`, `,"tool_choice":{"type":"function","function":{"name":"get"}},"tools":[{"type":"function","function":{"name":"get"}}]`, false},
		{"auto tool", `{"role":"user","content":"weather?"}`, `,"tool_choice":"auto","tools":[{"type":"function","function":{"name":"get"}}]`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, _, err := ToMessages([]byte(`{"reasoning_effort":"medium","messages":[`+tt.msgs+`]`+tt.extra+`}`), MessagesOptions{Model: "m"})
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Thinking json.RawMessage `json:"thinking"`
				Messages []struct {
					Role    string
					Content json.RawMessage
				}
			}
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if (got.Thinking != nil) != tt.thinking {
				t.Errorf("thinking %s, want on %v", got.Thinking, tt.thinking)
			}
			if tt.name == "blocks sent back" {
				chatschema.JSONEqual(t, got.Messages[1].Content, []byte(`[{"type":"thinking","thinking":"I should look.","signature":"sig-1"},`+
					`{"type":"redacted_thinking","data":"opaque"},{"type":"tool_use","id":"t1","name":"get","input":{}}]`))
			}
		})
	}
}

// For a model with the effort setting, reasoning_effort becomes adaptive
// thinking at that effort.
func TestAdaptiveEffort(t *testing.T) {
	for _, tt := range []struct {
		body, effort string
		maxTokens    int64
	}{
		{`"reasoning_effort":"low","temperature":0.5`, "low", 2048 + DefaultMaxTokens},
		{`"reasoning_effort":"minimal"`, "low", 1024 + DefaultMaxTokens},
		{`"reasoning_effort":"medium","max_tokens":100`, "medium", 100},
		{`"reasoning_effort":"high"`, "high", 16384 + DefaultMaxTokens},
		{`"reasoning_effort":"xhigh"`, "max", 32768 + DefaultMaxTokens},
		{`"reasoning_effort":"none"`, "", DefaultMaxTokens},
		{`"reasoning_effort":"high","tool_choice":"required","tools":[{"type":"function","function":{"name":"f"}}]`, "", DefaultMaxTokens},
	} {
		b, _, err := ToMessages([]byte(`{"messages":[{"role":"user","content":"hi"}],`+tt.body+`}`), MessagesOptions{Model: "m", Adaptive: true})
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			MaxTokens    int64                    `json:"max_tokens"`
			Thinking     json.RawMessage          `json:"thinking"`
			OutputConfig *struct{ Effort string } `json:"output_config"`
			Temperature  *float64                 `json:"temperature"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		switch {
		case tt.effort == "" && (got.Thinking != nil || got.OutputConfig != nil):
			t.Errorf("%s: %s, want no thinking", tt.body, b)
		case tt.effort != "" && (string(got.Thinking) != `{"type":"adaptive"}` || got.OutputConfig == nil || got.OutputConfig.Effort != tt.effort || got.Temperature != nil):
			t.Errorf("%s: %s, want adaptive thinking at effort %s and no temperature", tt.body, b, tt.effort)
		case got.MaxTokens != tt.maxTokens:
			t.Errorf("%s: max_tokens %d, want %d", tt.body, got.MaxTokens, tt.maxTokens)
		}
	}
	if _, _, err := ToMessages([]byte(`{"messages":[{"role":"user","content":"hi"}],"reasoning_effort":"huge"}`), MessagesOptions{Adaptive: true}); err == nil {
		t.Error("unknown effort: no error")
	}
}
