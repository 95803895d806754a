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
//
// http.Transport.CloseIdleConnections alone covers a call that is already
// waiting for its answer, but not one that starts after it (a request that
// took the old snapshot just before the swap): that call re-enables idle
// connections, and its connection would linger for the 90 s idle timeout.
func TestCloseDrainsLateCall(t *testing.T) {
	srv := providertest.NewServer(t)
	e, err := New(openaiSpec(srv.OpenAIURL()))
	if err != nil {
		t.Fatal(err)
	}
	ex := e.(*Executor)
	ex.Close()
	resp := callOnce(t, ex, false)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Await(ctx, func(s providertest.Stats) bool { return s.Conns == 0 }); err != nil {
		t.Fatalf("connection of a call on a retired executor still open: %+v", srv.Stats())
	}
}

func TestCloseDrainsCallsInFlight(t *testing.T) {
	srv := providertest.NewServer(t)
	srv.Enqueue(providertest.Reply{HeaderDelay: 300 * time.Millisecond})
	e, err := New(openaiSpec(srv.OpenAIURL()))
	if err != nil {
		t.Fatal(err)
	}
	ex := e.(*Executor)
	done := make(chan *Response)
	go func() { done <- callOnce(t, ex, false) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Await(ctx, func(s providertest.Stats) bool { return s.InFlight == 1 }); err != nil {
		t.Fatal(err)
	}
	ex.Close() // a reload retired it while the call waits for its answer
	resp := <-done
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("call cut by Close: %v", err)
	}
	resp.Body.Close()
	// Without draining, the connection would idle for 90 s.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := srv.Await(ctx2, func(s providertest.Stats) bool { return s.Conns == 0 }); err != nil {
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
