package providertest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func post(t *testing.T, c *http.Client, url, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", url, strings.NewReader(body))
	req.Header.Set("X-Test", "1")
	req.Header.Set("Anthropic-Version", "2023-06-01")
	if strings.Contains(body, `"sampling-2026"`) {
		req.Header.Set("Anthropic-Version", "2026-10-21")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func client(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func TestOpenAI(t *testing.T) {
	s := NewServer(t)
	c := client(t)
	resp, body := post(t, c, s.OpenAIURL()+"/chat/completions", `{"model":"m","messages":[{"role":"user","content":"one two"}]}`)
	var cc struct {
		Object  string `json:"object"`
		Model   string `json:"model"`
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal([]byte(body), &cc); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v: %s", resp.StatusCode, err, body)
	}
	if cc.Object != "chat.completion" || cc.Model != "m" || cc.Choices[0].Message.Content != DefaultText || cc.Usage.PromptTokens != 2 || cc.Usage.CompletionTokens != 5 {
		t.Errorf("%s", body)
	}

	_, sse := post(t, c, s.OpenAIURL()+"/chat/completions", `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`)
	events := strings.Split(strings.TrimSuffix(sse, "\n\n"), "\n\n")
	if len(events) != 1+5+1+1+1 || events[len(events)-1] != "data: [DONE]" || !strings.Contains(events[len(events)-2], `"choices":[],"usage":{"prompt_tokens":0,"completion_tokens":5`) {
		t.Errorf("stream:\n%s", sse)
	}
	for _, ev := range events[:len(events)-1] {
		var v map[string]any
		if err := json.Unmarshal([]byte(strings.TrimPrefix(ev, "data: ")), &v); err != nil {
			t.Errorf("%v: %s", err, ev)
		}
	}

	reqs := s.Requests()
	if len(reqs) != 2 || reqs[0].Path != OpenAIPath || reqs[0].Header.Get("X-Test") != "1" || reqs[0].Model != "m" || reqs[0].Stream || !reqs[1].Stream {
		t.Errorf("%+v", reqs)
	}
}

func TestAnthropic(t *testing.T) {
	s := NewServer(t)
	_, sse := post(t, client(t), s.AnthropicURL()+"/v1/messages", `{"model":"claude","max_tokens":8,"stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"a b c"}]}]}`)
	var types []string
	for _, ev := range strings.Split(strings.TrimSuffix(sse, "\n\n"), "\n\n") {
		name, data, ok := strings.Cut(ev, "\n")
		var v struct{ Type string }
		if !ok || json.Unmarshal([]byte(strings.TrimPrefix(data, "data: ")), &v) != nil || name != "event: "+v.Type {
			t.Fatalf("malformed event %q", ev)
		}
		types = append(types, v.Type)
	}
	want := "message_start content_block_start ping content_block_delta content_block_delta content_block_delta content_block_delta content_block_delta content_block_stop message_delta message_stop"
	if got := strings.Join(types, " "); got != want {
		t.Errorf("events %s", got)
	}
	if !strings.Contains(sse, `"usage":{"input_tokens":3,`) {
		t.Errorf("%s", sse)
	}
}

func TestQueueThenRespond(t *testing.T) {
	s := NewServer(t)
	c := client(t)
	s.Respond(func(r *Request) Reply { return Reply{Text: "from respond " + r.Model} })
	s.Enqueue(Reply{Status: 429, Header: http.Header{"Retry-After": {"2"}}}, Reply{Status: 529})
	resp, body := post(t, c, s.AnthropicURL()+AnthropicPath, `{"model":"x"}`)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" || !strings.Contains(body, `"type":"rate_limit_error"`) {
		t.Errorf("%d %v %s", resp.StatusCode, resp.Header, body)
	}
	resp, body = post(t, c, s.AnthropicURL()+AnthropicPath, `{"model":"x"}`)
	if resp.StatusCode != 529 || !strings.Contains(body, `{"type":"error","error":{"type":"overloaded_error"`) {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
	_, body = post(t, c, s.OpenAIURL()+"/chat/completions", `{"model":"x"}`)
	if !strings.Contains(body, "from respond x") {
		t.Errorf("%s", body)
	}
	if resp, _ := post(t, c, s.URL+"/v1/completions", `{}`); resp.StatusCode != 404 {
		t.Errorf("unknown path: %d", resp.StatusCode)
	}
	if st := s.Stats(); st.Requests != 4 || st.InFlight != 0 || st.Canceled != 0 {
		t.Errorf("%+v", st)
	}
}

func TestCloseReleasesHeldStreams(t *testing.T) {
	s := NewServer(nil)
	s.Enqueue(Reply{Hold: make(chan struct{})})
	c := client(t)
	req, _ := http.NewRequest("POST", s.OpenAIURL()+"/chat/completions", strings.NewReader(`{"stream":true}`))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.ReadAll(resp.Body)
		resp.Body.Close()
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := s.Await(ctx, func(st Stats) bool { return st.InFlight == 1 }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	<-done
	s.Close() // idempotent
}

// The server refuses what the real APIs refuse, in their error shapes.
func TestRules(t *testing.T) {
	s := NewServer(t)
	c := client(t)
	for _, tt := range []struct {
		name, path, body, want string
	}{
		{"no max_tokens", AnthropicPath, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, `"max_tokens: Field required"`},
		{"orphan tool_result", AnthropicPath, `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"no tools"},` +
			`{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"x"}]}]}`, "unexpected `tool_use_id`"},
		{"tool_result after text", AnthropicPath, `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"},` +
			`{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},` +
			`{"role":"user","content":[{"type":"text","text":"x"},{"type":"tool_result","tool_use_id":"t1","content":"x"}]}]}`, "must come first"},
		{"thinking, forced tool", AnthropicPath, `{"model":"m","max_tokens":5000,"thinking":{"type":"enabled","budget_tokens":2000},"tool_choice":{"type":"any"},` +
			`"messages":[{"role":"user","content":"hi"}]}`, "forces tool use"},
		{"thinking, temperature", AnthropicPath, `{"model":"m","max_tokens":5000,"thinking":{"type":"enabled","budget_tokens":2000},"temperature":0.2,` +
			`"messages":[{"role":"user","content":"hi"}]}`, "only be set to 1"},
		{"thinking, budget over max_tokens", AnthropicPath, `{"model":"m","max_tokens":2000,"thinking":{"type":"enabled","budget_tokens":2000},` +
			`"messages":[{"role":"user","content":"hi"}]}`, "must be greater than"},
		{"thinking lost in a tool loop", AnthropicPath, `{"model":"m","max_tokens":5000,"thinking":{"type":"enabled","budget_tokens":2000},"messages":[` +
			`{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},` +
			`{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"x"}]}]}`, "must start with a thinking block"},
		{"thinking forged", AnthropicPath, `{"model":"m","max_tokens":5000,"thinking":{"type":"enabled","budget_tokens":2000},"messages":[` +
			`{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"thinking","thinking":"changed","signature":"` + Signature("original") + `"},` +
			`{"type":"tool_use","id":"t1","name":"f","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"x"}]}]}`, "Invalid `signature`"},
		{"sampling on 2026-10-21", AnthropicPath, `{"model":"sampling-2026","max_tokens":5,"top_p":1,"messages":[{"role":"user","content":"hi"}]}`, "top_p: Extra inputs"},
		{"orphan tool message", OpenAIPath, `{"model":"m","messages":[{"role":"tool","tool_call_id":"c1","content":"x"}]}`, "must be a response to a preceding message"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, c, s.URL+tt.path, tt.body)
			if resp.StatusCode != 400 || !strings.Contains(body, tt.want) || !strings.Contains(body, `"invalid_request_error"`) {
				t.Errorf("%d %s, want 400 with %s", resp.StatusCode, body, tt.want)
			}
		})
	}
	resp, body := post(t, c, s.URL+AnthropicPath, `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"},`+
		`{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},`+
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"x"},{"type":"text","text":"go on"}]}]}`)
	if resp.StatusCode != 200 {
		t.Errorf("a valid tool loop: %d %s", resp.StatusCode, body)
	}

	// With thinking: the answer starts with a signed thinking block, and
	// the loop goes on when it is sent back.
	s.Enqueue(Reply{Thinking: "I will call f.", ToolCall: &ToolCall{ID: "t9", Name: "f", Input: `{"a":1}`}})
	_, body = post(t, c, s.URL+AnthropicPath, `{"model":"m","max_tokens":5000,"thinking":{"type":"enabled","budget_tokens":2000},"messages":[{"role":"user","content":"hi"}]}`)
	want := `"content":[{"type":"thinking","thinking":"I will call f.","signature":"` + Signature("I will call f.") + `"},{"type":"tool_use","id":"t9","name":"f","input":{"a":1}}],"stop_reason":"tool_use"`
	if !strings.Contains(body, want) {
		t.Errorf("thinking answer %s", body)
	}
	resp, body = post(t, c, s.URL+AnthropicPath, `{"model":"m","max_tokens":5000,"thinking":{"type":"enabled","budget_tokens":2000},"messages":[{"role":"user","content":"hi"},`+
		`{"role":"assistant","content":[{"type":"thinking","thinking":"I will call f.","signature":"`+Signature("I will call f.")+`"},{"type":"tool_use","id":"t9","name":"f","input":{"a":1}}]},`+
		`{"role":"user","content":[{"type":"tool_result","tool_use_id":"t9","content":"done"}]}]}`)
	if resp.StatusCode != 200 {
		t.Errorf("thinking sent back: %d %s", resp.StatusCode, body)
	}
}

// count_tokens, embeddings and the Responses API are answered in their
// shapes.
func TestOtherAPIs(t *testing.T) {
	s := NewServer(t)
	c := client(t)
	_, body := post(t, c, s.URL+CountTokensPath, `{"model":"m","system":"be brief","messages":[{"role":"user","content":"a b c"}]}`)
	if body != `{"input_tokens":5}` {
		t.Errorf("count_tokens: %s", body)
	}
	_, body = post(t, c, s.URL+EmbeddingsPath, `{"model":"e","input":["a","b"]}`)
	var emb struct {
		Data []struct {
			Index     int
			Embedding []float64
		}
		Model string
	}
	if err := json.Unmarshal([]byte(body), &emb); err != nil || len(emb.Data) != 2 || len(emb.Data[1].Embedding) != 4 || emb.Model != "e" {
		t.Errorf("embeddings: %v %s", err, body)
	}
	_, body = post(t, c, s.URL+ResponsesPath, `{"model":"r","input":"hi"}`)
	if !strings.Contains(body, `"object":"response"`) || !strings.Contains(body, `"output_text","text":"`+DefaultText+`"`) {
		t.Errorf("responses: %s", body)
	}
	_, body = post(t, c, s.URL+ResponsesPath, `{"model":"r","input":"hi","stream":true}`)
	if !strings.HasPrefix(body, "event: response.created\n") || !strings.Contains(body, "event: response.completed\n") {
		t.Errorf("responses stream: %s", body)
	}
}
