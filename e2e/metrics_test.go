package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// Everything /metrics exposes, after a reload and a request, passes
// Prometheus's own linter (promtool, from Debian's prometheus package,
// which .ci/deps installs).
func TestMetricsPassPromtool(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (apt-get install prometheus); .ci/deps does")
	}
	d := start(t, baseDir(t))
	d.Reload()
	resp, err := d.Client().Post(d.URL+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"a","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("completion: HTTP %d", resp.StatusCode)
	}
	_, _, body := d.Get("/metrics")
	for _, want := range []string{"awakend_build_info{", "awakend_config_info{", "awakend_requests_total{", "awakend_requests_in_flight ", "awakend_breaker_open{"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics has no %s", want)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}
