package providertest

import (
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
