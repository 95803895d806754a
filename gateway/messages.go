package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/awakend/awakend/anthropic"
	"github.com/awakend/awakend/edge"
	"github.com/awakend/awakend/internal/jsonscan"
	"github.com/awakend/awakend/internal/sse"
	"github.com/awakend/awakend/provider"
)

// This file serves the APIs other than chat completions: Anthropic's
// Messages API and count_tokens (passed through to an upstream that
// speaks it, translated to chat completions for any other), and OpenAI's
// embeddings and Responses API (passed through where the upstream speaks
// them, refused elsewhere).

// other serves POST /v1/messages, /v1/messages/count_tokens,
// /v1/embeddings and /v1/responses, of API rs.api.
func (g *Gateway) other(w http.ResponseWriter, r *http.Request, t *table, rs *reqState) {
	if !g.read(w, r, rs) {
		return
	}
	body, perr := parseOther(rs.in, rs.api)
	if perr != nil {
		g.fail(w, rs, http.StatusBadRequest, perr)
		return
	}
	rs.stream = body.stream
	rt := g.lookup(w, rs, t, body.stringValue(body.model))
	if rt == nil || !g.admit(w, rs) {
		return
	}
	if rs.anthropic {
		rs.fwd = forwarded(r.Header)
	}
	g.dispatch(w, r, rs, rt, &body)
}

// forwarded picks the headers of a Messages request that an upstream
// speaking Messages gets as they are: the API version its body was
// written for, and the beta features it asks for.
func forwarded(h http.Header) http.Header {
	var out http.Header
	for _, k := range [...]string{"Anthropic-Version", "Anthropic-Beta"} {
		if v := h[k]; len(v) > 0 {
			if out == nil {
				out = make(http.Header, 2)
			}
			out[k] = v
		}
	}
	return out
}

// parseOther validates b, a request of api, and finds the members the
// gateway reads: model; stream (Messages, Responses); messages, system,
// and metadata.user_id as the session key (Messages, count_tokens); user
// (embeddings, Responses); instructions (Responses). The returned error is
// the answer to the client.
func parseOther(b []byte, api provider.API) (chatBody, *edge.Error) {
	c := chatBody{raw: b}
	if !validJSON(b) {
		return c, edge.NewError(edge.TypeInvalidRequest, "invalid_json", "",
			"We could not parse the JSON body of your request. The body must be a JSON object.")
	}
	it := objectIter{b: b}
	if !it.open() {
		return c, edge.NewError(edge.TypeInvalidRequest, "invalid_json", "", "The body of your request must be a JSON object.")
	}
	anthropicAPI := api == provider.APIMessages || api == provider.APICountTokens
	seen := map[string]bool{}
	for {
		key, v, ok := it.next()
		if !ok {
			break
		}
		k := string(key)
		switch {
		case k == "model":
			if b[v.start] != '"' {
				return c, edge.NewError(edge.TypeInvalidRequest, "invalid_type", "model", "Invalid type for 'model': expected a string.")
			}
			c.model = v
		case k == "stream" && (api == provider.APIMessages || api == provider.APIResponses):
			switch string(b[v.start:v.end]) {
			case "true":
				c.stream = true
			case "false", "null":
			default:
				return c, edge.NewError(edge.TypeInvalidRequest, "invalid_type", "stream", "Invalid type for 'stream': expected a boolean.")
			}
		case k == "messages" && anthropicAPI:
			if b[v.start] != '[' {
				return c, edge.NewError(edge.TypeInvalidRequest, "invalid_type", "messages", "messages: expected an array of messages.")
			}
			c.messages = v
		case k == "system" && anthropicAPI:
			if b[v.start] != '"' && b[v.start] != '[' && b[v.start] != 'n' {
				return c, edge.NewError(edge.TypeInvalidRequest, "invalid_type", "system", "system: expected a string or an array of text blocks.")
			}
			c.system = v
		case k == "metadata" && anthropicAPI:
			if b[v.start] == '{' {
				m := objectIter{b: b[:v.end], i: v.start}
				m.open()
				for {
					mk, mv, more := m.next()
					if !more {
						break
					}
					if string(mk) == "user_id" && b[mv.start] == '"' {
						c.user = mv
					}
				}
			}
		case k == "user" && !anthropicAPI:
			if b[v.start] == '"' {
				c.user = v
			}
		case k == "instructions" && api == provider.APIResponses:
			c.instr = v
		case samplingIndex(key) >= 0 && (anthropicAPI || api == provider.APIResponses && k != "top_k"):
			c.sampling[samplingIndex(key)] = span{it.key, v.end}
		default:
			continue
		}
		if seen[k] {
			return c, edge.NewError(edge.TypeInvalidRequest, "duplicate_key", k,
				"The key '"+k+"' appears more than once in the request body.")
		}
		seen[k] = true
	}
	c.close = it.i - 1
	if !c.model.ok() || c.model.end-c.model.start == 2 {
		return c, edge.NewError(edge.TypeInvalidRequest, "missing_required_parameter", "model", "model: Field required")
	}
	if anthropicAPI && !c.messages.ok() {
		return c, edge.NewError(edge.TypeInvalidRequest, "missing_required_parameter", "messages", "messages: Field required")
	}
	return c, nil
}

// edit replaces raw[at:end] with a and then b.
type edit struct {
	at, end int
	a, b    []byte
}

// splice returns raw with edits applied; they are in order and do not
// overlap.
func splice(raw []byte, edits []edit) []byte {
	size := len(raw)
	for _, e := range edits {
		size += len(e.a) + len(e.b) - (e.end - e.at)
	}
	out := make([]byte, 0, size)
	prev := 0
	for _, e := range edits {
		out = append(out, raw[prev:e.at]...)
		out = append(out, e.a...)
		out = append(out, e.b...)
		prev = e.end
	}
	return append(out, raw[prev:]...)
}

// messagesUpstream is the Messages (or count_tokens) body passed through
// to an upstream that speaks it: the client's bytes with the model
// replaced by quotedModel and, for an agent, its system prompt (a JSON
// string) as the first system text block.
func (c *chatBody) messagesUpstream(quotedModel, system []byte) []byte {
	edits := make([]edit, 0, 2)
	model := edit{at: c.model.start, end: c.model.end, a: quotedModel}
	var sys edit
	if len(system) > 0 {
		block := make([]byte, 0, len(system)+32)
		block = append(block, `{"type":"text","text":`...)
		block = append(block, system...)
		block = append(block, '}')
		switch {
		case !c.system.ok():
			sys = edit{at: c.close, end: c.close, a: []byte(`,"system":`), b: system}
		case c.raw[c.system.start] == 'n': // null
			sys = edit{at: c.system.start, end: c.system.end, a: system}
		case c.raw[c.system.start] == '"':
			v := make([]byte, 0, len(block)+c.system.end-c.system.start+32)
			v = append(v, '[')
			v = append(v, block...)
			v = append(v, `,{"type":"text","text":`...)
			v = append(v, c.raw[c.system.start:c.system.end]...)
			v = append(v, "}]"...)
			sys = edit{at: c.system.start, end: c.system.end, a: v}
		default: // an array of blocks
			at := c.system.start + 1
			var sep []byte
			if i := jsonscan.SkipSpace(c.raw, at); i < len(c.raw) && c.raw[i] != ']' {
				sep = comma
			}
			sys = edit{at: at, end: at, a: block, b: sep}
		}
	}
	if sys.a != nil && sys.at < model.at {
		edits = append(edits, sys, model)
	} else {
		edits = append(edits, model)
		if sys.a != nil {
			edits = append(edits, sys)
		}
	}
	return splice(c.raw, edits)
}

// passUpstream is an embeddings or Responses body passed through: the
// client's bytes with the model replaced by quotedModel and, when the
// client sent no instructions, the agent's system prompt (a JSON string,
// if any) as instructions.
func (c *chatBody) passUpstream(quotedModel, instructions []byte) []byte {
	edits := []edit{{at: c.model.start, end: c.model.end, a: quotedModel}}
	switch {
	case len(instructions) == 0:
	case !c.instr.ok():
		edits = append(edits, edit{at: c.close, end: c.close, a: []byte(`,"instructions":`), b: instructions})
	case c.raw[c.instr.start] == 'n': // null
		in := edit{at: c.instr.start, end: c.instr.end, a: instructions}
		if in.at < edits[0].at {
			edits = []edit{in, edits[0]}
		} else {
			edits = append(edits, in)
		}
	}
	return splice(c.raw, edits)
}

// unsupported is the failure of a target whose provider does not serve
// api: a 400 that names the adapter.
func unsupported(tg *target, api provider.API) *provider.Error {
	return &provider.Error{Class: provider.ClassInvalidRequest, Type: edge.TypeInvalidRequest, Code: "unsupported_api",
		Message: "The model '" + tg.modelID + "' is served by provider '" + tg.providerID + "' (adapter " + tg.caller.Name() +
			"), which does not serve " + api.String() + "; " + api.String() + " need an openai provider" + mockToo(api) + "."}
}

func mockToo(api provider.API) string {
	if api == provider.APIEmbeddings {
		return " or the mock adapter"
	}
	return ""
}

// attemptMessages calls one target with a Messages or count_tokens
// request: passed through to an upstream that speaks it, translated to a
// chat completion otherwise.
func (g *Gateway) attemptMessages(ctx context.Context, w http.ResponseWriter, rs *reqState, rt *route, tg *target, body *chatBody) outcome {
	native := tg.caller.Serves(rs.api)
	req := provider.Request{API: rs.api, UpstreamModel: tg.upstreamName, Stream: body.stream, RequestID: rs.id}
	conv := convNone
	if native {
		req.Body = body.messagesUpstream(tg.upstream, rt.sysText)
		req.Header = rs.fwd
	} else {
		o := anthropic.Options{Model: tg.upstreamName, System: rt.system, Effort: rt.effortLevel}
		conv = convMessage
		if rs.api == provider.APICountTokens {
			o.MaxTokens, o.NoStream = 1, true
			conv = convCount
		}
		b, stream, terr := anthropic.ToChat(body.raw, o)
		if terr != nil {
			return failed(&provider.Error{Class: provider.ClassInvalidRequest, Type: edge.TypeInvalidRequest, Code: "untranslatable", Message: terr.Message})
		}
		req.API, req.Body, req.Stream = provider.APIChat, b, stream
	}
	return g.call(ctx, rs, tg, &req,
		func(resp *provider.Response) outcome {
			if !native {
				resp.Body = anthropic.NewStream(resp.Body)
			}
			return g.relay(ctx, w, rs, rt, tg, resp)
		},
		func(resp *provider.Response) outcome { return g.forwardAs(ctx, w, rs, rt, tg, resp, conv) })
}

// attemptPass calls one target with an embeddings or Responses request,
// passed through.
func (g *Gateway) attemptPass(ctx context.Context, w http.ResponseWriter, rs *reqState, rt *route, tg *target, body *chatBody) outcome {
	var instructions []byte
	if rs.api == provider.APIResponses {
		instructions = rt.sysText
	}
	req := provider.Request{API: rs.api, Body: body.passUpstream(tg.upstream, instructions), UpstreamModel: tg.upstreamName,
		Stream: body.stream, RequestID: rs.id}
	return g.call(ctx, rs, tg, &req,
		func(resp *provider.Response) outcome { return g.relay(ctx, w, rs, rt, tg, resp) },
		func(resp *provider.Response) outcome { return g.forward(ctx, w, rs, rt, tg, resp) })
}

// Conversions of a non-stream answer before it is forwarded.
type conversion uint8

const (
	convNone    conversion = iota
	convMessage            // chat.completion → Anthropic message
	convCount              // chat.completion → count_tokens answer
)

// forwardAs is forward, the answer converted first.
func (g *Gateway) forwardAs(ctx context.Context, w http.ResponseWriter, rs *reqState, rt *route, tg *target, resp *provider.Response, conv conversion) outcome {
	if conv == convNone {
		return g.forward(ctx, w, rs, rt, tg, resp)
	}
	b, err := readBody(nil, resp.Body, maxAnswer, -1)
	resp.Body.Close()
	if err != nil {
		if ctx.Err() != nil {
			return ended(ctx, err)
		}
		return failed(&provider.Error{Class: provider.ClassServer, Message: "reading the upstream answer failed: " + err.Error()})
	}
	var terr *anthropic.Error
	if conv == convCount {
		b, terr = anthropic.CountFromChat(b)
	} else {
		b, terr = anthropic.FromChat(b)
	}
	if terr != nil {
		return failed(&provider.Error{Class: provider.ClassServer, Message: terr.Message})
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.Header["Content-Type"] = jsonContentType
	return g.forward(ctx, w, rs, rt, tg, resp)
}

// relay forwards a stream of Anthropic's or the Responses API's events,
// each written whole and flushed, as stream does for chat completions.
// The stream ends after its last event (message_stop; response.completed,
// response.failed or response.incomplete) or an error event, forwarded;
// any other end fails over before the first event and is told in one
// error event after it.
func (g *Gateway) relay(ctx context.Context, w http.ResponseWriter, rs *reqState, rt *route, tg *target, resp *provider.Response) outcome {
	defer resp.Body.Close()
	rd := getSSE(resp.Body)
	defer putSSE(rd)
	rc := http.NewResponseController(w)
	written, data := false, false
	for {
		ev, err := rd.Next()
		if len(ev) == 0 || err != nil && err != io.EOF {
			if ctx.Err() != nil {
				return ended(ctx, err)
			}
			msg := "the upstream stream ended before its last event"
			if err != nil && err != io.EOF {
				msg = "the upstream stream failed: " + err.Error()
			}
			if !written {
				return failed(&provider.Error{Class: provider.ClassServer, Message: msg})
			}
			g.relayError(w, rc, rs, msg)
			return outcome{committed: true, msg: msg}
		}
		if !written {
			g.startStream(w, resp, rs, rt, tg)
			written = true
		}
		typ := eventType(ev)
		if !data && ev[0] != ':' && typ != "ping" {
			data = true
			rs.ttft = g.now().Sub(rs.start)
			tg.ttft.Observe(rs.ttft.Seconds())
		}
		last, failed := false, typ == "error"
		switch typ {
		case "message_stop", "response.completed", "response.failed", "response.incomplete":
			last = true
		}
		eventUsage(rs, typ, ev)
		if failed {
			ev = tg.caller.Redact(ev)
		}
		if _, werr := w.Write(ev); werr != nil {
			return outcome{gone: true, msg: "writing to the client failed"}
		}
		if rc.Flush() != nil {
			return outcome{gone: true, msg: "writing to the client failed"}
		}
		if last {
			return outcome{}
		}
		if failed {
			rs.errMsg = "the upstream stream sent an error event"
			return outcome{committed: true, msg: rs.errMsg}
		}
	}
}

// relayError ends a committed stream of rs.api with an error event.
func (g *Gateway) relayError(w http.ResponseWriter, rc *http.ResponseController, rs *reqState, msg string) {
	rs.errMsg = msg
	var ev []byte
	if rs.anthropic {
		ev = anthropic.ErrorEvent("api_error", msg)
	} else {
		b, _ := json.Marshal(struct {
			Type    string  `json:"type"`
			Code    string  `json:"code"`
			Message string  `json:"message"`
			Param   *string `json:"param"`
		}{"error", "upstream_stream_error", msg, nil})
		ev = append(append([]byte("event: error\ndata: "), b...), "\n\n"...)
	}
	_, _ = w.Write(ev)
	_ = rc.Flush()
}

// eventType is the type of the event ev: its event field, else the type
// member of its data.
func eventType(ev []byte) string {
	rest := ev
	for len(rest) > 0 {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		if v, ok := bytes.CutPrefix(bytes.TrimRight(line, "\r"), []byte("event:")); ok {
			return string(bytes.TrimSpace(v))
		}
	}
	var d struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(sse.Data(nil, ev), &d) == nil {
		return d.Type
	}
	return ""
}

// eventUsage records the token counts a stream event reports: Anthropic's
// message_start (input) and message_delta (output, and input when given),
// the Responses API's last event.
func eventUsage(rs *reqState, typ string, ev []byte) {
	var u struct {
		InputTokens  *int `json:"input_tokens"`
		OutputTokens *int `json:"output_tokens"`
	}
	var d struct {
		Message  struct{ Usage json.RawMessage } `json:"message"`
		Response struct{ Usage json.RawMessage } `json:"response"`
		Usage    json.RawMessage                 `json:"usage"`
	}
	switch typ {
	case "message_start", "message_delta", "response.completed", "response.incomplete":
	default:
		return
	}
	if json.Unmarshal(sse.Data(nil, ev), &d) != nil {
		return
	}
	raw := d.Usage
	if typ == "message_start" {
		raw = d.Message.Usage
	} else if len(raw) == 0 {
		raw = d.Response.Usage
	}
	if json.Unmarshal(raw, &u) != nil {
		return
	}
	if u.InputTokens != nil && (*u.InputTokens > 0 || rs.promptTokens < 0) {
		rs.promptTokens = *u.InputTokens
	}
	if u.OutputTokens != nil {
		rs.completionTokens = *u.OutputTokens
	}
	if rs.promptTokens >= 0 && rs.completionTokens < 0 {
		rs.completionTokens = 0
	}
}

// sampled reports which sampling members body has, by name.
func (c *chatBody) sampled() []string {
	var names []string
	for i, s := range c.sampling {
		if s.ok() {
			names = append(names, samplingKeys[i])
		}
	}
	return names
}

// withoutSampling returns body with its sampling members removed, parsed
// again as a request of api.
func withoutSampling(body *chatBody, api provider.API) (*chatBody, *edge.Error) {
	edits := make([]edit, 0, 3)
	for _, s := range body.sampling {
		if !s.ok() {
			continue
		}
		// The member goes with the comma after it, or else the one before.
		at, end := s.start, s.end
		if j := jsonscan.SkipSpace(body.raw, end); j < len(body.raw) && body.raw[j] == ',' {
			end = j + 1
		} else if k := lastNonSpace(body.raw, at); k >= 0 && body.raw[k] == ',' {
			at = k
		}
		edits = append(edits, edit{at: at, end: end})
	}
	slices.SortFunc(edits, func(a, b edit) int { return a.at - b.at })
	raw := splice(body.raw, edits)
	var c chatBody
	var err *edge.Error
	if api == provider.APIChat {
		c, err = parseChat(raw)
	} else {
		c, err = parseOther(raw, api)
	}
	return &c, err
}

// lastNonSpace is the index of the last byte before i that is not JSON
// white space, -1 if none.
func lastNonSpace(b []byte, i int) int {
	for i--; i >= 0; i-- {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
		default:
			return i
		}
	}
	return -1
}

// refusedSampling is the failure of a target whose model refuses the
// sampling parameters the request has.
func refusedSampling(tg *target, names []string) *provider.Error {
	return &provider.Error{Class: provider.ClassInvalidRequest, Type: edge.TypeInvalidRequest, Code: "unsupported_parameter",
		Message: "The model '" + tg.modelID + "' does not accept " + strings.Join(names, ", ") + " (its sampling rule is refuse); send the request without them."}
}
