package inference

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/awakend/awakend/e2e/harness"
	"github.com/awakend/awakend/provider/providertest"
)

// The tests here put a misbehaving upstream behind the real daemon. The
// upstream is a raw TCP server that reads requests with http.ReadRequest
// and writes whatever bytes its script says, so that it can do what no
// well-behaved HTTP server does.

// rawUpstream is a scripted HTTP/1.1 upstream on a loopback port.
type rawUpstream struct {
	t  *testing.T
	ln net.Listener
	// serve handles one request on a connection; n counts the requests of
	// every connection from 1. It returns false to close the connection.
	serve func(c net.Conn, r *http.Request, n int) bool

	mu     sync.Mutex
	n      int
	ids    map[string]int // X-Request-Id → requests received with it
	closed chan string    // a connection's "conn N closed by peer"
	wg     sync.WaitGroup
}

func newRawUpstream(t *testing.T, serve func(c net.Conn, r *http.Request, n int) bool) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{t: t, ln: ln, serve: serve, ids: map[string]int{}, closed: make(chan string, 64)}
	u.wg.Go(u.accept)
	t.Cleanup(func() {
		ln.Close()
		u.wg.Wait()
	})
	return u
}

func (u *rawUpstream) url() string { return "http://" + u.ln.Addr().String() + "/v1" }

func (u *rawUpstream) accept() {
	var conns sync.WaitGroup
	defer conns.Wait()
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		open = append(open, c)
		conns.Go(func() { u.conn(c) })
	}
}

func (u *rawUpstream) conn(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		r, err := http.ReadRequest(br)
		if err != nil {
			if errors.Is(err, io.EOF) {
				u.closed <- "closed by peer"
			}
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		u.mu.Lock()
		u.n++
		n := u.n
		u.ids[r.Header.Get("X-Request-Id")]++
		u.mu.Unlock()
		if !u.serve(c, r, n) {
			return
		}
	}
}

func (u *rawUpstream) received(id string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.ids[id]
}

// completion is a chat.completion whose text is text.
func completion(text string) string {
	return `{"id":"chatcmpl-raw","object":"chat.completion","created":1700000000,"model":"up-m","choices":[` +
		`{"index":0,"message":{"role":"assistant","content":` + strconv.Quote(text) + `,"refusal":null},` +
		`"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`
}

// response is a whole HTTP/1.1 answer with a JSON body.
func response(status int, header, body string) string {
	return "HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) + "\r\nContent-Type: application/json\r\n" +
		header + "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// An upstream that writes a second answer on a connection that is idle
// in the pool must not have that answer delivered to the next request:
// the connection is dropped, and the next request gets its own answer.
func TestUpstreamUnsolicitedBytes(t *testing.T) {
	t.Parallel()
	up := newRawUpstream(t, func(c net.Conn, r *http.Request, n int) bool {
		io.WriteString(c, response(200, "", completion("answer "+strconv.Itoa(n))))
		if n == 1 {
			// Unasked for, after the answer: what a broken upstream, or
			// one that answers a request twice, puts on the connection.
			time.Sleep(20 * time.Millisecond)
			io.WriteString(c, response(200, "", completion("stale answer meant for nobody")))
		}
		return true
	})
	d := start(t, harness.ConfigDir(t, map[string]string{"up.yaml": openaiConfig(up.url())}), harness.Options{})
	c := d.newClient(t, "")
	first, err := c.Chat.Completions.New(t.Context(), params("m"))
	if err != nil {
		t.Fatal(err)
	}
	if got := first.Choices[0].Message.Content; got != "answer 1" {
		t.Fatalf("first answer %q", got)
	}
	// The daemon drops the connection once the stray bytes arrive; wait
	// for that (bounded), so that the next request cannot race it.
	select {
	case <-up.closed:
	case <-time.After(5 * time.Second):
	}
	second, err := c.Chat.Completions.New(t.Context(), params("m"))
	if err != nil {
		t.Fatal(err)
	}
	if got := second.Choices[0].Message.Content; got != "answer 2" {
		t.Errorf("second request answered %q, want its own answer", got)
	}
}

// An upstream that closes a reused connection after reading a POST, without
// answering, may have run the completion: the daemon answers 502 and does
// not send the POST again (a duplicate inference is billed twice).
func TestUpstreamClosesAfterPOST(t *testing.T) {
	t.Parallel()
	up := newRawUpstream(t, func(c net.Conn, r *http.Request, n int) bool {
		if n == 1 {
			io.WriteString(c, response(200, "", completion("ok")))
			return true
		}
		return false // read it, answer nothing, close
	})
	d := start(t, harness.ConfigDir(t, map[string]string{"up.yaml": openaiConfig(up.url())}), harness.Options{})
	c := d.newClient(t, "")
	if _, err := c.Chat.Completions.New(t.Context(), params("m")); err != nil {
		t.Fatal(err)
	}
	_, err := c.Chat.Completions.New(t.Context(), params("m"), option.WithHeader("X-Request-Id", "close-after-post"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadGateway {
		t.Fatalf("error %v, want a 502 from the gateway", err)
	}
	if n := up.received("close-after-post"); n != 1 {
		t.Errorf("the upstream received the POST %d times, want exactly once", n)
	}
}

// streamHead is the head of a 200 SSE answer without a length.
const streamHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"

const roleChunk = `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"up-m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}` + "\n\n"

// junk writes n bytes of one endless SSE line (or of lines with no blank
// line between them) to c, stopping when the reader goes away.
func junk(c net.Conn, n int, lines bool) {
	chunk := bytes.Repeat([]byte("x"), 32<<10)
	if lines {
		chunk = bytes.Repeat([]byte("data: xxxxxxxxxxxxxxxxxxxxxxxxxx\n"), 1<<10)
	}
	io.WriteString(c, "data: ")
	for sent := 0; sent < n; sent += len(chunk) {
		if _, err := c.Write(chunk); err != nil {
			return
		}
	}
}

// vmHWM is a process's peak resident memory, in bytes.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// A stream whose upstream never ends a line, or never ends an event, is cut
// at the gateway's bound on one event: before the first event the request
// fails (502, and a pool could fail over); after it, the client gets one
// error event. The daemon's memory does not follow the upstream's bytes.
func TestUpstreamStreamWithoutBounds(t *testing.T) {
	t.Parallel()
	const size = 64 << 20
	for _, tt := range []struct {
		name       string
		afterFirst bool
		lines      bool
	}{
		{"no newline before the first event", false, false},
		{"no blank line before the first event", false, true},
		{"no newline after the first event", true, false},
		{"no blank line after the first event", true, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := newRawUpstream(t, func(c net.Conn, r *http.Request, n int) bool {
				io.WriteString(c, streamHead)
				if tt.afterFirst {
					io.WriteString(c, roleChunk)
				}
				junk(c, size, tt.lines)
				return false
			})
			d := start(t, harness.ConfigDir(t, map[string]string{"up.yaml": openaiConfig(up.url())}), harness.Options{})
			before := vmHWM(t, d.Pid())
			req, _ := http.NewRequestWithContext(t.Context(), "POST", d.URL+"/v1/chat/completions",
				strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
			resp, err := d.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !tt.afterFirst {
				if resp.StatusCode != http.StatusBadGateway {
					t.Fatalf("status %d, want 502: %.300s", resp.StatusCode, body)
				}
			} else {
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d, want 200: %.300s", resp.StatusCode, body)
				}
				if n := strings.Count(string(body), `"error"`); n != 1 || !strings.Contains(string(body), "upstream_stream_error") {
					t.Fatalf("%d error events, want one upstream_stream_error: %.600s", n, body)
				}
			}
			if grew := vmHWM(t, d.Pid()) - before; grew > 32<<20 {
				t.Errorf("the daemon's peak memory grew by %d MiB for a %d MiB line", grew>>20, size>>20)
			}
		})
	}
}

// An upstream that echoes the provider's key in every field of its error
// (type, code, a header, and a long message in which the key straddles the
// point where messages are cut), or in a stream's in-band error event,
// plain or JSON-escaped, leaks none of it to the client or the log.
func TestUpstreamErrorEchoesKey(t *testing.T) {
	t.Parallel()
	const key = "sk-live-0123456789abcdefghijklmnopqrstuvwxyz"
	up := newRawUpstream(t, func(c net.Conn, r *http.Request, n int) bool {
		auth := r.Header.Get("Authorization")
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte(`"user":"in-band`)) {
			// A stream that fails after its first event, in band; the
			// escaped one writes every byte of what it saw as \u00XX.
			saw := auth
			if bytes.Contains(body, []byte(`"user":"in-band-escaped"`)) {
				var b strings.Builder
				for i := range len(auth) {
					fmt.Fprintf(&b, `\u%04x`, auth[i])
				}
				saw = b.String()
			}
			io.WriteString(c, streamHead+roleChunk+`data: {"error":{"message":"upstream saw `+saw+`","type":"server_error","param":null,"code":null}}`+"\n\n")
			return false
		}
		msg := strings.Repeat("m", 500) + " " + auth + " " + strings.Repeat("n", 200)
		answer := `{"error":{"message":` + strconv.Quote(msg) + `,"type":` + strconv.Quote(auth) + `,"code":` + strconv.Quote(auth) + `,"param":null}}`
		io.WriteString(c, response(400, "X-Request-Id: "+auth+"\r\nX-Ratelimit-Remaining-Requests: "+auth+"\r\n", answer))
		return true
	})
	d := start(t, harness.ConfigDir(t, map[string]string{"up.yaml": `providers:
  - {id: up, adapter: openai, api_key: "` + key + `", base_url: "` + up.url() + `"}
models:
  - {id: m, provider_id: up, upstream_model: up-m}
`}), harness.Options{LogLevel: "debug"})
	for _, tt := range []struct {
		stream bool
		user   string // in-band: the stream fails in band
		status int
	}{{false, "", http.StatusBadRequest}, {true, "", http.StatusBadRequest}, {true, "in-band", http.StatusOK}, {true, "in-band-escaped", http.StatusOK}} {
		stream := tt.stream
		req, _ := http.NewRequestWithContext(t.Context(), "POST", d.URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"m","stream":`+strconv.FormatBool(stream)+`,"user":"`+tt.user+
				`","messages":[{"role":"user","content":"hi"}]}`))
		resp, err := d.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		inBand := tt.user != ""
		if resp.StatusCode != tt.status || inBand && !strings.Contains(string(body), "upstream saw") {
			t.Errorf("stream %v, %q: status %d, want %d: %s", stream, tt.user, resp.StatusCode, tt.status, body)
		}
		var head bytes.Buffer
		resp.Header.Write(&head)
		seen := string(body)
		if inBand {
			// What a client reads: the error event's message, decoded.
			_, ev, _ := strings.Cut(string(body), `data: {"error"`)
			ev, _, _ = strings.Cut(`{"error"`+ev, "\n")
			var e struct{ Error struct{ Message string } }
			if err := json.Unmarshal([]byte(ev), &e); err != nil {
				t.Fatalf("%q: the error event %q: %v", tt.user, ev, err)
			}
			seen += e.Error.Message
		}
		for _, part := range []string{key[:12], key[len(key)-12:], key[20:32]} {
			if strings.Contains(seen, part) || strings.Contains(head.String(), part) {
				t.Errorf("stream %v, %q: part %q of the key reached the client:\n%s\n%s", stream, tt.user, part, head.String(), body)
			}
		}
	}
	d.Stop()
	for _, part := range []string{key[:12], key[len(key)-12:], key[20:32]} {
		if strings.Contains(d.Logs(), part) {
			t.Errorf("part %q of the key is in the daemon's log", part)
		}
	}
}

// The upstream's rate limits, Retry-After, processing time and request id
// reach the client (the upstream's id as X-Upstream-Request-Id, the
// gateway's own X-Request-ID kept); its cookies do not. A gzip-encoded
// answer arrives decoded, as JSON. The gateway forwards no client header
// upstream, so the body's user field picks the upstream's answer.
func TestUpstreamHeadersAndEncoding(t *testing.T) {
	t.Parallel()
	limits := "X-Ratelimit-Limit-Requests: 500\r\nX-Ratelimit-Remaining-Requests: 499\r\nX-Ratelimit-Reset-Tokens: 6ms\r\n" +
		"Openai-Processing-Ms: 42\r\nX-Request-Id: req_upstream_1\r\nSet-Cookie: __cf_bm=tracking; Path=/\r\n"
	up := newRawUpstream(t, func(c net.Conn, r *http.Request, n int) bool {
		body, _ := io.ReadAll(r.Body)
		switch {
		case bytes.Contains(body, []byte(`"user":"gzip"`)):
			var zb bytes.Buffer
			zw := gzip.NewWriter(&zb)
			io.WriteString(zw, completion("from gzip"))
			zw.Close()
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"+
				"Content-Length: "+strconv.Itoa(zb.Len())+"\r\n\r\n"+zb.String())
		case bytes.Contains(body, []byte(`"user":"429"`)):
			io.WriteString(c, response(429, limits+"Retry-After: 7\r\n",
				`{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded","param":null}}`))
		default:
			io.WriteString(c, response(200, limits, completion("plain")))
		}
		return true
	})
	d := start(t, harness.ConfigDir(t, map[string]string{"up.yaml": openaiConfig(up.url())}), harness.Options{})
	c := d.newClient(t, "")

	var raw *http.Response
	got, err := c.Chat.Completions.New(t.Context(), params("m"), option.WithResponseInto(&raw))
	if err != nil {
		t.Fatal(err)
	}
	if got.Choices[0].Message.Content != "plain" {
		t.Fatalf("answer %q", got.Choices[0].Message.Content)
	}
	checkPassed := func(t *testing.T, h http.Header) {
		t.Helper()
		for k, want := range map[string]string{
			"X-Ratelimit-Limit-Requests": "500", "X-Ratelimit-Remaining-Requests": "499", "X-Ratelimit-Reset-Tokens": "6ms",
			"Openai-Processing-Ms": "42", "X-Upstream-Request-Id": "req_upstream_1",
		} {
			if got := h.Get(k); got != want {
				t.Errorf("%s: %q, want %q", k, got, want)
			}
		}
		if id := h.Get("X-Request-Id"); id == "" || id == "req_upstream_1" {
			t.Errorf("X-Request-Id %q: want the gateway's own id", id)
		}
		if h.Get("Set-Cookie") != "" {
			t.Errorf("the upstream's cookie reached the client: %q", h.Get("Set-Cookie"))
		}
	}
	checkPassed(t, raw.Header)

	t.Run("429", func(t *testing.T) {
		_, err := c.Chat.Completions.New(t.Context(), withUser(params("m"), "429"))
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("error %v, want a 429", err)
		}
		checkPassed(t, apiErr.Response.Header)
		if ra := apiErr.Response.Header.Get("Retry-After"); ra != "7" {
			t.Errorf("Retry-After %q, want 7", ra)
		}
	})
	t.Run("gzip", func(t *testing.T) {
		got, err := c.Chat.Completions.New(t.Context(), withUser(params("m"), "gzip"))
		if err != nil {
			t.Fatal(err)
		}
		if got.Choices[0].Message.Content != "from gzip" {
			t.Errorf("answer %q, want the decoded one", got.Choices[0].Message.Content)
		}
	})
}

func withUser(p openai.ChatCompletionNewParams, user string) openai.ChatCompletionNewParams {
	p.User = openai.String(user)
	return p
}

// A completion the daemon builds itself (the mock adapter here) has
// message.refusal, null, as OpenAI's schema requires.
func TestCompletionHasRefusal(t *testing.T) {
	t.Parallel()
	d := start(t, harness.ConfigDir(t, map[string]string{"a.yaml": mockConfig}), harness.Options{})
	c := d.newClient(t, "")
	got, err := c.Chat.Completions.New(t.Context(), params("m"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got.RawJSON(), `"refusal":null`) {
		t.Errorf("message without \"refusal\": null: %s", got.RawJSON())
	}
}

// An upstream that fails a stream mid-way with its in-band error event
// gives the client exactly one error event, for either adapter: the
// upstream's (translated from Anthropic's), and nothing after it.
func TestStreamErrorEventOnce(t *testing.T) {
	t.Parallel()
	up := providertest.NewServer(t)
	d := start(t, harness.ConfigDir(t, map[string]string{"up.yaml": `providers:
  - {id: oa, adapter: openai, base_url: "` + up.OpenAIURL() + `"}
  - {id: an, adapter: anthropic, api_key: k, base_url: "` + up.AnthropicURL() + `"}
models:
  - {id: m-oa, provider_id: oa, upstream_model: up-m}
  - {id: m-an, provider_id: an, upstream_model: claude-x}
`}), harness.Options{})
	for _, model := range []string{"m-oa", "m-an"} {
		t.Run(model, func(t *testing.T) {
			up.Enqueue(providertest.Reply{Chunks: []string{"one ", "two ", "three"}, Break: providertest.BreakError, BreakAfter: 2})
			req, _ := http.NewRequestWithContext(t.Context(), "POST", d.URL+"/v1/chat/completions",
				strings.NewReader(`{"model":"`+model+`","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
			resp, err := d.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			events := strings.Split(strings.TrimSpace(string(body)), "\n\n")
			errs := strings.Count(string(body), `"error"`)
			if errs != 1 || !strings.Contains(events[len(events)-1], `"error"`) {
				t.Fatalf("%d error events, want exactly one, last:\n%s", errs, body)
			}
			if strings.Contains(string(body), "[DONE]") {
				t.Errorf("[DONE] after an error:\n%s", body)
			}
		})
	}
}
