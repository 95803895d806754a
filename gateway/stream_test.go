package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/awakend/awakend/edge"
	"github.com/awakend/awakend/provider"
	"github.com/awakend/awakend/provider/providertest"
	"github.com/awakend/awakend/registry"
)

// pipeStream is an upstream stream the test writes event by event.
func pipeStream() (*provider.Response, *io.PipeWriter) {
	pr, pw := io.Pipe()
	return &provider.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: pr}, pw
}

func serve(t *testing.T, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func post(t *testing.T, ctx context.Context, url, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// readEvent reads one SSE event (its lines up to the blank line).
func readEvent(t *testing.T, br *bufio.Reader) string {
	t.Helper()
	var ev strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading an event: %v (so far %q)", err, ev.String())
		}
		if line == "\n" {
			return ev.String()
		}
		ev.WriteString(line)
	}
}

func TestStreamFlushesEachEvent(t *testing.T) {
	w := newWorld()
	f := w.provider("p")
	w.model("m", "p")
	resp, pw := pipeStream()
	f.set(func(context.Context, *provider.Request) (*provider.Response, error) { return resp, nil })
	g, _ := w.gw(t, Options{})
	srv := serve(t, g)

	// The headers come with the first event; write it in two pieces.
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.WriteString(pw, "data: {\"n\":1")
		_, _ = io.WriteString(pw, "}\n\n")
	}()
	res := post(t, t.Context(), srv.URL, `{"model":"m","messages":[],"stream":true}`)
	defer res.Body.Close()
	<-done
	for k, want := range map[string]string{
		"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
		ModelHeader: "m", ProviderHeader: "p", edge.VersionHeader: "1",
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	br := bufio.NewReader(res.Body)
	// The upstream holds the second event back: the first must arrive.
	if ev := readEvent(t, br); ev != "data: {\"n\":1}\n" {
		t.Fatalf("first event %q", ev)
	}
	go func() {
		_, _ = io.WriteString(pw, ": ping\n\n")
		_, _ = io.WriteString(pw, "event: x\r\ndata: {\"n\":2}\r\n\r\n")
		_, _ = io.WriteString(pw, "data: [DONE]\n\n")
		pw.Close()
	}()
	if ev := readEvent(t, br); ev != ": ping\n" {
		t.Fatalf("keep-alive comment %q", ev)
	}
	rest, _ := io.ReadAll(br)
	if string(rest) != "event: x\r\ndata: {\"n\":2}\r\n\r\ndata: [DONE]\n\n" {
		t.Fatalf("rest %q", rest)
	}
}

// After the first event the request is committed: an upstream failure
// becomes an error event, and no other member is tried.
func TestStreamErrorAfterFirstByte(t *testing.T) {
	w := poolWorld(registry.HomeFirstHealthy, registry.DefaultSwitchPolicy(), "a", "b")
	w.fakes["pa"].set(func(context.Context, *provider.Request) (*provider.Response, error) {
		return &provider.Response{StatusCode: 200, Body: io.NopCloser(io.MultiReader(
			strings.NewReader("data: {\"n\":1}\n\ndata: {\"partial"), &brokenReader{}))}, nil
	})
	g, _ := w.gw(t, Options{})
	srv := serve(t, g)
	res := post(t, t.Context(), srv.URL, `{"model":"pl","messages":[],"stream":true}`)
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	events := strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n")
	if len(events) != 2 || events[0] != `data: {"n":1}` || !strings.HasPrefix(events[1], "data: {\"error\":") {
		t.Fatalf("body %q", body)
	}
	var env struct{ Error edge.Error }
	if err := json.Unmarshal([]byte(strings.TrimPrefix(events[1], "data: ")), &env); err != nil || env.Error.Type != "server_error" {
		t.Fatalf("error event %q: %v", events[1], err)
	}
	if strings.Contains(string(body), "[DONE]") {
		t.Error("[DONE] after an error")
	}
	if n := w.fakes["pb"].calls(); n != 0 {
		t.Errorf("failed over after the first byte: %d calls to b", n)
	}
	// Also a stream that just ends without [DONE].
	w.fakes["pa"].set(func(context.Context, *provider.Request) (*provider.Response, error) {
		return sseAnswer(`{"n":1}`), nil
	})
	res2 := post(t, t.Context(), srv.URL, `{"model":"pl","messages":[],"stream":true}`)
	defer res2.Body.Close()
	body, _ = io.ReadAll(res2.Body)
	if !strings.HasPrefix(string(body), "data: {\"n\":1}\n\ndata: {\"error\":") {
		t.Errorf("truncated stream: %q", body)
	}
}

func TestClientDisconnectCancelsUpstream(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(map[bool]string{false: "json", true: "stream"}[stream], func(t *testing.T) {
			w := newWorld()
			f := w.provider("p")
			w.model("m", "p")
			called, canceled := make(chan struct{}), make(chan struct{})
			f.set(func(ctx context.Context, req *provider.Request) (*provider.Response, error) {
				if !req.Stream {
					close(called)
					<-ctx.Done()
					close(canceled)
					return nil, &provider.Error{Class: provider.ClassCanceled, Message: "canceled"}
				}
				// A stream that sent one event and waits for the next.
				resp, pw := pipeStream()
				go func() {
					_, _ = io.WriteString(pw, "data: {}\n\n")
					close(called)
					<-ctx.Done()
					close(canceled)
					pw.CloseWithError(ctx.Err())
				}()
				return resp, nil
			})
			g, _ := w.gw(t, Options{})
			srv := serve(t, g)
			ctx, cancel := context.WithCancel(t.Context())
			errc := make(chan error, 1)
			go func() {
				body := `{"model":"m","messages":[],"stream":` + map[bool]string{false: "false", true: "true"}[stream] + `}`
				req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/chat/completions", strings.NewReader(body))
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				errc <- err
			}()
			<-called
			cancel()
			select {
			case <-canceled:
			case <-time.After(5 * time.Second):
				t.Fatal("the upstream call's context was not cancelled")
			}
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Errorf("client error %v", err)
			}
		})
	}
}

// A request keeps the snapshot it started with while the handle moves on.
func TestInFlightKeepsSnapshot(t *testing.T) {
	w := newWorld()
	old := w.provider("old")
	w.model("m", "old")
	g, h := w.gw(t, Options{})

	replaced := make(chan struct{})
	old.set(func(context.Context, *provider.Request) (*provider.Response, error) {
		<-replaced
		return answer("served-by-old"), nil
	})
	w2 := newWorld()
	w2.provider("new")
	w2.model("m", "new")

	done := make(chan result, 1)
	go func() { done <- do(t, g, "POST", "/v1/chat/completions", chatReq("m")) }()
	for old.calls() == 0 {
		time.Sleep(time.Millisecond)
	}
	if v := h.Replace(w2.set(t)); v != 2 {
		t.Fatalf("version %d", v)
	}
	close(replaced)
	res := <-done
	if res.header.Get(edge.VersionHeader) != "1" || res.header.Get(ProviderHeader) != "old" || !strings.Contains(res.body, "served-by-old") {
		t.Errorf("in-flight request: v%s via %s: %s", res.header.Get(edge.VersionHeader), res.header.Get(ProviderHeader), res.body)
	}
	// The next request uses the new snapshot.
	res = do(t, g, "POST", "/v1/chat/completions", chatReq("m"))
	if res.header.Get(edge.VersionHeader) != "2" || res.header.Get(ProviderHeader) != "new" {
		t.Errorf("next request: v%s via %s", res.header.Get(edge.VersionHeader), res.header.Get(ProviderHeader))
	}
	if w2.fakes["new"].calls() != 1 || old.calls() != 1 {
		t.Errorf("calls old %d new %d", old.calls(), w2.fakes["new"].calls())
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	w := poolWorld(registry.HomeFirstHealthy, registry.DefaultSwitchPolicy(), "a", "b")
	w.fakes["pa"].set(failing(provider.ClassOverloaded, 503, 0))
	g, _ := w.gw(t, Options{Metrics: reg})
	do(t, g, "POST", "/v1/chat/completions", chatReq("pl"))
	do(t, g, "POST", "/v1/chat/completions", chatReq("pl"))
	do(t, g, "POST", "/v1/chat/completions", chatReq("b"))
	do(t, g, "POST", "/v1/chat/completions", chatReq("a"))
	do(t, g, "POST", "/v1/chat/completions", chatReq("client-made-up-name"))
	do(t, g, "POST", "/v1/chat/completions", `{"model":"b","messages":[],"stream":true}`)
	do(t, g, "GET", "/v1/models", "")

	want := `
# HELP awakend_requests_total Gateway requests by route, requested model (a registry id, or unknown), serving provider (or none) and HTTP status.
# TYPE awakend_requests_total counter
awakend_requests_total{code="200",model="b",provider="pb",route="chat_completions"} 2
awakend_requests_total{code="200",model="pl",provider="pb",route="chat_completions"} 2
awakend_requests_total{code="200",model="unknown",provider="none",route="models"} 1
awakend_requests_total{code="404",model="unknown",provider="none",route="chat_completions"} 1
awakend_requests_total{code="503",model="a",provider="pa",route="chat_completions"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "awakend_requests_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(g.m.upstream, "awakend_upstream_duration_seconds"); n != 3 {
		t.Errorf("upstream duration series: %d, want one per provider", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				counts[mf.GetName()] += h.GetSampleCount()
			}
		}
	}
	// Upstream calls: pl twice (a then b) = 4, b, a, b streaming = 7.
	if counts["awakend_upstream_duration_seconds"] != 7 || counts["awakend_time_to_first_token_seconds"] != 1 ||
		counts["awakend_gateway_overhead_seconds"] != 5 {
		t.Errorf("histogram sample counts %v", counts)
	}
	// A second gateway on the same registry shares the collectors.
	New(Options{Metrics: reg, Handle: registry.NewHandle(nil)})
}

func TestLogLine(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	w := newWorld()
	w.provider("p")
	w.model("m", "p")
	w.agent(registry.AgentSpec{ID: "ag", ModelID: "m", SystemPrompt: "TOP-SECRET-PROMPT"})
	w.providers[0].Spec.APIKey = "sk-upstream-secret"
	g, _ := w.gw(t, Options{Logger: log, Keys: edge.NewKeysVar(edge.NewKeys("sk-client-secret"))})
	body := `{"model":"ag","messages":[{"role":"user","content":"PRIVATE-USER-TEXT"}],"user":"PRIVATE-USER-ID"}`
	res := do(t, g, "POST", "/v1/chat/completions", body, "Authorization", "Bearer sk-client-secret", "X-Request-ID", "rid-7")
	if res.code != 200 {
		t.Fatalf("%d %s", res.code, res.body)
	}
	do(t, g, "POST", "/v1/chat/completions", body, "Authorization", "Bearer sk-wrong-secret")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d log lines:\n%s", len(lines), buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"level": "INFO", "msg": "request", "id": "rid-7", "requested": "ag", "served": "m", "provider": "p",
		"attempts": 1.0, "status": 200.0, "stream": false, "version": 1.0, "prompt_tokens": 7.0, "completion_tokens": 3.0,
	} {
		if rec[k] != want {
			t.Errorf("%s = %v, want %v", k, rec[k], want)
		}
	}
	for _, k := range []string{"took", "upstream"} {
		if _, ok := rec[k]; !ok {
			t.Errorf("no %s", k)
		}
	}
	for _, secret := range []string{"SECRET", "PRIVATE", "sk-"} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("the log holds %q:\n%s", secret, buf.String())
		}
	}
}

// A stream's log line has the token counts of its usage chunk, when the
// upstream sent one; the other chunks' "usage":null count for nothing.
func TestStreamLogsUsage(t *testing.T) {
	const chunk = `{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}`
	for _, tt := range []struct {
		name   string
		events []string
		want   map[string]any // absent: nil
	}{
		{"usage chunk", []string{chunk, `{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":4,"total_tokens":15}}`, "[DONE]"},
			map[string]any{"prompt_tokens": 11.0, "completion_tokens": 4.0}},
		{"spaced", []string{chunk, `{"choices": [], "usage" : {"prompt_tokens": 2, "completion_tokens": 1}}`, "[DONE]"},
			map[string]any{"prompt_tokens": 2.0, "completion_tokens": 1.0}},
		{"none", []string{chunk, "[DONE]"}, map[string]any{"prompt_tokens": nil, "completion_tokens": nil}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := newWorld()
			f := w.provider("p")
			w.model("m", "p")
			f.set(func(context.Context, *provider.Request) (*provider.Response, error) {
				return sseAnswer(tt.events...), nil
			})
			g, _ := w.gw(t, Options{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
			res := do(t, g, "POST", "/v1/chat/completions", `{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true}}`)
			if res.code != 200 || !strings.HasSuffix(res.body, "data: [DONE]\n\n") {
				t.Fatalf("%d %q", res.code, res.body)
			}
			var rec map[string]any
			if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
				t.Fatalf("%v: %s", err, buf.String())
			}
			for k, want := range tt.want {
				if rec[k] != want {
					t.Errorf("%s = %v, want %v", k, rec[k], want)
				}
			}
		})
	}
}

// An event line longer than the relay's read buffer stays one line, even
// when its newline falls just past the buffer's end.
func TestStreamLongLines(t *testing.T) {
	for _, n := range []int{32 << 10, 100 << 10} {
		w := newWorld()
		f := w.provider("p")
		w.model("m", "p")
		long := `{"x":"` + strings.Repeat("y", n-len(`data: {"x":""}`)) + `"}`
		f.set(func(context.Context, *provider.Request) (*provider.Response, error) {
			return sseAnswer(long, `{"n":2}`, "[DONE]"), nil
		})
		g, _ := w.gw(t, Options{})
		res := do(t, g, "POST", "/v1/chat/completions", `{"model":"m","messages":[],"stream":true}`)
		want := "data: " + long + "\n\ndata: {\"n\":2}\n\ndata: [DONE]\n\n"
		if res.body != want {
			t.Errorf("line of %d bytes: body differs (got %d bytes, want %d)", n, len(res.body), len(want))
		}
	}
}

// Requests keep flowing, each answered from one consistent snapshot, while
// the handle is replaced again and again (run under -race).
func TestReloadStorm(t *testing.T) {
	w := poolWorld(registry.HomeDeterministic, registry.DefaultSwitchPolicy(), "a", "b")
	w2 := poolWorld(registry.HomeRoundRobin, registry.DefaultSwitchPolicy(), "b", "c")
	w2.fakes, w2.providers = w.fakes, w.providers
	sets := []*registry.Set{w.set(t), w2.set(t)}
	h := registry.NewHandle(sets[0]) // odd versions: sets[0], even: sets[1]
	g := New(Options{Handle: h})

	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	wg.Go(func() {
		defer cancel()
		for i := 1; i <= 200; i++ {
			h.Replace(sets[i%2])
			time.Sleep(50 * time.Microsecond)
		}
	})
	errs := make(chan string, 8)
	var served atomic.Int64
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				served.Add(1)
				res := do(t, g, "POST", "/v1/chat/completions", chatReq("pl"))
				v, _ := strconv.Atoi(res.header.Get(edge.VersionHeader))
				served := res.header.Get(ModelHeader)
				// Odd versions serve pool {a, b}, even ones {b, c}.
				if res.code != 200 || (v%2 == 1 && served == "c") || (v%2 == 0 && served == "a") {
					errs <- fmt.Sprintf("v%d served by %s: %d %s", v, served, res.code, res.body)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if served.Load() < 100 {
		t.Errorf("only %d requests during the storm", served.Load())
	}
}

// countingReader is an upstream body of n bytes of filler after prefix,
// counting what the relay read of it.
type countingReader struct {
	prefix string
	line   bool // filler lines ("data: x\n") rather than one endless line
	n      int
	read   atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	off := int(c.read.Load())
	if off >= len(c.prefix)+c.n {
		return 0, io.EOF
	}
	k := 0
	for k < len(p) && off+k < len(c.prefix)+c.n {
		i := off + k
		switch {
		case i < len(c.prefix):
			p[k] = c.prefix[i]
		case c.line && (i-len(c.prefix))%8 == 7:
			p[k] = '\n'
		case c.line && (i-len(c.prefix))%8 < 6:
			p[k] = "data: "[(i-len(c.prefix))%8]
		default:
			p[k] = 'x'
		}
		k++
	}
	c.read.Add(int64(k))
	return k, nil
}

// TestStreamEventLimit: an upstream event over maxStreamEvent, one endless
// line or lines without the blank line that ends an event, is not
// buffered: before the first event it fails over, after it the stream
// ends with one error event.
func TestStreamEventLimit(t *testing.T) {
	const filler = 64 << 20 // far more than an event may hold
	for _, tt := range []struct {
		name      string
		prefix    string
		line      bool
		model     string
		status    int
		want      string // the body's start
		committed bool   // the stream ends with the gateway's error event
	}{
		{"endless line before the first event, pool", "data: ", false, "pl", 200, "data: {\"b\":1}\n\ndata: [DONE]\n\n", false},
		{"endless event before the first event, pool", "", true, "pl", 200, "data: {\"b\":1}\n\ndata: [DONE]\n\n", false},
		{"endless line before the first event, model", "data: ", false, "a", 502, `{"error":`, false},
		{"endless line after the first event", "data: {\"n\":1}\n\ndata: ", false, "pl", 200, "data: {\"n\":1}\n\ndata: {\"error\":", true},
		{"endless event after the first event", "data: {\"n\":1}\n\n", true, "pl", 200, "data: {\"n\":1}\n\ndata: {\"error\":", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := poolWorld(registry.HomeFirstHealthy, registry.DefaultSwitchPolicy(), "a", "b")
			body := &countingReader{prefix: tt.prefix, line: tt.line, n: filler}
			w.fakes["pa"].set(func(context.Context, *provider.Request) (*provider.Response, error) {
				return &provider.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}}, Body: io.NopCloser(body)}, nil
			})
			w.fakes["pb"].set(func(context.Context, *provider.Request) (*provider.Response, error) {
				return sseAnswer(`{"b":1}`, "[DONE]"), nil
			})
			g, _ := w.gw(t, Options{})
			res := do(t, g, "POST", "/v1/chat/completions", `{"model":"`+tt.model+`","messages":[],"stream":true}`)
			if res.code != tt.status || !strings.HasPrefix(res.body, tt.want) {
				t.Fatalf("%d %.300q", res.code, res.body)
			}
			if n := body.read.Load(); n > maxStreamEvent+64<<10 {
				t.Errorf("the relay read %d bytes of an event bounded to %d", n, maxStreamEvent)
			}
			if (tt.status != 200 || tt.committed) && !strings.Contains(res.body, "exceeds") {
				t.Errorf("the answer does not say why: %.300q", res.body)
			}
			if tt.committed {
				if strings.Count(res.body, `"error"`) != 1 || !strings.Contains(res.body, "upstream_stream_error") ||
					!strings.HasSuffix(res.body, "}}\n\n") || strings.Contains(res.body, "[DONE]") {
					t.Errorf("not one error event: %.300q", res.body)
				}
				if n := w.fakes["pb"].calls(); n != 0 {
					t.Errorf("failed over after the first event: %d calls to b", n)
				}
			}
		})
	}
}

// TestStreamUpstreamErrorEvent: an error event from the upstream is the
// stream's last, with no error event of the gateway's after it.
func TestStreamUpstreamErrorEvent(t *testing.T) {
	const upErr = `data: {"error":{"message":"Overloaded","type":"overloaded_error","param":null,"code":null}}` + "\n\n"
	for _, tt := range []struct {
		name, upstream, want string
	}{
		{"after an event, then the end", "data: {\"n\":1}\n\n" + upErr, "data: {\"n\":1}\n\n" + upErr},
		{"as the first event", upErr, upErr},
		{"with more after it", "data: {\"n\":1}\n\n" + upErr + "data: {\"n\":2}\n\ndata: [DONE]\n\n", "data: {\"n\":1}\n\n" + upErr},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			w.provider("p").set(func(context.Context, *provider.Request) (*provider.Response, error) {
				return &provider.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(tt.upstream))}, nil
			})
			w.model("m", "p")
			g, _ := w.gw(t, Options{})
			res := do(t, g, "POST", "/v1/chat/completions", `{"model":"m","messages":[],"stream":true}`)
			if res.code != 200 || res.body != tt.want {
				t.Errorf("%d %q\nwant %q", res.code, res.body, tt.want)
			}
		})
	}
}

// The Anthropic adapter's translated error event is the stream's one
// error event.
func TestRealAnthropicStreamError(t *testing.T) {
	up := providertest.NewServer(t)
	url := realGateway(t, registry.Update{
		Providers: []registry.Provider{realProvider(t, registry.ProviderSpec{ID: "an", Adapter: "anthropic", BaseURL: up.AnthropicURL(), APIKey: "k"})},
		Models:    []registry.ModelSpec{{ID: "claude", ProviderID: "an", UpstreamModel: "claude-up"}},
	})
	up.Enqueue(providertest.Reply{Break: providertest.BreakError, BreakAfter: 1})
	res := post(t, t.Context(), url, `{"model":"claude","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	s := string(body)
	if res.StatusCode != 200 || strings.Count(s, `data: {"error":`) != 1 || !strings.HasSuffix(s, "}}\n\n") ||
		strings.Contains(s, "upstream_stream_error") || strings.Contains(s, "[DONE]") {
		t.Errorf("%d:\n%s", res.StatusCode, s)
	}
}

// [DONE] ends a stream with or without its line ending and blank line.
func TestStreamDoneWithoutBlankLine(t *testing.T) {
	for _, end := range []string{"data: [DONE]", "data: [DONE]\n", "data:[DONE]\r\n"} {
		w := newWorld()
		w.provider("p").set(func(context.Context, *provider.Request) (*provider.Response, error) {
			return &provider.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("data: {}\n\n" + end))}, nil
		})
		w.model("m", "p")
		g, _ := w.gw(t, Options{})
		res := do(t, g, "POST", "/v1/chat/completions", `{"model":"m","messages":[],"stream":true}`)
		want := "data: {}\n\n" + strings.TrimRight(end, "\r\n") + "\n\n"
		if res.code != 200 || res.body != want {
			t.Errorf("%q: %d %q", end, res.code, res.body)
		}
	}
}
