package inference

import (
	"cmp"
	"net/http"
	"os"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/awakend/awakend/e2e/harness"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		os.Exit(serveHelper(role))
	}
	os.Exit(harness.Main(m))
}

// daemon is one running awakend serve, started by start.
type daemon struct{ *harness.Daemon }

// start runs awakend serve on the config directory dir and returns once it
// is ready. It logs JSON, at info unless o says otherwise.
func start(tb testing.TB, dir string, o harness.Options) *daemon {
	tb.Helper()
	o.LogFormat = cmp.Or(o.LogFormat, "json")
	o.LogLevel = cmp.Or(o.LogLevel, "info")
	return &daemon{harness.Start(tb, dir, o)}
}

// newClient returns an OpenAI SDK client of the daemon's gateway: no
// retries (a failure must show), key as the API key ("" sends none,
// whatever OPENAI_API_KEY says), its own connection pool closed when the
// test ends.
func (d *daemon) newClient(tb testing.TB, key string) openai.Client {
	hc := &http.Client{Timeout: harness.Timeout, Transport: &http.Transport{
		TLSClientConfig: d.TLS, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 16, DisableCompression: true,
	}}
	tb.Cleanup(hc.CloseIdleConnections)
	return openai.NewClient(
		option.WithBaseURL(d.URL+"/v1"),
		option.WithAPIKey(key),
		option.WithHTTPClient(hc),
		option.WithMaxRetries(0),
	)
}
