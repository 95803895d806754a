package gateway

import (
	"strings"
	"testing"

	"github.com/awakend/awakend/edge"
	"github.com/awakend/awakend/provider"
	"github.com/awakend/awakend/registry"
)

// The bodies passed through keep the client's bytes but for the model and
// what an agent adds.
func TestPassedThroughBodies(t *testing.T) {
	const sys = `"You are the agent."`
	for _, tt := range []struct {
		name string
		api  provider.API
		in   string
		sys  string
		want string
	}{
		{"messages, no system", provider.APIMessages, `{"model":"a", "messages":[],"x":{"k": 1}}`, sys,
			`{"model":"up", "messages":[],"x":{"k": 1},"system":"You are the agent."}`},
		{"messages, string system", provider.APIMessages, `{"system":"Be brief.","model":"a","messages":[]}`, sys,
			`{"system":[{"type":"text","text":"You are the agent."},{"type":"text","text":"Be brief."}],"model":"up","messages":[]}`},
		{"messages, block system", provider.APIMessages, `{"model":"a","messages":[],"system":[ {"type":"text","text":"B","cache_control":{"type":"ephemeral"}}]}`, sys,
			`{"model":"up","messages":[],"system":[{"type":"text","text":"You are the agent."}, {"type":"text","text":"B","cache_control":{"type":"ephemeral"}}]}`},
		{"messages, empty block system", provider.APIMessages, `{"model":"a","messages":[],"system":[]}`, sys,
			`{"model":"up","messages":[],"system":[{"type":"text","text":"You are the agent."}]}`},
		{"messages, null system", provider.APIMessages, `{"system":null,"model":"a","messages":[]}`, sys,
			`{"system":"You are the agent.","model":"up","messages":[]}`},
		{"messages, null system, no agent", provider.APIMessages, `{"model":"a","messages":[],"system":null}`, "",
			`{"model":"up","messages":[],"system":null}`},
		{"responses, agent", provider.APIResponses, `{"model":"a","input":"hi"}`, sys,
			`{"model":"up","input":"hi","instructions":"You are the agent."}`},
		{"responses, client's instructions", provider.APIResponses, `{"model":"a","instructions":"Mine.","input":"hi"}`, sys,
			`{"model":"up","instructions":"Mine.","input":"hi"}`},
		{"responses, null instructions", provider.APIResponses, `{"model":"a","instructions":null}`, sys,
			`{"model":"up","instructions":"You are the agent."}`},
		{"responses, null instructions first", provider.APIResponses, `{"instructions":null,"model":"a"}`, sys,
			`{"instructions":"You are the agent.","model":"up"}`},
		{"embeddings", provider.APIEmbeddings, `{"input":["a"],"model":"a"}`, "",
			`{"input":["a"],"model":"up"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseOther([]byte(tt.in), tt.api)
			if err != nil {
				t.Fatal(err.Message)
			}
			var got []byte
			if tt.api == provider.APIMessages {
				got = c.messagesUpstream([]byte(`"up"`), []byte(tt.sys))
			} else {
				got = c.passUpstream([]byte(`"up"`), []byte(tt.sys))
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestParseOtherRefuses(t *testing.T) {
	for _, tt := range []struct {
		name string
		api  provider.API
		in   string
		want string
	}{
		{"duplicate model", provider.APIMessages, `{"model":"a","model":"b","messages":[]}`, "duplicate_key"},
		{"duplicate system", provider.APIMessages, `{"model":"a","system":"x","system":"y","messages":[]}`, "duplicate_key"},
		{"no messages", provider.APICountTokens, `{"model":"a"}`, "missing_required_parameter"},
		{"no model", provider.APIEmbeddings, `{"input":"x"}`, "missing_required_parameter"},
		{"bad stream", provider.APIResponses, `{"model":"a","stream":"yes"}`, "invalid_type"},
		{"bad system", provider.APIMessages, `{"model":"a","messages":[],"system":1}`, "invalid_type"},
		{"not JSON", provider.APIMessages, `{"model":`, "invalid_json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseOther([]byte(tt.in), tt.api)
			if err == nil || err.Code != tt.want {
				t.Errorf("error %+v, want code %s", err, tt.want)
			}
		})
	}
	// A session key from metadata.user_id.
	c, err := parseOther([]byte(`{"model":"a","messages":[],"metadata":{"user_id":"u-7"}}`), provider.APIMessages)
	if err != nil || string(c.stringValue(c.user)) != "u-7" {
		t.Errorf("user %q %v", c.stringValue(c.user), err)
	}
	if !strings.Contains(unsupported(&target{modelID: "m", providerID: "p", caller: &fake{}}, provider.APIEmbeddings).Message, "adapter fake") {
		t.Error("the unsupported error does not name the adapter")
	}
}

func TestWithoutSampling(t *testing.T) {
	for _, tt := range []struct {
		api      provider.API
		in, want string
	}{
		{provider.APIChat, `{"model":"m","temperature":0.2,"messages":[]}`, `{"model":"m","messages":[]}`},
		{provider.APIChat, `{"temperature": 0.2 , "model":"m","messages":[],"top_p":1}`, `{ "model":"m","messages":[]}`},
		{provider.APIChat, `{"model":"m","messages":[] , "top_k":5 }`, `{"model":"m","messages":[]  }`},
		{provider.APIMessages, `{"model":"m","top_k":1,"max_tokens":5,"messages":[],"top_p":0.5,"stream":true}`, `{"model":"m","max_tokens":5,"messages":[],"stream":true}`},
		{provider.APIResponses, `{"model":"m","input":"x","temperature":1}`, `{"model":"m","input":"x"}`},
	} {
		var c chatBody
		var err *edge.Error
		if tt.api == provider.APIChat {
			c, err = parseChat([]byte(tt.in))
		} else {
			c, err = parseOther([]byte(tt.in), tt.api)
		}
		if err != nil {
			t.Fatal(err.Message)
		}
		got, err := withoutSampling(&c, tt.api)
		if err != nil || string(got.raw) != tt.want || len(got.sampled()) != 0 {
			t.Errorf("%s: got %s (%v), want %s", tt.in, got.raw, err, tt.want)
		}
	}
}

// A model's sampling rule: drop sends the request without temperature,
// top_p and top_k; refuse answers 400 unless a pool has another member.
func TestSamplingRule(t *testing.T) {
	w := newWorld()
	up := w.provider("p")
	other := w.provider("q")
	w.model("keeps", "p").model("drops", "p").model("refuses", "p").model("other", "q")
	w.models[1].Sampling = registry.SamplingDrop
	w.models[2].Sampling = registry.SamplingRefuse
	w.pool("pool", registry.HomeFirstHealthy, registry.DefaultSwitchPolicy(), "refuses", "other")
	g, _ := w.gw(t, Options{})
	body := func(model string) string {
		return `{"model":"` + model + `","temperature":0.2,"messages":[{"role":"user","content":"hello"}],"top_p":0.5}`
	}

	if res := do(t, g, "POST", "/v1/chat/completions", body("keeps")); res.code != 200 || !strings.Contains(string(up.last(t).Body), `"temperature":0.2`) {
		t.Errorf("pass: %d, sent %s", res.code, up.last(t).Body)
	}
	if res := do(t, g, "POST", "/v1/chat/completions", body("drops")); res.code != 200 ||
		string(up.last(t).Body) != `{"model":"up-drops","messages":[{"role":"user","content":"hello"}]}` {
		t.Errorf("drop: %d, sent %s", res.code, up.last(t).Body)
	}
	n := up.calls()
	res := do(t, g, "POST", "/v1/chat/completions", body("refuses"))
	if res.code != 400 || res.errCode(t) != "unsupported_parameter" || !strings.Contains(res.body, "temperature, top_p") || up.calls() != n {
		t.Errorf("refuse: %d %s", res.code, res.body)
	}
	if res := do(t, g, "POST", "/v1/chat/completions", chatReq("refuses")); res.code != 200 {
		t.Errorf("refuse, no sampling: %d %s", res.code, res.body)
	}
	if res := do(t, g, "POST", "/v1/chat/completions", body("pool")); res.code != 200 || res.header.Get(ModelHeader) != "other" || other.calls() != 1 {
		t.Errorf("refuse in a pool: %d %s served by %s", res.code, res.body, res.header.Get(ModelHeader))
	}
	// On /v1/messages, translated: the dropped parameters never reach the chat request.
	res = do(t, g, "POST", "/v1/messages", `{"model":"drops","max_tokens":5,"temperature":0.3,"messages":[{"role":"user","content":"hi"}]}`)
	if res.code != 200 || strings.Contains(string(up.last(t).Body), "temperature") {
		t.Errorf("messages, drop: %d %s, sent %s", res.code, res.body, up.last(t).Body)
	}
	res = do(t, g, "POST", "/v1/messages", `{"model":"refuses","max_tokens":5,"top_k":3,"messages":[{"role":"user","content":"hi"}]}`)
	if res.code != 400 || !strings.Contains(res.body, `"type":"invalid_request_error"`) || !strings.Contains(res.body, "top_k") {
		t.Errorf("messages, refuse: %d %s", res.code, res.body)
	}
}

// A model whose thinking is adaptive says so to its executor.
func TestAdaptiveThinkingTarget(t *testing.T) {
	w := newWorld()
	up := w.provider("p")
	w.model("budget", "p").model("adaptive", "p")
	w.models[1].Thinking = registry.ThinkingAdaptive
	g, _ := w.gw(t, Options{})
	for model, want := range map[string]bool{"budget": false, "adaptive": true} {
		if res := do(t, g, "POST", "/v1/chat/completions", chatReq(model)); res.code != 200 || up.last(t).Adaptive != want {
			t.Errorf("%s: %d, Adaptive %v", model, res.code, up.last(t).Adaptive)
		}
	}
}

// Anthropic's routes take a client key as x-api-key too; the others only
// as a bearer token.
func TestAPIKeyHeader(t *testing.T) {
	w := newWorld()
	w.provider("p")
	w.model("m", "p")
	g, _ := w.gw(t, Options{Keys: edge.NewKeysVar(edge.NewKeys("k1"))})
	msg := `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`
	for _, tt := range []struct {
		name, path, body string
		header           []string
		code             int
	}{
		{"x-api-key on messages", "/v1/messages", msg, []string{"X-Api-Key", "k1"}, 200},
		{"x-api-key and a wrong bearer", "/v1/messages", msg, []string{"X-Api-Key", "k1", "Authorization", "Bearer nope"}, 200},
		{"wrong x-api-key", "/v1/messages", msg, []string{"X-Api-Key", "k2"}, 401},
		{"x-api-key on chat completions", "/v1/chat/completions", chatReq("m"), []string{"X-Api-Key", "k1"}, 401},
		{"bearer on count_tokens", "/v1/messages/count_tokens", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, []string{"Authorization", "Bearer k1"}, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := do(t, g, "POST", tt.path, tt.body, tt.header...)
			if res.code != tt.code {
				t.Errorf("%d %s, want %d", res.code, res.body, tt.code)
			}
			if tt.code == 401 && strings.HasPrefix(tt.path, "/v1/messages") && !strings.Contains(res.body, `"type":"authentication_error"`) {
				t.Errorf("401 body %s, not Anthropic's", res.body)
			}
		})
	}
}
