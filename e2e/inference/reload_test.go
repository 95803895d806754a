package inference

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/openai/openai-go/v3/option"

	"github.com/awakend/awakend/e2e/harness"
	"github.com/awakend/awakend/provider/providertest"
)

// Bounds of TestReloadsUnderLoad.
const (
	stormReloads = 100
	stormClients = 4
	// stormMaxRequests caps each client, should the reloads be slow.
	stormMaxRequests = 20000
)

// TestReloadsUnderLoad: 100 applied reloads while four clients send
// completions without pause fail no request. The clients alternate between
// an agent on an openai provider (whose executor every reload keeps) and a
// model on the mock adapter; each reload changes the agent's description,
// written atomically and applied through POST /api/v1/reload (the watcher
// sees the same edits and may apply one first: then the API's reload finds
// nothing new, and the version has moved all the same).
func TestReloadsUnderLoad(t *testing.T) {
	t.Parallel()
	up := providertest.NewServer(t)
	answerByModel(up)
	agents := func(rev int) string {
		return fmt.Sprintf("agents:\n  - {id: a, model_id: u, system_prompt: You help., description: revision %d}\n", rev)
	}
	dir := harness.ConfigDir(t, map[string]string{
		"providers.yaml": `providers:
  - {id: p, adapter: mock}
  - {id: up, adapter: openai, base_url: "` + up.OpenAIURL() + `"}
`,
		"models.yaml": `models:
  - {id: m, provider_id: p, upstream_model: mock-1}
  - {id: u, provider_id: up, upstream_model: up-u}
`,
		"agents.yaml": agents(0),
	})
	d := start(t, dir, harness.Options{})
	c := d.newClient(t, "")
	v0 := d.Status().Version

	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	var (
		sent     atomic.Int64
		failed   atomic.Int64
		mu       sync.Mutex
		failures []string
		versions = map[uint64]int{} // requests served per config version
	)
	fail := func(format string, args ...any) {
		failed.Add(1)
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 10 {
			failures = append(failures, fmt.Sprintf(format, args...))
		}
	}
	// The reloads start once every client has had an answer, so that the
	// load is on before the first reload, however slow the machine.
	var wg, warm sync.WaitGroup
	warm.Add(stormClients)
	for g := range stormClients {
		wg.Go(func() {
			var once sync.Once
			defer once.Do(warm.Done)
			seen := map[uint64]int{}
			defer func() {
				mu.Lock()
				for v, n := range seen {
					versions[v] += n
				}
				mu.Unlock()
			}()
			for i := 0; i < stormMaxRequests && ctx.Err() == nil; i++ {
				model, want := "a", upstreamText("up-u")
				if (g+i)%2 == 1 {
					model, want = "m", "mock reply to: "+prompt
				}
				var raw *http.Response
				// Each request runs to its end even once the storm is over:
				// no request is cut by the test itself.
				cc, err := c.Chat.Completions.New(context.WithoutCancel(ctx), params(model), option.WithResponseInto(&raw))
				sent.Add(1)
				once.Do(warm.Done)
				if err != nil {
					fail("%s: %v", model, err)
					continue
				}
				if raw.StatusCode != http.StatusOK || len(cc.Choices) != 1 || cc.Choices[0].Message.Content != want ||
					cc.Choices[0].FinishReason != "stop" || cc.ID == "" || cc.Usage.TotalTokens == 0 {
					fail("%s: HTTP %d: %s", model, raw.StatusCode, cc.RawJSON())
					continue
				}
				v, err := harness.ParseVersion(raw.Header)
				if err != nil {
					fail("%s: %v", model, err)
					continue
				}
				seen[v]++
			}
		})
	}

	warm.Wait()
	last := v0
	for rev := 1; rev <= stormReloads; rev++ {
		harness.Replace(t, dir, "agents.yaml", agents(rev))
		r := d.Reload()
		// The edit is new, so the reload that read it (the API's, or the
		// watcher's just before) published a newer version.
		if r.Version <= last {
			stop()
			wg.Wait()
			t.Fatalf("reload %d: %s at version %d, not after %d", rev, r.Result, r.Version, last)
		}
		last = r.Version
	}
	stop()
	wg.Wait()

	if last != v0+stormReloads {
		t.Errorf("versions %d → %d: %d applied reloads, want %d", v0, last, last-v0, stormReloads)
	}
	n := sent.Load()
	t.Logf("%d requests (%d failed) by %d clients during %d applied reloads (versions %d to %d); served from %d distinct versions",
		n, failed.Load(), stormClients, last-v0, v0, last, len(versions))
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed; the first ones:", failed.Load(), n)
	}
	for _, f := range failures {
		t.Error(f)
	}
	if len(versions) < 2 {
		t.Errorf("the requests were served from %d config versions: the load did not overlap the reloads", len(versions))
	}
}
