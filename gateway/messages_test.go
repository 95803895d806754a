package gateway

import (
	"strings"
	"testing"

	"github.com/awakend/awakend/provider"
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
