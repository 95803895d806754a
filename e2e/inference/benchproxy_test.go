package inference

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/awakend/awakend/e2e/harness"
)

// TestBenchProxy: the benchmark's reference, served by an awakend binary
// built with the benchproxy tag, proxies to its upstream, body and path,
// as BenchmarkGatewayOverhead uses it. (The benchmark is not run by make
// test; this keeps the tagged build and its command working.)
func TestBenchProxy(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+r.URL.Path+" "+string(b))
	}))
	defer up.Close()
	p := startProcess(t, "bench-proxy", exec.Command(harness.BuildTagged(t, "benchproxy"), "bench-proxy", up.URL+"/v1"))
	if !strings.HasPrefix(p.url, "http://127.0.0.1:") || !strings.HasSuffix(p.url, "/v1") {
		t.Fatalf("base URL %q", p.url)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Post(p.url+"/chat/completions", "application/json", strings.NewReader(`{"model":"m"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if want := `POST /v1/chat/completions {"model":"m"}`; resp.StatusCode != 200 || string(got) != want {
		t.Errorf("through the proxy: %d %q, want 200 %q", resp.StatusCode, got, want)
	}
}
