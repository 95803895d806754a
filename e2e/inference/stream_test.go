package inference

import (
	"context"
	"net/http"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/awakend/awakend/e2e/harness"
	"github.com/awakend/awakend/provider/providertest"
)

// openaiConfig serves model m from an openai provider at baseURL.
func openaiConfig(baseURL string) string {
	return `providers:
  - {id: up, adapter: openai, base_url: "` + baseURL + `"}
models:
  - {id: m, provider_id: up, upstream_model: up-m}
`
}

// firstChunk opens a stream of model m and reads its first chunk, the role
// chunk; it returns the stream and the HTTP response.
func firstChunk(t *testing.T, ctx context.Context, c openai.Client) (*streamReader, *http.Response) {
	t.Helper()
	var raw *http.Response
	s := c.Chat.Completions.NewStreaming(ctx, params("m"), option.WithResponseInto(&raw))
	if !s.Next() {
		t.Fatalf("no first chunk: %v", s.Err())
	}
	r := &streamReader{s: s}
	if !r.acc.AddChunk(s.Current()) {
		t.Fatalf("first chunk %s", s.Current().RawJSON())
	}
	return r, raw
}

// streamReader is an SDK stream with the chunks read so far assembled.
type streamReader struct {
	s interface {
		Next() bool
		Current() openai.ChatCompletionChunk
		Err() error
		Close() error
	}
	acc openai.ChatCompletionAccumulator
}

// rest reads the stream to its end.
func (r *streamReader) rest(t *testing.T) {
	t.Helper()
	defer r.s.Close()
	for r.s.Next() {
		if !r.acc.AddChunk(r.s.Current()) {
			t.Fatalf("chunk %s does not continue the stream", r.s.Current().RawJSON())
		}
	}
	if err := r.s.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestDisconnectCancelsUpstream: a client that goes away in the middle of
// a stream cancels the upstream call; nothing keeps it running.
func TestDisconnectCancelsUpstream(t *testing.T) {
	t.Parallel()
	up := providertest.NewServer(t)
	// The upstream sends its first chunk and then waits for a release that
	// never comes: only a cancellation ends the request.
	up.Respond(func(*providertest.Request) providertest.Reply {
		return providertest.Reply{Hold: make(chan struct{})}
	})
	d := start(t, harness.ConfigDir(t, map[string]string{"m.yaml": openaiConfig(up.OpenAIURL())}), harness.Options{})
	c := d.newClient(t, "")

	ctx, hangUp := context.WithCancel(t.Context())
	r, _ := firstChunk(t, ctx, c)
	if st := up.Stats(); st.InFlight != 1 || st.Canceled != 0 {
		t.Fatalf("upstream %+v while the stream is held, want 1 in flight", st)
	}
	// Hang up: the context cancels the request and Close drops the
	// connection the body was read from.
	hangUp()
	r.s.Close()

	wait, cancel := context.WithTimeout(t.Context(), harness.Timeout)
	defer cancel()
	if err := up.Await(wait, func(st providertest.Stats) bool { return st.Canceled == 1 && st.InFlight == 0 }); err != nil {
		t.Fatalf("the upstream call was not cancelled: %+v", up.Stats())
	}
}

// TestReloadDuringStream: a stream that started before a reload finishes on
// the snapshot it started on, from the upstream that snapshot named, even
// though the reload moved the model to another upstream (and retired the
// old provider's executor); the next request is served by the new
// snapshot from the new upstream.
func TestReloadDuringStream(t *testing.T) {
	t.Parallel()
	oldUp, newUp := providertest.NewServer(t), providertest.NewServer(t)
	release := make(chan struct{})
	const oldText = "the old upstream finishes what it started"
	oldUp.Respond(func(*providertest.Request) providertest.Reply {
		return providertest.Reply{Text: oldText, Hold: release}
	})
	const newText = "the new upstream answers"
	newUp.Respond(func(*providertest.Request) providertest.Reply {
		return providertest.Reply{Text: newText}
	})
	dir := harness.ConfigDir(t, map[string]string{"m.yaml": openaiConfig(oldUp.OpenAIURL())})
	d := start(t, dir, harness.Options{})
	c := d.newClient(t, "")
	v0 := d.Status().Version

	r, raw := firstChunk(t, t.Context(), c)
	if got := harness.Version(t, raw.Header); got != v0 {
		t.Fatalf("stream started on version %d, the daemon serves %d", got, v0)
	}

	// Move the model to the new upstream, through the watcher as an
	// operator's edit would, and wait until the new snapshot serves.
	harness.Replace(t, dir, "m.yaml", openaiConfig(newUp.OpenAIURL()))
	v1 := d.WaitStatus("the edit applied", func(s harness.Status) bool { return s.Version > v0 }).Version

	close(release)
	r.rest(t)
	if got := r.acc.Choices[0].Message.Content; got != oldText || r.acc.Choices[0].FinishReason != "stop" {
		t.Errorf("stream assembled to %q (finish %q), want the old upstream's %q, finished", got, r.acc.Choices[0].FinishReason, oldText)
	}

	var next *http.Response
	cc, err := c.Chat.Completions.New(t.Context(), params("m"), option.WithResponseInto(&next))
	if err != nil {
		t.Fatal(err)
	}
	if got := cc.Choices[0].Message.Content; got != newText {
		t.Errorf("next answer %q, want the new upstream's %q", got, newText)
	}
	if got := harness.Version(t, next.Header); got != v1 {
		t.Errorf("next answer from version %d, want %d", got, v1)
	}
	if o, n := oldUp.Stats().Requests, newUp.Stats().Requests; o != 1 || n != 1 {
		t.Errorf("requests: old upstream %d, new %d; want 1 and 1", o, n)
	}
}
