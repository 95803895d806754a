package provider

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/awakend/awakend/provider/providertest"
	"github.com/awakend/awakend/registry"
)

func openaiSpec(url string) registry.ProviderSpec {
	return registry.ProviderSpec{ID: "p", Adapter: "openai", BaseURL: url, TimeoutSecs: 30}
}

func callOnce(t *testing.T, ex *Executor, stream bool) *Response {
	t.Helper()
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	if stream {
		body = `{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	}
	resp, err := ex.Call(context.Background(), &Request{Body: []byte(body), UpstreamModel: "m", Stream: stream})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// A retired executor closes the connection of a call that was in flight
// when it was retired, as soon as that call finishes.
func TestCloseDrainsCallsInFlight(t *testing.T) {
	srv := providertest.NewServer(t)
	hold := make(chan struct{})
	srv.Enqueue(providertest.Reply{Chunks: []string{"a", "b"}, Hold: hold})
	e, err := New(openaiSpec(srv.OpenAIURL()))
	if err != nil {
		t.Fatal(err)
	}
	ex := e.(*Executor)
	resp := callOnce(t, ex, true)
	ex.Close() // the reload retired it; the stream goes on
	close(hold)
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("stream cut by Close: %v", err)
	}
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Await(ctx, func(s providertest.Stats) bool { return s.Conns == 0 }); err != nil {
		t.Fatalf("connection of the drained call still open: %+v", srv.Stats())
	}
}

// 1,000 reloads that each replace the provider's executor leak no
// connection: each retired executor's pool is closed.
func TestNoConnectionLeakOverReloads(t *testing.T) {
	srv := providertest.NewServer(t)
	var prev *Executor
	for range 1000 {
		e, err := New(openaiSpec(srv.OpenAIURL()))
		if err != nil {
			t.Fatal(err)
		}
		ex := e.(*Executor)
		resp := callOnce(t, ex, false)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if prev != nil {
			prev.Close()
		}
		prev = ex
	}
	prev.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Await(ctx, func(s providertest.Stats) bool { return s.Conns == 0 }); err != nil {
		t.Fatalf("connections left open after 1,000 replaced executors: %+v", srv.Stats())
	}
}
