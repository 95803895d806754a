// Package providertest runs an in-process upstream LLM server for tests
// and benchmarks of awakend's providers and gateway. It speaks OpenAI's
// chat completions (POST /v1/chat/completions: JSON, or SSE with data:
// framing, the include_usage chunk and data: [DONE]) and Anthropic's
// Messages API (POST /v1/messages: JSON, or SSE with event: lines), and
// each answer can be programmed: status codes and headers such as
// Retry-After, a delay before the headers and between chunks, a stream
// held until the test releases it, a stream that breaks. It records what
// it receives and counts requests in flight, cancelled requests and open
// connections.
//
//	srv := providertest.NewServer(t)
//	srv.Enqueue(providertest.Reply{Status: 429, Header: http.Header{"Retry-After": {"2"}}})
//	spec := registry.ProviderSpec{ID: "p", Adapter: "openai", BaseURL: srv.OpenAIURL()}
package providertest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultText is the assistant's answer when a Reply sets no Text.
const DefaultText = "Hello from the providertest upstream."

// Paths the server answers.
const (
	OpenAIPath      = "/v1/chat/completions"
	AnthropicPath   = "/v1/messages"
	CountTokensPath = "/v1/messages/count_tokens"
	EmbeddingsPath  = "/v1/embeddings"
	ResponsesPath   = "/v1/responses"
)

// Break is how a stream ends early.
type Break int

// Ways for a stream to break.
const (
	// BreakNone lets the stream finish.
	BreakNone Break = iota
	// BreakAbort drops the connection, as a crashed upstream would.
	BreakAbort
	// BreakError sends the wire format's in-band error event (OpenAI:
	// data: {"error": …}; Anthropic: event: error with overloaded_error)
	// and ends the stream.
	BreakError
)

// Reply programs the answer to one request. The zero Reply is a 200 with
// DefaultText, in the wire format and mode (JSON or stream) the request
// asked for.
type Reply struct {
	// Status is the HTTP status; 0 means 200. A status of 300 or more gets
	// the wire format's error envelope unless Body is set.
	Status int
	// Header is added to the response, for example Retry-After.
	Header http.Header
	// Body, when set, is sent verbatim instead of a generated body. For a
	// stream it is split into events at blank lines, and ChunkDelay, Hold
	// and Break apply between them as between generated chunks.
	Body string
	// Text is the assistant's answer; empty means DefaultText.
	Text string
	// Chunks are the stream's text pieces; nil splits Text into words,
	// each with the space before it.
	Chunks []string
	// HeaderDelay passes before the status line and headers are sent.
	HeaderDelay time.Duration
	// ChunkDelay passes before each text chunk but the first.
	ChunkDelay time.Duration
	// Hold, when set, is received from before each text chunk but the
	// first: the stream stays held, headers and first chunk sent, until
	// the test sends a value (one more chunk) or closes it (all of them).
	Hold <-chan struct{}
	// Break ends the stream after BreakAfter text chunks.
	Break      Break
	BreakAfter int
	// Thinking, on the Messages API, starts the answer with a thinking
	// block of this text, signed with Signature, when the request enables
	// thinking.
	Thinking string
	// ToolCall, on the Messages API, ends the answer with this tool_use
	// block (stop_reason tool_use) after Text, if any.
	ToolCall *ToolCall
}

// ToolCall is a tool call an answer makes.
type ToolCall struct {
	ID, Name string
	Input    string // a JSON object
}

// Request is a request the server received.
type Request struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
	// Model and Stream are read from the body.
	Model  string
	Stream bool
}

// Stats counts what the server saw.
type Stats struct {
	// Requests counts the requests received.
	Requests int
	// InFlight counts the requests being answered.
	InFlight int
	// Canceled counts the requests whose client went away before the
	// answer was complete.
	Canceled int
	// Conns counts the open client connections.
	Conns int
}

// Server is an upstream LLM server on a loopback port.
type Server struct {
	// URL is the server's base URL, http://127.0.0.1:port.
	URL string

	srv  *httptest.Server
	quit chan struct{}
	once sync.Once

	mu      sync.Mutex
	respond func(*Request) Reply
	queue   []Reply
	reqs    []Request // a ring of the last MaxRecorded requests
	oldest  int       // index of the oldest request in reqs once full
	stats   Stats
	changed chan struct{}
	seq     int
}

// NewServer starts a server. With a non-nil tb it is closed when the test
// or benchmark ends; otherwise the caller closes it.
func NewServer(tb testing.TB) *Server {
	s := &Server{quit: make(chan struct{}), changed: make(chan struct{})}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Config.ConnState = s.connState
	s.srv.Start()
	s.URL = s.srv.URL
	if tb != nil {
		tb.Cleanup(s.Close)
	}
	return s
}

// OpenAIURL is the base_url of an openai provider served by s.
func (s *Server) OpenAIURL() string { return s.URL + "/v1" }

// AnthropicURL is the base_url of an anthropic provider served by s.
func (s *Server) AnthropicURL() string { return s.URL }

// Close releases held streams and delays, and shuts the server down.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.quit)
		s.srv.Close()
	})
}

// Respond sets how requests are answered once the queue of Enqueue is
// empty. The function may be called concurrently.
func (s *Server) Respond(f func(*Request) Reply) {
	s.mu.Lock()
	s.respond = f
	s.mu.Unlock()
}

// Enqueue adds replies for the next requests, one each, in order, before
// Respond's function answers again.
func (s *Server) Enqueue(r ...Reply) {
	s.mu.Lock()
	s.queue = append(s.queue, r...)
	s.mu.Unlock()
}

// MaxRecorded is how many requests the server keeps for Requests: the
// most recent ones, so that long benchmarks run in bounded memory.
const MaxRecorded = 1000

// Requests returns the requests received so far, oldest first; at most
// the last MaxRecorded of them (Stats counts them all).
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, 0, len(s.reqs))
	out = append(out, s.reqs[s.oldest:]...)
	return append(out, s.reqs[:s.oldest]...)
}

// Stats returns the current counts.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Await waits until cond holds for the counts, or ctx ends.
func (s *Server) Await(ctx context.Context, cond func(Stats) bool) error {
	for {
		s.mu.Lock()
		st, ch := s.stats, s.changed
		s.mu.Unlock()
		if cond(st) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// update changes the counts under the lock and wakes Await.
func (s *Server) update(f func(*Stats)) {
	s.mu.Lock()
	f(&s.stats)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Server) connState(_ net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		s.update(func(st *Stats) { st.Conns++ })
	case http.StateClosed, http.StateHijacked:
		s.update(func(st *Stats) { st.Conns-- })
	}
}

// wire is what differs between the two formats.
type wire struct {
	anthropic    bool
	model        string
	includeUsage bool
	prompt       int
	id           string
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var in struct {
		Model         string `json:"model"`
		Stream        bool   `json:"stream"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
		Messages []struct {
			Content json.RawMessage `json:"content"`
		} `json:"messages"`
	}
	_ = json.Unmarshal(body, &in)
	req := Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body, Model: in.Model, Stream: in.Stream}

	var reply Reply
	s.mu.Lock()
	if len(s.reqs) < MaxRecorded {
		s.reqs = append(s.reqs, req)
	} else {
		s.reqs[s.oldest] = req
		s.oldest = (s.oldest + 1) % MaxRecorded
	}
	s.seq++
	seq := s.seq
	if len(s.queue) > 0 {
		reply = s.queue[0]
		s.queue = s.queue[1:]
	} else if s.respond != nil {
		f := s.respond
		s.mu.Unlock()
		reply = f(&req)
		s.mu.Lock()
	}
	s.stats.Requests++
	s.stats.InFlight++
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
	defer func() {
		gone := r.Context().Err() != nil
		s.update(func(st *Stats) {
			st.InFlight--
			if gone {
				st.Canceled++
			}
		})
	}()

	switch r.URL.Path {
	case OpenAIPath, AnthropicPath, CountTokensPath, EmbeddingsPath, ResponsesPath:
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	anthropicAPI := r.URL.Path == AnthropicPath || r.URL.Path == CountTokensPath
	if msg := broken(r.URL.Path, r.Header, body); msg != "" && reply.Status == 0 {
		reply = Reply{Status: http.StatusBadRequest, Body: ruleError(anthropicAPI, msg)}
	}
	wf := wire{anthropic: anthropicAPI, model: in.Model, includeUsage: in.StreamOptions != nil && in.StreamOptions.IncludeUsage}
	for _, m := range in.Messages {
		wf.prompt += words(m.Content)
	}
	if wf.anthropic {
		wf.id = "msg_providertest_" + strconv.Itoa(seq)
	} else {
		wf.id = "chatcmpl-providertest-" + strconv.Itoa(seq)
	}

	if !s.wait(r.Context(), reply.HeaderDelay) {
		return
	}
	for k, v := range reply.Header {
		w.Header()[k] = v
	}
	status := reply.Status
	if status == 0 {
		status = http.StatusOK
	}
	if status >= 300 {
		b := reply.Body
		if b == "" {
			b = errorBody(wf.anthropic, status)
		}
		setDefault(w.Header(), "Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, b)
		return
	}
	text := reply.Text
	if text == "" {
		text = DefaultText
	}
	if reply.Body == "" {
		switch r.URL.Path {
		case CountTokensPath:
			reply.Body = countTokens(body)
		case EmbeddingsPath:
			reply.Body = embeddings(body, in.Model)
		case AnthropicPath:
			if reply.ToolCall != nil || reply.Thinking != "" && thinkingOn(body) {
				r := reply
				if r.ToolCall == nil {
					r.Text = text
				}
				reply.Body = anthropicReply(wf, r, thinkingOn(body), in.Stream)
			}
		case ResponsesPath:
			if in.Stream {
				reply.Body = responseEvents(wf.id, in.Model, text, wf.prompt)
			} else {
				reply.Body = responseObject(wf.id, in.Model, text, wf.prompt, "completed")
			}
		}
	}
	if !in.Stream {
		b := reply.Body
		if b == "" {
			b = message(wf, text)
		}
		setDefault(w.Header(), "Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, b)
		return
	}

	setDefault(w.Header(), "Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	rc := http.NewResponseController(w)
	send := func(ev string) bool {
		if _, err := io.WriteString(w, ev); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// brk breaks the stream as the reply asks.
	brk := func() {
		if reply.Break == BreakAbort {
			panic(http.ErrAbortHandler)
		}
		send(streamError(wf.anthropic))
	}
	// between runs before text chunk i: delay and hold (but before the
	// first), and the break. It reports whether to go on.
	between := func(i int) bool {
		if i > 0 && (!s.wait(r.Context(), reply.ChunkDelay) || !s.hold(r.Context(), reply.Hold)) {
			return false
		}
		if reply.Break != BreakNone && i == reply.BreakAfter {
			brk()
			return false
		}
		return true
	}

	if reply.Body != "" {
		events := strings.SplitAfter(reply.Body, "\n\n")
		for i, ev := range events {
			if ev == "" || !between(i) || !send(ev) {
				return
			}
		}
		return
	}
	chunks := reply.Chunks
	if chunks == nil {
		chunks = split(text)
	}
	if !send(streamStart(wf)) {
		return
	}
	for i, c := range chunks {
		if !between(i) || !send(streamChunk(wf, c)) {
			return
		}
	}
	if reply.Break != BreakNone {
		brk()
		return
	}
	send(streamEnd(wf, words(mustJSON(text))))
}

// wait sleeps d unless the request or the server ends first.
func (s *Server) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-s.quit:
	}
	return false
}

// hold waits for a value on h unless the request or the server ends first.
func (s *Server) hold(ctx context.Context, h <-chan struct{}) bool {
	if h == nil {
		return true
	}
	select {
	case <-h:
		return true
	case <-ctx.Done():
	case <-s.quit:
	}
	return false
}

func setDefault(h http.Header, k, v string) {
	if h.Get(k) == "" {
		h.Set(k, v)
	}
}

// split cuts text into words, each with the space before it.
func split(text string) []string {
	var out []string
	start := 0
	for i := 1; i <= len(text); i++ {
		if i == len(text) || (text[i] == ' ' && text[i-1] != ' ') {
			out = append(out, text[start:i])
			start = i
		}
	}
	return out
}

// words counts the words of a message content: a string, or blocks or
// parts with text.
func words(content json.RawMessage) int {
	var s string
	if json.Unmarshal(content, &s) == nil {
		return len(strings.Fields(s))
	}
	var parts []struct {
		Text string `json:"text"`
	}
	_ = json.Unmarshal(content, &parts)
	n := 0
	for _, p := range parts {
		n += len(strings.Fields(p.Text))
	}
	return n
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// errorBody is the wire format's error envelope for status.
func errorBody(anthropic bool, status int) string {
	msg := "providertest: HTTP " + strconv.Itoa(status)
	if anthropic {
		t := "api_error"
		switch {
		case status == 400:
			t = "invalid_request_error"
		case status == 401:
			t = "authentication_error"
		case status == 403:
			t = "permission_error"
		case status == 404:
			t = "not_found_error"
		case status == 413:
			t = "request_too_large"
		case status == 429:
			t = "rate_limit_error"
		case status == 503, status == 529:
			t = "overloaded_error"
		case status < 500:
			t = "invalid_request_error"
		}
		return `{"type":"error","error":{"type":"` + t + `","message":` + string(mustJSON(msg)) + `}}`
	}
	t, code := "server_error", "null"
	switch {
	case status == 401:
		t, code = "invalid_request_error", `"invalid_api_key"`
	case status == 404:
		t, code = "invalid_request_error", `"model_not_found"`
	case status == 429:
		t, code = "requests", `"rate_limit_exceeded"`
	case status < 500:
		t = "invalid_request_error"
	}
	return `{"error":{"message":` + string(mustJSON(msg)) + `,"type":"` + t + `","param":null,"code":` + code + `}}`
}

// message is the non-stream answer.
func message(wf wire, text string) string {
	completion := words(mustJSON(text))
	var b bytes.Buffer
	if wf.anthropic {
		b.WriteString(`{"id":"` + wf.id + `","type":"message","role":"assistant","model":`)
		b.Write(mustJSON(wf.model))
		b.WriteString(`,"content":[{"type":"text","text":`)
		b.Write(mustJSON(text))
		b.WriteString(`}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":` +
			strconv.Itoa(wf.prompt) + `,"output_tokens":` + strconv.Itoa(completion) + `}}`)
		return b.String()
	}
	b.WriteString(`{"id":"` + wf.id + `","object":"chat.completion","created":` + strconv.FormatInt(time.Now().Unix(), 10) + `,"model":`)
	b.Write(mustJSON(wf.model))
	b.WriteString(`,"choices":[{"index":0,"message":{"role":"assistant","content":`)
	b.Write(mustJSON(text))
	b.WriteString(`,"refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":` + usage(wf.prompt, completion) + `}`)
	return b.String()
}

func usage(prompt, completion int) string {
	return `{"prompt_tokens":` + strconv.Itoa(prompt) + `,"completion_tokens":` + strconv.Itoa(completion) +
		`,"total_tokens":` + strconv.Itoa(prompt+completion) + `}`
}

// chunkPrefix opens an OpenAI chat.completion.chunk.
func chunkPrefix(wf wire) string {
	return `data: {"id":"` + wf.id + `","object":"chat.completion.chunk","created":` +
		strconv.FormatInt(time.Now().Unix(), 10) + `,"model":` + string(mustJSON(wf.model)) + `,"choices":[`
}

// streamStart is what a stream sends before the first text chunk.
func streamStart(wf wire) string {
	if wf.anthropic {
		return "event: message_start\ndata: " + `{"type":"message_start","message":{"id":"` + wf.id +
			`","type":"message","role":"assistant","content":[],"model":` + string(mustJSON(wf.model)) +
			`,"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":` + strconv.Itoa(wf.prompt) + `,"output_tokens":1}}}` + "\n\n" +
			"event: content_block_start\ndata: " + `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}` + "\n\n" +
			"event: ping\ndata: " + `{"type": "ping"}` + "\n\n"
	}
	return chunkPrefix(wf) + `{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}` + "\n\n"
}

// streamChunk is one text chunk.
func streamChunk(wf wire, text string) string {
	if wf.anthropic {
		return "event: content_block_delta\ndata: " + `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":` +
			string(mustJSON(text)) + `}}` + "\n\n"
	}
	return chunkPrefix(wf) + `{"index":0,"delta":{"content":` + string(mustJSON(text)) + `},"logprobs":null,"finish_reason":null}]}` + "\n\n"
}

// streamEnd is what a stream sends after the last text chunk.
func streamEnd(wf wire, completion int) string {
	if wf.anthropic {
		return "event: content_block_stop\ndata: " + `{"type":"content_block_stop","index":0}` + "\n\n" +
			"event: message_delta\ndata: " + `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":` +
			strconv.Itoa(completion) + `}}` + "\n\n" +
			"event: message_stop\ndata: " + `{"type":"message_stop"}` + "\n\n"
	}
	p := chunkPrefix(wf)
	s := p + `{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}` + "\n\n"
	if wf.includeUsage {
		s += p + `],"usage":` + usage(wf.prompt, completion) + "}\n\n"
	}
	return s + "data: [DONE]\n\n"
}

// streamError is the wire format's in-band error event.
func streamError(anthropic bool) string {
	if anthropic {
		return "event: error\ndata: " + `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}` + "\n\n"
	}
	return `data: {"error":{"message":"providertest: stream broken","type":"server_error","param":null,"code":null}}` + "\n\n"
}
