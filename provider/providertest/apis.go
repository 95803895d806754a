package providertest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash/fnv"
	"strconv"
	"strings"
	"time"
)

// countTokens answers count_tokens: the words of the system text and the
// messages.
func countTokens(body []byte) string {
	var in struct {
		System   json.RawMessage `json:"system"`
		Messages []struct {
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	_ = json.Unmarshal(body, &in)
	n := words(in.System)
	for _, m := range in.Messages {
		n += words(m.Content)
	}
	return `{"input_tokens":` + strconv.Itoa(n) + `}`
}

// embeddings answers an embeddings request: a vector of 4 components per
// input, each from a hash of the input, so that equal inputs get equal
// vectors.
func embeddings(body []byte, model string) string {
	var in struct {
		Input json.RawMessage `json:"input"`
	}
	_ = json.Unmarshal(body, &in)
	var inputs []string
	var one string
	if json.Unmarshal(in.Input, &one) == nil {
		inputs = []string{one}
	} else {
		_ = json.Unmarshal(in.Input, &inputs)
	}
	var b strings.Builder
	b.WriteString(`{"object":"list","data":[`)
	n := 0
	for i, s := range inputs {
		n += len(strings.Fields(s))
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"object":"embedding","index":` + strconv.Itoa(i) + `,"embedding":[`)
		for j := range 4 {
			h := fnv.New32a()
			h.Write([]byte(s))
			h.Write([]byte{byte(j)})
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatFloat(float64(h.Sum32())/float64(1<<32), 'g', 6, 64))
		}
		b.WriteString(`]}`)
	}
	b.WriteString(`],"model":` + string(mustJSON(model)) + `,"usage":{"prompt_tokens":` + strconv.Itoa(n) + `,"total_tokens":` + strconv.Itoa(n) + `}}`)
	return b.String()
}

// responseObject is a Responses API response whose output is one message
// of text.
func responseObject(id, model, text string, prompt int, status string) string {
	out := `[]`
	usage := `null`
	if status == "completed" {
		out = `[{"type":"message","id":"msg_` + id + `","status":"completed","role":"assistant","content":[{"type":"output_text","text":` +
			string(mustJSON(text)) + `,"annotations":[]}]}]`
		c := len(strings.Fields(text))
		usage = `{"input_tokens":` + strconv.Itoa(prompt) + `,"input_tokens_details":{"cached_tokens":0},"output_tokens":` + strconv.Itoa(c) +
			`,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":` + strconv.Itoa(prompt+c) + `}`
	}
	return `{"id":"resp_` + id + `","object":"response","created_at":` + strconv.FormatInt(time.Now().Unix(), 10) + `,"status":"` + status +
		`","model":` + string(mustJSON(model)) + `,"output":` + out + `,"usage":` + usage + `}`
}

// responseEvents is a Responses API stream: response.created, a text
// delta per word, response.completed.
func responseEvents(id, model, text string, prompt int) string {
	var b strings.Builder
	seq := 0
	ev := func(typ, data string) {
		b.WriteString("event: " + typ + "\ndata: {\"type\":\"" + typ + "\",\"sequence_number\":" + strconv.Itoa(seq) + "," + data + "}\n\n")
		seq++
	}
	ev("response.created", `"response":`+responseObject(id, model, text, prompt, "in_progress"))
	for _, w := range split(text) {
		ev("response.output_text.delta", `"item_id":"msg_`+id+`","output_index":0,"content_index":0,"delta":`+string(mustJSON(w)))
	}
	ev("response.completed", `"response":`+responseObject(id, model, text, prompt, "completed"))
	return b.String()
}

// Signature is the signature the server gives a thinking block of the
// text thinking, and checks on every thinking block it is sent back: a
// block whose thinking or signature changed on the way is refused, as the
// real API refuses it.
func Signature(thinking string) string {
	sum := sha256.Sum256([]byte(thinking))
	return "sig_" + hex.EncodeToString(sum[:16])
}

// thinkingOn reports whether a Messages request enables thinking.
func thinkingOn(body []byte) bool {
	var in struct {
		Thinking *struct {
			Type string `json:"type"`
		} `json:"thinking"`
	}
	_ = json.Unmarshal(body, &in)
	return in.Thinking != nil && (in.Thinking.Type == "enabled" || in.Thinking.Type == "adaptive")
}

// anthropicReply is a Messages answer with a thinking block (when thinking
// is on), the reply's text, and its tool call, as a message or a stream.
func anthropicReply(wf wire, r Reply, thinking, stream bool) string {
	type block struct {
		Type      string          `json:"type"`
		Text      *string         `json:"text,omitempty"`
		Thinking  *string         `json:"thinking,omitempty"`
		Signature string          `json:"signature,omitempty"`
		ID        string          `json:"id,omitempty"`
		Name      string          `json:"name,omitempty"`
		Input     json.RawMessage `json:"input,omitempty"`
	}
	var blocks []block
	if thinking && r.Thinking != "" {
		t := r.Thinking
		blocks = append(blocks, block{Type: "thinking", Thinking: &t, Signature: Signature(t)})
	}
	if r.Text != "" {
		t := r.Text
		blocks = append(blocks, block{Type: "text", Text: &t})
	}
	stop := "end_turn"
	if c := r.ToolCall; c != nil {
		blocks = append(blocks, block{Type: "tool_use", ID: c.ID, Name: c.Name, Input: json.RawMessage(c.Input)})
		stop = "tool_use"
	}
	if !stream {
		return `{"id":"` + wf.id + `","type":"message","role":"assistant","model":` + string(mustJSON(wf.model)) + `,"content":` +
			string(mustJSON(blocks)) + `,"stop_reason":"` + stop + `","stop_sequence":null,"usage":{"input_tokens":` +
			strconv.Itoa(wf.prompt) + `,"output_tokens":7}}`
	}
	var b strings.Builder
	ev := func(data string) {
		var v struct{ Type string }
		_ = json.Unmarshal([]byte(data), &v)
		b.WriteString("event: " + v.Type + "\ndata: " + data + "\n\n")
	}
	ev(`{"type":"message_start","message":{"id":"` + wf.id + `","type":"message","role":"assistant","content":[],"model":` + string(mustJSON(wf.model)) +
		`,"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":` + strconv.Itoa(wf.prompt) + `,"output_tokens":1}}}`)
	for i, bl := range blocks {
		idx := strconv.Itoa(i)
		switch bl.Type {
		case "thinking":
			ev(`{"type":"content_block_start","index":` + idx + `,"content_block":{"type":"thinking","thinking":"","signature":""}}`)
			for _, w := range split(*bl.Thinking) {
				ev(`{"type":"content_block_delta","index":` + idx + `,"delta":{"type":"thinking_delta","thinking":` + string(mustJSON(w)) + `}}`)
			}
			ev(`{"type":"content_block_delta","index":` + idx + `,"delta":{"type":"signature_delta","signature":` + string(mustJSON(bl.Signature)) + `}}`)
		case "text":
			ev(`{"type":"content_block_start","index":` + idx + `,"content_block":{"type":"text","text":""}}`)
			for _, w := range split(*bl.Text) {
				ev(`{"type":"content_block_delta","index":` + idx + `,"delta":{"type":"text_delta","text":` + string(mustJSON(w)) + `}}`)
			}
		case "tool_use":
			ev(`{"type":"content_block_start","index":` + idx + `,"content_block":{"type":"tool_use","id":` + string(mustJSON(bl.ID)) +
				`,"name":` + string(mustJSON(bl.Name)) + `,"input":{}}}`)
			ev(`{"type":"content_block_delta","index":` + idx + `,"delta":{"type":"input_json_delta","partial_json":` + string(mustJSON(string(bl.Input))) + `}}`)
		}
		ev(`{"type":"content_block_stop","index":` + idx + `}`)
	}
	ev(`{"type":"message_delta","delta":{"stop_reason":"` + stop + `","stop_sequence":null},"usage":{"output_tokens":7}}`)
	ev(`{"type":"message_stop"}`)
	return b.String()
}
