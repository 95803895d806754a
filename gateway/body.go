package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"github.com/awakend/awakend/edge"
	"github.com/awakend/awakend/internal/jsonscan"
)

// This file reads and rewrites chat completion bodies without decoding
// them: validJSON checks the whole body once, then a scanner walks the
// top-level members and records where the few values the gateway reads
// start and end. The upstream body is the client's bytes with those spans
// replaced, so everything else passes through unchanged.

// span is a half-open byte range of a body; a zero span is absent.
type span struct{ start, end int }

func (s span) ok() bool { return s.end > s.start }

// chatBody is what the gateway reads of a chat completion request.
type chatBody struct {
	raw       []byte
	model     span // the JSON string value
	messages  span // the JSON array value
	stream    bool
	user      span // the JSON string value, if a string
	reasoning bool // a reasoning_effort member is present
	close     int  // index of the object's closing brace

	// sampling holds the members temperature, top_p and top_k, key to
	// value, where present.
	sampling [3]span

	// Other APIs (see parseOther).
	system span // Messages: the system value
	instr  span // Responses: the instructions value
}

// samplingKeys are the members a model's sampling rule is about, in the
// order of chatBody.sampling.
var samplingKeys = [3]string{"temperature", "top_p", "top_k"}

// samplingIndex is the index of key in samplingKeys, -1 if it is not one.
func samplingIndex(key []byte) int {
	switch string(key) {
	case "temperature":
		return 0
	case "top_p":
		return 1
	case "top_k":
		return 2
	}
	return -1
}

// errBodyTooLarge is a request body over the gateway's limit.
var errBodyTooLarge = errors.New("request body too large")

// bodyStart is the most readBody allocates before bytes arrive.
const bodyStart = 32 << 10

// readBody reads r into dst (reusing its capacity) up to limit bytes.
// hint is the announced length (a Content-Length), -1 if unknown; one
// over limit fails at once. The buffer grows as bytes arrive, never
// beyond what they and the limit need: an announced length that no bytes
// follow costs at most bodyStart.
func readBody(dst []byte, r io.Reader, limit, hint int64) ([]byte, error) {
	if hint > limit {
		return dst, errBodyTooLarge
	}
	for {
		if len(dst) == cap(dst) {
			dst = grow(dst, limit, hint)
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if int64(len(dst)) > limit {
			return dst, errBodyTooLarge
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// grow returns a full dst with more room: twice its capacity, at least
// bodyStart, at most hint+1 while the announced length is not reached (+1
// to see EOF without growing) and limit+1 (to see the body go over it).
func grow(dst []byte, limit, hint int64) []byte {
	c := max(2*int64(cap(dst)), bodyStart)
	if hint >= 0 && int64(len(dst)) <= hint {
		c = min(c, hint+1)
	}
	c = min(c, limit+1)
	return append(make([]byte, 0, c), dst...)
}

// parseChat validates b and finds the members the gateway reads. The
// returned error is the answer to the client.
func parseChat(b []byte) (chatBody, *edge.Error) {
	c := chatBody{raw: b}
	if !validJSON(b) {
		return c, edge.NewError(edge.TypeInvalidRequest, "invalid_json", "",
			"We could not parse the JSON body of your request. The body must be a JSON object.")
	}
	it := objectIter{b: b}
	if !it.open() {
		return c, edge.NewError(edge.TypeInvalidRequest, "invalid_json", "", "The body of your request must be a JSON object.")
	}
	seen := 0
	for {
		key, v, ok := it.next()
		if !ok {
			break
		}
		bit := 0
		switch string(key) {
		case "model":
			bit = 1
			if b[v.start] != '"' {
				return c, edge.NewError(edge.TypeInvalidRequest, "invalid_type", "model", "Invalid type for 'model': expected a string.")
			}
			c.model = v
		case "messages":
			bit = 2
			if b[v.start] != '[' {
				return c, edge.NewError(edge.TypeInvalidRequest, "invalid_type", "messages", "Invalid type for 'messages': expected an array of messages.")
			}
			c.messages = v
		case "stream":
			bit = 4
			switch string(b[v.start:v.end]) {
			case "true":
				c.stream = true
			case "false", "null":
			default:
				return c, edge.NewError(edge.TypeInvalidRequest, "invalid_type", "stream", "Invalid type for 'stream': expected a boolean.")
			}
		case "user":
			bit = 8
			if b[v.start] == '"' {
				c.user = v
			}
		case "reasoning_effort":
			bit = 16
			c.reasoning = true
		case "temperature", "top_p", "top_k":
			i := samplingIndex(key)
			bit = 32 << i
			c.sampling[i] = span{it.key, v.end}
		}
		if bit != 0 {
			if seen&bit != 0 {
				return c, edge.NewError(edge.TypeInvalidRequest, "duplicate_key", string(key),
					"The key '"+string(key)+"' appears more than once in the request body.")
			}
			seen |= bit
		}
	}
	c.close = it.i - 1
	if !c.model.ok() || c.model.end-c.model.start == 2 {
		return c, edge.NewError(edge.TypeInvalidRequest, "missing_required_parameter", "model", "You must provide a model parameter.")
	}
	if !c.messages.ok() {
		return c, edge.NewError(edge.TypeInvalidRequest, "missing_required_parameter", "messages", "Missing required parameter: 'messages'.")
	}
	return c, nil
}

// stringValue returns the content of the JSON string at s, decoding
// escapes only when there are any.
func (c *chatBody) stringValue(s span) []byte {
	v := c.raw[s.start+1 : s.end-1]
	if bytes.IndexByte(v, '\\') < 0 {
		return v
	}
	var out string
	if json.Unmarshal(c.raw[s.start:s.end], &out) != nil {
		return v
	}
	return []byte(out)
}

// upstream appends the body to send for one attempt to dst: the client's
// bytes with the model replaced by quotedModel (a JSON string), sysMsg
// (a JSON message object, if any) inserted first in messages, and
// reasoning (a `"reasoning_effort":…` member, if any) added at the end
// when the client sent none.
func (c *chatBody) upstream(dst, quotedModel, sysMsg, reasoning []byte) []byte {
	type edit struct {
		at, end int
		a, b    []byte
	}
	var edits [3]edit
	n := 0
	edits[n] = edit{at: c.model.start, end: c.model.end, a: quotedModel}
	n++
	if len(sysMsg) > 0 {
		at := c.messages.start + 1
		sep := comma
		if jsonscan.SkipSpace(c.raw, at) < len(c.raw) && c.raw[jsonscan.SkipSpace(c.raw, at)] == ']' {
			sep = nil
		}
		edits[n] = edit{at: at, end: at, a: sysMsg, b: sep}
		n++
	}
	if len(reasoning) > 0 && !c.reasoning {
		edits[n] = edit{at: c.close, end: c.close, a: comma, b: reasoning}
		n++
	}
	// At most three edits: sort by position.
	for i := 1; i < n; i++ {
		for j := i; j > 0 && edits[j].at < edits[j-1].at; j-- {
			edits[j], edits[j-1] = edits[j-1], edits[j]
		}
	}
	size := len(c.raw)
	for _, e := range edits[:n] {
		size += len(e.a) + len(e.b) - (e.end - e.at)
	}
	if cap(dst)-len(dst) < size {
		dst = append(make([]byte, 0, len(dst)+size), dst...)
	}
	prev := 0
	for _, e := range edits[:n] {
		dst = append(dst, c.raw[prev:e.at]...)
		dst = append(dst, e.a...)
		dst = append(dst, e.b...)
		prev = e.end
	}
	return append(dst, c.raw[prev:]...)
}

var comma = []byte{','}

// objectIter walks the members of a JSON object. It never reads out of
// bounds and always ends, whatever the input; on valid JSON it finds
// exactly the object's members.
type objectIter struct {
	b   []byte
	i   int
	key int // where the last member returned starts: its key's quote
}

// open moves past the object's opening brace; false if there is none.
func (it *objectIter) open() bool {
	it.i = jsonscan.SkipSpace(it.b, it.i)
	if it.i >= len(it.b) || it.b[it.i] != '{' {
		return false
	}
	it.i++
	return true
}

// next returns the next member's key (escapes decoded) and value span,
// or false after the last one. After the last member it.i is just past
// the closing brace.
func (it *objectIter) next() (key []byte, v span, ok bool) {
	b := it.b
	i := jsonscan.SkipSpace(b, it.i)
	if i < len(b) && b[i] == ',' {
		i = jsonscan.SkipSpace(b, i+1)
	}
	if i >= len(b) || b[i] != '"' {
		if i < len(b) && b[i] == '}' {
			i++
		}
		it.i = i
		return nil, span{}, false
	}
	it.key = i
	end, esc, _ := jsonscan.String(b, i)
	key = b[i+1 : max(end-1, i+1)]
	if esc {
		var s string
		if json.Unmarshal(b[i:end], &s) == nil {
			key = []byte(s)
		}
	}
	i = jsonscan.SkipSpace(b, end)
	if i < len(b) && b[i] == ':' {
		i = jsonscan.SkipSpace(b, i+1)
	}
	if i >= len(b) {
		it.i = i
		return nil, span{}, false
	}
	vend, _ := jsonscan.Value(b, i)
	it.i = vend
	return key, span{i, vend}, true
}

// usage finds the token counts of a chat.completion JSON body: the
// top-level usage object's prompt_tokens and completion_tokens (or
// input_tokens and output_tokens, as Anthropic's message and a Responses
// API response name them). ok is false when the body has no usage.
//
// Every served answer goes through here, so the common shape is read
// first and cheaply: a body without "usage" anywhere has none, and a
// usage member that ends the body (where OpenAI, Anthropic and the
// Responses API put it) is read without scanning what comes before.
func usage(b []byte) (prompt, completion int, ok bool) {
	i := lastUsageKey(b)
	if i < 0 {
		return 0, 0, false
	}
	// A key: after the object's '{' or a ',' (an unescaped quote there
	// cannot be inside a string), and followed by an object that the
	// body's closing brace ends.
	if j := lastNonSpace(b, i); j >= 0 && (b[j] == ',' || b[j] == '{') {
		k := jsonscan.SkipSpace(b, i+len(usageKey))
		if k < len(b) && b[k] == ':' {
			k = jsonscan.SkipSpace(b, k+1)
			if k < len(b) && b[k] == '{' {
				if p, c, end := usageCounts(b, k); string(bytes.TrimSpace(b[end:])) == "}" {
					return p, c, p >= 0 && c >= 0
				}
			}
		}
	}
	it := objectIter{b: b}
	if !it.open() {
		return 0, 0, false
	}
	for {
		key, v, more := it.next()
		if !more {
			return 0, 0, false
		}
		if string(key) == "usage" && b[v.start] == '{' {
			p, c, _ := usageCounts(b[:v.end], v.start)
			return p, c, p >= 0 && c >= 0
		}
	}
}

// lastUsageKey is the index of the last `"usage"` in b, or -1. It jumps
// from quote to quote backwards: the usage member is near the end of an
// answer, and there are few quotes after it.
func lastUsageKey(b []byte) int {
	for j := len(b); ; {
		i := bytes.LastIndexByte(b[:j], '"')
		if i < 0 {
			return -1
		}
		if bytes.HasPrefix(b[i:], usageKey) {
			return i
		}
		j = i
	}
}

// usageCounts reads the token counts of the usage object that starts at
// b[i] (-1 for one it lacks) and returns the index just past the object.
func usageCounts(b []byte, i int) (prompt, completion, end int) {
	u := objectIter{b: b, i: i}
	u.open()
	prompt, completion = -1, -1
	for {
		k, uv, more := u.next()
		if !more {
			return prompt, completion, u.i
		}
		switch string(k) {
		case "prompt_tokens", "input_tokens":
			prompt = atoi(b[uv.start:uv.end])
		case "completion_tokens", "output_tokens":
			completion = atoi(b[uv.start:uv.end])
		}
	}
}

// atoi parses a non-negative decimal integer, -1 if it is not one.
func atoi(b []byte) int {
	if len(b) == 0 || len(b) > 18 {
		return -1
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}
