package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/awakend/awakend/edge"
	"github.com/awakend/awakend/registry"
)

// basicWorld: providers p and q, models m (p) and n (q), pool pl over both,
// agents on each.
func basicWorld() *world {
	w := newWorld()
	w.provider("p")
	w.provider("q")
	w.model("m", "p").model("n", "q")
	w.pool("pl", registry.HomeFirstHealthy, registry.DefaultSwitchPolicy(), "m", "n")
	w.agent(registry.AgentSpec{ID: "on-model", ModelID: "m", SystemPrompt: "be brief"})
	w.agent(registry.AgentSpec{ID: "on-pool", ModelID: "pl"})
	w.agent(registry.AgentSpec{ID: "remote", Endpoint: &registry.Endpoint{Backend: "a2a", BaseURL: "https://agents.example/a2a"}})
	return w
}

func TestResolve(t *testing.T) {
	w := basicWorld()
	g, _ := w.gw(t, Options{})
	for _, tt := range []struct {
		name, model, served, provider, upstream string
	}{
		{"model", "m", "m", "p", "up-m"},
		{"other model", "n", "n", "q", "up-n"},
		{"pool", "pl", "m", "p", "up-m"},
		{"agent on model", "on-model", "m", "p", "up-m"},
		{"agent on pool", "on-pool", "m", "p", "up-m"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := do(t, g, "POST", "/v1/chat/completions", chatReq(tt.model))
			if res.code != 200 {
				t.Fatalf("status %d: %s", res.code, res.body)
			}
			if got := res.header.Get(ModelHeader); got != tt.served {
				t.Errorf("%s = %q, want %q", ModelHeader, got, tt.served)
			}
			if got := res.header.Get(ProviderHeader); got != tt.provider {
				t.Errorf("%s = %q, want %q", ProviderHeader, got, tt.provider)
			}
			if got := res.header.Get(AttemptsHeader); got != "1" {
				t.Errorf("%s = %q, want 1", AttemptsHeader, got)
			}
			if got := res.header.Get(edge.VersionHeader); got != "1" {
				t.Errorf("%s = %q, want 1", edge.VersionHeader, got)
			}
			req := w.fakes[tt.provider].last(t)
			if req.UpstreamModel != tt.upstream {
				t.Errorf("UpstreamModel = %q, want %q", req.UpstreamModel, tt.upstream)
			}
			var body map[string]json.RawMessage
			if err := json.Unmarshal(req.Body, &body); err != nil {
				t.Fatalf("upstream body: %v\n%s", err, req.Body)
			}
			if got := string(body["model"]); got != `"`+tt.upstream+`"` {
				t.Errorf("upstream body model = %s, want %q", got, tt.upstream)
			}
			if res.json(t)["object"] != "chat.completion" {
				t.Errorf("answer not relayed: %s", res.body)
			}
		})
	}
}

func TestUnknownModel(t *testing.T) {
	g, _ := basicWorld().gw(t, Options{})
	res := do(t, g, "POST", "/v1/chat/completions", chatReq("gpt-nope"))
	if res.code != http.StatusNotFound {
		t.Fatalf("status %d, want 404", res.code)
	}
	want := `{"error":{"message":"The model 'gpt-nope' does not exist","type":"invalid_request_error","param":"model","code":"model_not_found"}}` + "\n"
	if res.body != want {
		t.Errorf("body\n got %s\nwant %s", res.body, want)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
}

func TestBadRequests(t *testing.T) {
	g, _ := basicWorld().gw(t, Options{MaxBodyBytes: 1024})
	for _, tt := range []struct {
		name, method, path, body string
		code                     int
		errCode                  string
	}{
		{"bad json", "POST", "/v1/chat/completions", `{"model":"m",`, 400, "invalid_json"},
		{"not an object", "POST", "/v1/chat/completions", `["m"]`, 400, "invalid_json"},
		{"empty body", "POST", "/v1/chat/completions", ``, 400, "invalid_json"},
		{"missing model", "POST", "/v1/chat/completions", `{"messages":[]}`, 400, "missing_required_parameter"},
		{"empty model", "POST", "/v1/chat/completions", `{"model":"","messages":[]}`, 400, "missing_required_parameter"},
		{"model not a string", "POST", "/v1/chat/completions", `{"model":3,"messages":[]}`, 400, "invalid_type"},
		{"missing messages", "POST", "/v1/chat/completions", `{"model":"m"}`, 400, "missing_required_parameter"},
		{"messages not an array", "POST", "/v1/chat/completions", `{"model":"m","messages":"hi"}`, 400, "invalid_type"},
		{"stream not a bool", "POST", "/v1/chat/completions", `{"model":"m","messages":[],"stream":"yes"}`, 400, "invalid_type"},
		{"duplicate model", "POST", "/v1/chat/completions", `{"model":"m","messages":[],"model":"n"}`, 400, "duplicate_key"},
		{"escaped duplicate model", "POST", "/v1/chat/completions", `{"model":"m","messages":[],"mod\u0065l":"n"}`, 400, "duplicate_key"},
		{"too large", "POST", "/v1/chat/completions", `{"model":"m","messages":[],"x":"` + strings.Repeat("a", 2000) + `"}`, 413, "request_too_large"},
		{"remote agent", "POST", "/v1/chat/completions", chatReq("remote"), 400, "remote_agent"},
		{"GET chat", "GET", "/v1/chat/completions", ``, 405, "method_not_allowed"},
		{"POST models", "POST", "/v1/models", ``, 405, "method_not_allowed"},
		{"unknown route", "POST", "/v1/completions", `{}`, 404, "unknown_url"},
		{"embeddings without model", "POST", "/v1/embeddings", `{}`, 400, "missing_required_parameter"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := do(t, g, tt.method, tt.path, tt.body)
			if res.code != tt.code {
				t.Fatalf("status %d, want %d: %s", res.code, tt.code, res.body)
			}
			env := res.json(t)["error"].(map[string]any)
			if env["type"] != "invalid_request_error" {
				t.Errorf("type %v", env["type"])
			}
			if got := res.errCode(t); got != tt.errCode {
				t.Errorf("code %q, want %q", got, tt.errCode)
			}
			if env["message"] == "" {
				t.Error("no message")
			}
		})
	}
}

func TestAgentSystemPromptAndReasoning(t *testing.T) {
	effort := func(level string, budget uint32) *registry.ReasoningEffort {
		return &registry.ReasoningEffort{Level: level, Budget: budget}
	}
	for _, tt := range []struct {
		name   string
		agent  *registry.ReasoningEffort
		client string // the client's reasoning_effort member, if any
		want   string // the upstream's reasoning_effort JSON, "" = absent
	}{
		{"unset", nil, "", ""},
		{"low", effort("low", 0), "", `"low"`},
		{"medium", effort("medium", 0), "", `"medium"`},
		{"high", effort("high", 0), "", `"high"`},
		{"max is high", effort("max", 0), "", `"high"`},
		{"none is omitted", effort("none", 0), "", ""},
		{"budget is omitted", effort("budget", 4096), "", ""},
		{"client wins", effort("high", 0), `"reasoning_effort":"low",`, `"low"`},
		{"client null wins", effort("high", 0), `"reasoning_effort":null,`, `null`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			p := w.provider("p")
			w.model("m", "p")
			w.agent(registry.AgentSpec{ID: "a", ModelID: "m", SystemPrompt: "You are <terse> & \"exact\".", ReasoningEffort: tt.agent})
			g, _ := w.gw(t, Options{})
			body := `{"model":"a",` + tt.client + `"messages":[{"role":"system","content":"client system"},{"role":"user","content":"hi"}]}`
			if res := do(t, g, "POST", "/v1/chat/completions", body); res.code != 200 {
				t.Fatalf("status %d: %s", res.code, res.body)
			}
			up := p.last(t).Body
			var got struct {
				Messages []struct{ Role, Content string }
				Effort   json.RawMessage `json:"reasoning_effort"`
			}
			if err := json.Unmarshal(up, &got); err != nil {
				t.Fatalf("upstream body is not JSON: %v\n%s", err, up)
			}
			wantMsgs := []struct{ Role, Content string }{
				{"system", "You are <terse> & \"exact\"."}, {"system", "client system"}, {"user", "hi"},
			}
			if !slices.Equal(got.Messages, wantMsgs) {
				t.Errorf("messages = %+v\nwant %+v", got.Messages, wantMsgs)
			}
			if string(got.Effort) != tt.want {
				t.Errorf("reasoning_effort = %s, want %s (body %s)", got.Effort, tt.want, up)
			}
		})
	}
}

func TestAgentEmptyMessages(t *testing.T) {
	w := newWorld()
	p := w.provider("p")
	w.model("m", "p")
	w.agent(registry.AgentSpec{ID: "a", ModelID: "m", SystemPrompt: "sys"})
	g, _ := w.gw(t, Options{})
	if res := do(t, g, "POST", "/v1/chat/completions", `{"model":"a","messages":[ ]}`); res.code != 200 {
		t.Fatalf("status %d: %s", res.code, res.body)
	}
	want := `{"model":"up-m","messages":[{"role":"system","content":"sys"} ]}`
	if got := string(p.last(t).Body); got != want {
		t.Errorf("upstream body\n got %s\nwant %s", got, want)
	}
}

// TestPassthrough checks that the upstream body is the client's, byte for
// byte, but for the model value.
func TestPassthrough(t *testing.T) {
	w := newWorld()
	p := w.provider("p")
	w.model("m", "p")
	g, _ := w.gw(t, Options{})
	rest := `,
	  "messages" : [ {"role":"user","content":"<b>&amp; \u00e9 \"q\" \\ 😀"} ],
	  "temperature": 0.70, "top_p":1e0, "x_vendor": {"nested": [1, {"a": null}], "s": "}\"{"},
	  "tools": [], "stream_options": {"include_usage": true}, "user": "u-1"
	}`
	body := `{ "model" : "m"` + rest
	if res := do(t, g, "POST", "/v1/chat/completions", body); res.code != 200 {
		t.Fatalf("status %d: %s", res.code, res.body)
	}
	want := `{ "model" : "up-m"` + rest
	if got := string(p.last(t).Body); got != want {
		t.Errorf("upstream body\n got %s\nwant %s", got, want)
	}
}

func TestModelsList(t *testing.T) {
	g, _ := basicWorld().gw(t, Options{})
	res := do(t, g, "GET", "/v1/models", "")
	if res.code != 200 {
		t.Fatalf("status %d", res.code)
	}
	var list struct {
		Object string
		Data   []modelObject
	}
	if err := json.Unmarshal([]byte(res.body), &list); err != nil {
		t.Fatal(err)
	}
	want := []modelObject{
		{"m", "model", 0, "p"}, {"n", "model", 0, "q"},
		{"on-model", "model", 0, "awakend"}, {"on-pool", "model", 0, "awakend"},
		{"pl", "model", 0, "awakend"},
	}
	if list.Object != "list" || !slices.Equal(list.Data, want) {
		t.Errorf("list = %+v\nwant %+v", list, want)
	}
	if !strings.Contains(res.body, `"created":0`) {
		t.Errorf("created missing: %s", res.body)
	}

	one := do(t, g, "GET", "/v1/models/pl", "")
	if one.code != 200 || one.body != `{"id":"pl","object":"model","created":0,"owned_by":"awakend"}`+"\n" {
		t.Errorf("GET /v1/models/pl = %d %s", one.code, one.body)
	}
	if res := do(t, g, "GET", "/v1/models/remote", ""); res.code != 404 || res.errCode(t) != "model_not_found" {
		t.Errorf("GET /v1/models/remote = %d %s", res.code, res.body)
	}
	if res := do(t, g, "HEAD", "/v1/models", ""); res.code != 200 || res.body != "" {
		t.Errorf("HEAD = %d %q", res.code, res.body)
	}
}

func TestAPIKeys(t *testing.T) {
	g, _ := basicWorld().gw(t, Options{Keys: edge.NewKeysVar(edge.NewKeys("sk-one", "sk-two"))})
	for _, tt := range []struct {
		name, auth string
		code       int
	}{
		{"none", "", 401},
		{"wrong", "Bearer sk-three", 401},
		{"prefix", "Bearer sk-on", 401},
		{"not bearer", "Basic sk-one", 401},
		{"first", "Bearer sk-one", 200},
		{"second", "bearer sk-two", 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var hdr []string
			if tt.auth != "" {
				hdr = []string{"Authorization", tt.auth}
			}
			res := do(t, g, "POST", "/v1/chat/completions", chatReq("m"), hdr...)
			if res.code != tt.code {
				t.Fatalf("status %d, want %d: %s", res.code, tt.code, res.body)
			}
			if tt.code == 401 {
				env := res.json(t)["error"].(map[string]any)
				if env["type"] != "invalid_request_error" || env["code"] != "invalid_api_key" {
					t.Errorf("envelope %v", env)
				}
				if strings.Contains(res.body, "sk-") {
					t.Errorf("the answer echoes a key: %s", res.body)
				}
			}
		})
	}
	if res := do(t, g, "GET", "/v1/models", ""); res.code != 401 {
		t.Errorf("GET /v1/models without a key: %d", res.code)
	}
}

func TestRequestID(t *testing.T) {
	w := basicWorld()
	g, _ := w.gw(t, Options{})
	res := do(t, g, "POST", "/v1/chat/completions", chatReq("m"), "X-Request-ID", "client-id-1")
	if got := res.header.Get(RequestIDHeader); got != "client-id-1" {
		t.Errorf("echoed id %q", got)
	}
	if got := w.fakes["p"].last(t).RequestID; got != "client-id-1" {
		t.Errorf("forwarded id %q", got)
	}
	a := do(t, g, "POST", "/v1/chat/completions", chatReq("m"), "X-Request-ID", "bad id\twith spaces").header.Get(RequestIDHeader)
	b := do(t, g, "GET", "/v1/models", "").header.Get(RequestIDHeader)
	if a == "" || b == "" || a == b || strings.Contains(a, " ") {
		t.Errorf("generated ids %q, %q", a, b)
	}
	if got := w.fakes["p"].last(t).RequestID; got != a {
		t.Errorf("forwarded generated id %q, want %q", got, a)
	}
}

func TestNoHandle(t *testing.T) {
	g := New(Options{})
	if res := do(t, g, "POST", "/v1/chat/completions", chatReq("m")); res.code != 503 || res.errCode(t) != "not_ready" {
		t.Errorf("%d %s", res.code, res.body)
	}
}

// TestUsage covers the scan of a non-streaming answer's token usage.
func TestUsage(t *testing.T) {
	for _, tt := range []struct {
		body     string
		p, c     int
		ok       bool
		scenario string
	}{
		{`{"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}`, 12, 5, true, "plain"},
		{`{"choices":[{"usage":{"prompt_tokens":1}}],"usage" : { "completion_tokens" : 9 , "prompt_tokens":4 }}`, 4, 9, true, "nested decoy"},
		{`{"id":"x"}`, 0, 0, false, "none"},
		{`{"usage":null}`, 0, 0, false, "null"},
		{`{"usage":{"prompt_tokens":"x","completion_tokens":1}}`, -1, 1, false, "not a number"},
		{`garbage`, 0, 0, false, "garbage"},
		{`{"usage":{"prompt_tokens":2,"completion_tokens":3},"choices":[{"usage":{"prompt_tokens":8,"completion_tokens":9}}]}`, 2, 3, true, "decoy last"},
		{`{"x":{"usage":{"prompt_tokens":8,"completion_tokens":9}}}`, 0, 0, false, "only nested"},
		{`{"content":"say \"usage\":{\"prompt_tokens\":8}","usage":{"prompt_tokens":1,"completion_tokens":1}} `, 1, 1, true, "in a string"},
		{`{"content":"usage","usage":{"input_tokens":6,"output_tokens":7}}` + "\n", 6, 7, true, "Anthropic's names, a newline after"},
		{`{"usage":{"prompt_tokens":1,"completion_tokens":2},"usage":null}`, 1, 2, true, "null after"},
	} {
		p, c, ok := usage([]byte(tt.body))
		if ok != tt.ok || (ok && (p != tt.p || c != tt.c)) {
			t.Errorf("%s: usage = %d, %d, %v; want %d, %d, %v", tt.scenario, p, c, ok, tt.p, tt.c, tt.ok)
		}
	}
}

// FuzzObjectIter checks the member scanner against encoding/json on any
// valid object.
func FuzzObjectIter(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"a":1}`, ` { "model" : "x\"y" , "messages":[{"a":"]}"}], "n": -1.5e3, "t":true,"z":null } `,
		`{"k\u0065y":"\\","b":[[],{}],"c":"\\\""}`, `{"a":{"b":{"c":[1,2,{"d":"}"}]}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		it := objectIter{b: b}
		if !json.Valid(b) {
			// Must not panic or loop.
			if it.open() {
				for i := 0; i < len(b)+1; i++ {
					if _, _, ok := it.next(); !ok {
						break
					}
				}
			}
			return
		}
		var want map[string]json.RawMessage
		if !utf8.Valid(b) || json.Unmarshal(b, &want) != nil || want == nil {
			return // not an object
		}
		if !it.open() {
			t.Fatalf("open failed on %s", b)
		}
		got := map[string]json.RawMessage{}
		for {
			k, v, ok := it.next()
			if !ok {
				break
			}
			got[string(k)] = json.RawMessage(b[v.start:v.end])
		}
		if len(got) != len(want) {
			t.Fatalf("keys %v, want %v in %s", keys(got), keys(want), b)
		}
		for k, v := range want {
			if !bytes.Equal(bytes.TrimSpace(got[k]), bytes.TrimSpace(v)) {
				// Duplicate keys: encoding/json keeps the last, so do we.
				t.Fatalf("%q = %s, want %s in %s", k, got[k], v, b)
			}
		}
		if rest := bytes.TrimSpace(b[it.i:]); len(rest) != 0 {
			t.Fatalf("scanner stopped early, left %q of %s", rest, b)
		}
	})
}

func keys(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// FuzzUpstream checks the rewrite of any accepted body: the upstream body
// is valid JSON and equal to the client's but for model, the agent's
// system message and the reasoning effort.
func FuzzUpstream(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[]}`,
		`{ "messages" : [ {"role":"user","content":"x"} ] , "model":"m", "reasoning_effort": "high"}`,
		`{"model":"m","messages":[1],"x":{"model":"nested"},"stream":true,"user":"u"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, perr := parseChat(b)
		if perr != nil {
			return
		}
		sys := []byte(`{"role":"system","content":"S"}`)
		out := c.upstream(nil, []byte(`"UP"`), sys, []byte(`"reasoning_effort":"low"`))
		if !json.Valid(out) {
			t.Fatalf("upstream body is not JSON:\n in %s\nout %s", b, out)
		}
		var in, got map[string]json.RawMessage
		if json.Unmarshal(b, &in) != nil || json.Unmarshal(out, &got) != nil {
			t.Fatalf("not objects: %s -> %s", b, out)
		}
		if string(got["model"]) != `"UP"` {
			t.Fatalf("model %s in %s", got["model"], out)
		}
		var msgs []json.RawMessage
		if err := json.Unmarshal(got["messages"], &msgs); err != nil || len(msgs) == 0 || string(msgs[0]) != string(sys) {
			t.Fatalf("messages %s", got["messages"])
		}
		if _, had := in["reasoning_effort"]; !had && string(got["reasoning_effort"]) != `"low"` {
			t.Fatalf("reasoning_effort %s", got["reasoning_effort"])
		}
		for k, v := range in {
			if k == "model" || k == "messages" {
				continue
			}
			if !bytes.Equal(got[k], v) {
				t.Fatalf("%q changed: %s -> %s", k, v, got[k])
			}
		}
	})
}

// blockingLog is a slog handler whose Handle waits for release.
type blockingLog struct {
	logged  chan struct{}
	release chan struct{}
}

func (b *blockingLog) Enabled(context.Context, slog.Level) bool { return true }
func (b *blockingLog) Handle(context.Context, slog.Record) error {
	b.logged <- struct{}{}
	<-b.release
	return nil
}
func (b *blockingLog) WithAttrs([]slog.Attr) slog.Handler { return b }
func (b *blockingLog) WithGroup(string) slog.Handler      { return b }

// TestAnswerBeforeLogLine: the client has its whole answer before the
// request's log line is written, whatever that write costs.
func TestAnswerBeforeLogLine(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"answer", chatReq("m")},
		{"error", chatReq("nope")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &blockingLog{logged: make(chan struct{}, 1), release: make(chan struct{})}
			g, _ := basicWorld().gw(t, Options{Logger: slog.New(log)})
			srv := httptest.NewServer(g)
			defer srv.Close()
			defer close(log.release)
			got := make(chan error, 1)
			go func() {
				resp, err := http.Post(srv.URL+"/v1/chat/completions", "application/json", strings.NewReader(tc.body))
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				got <- err
			}()
			select {
			case err := <-got:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no answer while the log line is being written")
			}
			select {
			case <-log.logged:
			case <-time.After(5 * time.Second):
				t.Fatal("no log line")
			}
		})
	}
}

// TestLogLineTokens: a completion's log line carries the token counts of
// its answer's usage, read after the answer is sent.
func TestLogLineTokens(t *testing.T) {
	var buf bytes.Buffer
	g, _ := basicWorld().gw(t, Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	if r := do(t, g, http.MethodPost, "/v1/chat/completions", chatReq("m")); r.code != http.StatusOK {
		t.Fatalf("status %d: %s", r.code, r.body)
	}
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("log line %q: %v", buf.String(), err)
	}
	if line["prompt_tokens"] != 7.0 || line["completion_tokens"] != 3.0 {
		t.Errorf("log line %s: want prompt_tokens 7, completion_tokens 3", buf.String())
	}
}
