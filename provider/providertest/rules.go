package providertest

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// broken checks a request against the documented rules of the API its
// path names, and returns what it breaks ("" for none). The server
// answers a request that breaks one with 400 and the wire format's error,
// as the real API would, whatever reply was programmed for it (unless the
// reply sets a status of its own).
//
// Messages (and count_tokens): an anthropic-version header; max_tokens of
// at least 1 (not on count_tokens); roles user and assistant; a user message's tool_result blocks first in it, each
// answering a tool_use block of the assistant message just before.
// Chat completions: each tool message answers a tool call of an assistant
// message before it.
func broken(path string, h http.Header, body []byte) string {
	switch path {
	case AnthropicPath, CountTokensPath:
		return brokenMessages(path, h, body)
	case OpenAIPath:
		return brokenChat(body)
	}
	return ""
}

type anBlock struct {
	Type      string `json:"type"`
	ID        string `json:"id"`
	ToolUseID string `json:"tool_use_id"`
}

func brokenMessages(path string, h http.Header, body []byte) string {
	if h.Get("Anthropic-Version") == "" {
		return "anthropic-version: header is required"
	}
	var in struct {
		MaxTokens *int64 `json:"max_tokens"`
		Messages  []struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return "the body is not a Messages request: " + err.Error()
	}
	if path == AnthropicPath && (in.MaxTokens == nil || *in.MaxTokens < 1) {
		return "max_tokens: Field required"
	}
	var prevUses map[string]bool // tool_use ids of the previous assistant message
	for i, m := range in.Messages {
		at := "messages." + strconv.Itoa(i)
		var blocks []anBlock
		if len(m.Content) > 0 && m.Content[0] == '[' {
			if json.Unmarshal(m.Content, &blocks) != nil {
				return at + ".content: expected an array of content blocks"
			}
		}
		switch m.Role {
		case "assistant":
			prevUses = map[string]bool{}
			for _, b := range blocks {
				if b.Type == "tool_use" {
					prevUses[b.ID] = true
				}
			}
			continue
		case "user":
		default:
			return at + ".role: Input should be 'user' or 'assistant'"
		}
		results := true
		for j, b := range blocks {
			if b.Type != "tool_result" {
				results = false
				continue
			}
			if !results {
				return at + ".content." + strconv.Itoa(j) + ": tool_result blocks must come first in a user message"
			}
			if !prevUses[b.ToolUseID] {
				return at + ".content." + strconv.Itoa(j) + ": unexpected `tool_use_id` found in `tool_result` blocks: " + b.ToolUseID +
					". Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
			}
		}
		prevUses = nil
	}
	return ""
}

func brokenChat(body []byte) string {
	var in struct {
		Messages []struct {
			Role       string `json:"role"`
			ToolCallID string `json:"tool_call_id"`
			ToolCalls  []struct {
				ID string `json:"id"`
			} `json:"tool_calls"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return "the body is not a chat completion request: " + err.Error()
	}
	calls := map[string]bool{}
	for i, m := range in.Messages {
		for _, c := range m.ToolCalls {
			calls[c.ID] = true
		}
		if m.Role == "tool" && !calls[m.ToolCallID] {
			return "messages." + strconv.Itoa(i) + ": messages with role 'tool' must be a response to a preceding message with 'tool_calls'"
		}
	}
	return ""
}

// ruleError is the wire format's 400 error body for a broken rule.
func ruleError(anthropic bool, msg string) string {
	if anthropic {
		return `{"type":"error","error":{"type":"invalid_request_error","message":` + string(mustJSON(msg)) + `}}`
	}
	return `{"error":{"message":` + string(mustJSON(msg)) + `,"type":"invalid_request_error","param":null,"code":null}}`
}
