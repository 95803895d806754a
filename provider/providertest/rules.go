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
// at least 1 (not on count_tokens); no temperature, top_p or top_k from
// version 2026-10-21 on; roles user and assistant; a user message's
// tool_result blocks first in it, each answering a tool_use block of the
// assistant message just before; every thinking block sent back with the
// signature the server gave it (see Signature). With thinking on: no
// tool_choice that forces a tool, temperature 1 if any, no top_k, top_p
// of at least 0.95, a budget of at least 1024 below max_tokens, and the
// assistant turn a tool loop goes on from starting with its thinking.
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
	Type      string  `json:"type"`
	ID        string  `json:"id"`
	ToolUseID string  `json:"tool_use_id"`
	Thinking  *string `json:"thinking"`
	Signature string  `json:"signature"`
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
		Thinking *struct {
			Type         string `json:"type"`
			BudgetTokens int64  `json:"budget_tokens"`
		} `json:"thinking"`
		ToolChoice *struct {
			Type string `json:"type"`
		} `json:"tool_choice"`
		Temperature *float64 `json:"temperature"`
		TopP        *float64 `json:"top_p"`
		TopK        *int64   `json:"top_k"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return "the body is not a Messages request: " + err.Error()
	}
	if path == AnthropicPath && (in.MaxTokens == nil || *in.MaxTokens < 1) {
		return "max_tokens: Field required"
	}
	if h.Get("Anthropic-Version") >= "2026-10-21" {
		for name, set := range map[string]bool{"temperature": in.Temperature != nil, "top_p": in.TopP != nil, "top_k": in.TopK != nil} {
			if set {
				return name + ": Extra inputs are not permitted"
			}
		}
	}
	thinking := in.Thinking != nil && (in.Thinking.Type == "enabled" || in.Thinking.Type == "adaptive")
	if thinking {
		switch {
		case in.ToolChoice != nil && (in.ToolChoice.Type == "any" || in.ToolChoice.Type == "tool"):
			return "Thinking may not be enabled when tool_choice forces tool use."
		case in.Temperature != nil && *in.Temperature != 1:
			return "`temperature` may only be set to 1 when thinking is enabled."
		case in.TopK != nil:
			return "`top_k` is not supported when thinking is enabled."
		case in.TopP != nil && *in.TopP < 0.95:
			return "`top_p` must be between 0.95 and 1 when thinking is enabled."
		case in.Thinking.Type == "enabled" && in.Thinking.BudgetTokens < 1024:
			return "thinking.budget_tokens: Input should be greater than or equal to 1024"
		case in.Thinking.Type == "enabled" && path == AnthropicPath && in.MaxTokens != nil && *in.MaxTokens <= in.Thinking.BudgetTokens:
			return "`max_tokens` must be greater than `thinking.budget_tokens`."
		}
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
			for j, b := range blocks {
				switch b.Type {
				case "tool_use":
					prevUses[b.ID] = true
				case "thinking":
					if b.Thinking == nil || b.Signature != Signature(*b.Thinking) {
						return at + ".content." + strconv.Itoa(j) + ": Invalid `signature` in `thinking` block"
					}
				}
			}
			// The last assistant turn of a tool loop that goes on with
			// thinking must start with its thinking.
			if thinking && i == len(in.Messages)-2 && len(prevUses) > 0 && blocks[0].Type != "thinking" && blocks[0].Type != "redacted_thinking" {
				return at + ".content.0.type: Expected `thinking` or `redacted_thinking`, but found `" + blocks[0].Type +
					"`. When `thinking` is enabled, a final `assistant` message must start with a thinking block."
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
