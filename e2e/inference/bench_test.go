package inference

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/awakend/awakend/gateway"
	"github.com/awakend/awakend/provider"
	"github.com/awakend/awakend/registry"
)

// upstreamAnswer is the benchmark upstream's chat.completion (about 300
// bytes, a typical short answer).
var upstreamAnswer = []byte(`{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"up-m",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?","refusal":null},` +
	`"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":21,"completion_tokens":9,"total_tokens":30}}`)

// upstreamStream is the benchmark upstream's stream: a role chunk, three
// content chunks, the finish chunk and [DONE], each flushed on its own.
var upstreamStream = func() [][]byte {
	const p = `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"up-m","choices":[`
	var evs [][]byte
	for _, c := range []string{
		`{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
		`{"index":0,"delta":{"content":"Hello!"},"finish_reason":null}]}`,
		`{"index":0,"delta":{"content":" How can I"},"finish_reason":null}]}`,
		`{"index":0,"delta":{"content":" help you today?"},"finish_reason":null}]}`,
		`{"index":0,"delta":{},"finish_reason":"stop"}]}`,
	} {
		evs = append(evs, []byte(p+c+"\n\n"))
	}
	return append(evs, []byte("data: [DONE]\n\n"))
}()

// benchRequest is the client's request (about 600 bytes); MODEL is
// replaced by the model asked for.
const benchRequest = `{"model":"MODEL","messages":[` +
	`{"role":"system","content":"You are a helpful assistant. Answer briefly and precisely."},` +
	`{"role":"user","content":"What is the capital of France? Please answer in one word and explain nothing."},` +
	`{"role":"assistant","content":"Paris."},` +
	`{"role":"user","content":"And of Germany? Same rules as before, one word, no explanation, thanks."}],` +
	`"temperature":0.2,"max_tokens":256,"user":"user-1234"STREAM}`

func benchBody(model string, stream bool) []byte {
	s := strings.Replace(benchRequest, "MODEL", model, 1)
	st := ""
	if stream {
		st = `,"stream":true`
	}
	return []byte(strings.Replace(s, "STREAM", st, 1))
}

// fastUpstream is a minimal OpenAI-compatible upstream: it records
// nothing and answers from memory, so that what a benchmark measures is
// HTTP and the gateway, not the mock.
type fastUpstream struct {
	url  string // base_url: http://127.0.0.1:port/v1
	srv  *http.Server
	done chan struct{}
}

func startUpstream(tb testing.TB) *fastUpstream {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	u := &fastUpstream{url: "http://" + ln.Addr().String() + "/v1", done: make(chan struct{})}
	u.srv = &http.Server{Handler: http.HandlerFunc(serveUpstream), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(u.done)
		_ = u.srv.Serve(ln)
	}()
	tb.Cleanup(func() {
		u.srv.Close()
		<-u.done
	})
	return u
}

var (
	jsonType  = []string{"application/json"}
	sseType   = []string{"text/event-stream"}
	noCache   = []string{"no-cache"}
	answerLen = []string{strconv.Itoa(len(upstreamAnswer))}
	bodyPool  = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

func serveUpstream(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
		http.NotFound(w, r)
		return
	}
	buf := bodyPool.Get().(*bytes.Buffer)
	defer bodyPool.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(r.Body); err != nil {
		return
	}
	h := w.Header()
	if !bytes.Contains(buf.Bytes(), []byte(`"stream":true`)) {
		h["Content-Type"], h["Content-Length"] = jsonType, answerLen
		_, _ = w.Write(upstreamAnswer)
		return
	}
	h["Content-Type"], h["Cache-Control"] = sseType, noCache
	f := w.(http.Flusher)
	for _, ev := range upstreamStream {
		if _, err := w.Write(ev); err != nil {
			return
		}
		f.Flush()
	}
}

// target is one way to reach the upstream: directly, or through a daemon.
type target struct {
	name   string
	url    string // the chat completions URL
	body   []byte
	stream []byte
}

// complete sends one non-streaming request and returns its latency (to
// the end of the body).
func (tg *target) complete(c *http.Client) (time.Duration, error) {
	req, err := http.NewRequest(http.MethodPost, tg.url, bytes.NewReader(tg.body))
	if err != nil {
		return 0, err
	}
	req.Header["Content-Type"] = jsonType
	t0 := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	d := time.Since(t0)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK || n < 100 {
		return 0, fmt.Errorf("%s: HTTP %d, %d bytes", tg.name, resp.StatusCode, n)
	}
	return d, nil
}

// firstChunk sends one streaming request and returns the time to its first
// data: line; it reads the rest of the stream, which must end with [DONE].
func (tg *target) firstChunk(c *http.Client) (time.Duration, error) {
	req, err := http.NewRequest(http.MethodPost, tg.url, bytes.NewReader(tg.stream))
	if err != nil {
		return 0, err
	}
	req.Header["Content-Type"] = jsonType
	t0 := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: HTTP %d", tg.name, resp.StatusCode)
	}
	br := bufio.NewReader(resp.Body)
	var ttfc time.Duration
	last := ""
	for {
		line, err := br.ReadString('\n')
		if strings.HasPrefix(line, "data:") {
			if ttfc == 0 {
				ttfc = time.Since(t0)
			}
			last = line
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	if last != "data: [DONE]\n" {
		return 0, fmt.Errorf("%s: the stream ended with %q", tg.name, last)
	}
	return ttfc, nil
}

// sample is the latencies of one target in one phase, and the wall time
// of its blocks.
type sample struct {
	lat  []time.Duration
	wall time.Duration
}

// block runs n requests at concurrency conc (conc goroutines, each sending
// n/conc requests one after the other) and adds them to s.
func (s *sample) block(c *http.Client, conc, n int, do func(*http.Client) (time.Duration, error)) error {
	per := n / conc
	lats := make([][]time.Duration, conc)
	errs := make([]error, conc)
	var wg sync.WaitGroup
	t0 := time.Now()
	for g := range conc {
		lats[g] = make([]time.Duration, 0, per)
		wg.Go(func() {
			for range per {
				d, err := do(c)
				if err != nil {
					errs[g] = err
					return
				}
				lats[g] = append(lats[g], d)
			}
		})
	}
	wg.Wait()
	s.wall += time.Since(t0)
	for _, l := range lats {
		s.lat = append(s.lat, l...)
	}
	return errors.Join(errs...)
}

// pct returns the p-quantile (0 < p ≤ 1) of the sorted latencies.
func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// stats are a sample's figures.
type stats struct {
	p50, p90, p99 time.Duration
	rps           float64
	n             int
}

func (s *sample) stats() stats {
	l := slices.Clone(s.lat)
	slices.Sort(l)
	return stats{pct(l, .50), pct(l, .90), pct(l, .99), float64(len(l)) / s.wall.Seconds(), len(l)}
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// memory returns the VmRSS and VmHWM of process pid, in MB.
func memory(pid int) (rss, hwm float64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %v", line, err)
		}
		if k == "VmRSS" {
			rss = kb / 1024
		} else {
			hwm = kb / 1024
		}
	}
	return rss, hwm, nil
}

// Sizes of BenchmarkGatewayOverhead's phases: blocks per target, requests
// per block.
const (
	benchBlocks  = 10
	benchC1      = 500  // requests per block at concurrency 1
	benchC16     = 3200 // requests per block at concurrency 16 (200 per goroutine)
	benchStreams = 200  // streams per block at concurrency 1
)

// upstreamEnv makes the test binary serve the benchmark upstream in its
// own process instead of running tests (see TestMain).
const upstreamEnv = "INFERENCE_UPSTREAM_PROCESS"

// serveUpstreamProcess serves the benchmark upstream on a loopback port,
// prints its base_url, and exits when its standard input closes (when the
// benchmark that started it ends, or dies).
func serveUpstreamProcess() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	srv := &http.Server{Handler: http.HandlerFunc(serveUpstream), ReadHeaderTimeout: 10 * time.Second}
	fmt.Println("http://" + ln.Addr().String() + "/v1")
	go func() { _ = srv.Serve(ln) }()
	_, _ = io.Copy(io.Discard, os.Stdin)
	srv.Close()
	return 0
}

// startUpstreamProcess runs the benchmark upstream in a process of its own
// and returns its base_url.
func startUpstreamProcess(tb testing.TB) string {
	tb.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), upstreamEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			tb.Errorf("upstream process: %v", err)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("upstream process: %v", err)
	}
	return strings.TrimSpace(line)
}

// BenchmarkGatewayOverhead measures what the daemon's gateway adds to a
// chat completion (DESIGN §9): a fast upstream is called directly and
// through the real awakend binary (one openai provider, one model), over
// loopback HTTP, by one client. Each phase runs blocks of requests,
// alternating the targets block by block (and their order round by round)
// so that noise from the rest of the machine falls on all of them alike,
// after a warm-up:
//
//   - c1, concurrency 1: latency p50/p90/p99 of each target and the latency
//     the gateway adds (gateway − direct, percentile by percentile);
//   - c16, 16 goroutines each sending one request after the other: the
//     same, and the throughput of each and the gateway's share of direct;
//   - ttfc, streams at concurrency 1: time to the first data: line;
//   - the daemon's VmRSS and VmHWM after the run.
//
// The upstream runs in the test process, as the client does ("direct",
// "gateway"), and, for a second baseline, in a process of its own
// ("direct:sep", "gateway:sep"). In-process, the direct call never leaves
// the process, while the gateway path crosses processes twice; with the
// upstream apart, each path pays its own process switches, as client,
// gateway and upstream do in production. Both comparisons are reported.
//
// The daemons log at warn, so that the per-request Info line is not what
// is measured; "gateway+log" is a daemon logging every request at info
// (JSON, to a file). One iteration is one full measurement (about 40 s on
// two cores); ns/op is its wall time.
func BenchmarkGatewayOverhead(b *testing.B) {
	up := startUpstream(b)
	sep := startUpstreamProcess(b)
	config := func(baseURL string) map[string]string {
		return map[string]string{"bench.yaml": `providers:
  - {id: bench, adapter: openai, base_url: "` + baseURL + `"}
models:
  - {id: m, provider_id: bench, upstream_model: up-m}
`}
	}
	quiet := start(b, configDir(b, config(up.url)), options{logLevel: "warn"})
	logged := start(b, configDir(b, config(up.url)), options{logLevel: "info"})
	quietSep := start(b, configDir(b, config(sep)), options{logLevel: "warn"})
	direct := func(name, baseURL string) *target {
		return &target{name: name, url: baseURL + "/chat/completions", body: benchBody("up-m", false), stream: benchBody("up-m", true)}
	}
	gw := func(name string, d *daemon) *target {
		return &target{name: name, url: d.url + "/v1/chat/completions", body: benchBody("m", false), stream: benchBody("m", true)}
	}
	targets := []*target{
		direct("direct", up.url), gw("gateway", quiet), gw("gateway+log", logged),
		direct("direct:sep", sep), gw("gateway:sep", quietSep),
	}
	// baseline is the direct target each gateway target is compared with.
	baseline := map[string]string{"gateway": "direct", "gateway+log": "direct", "gateway:sep": "direct:sep"}
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: 256, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, DisableCompression: true,
	}}
	b.Cleanup(client.CloseIdleConnections)

	type phase struct {
		name string
		conc int
		n    int
		do   func(*target) func(*http.Client) (time.Duration, error)
	}
	phases := []phase{
		{"c1", 1, benchC1, func(t *target) func(*http.Client) (time.Duration, error) { return t.complete }},
		{"c16", 16, benchC16, func(t *target) func(*http.Client) (time.Duration, error) { return t.complete }},
		{"ttfc", 1, benchStreams, func(t *target) func(*http.Client) (time.Duration, error) { return t.firstChunk }},
	}

	for b.Loop() {
		// Warm-up: connections, the daemons' pools and their heaps.
		for _, tg := range targets {
			for _, ph := range phases {
				var s sample
				if err := s.block(client, ph.conc, ph.n/2, ph.do(tg)); err != nil {
					b.Fatal(err)
				}
			}
		}
		res := results{}
		for _, ph := range phases {
			samples := make([]sample, len(targets))
			for round := range benchBlocks {
				for i := range targets {
					if round%2 == 1 {
						i = len(targets) - 1 - i
					}
					if err := samples[i].block(client, ph.conc, ph.n, ph.do(targets[i])); err != nil {
						b.Fatal(err)
					}
				}
			}
			res[ph.name] = map[string]stats{}
			for i, tg := range targets {
				res[ph.name][tg.name] = samples[i].stats()
			}
		}
		var mem [2]float64
		var err error
		if mem[0], mem[1], err = memory(quiet.cmd.Process.Pid); err != nil {
			b.Fatal(err)
		}
		res.report(b, targets, baseline, mem)
	}
}

// results are a run's stats by phase and target.
type results map[string]map[string]stats

// added is how much later target's q-quantile is than its baseline's in
// phase ph.
func (r results) added(ph, target, base string, q func(stats) time.Duration) time.Duration {
	return q(r[ph][target]) - q(r[ph][base])
}

func p50(s stats) time.Duration { return s.p50 }
func p90(s stats) time.Duration { return s.p90 }
func p99(s stats) time.Duration { return s.p99 }

// report prints BenchmarkGatewayOverhead's table to standard output and
// reports its key figures as metrics.
func (r results) report(b *testing.B, targets []*target, baseline map[string]string, mem [2]float64) {
	var t strings.Builder
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&t, "\nBenchmarkGatewayOverhead: %d CPUs, load average %s (after the run)\n", runtime.NumCPU(), strings.TrimSpace(string(load)))
	t.WriteString("  direct, gateway: upstream in the test process; direct:sep, gateway:sep: upstream in a process of its own\n")
	t.WriteString("  gateway*: awakend serve --log-level warn; gateway+log: --log-level info --log-format json (a line per request, to a file)\n")
	t.WriteString("  +pXX: gateway − its direct baseline; ratio: gateway req/s ÷ its direct baseline's\n")
	fmt.Fprintf(&t, "%-5s %-12s %6s %8s %8s %8s %8s %8s %8s %8s %6s\n",
		"phase", "target", "n", "p50 µs", "p90 µs", "p99 µs", "+p50", "+p90", "+p99", "req/s", "ratio")
	for _, ph := range []string{"c1", "c16", "ttfc"} {
		for _, tg := range targets {
			s := r[ph][tg.name]
			fmt.Fprintf(&t, "%-5s %-12s %6d %8.0f %8.0f %8.0f", ph, tg.name, s.n, us(s.p50), us(s.p90), us(s.p99))
			base, ok := baseline[tg.name]
			if ok {
				fmt.Fprintf(&t, " %8.0f %8.0f %8.0f", us(r.added(ph, tg.name, base, p50)), us(r.added(ph, tg.name, base, p90)), us(r.added(ph, tg.name, base, p99)))
			} else {
				fmt.Fprintf(&t, " %8s %8s %8s", "", "", "")
			}
			fmt.Fprintf(&t, " %8.0f", s.rps)
			if ok && ph == "c16" {
				fmt.Fprintf(&t, " %6.2f", s.rps/r[ph][base].rps)
			}
			t.WriteString("\n")
		}
	}
	fmt.Fprintf(&t, "memory of the gateway daemon after the run: VmRSS %.1f MB, VmHWM %.1f MB\n", mem[0], mem[1])

	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	for _, pair := range [][2]string{{"gateway", "direct"}, {"gateway:sep", "direct:sep"}} {
		g, d := pair[0], pair[1]
		a50, a99 := r.added("c1", g, d, p50), r.added("c1", g, d, p99)
		ratio := r["c16"][g].rps / r["c16"][d].rps
		ttfc := r.added("ttfc", g, d, p50)
		fmt.Fprintf(&t, "targets, %s vs %s: c1 +p50 %.0f µs < 150 %s; c1 +p99 %.0f µs < 500 %s; c16 ratio %.2f ≥ 0.40 %s; ttfc +p50 %.0f µs < 200 %s\n",
			g, d, us(a50), verdict(a50 < 150*time.Microsecond), us(a99), verdict(a99 < 500*time.Microsecond),
			ratio, verdict(ratio >= 0.4), us(ttfc), verdict(ttfc < 200*time.Microsecond))
	}
	fmt.Print(t.String())

	b.ReportMetric(us(r.added("c1", "gateway", "direct", p50)), "added-p50-us")
	b.ReportMetric(us(r.added("c1", "gateway", "direct", p90)), "added-p90-us")
	b.ReportMetric(us(r.added("c1", "gateway", "direct", p99)), "added-p99-us")
	b.ReportMetric(us(r.added("c16", "gateway", "direct", p50)), "c16-added-p50-us")
	b.ReportMetric(us(r.added("c16", "gateway", "direct", p99)), "c16-added-p99-us")
	b.ReportMetric(r["c16"]["gateway"].rps/r["c16"]["direct"].rps, "c16-ratio")
	b.ReportMetric(us(r.added("ttfc", "gateway", "direct", p50)), "ttfc-added-p50-us")
	b.ReportMetric(us(r.added("c1", "gateway:sep", "direct:sep", p50)), "sep-added-p50-us")
	b.ReportMetric(us(r.added("c1", "gateway:sep", "direct:sep", p99)), "sep-added-p99-us")
	b.ReportMetric(r["c16"]["gateway:sep"].rps/r["c16"]["direct:sep"].rps, "sep-c16-ratio")
	b.ReportMetric(us(r.added("ttfc", "gateway:sep", "direct:sep", p50)), "sep-ttfc-added-p50-us")
	b.ReportMetric(us(r.added("c1", "gateway+log", "gateway", p50)), "log-cost-p50-us")
	b.ReportMetric(mem[0], "rss-MB")
	b.ReportMetric(mem[1], "hwm-MB")
}

// BenchmarkGatewayInProcess serves BenchmarkGatewayOverhead's load from a
// gateway wired as the daemon wires it (gateway.New over a registry handle
// whose provider has the real openai executor of provider.New, metrics
// registered, logging at warn, behind net/http on a loopback port), in the
// test process, so that a CPU profile shows where the gateway's time goes:
//
//	go test -run '^$' -bench InProcess/c16 -cpuprofile cpu.out ./e2e/inference/
//	go tool pprof -top -cum cpu.out
//
// The client and the upstream run in the same process and appear in the
// profile too. ns/op is the time per request over all goroutines.
func BenchmarkGatewayInProcess(b *testing.B) {
	up := startUpstream(b)
	spec := registry.ProviderSpec{ID: "bench", Adapter: "openai", BaseURL: up.url, TimeoutSecs: registry.DefaultProviderTimeoutSecs}
	ex, err := provider.New(spec)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ex.(provider.Caller).Close() })
	set, err := registry.Rebuild(nil, registry.Update{
		Providers: []registry.Provider{{Spec: spec, Executor: ex}},
		Models:    []registry.ModelSpec{{ID: "m", ProviderID: "bench", UpstreamModel: "up-m"}},
	})
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/", gateway.New(gateway.Options{
		Handle:  registry.NewHandle(set),
		Logger:  slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Metrics: prometheus.NewRegistry(),
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(ln)
	}()
	b.Cleanup(func() {
		srv.Close()
		<-served
	})
	tg := &target{name: "gateway", url: "http://" + ln.Addr().String() + "/v1/chat/completions",
		body: benchBody("m", false), stream: benchBody("m", true)}
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: 256, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, DisableCompression: true,
	}}
	b.Cleanup(client.CloseIdleConnections)

	for _, bc := range []struct {
		name string
		conc int
		do   func(*http.Client) (time.Duration, error)
	}{
		{"c1", 1, tg.complete},
		{"c16", 16, tg.complete},
		{"c16-stream", 16, tg.firstChunk},
	} {
		b.Run(bc.name, func(b *testing.B) {
			// RunParallel starts parallelism × GOMAXPROCS goroutines.
			b.SetParallelism(max(1, bc.conc/runtime.GOMAXPROCS(0)))
			if bc.conc == 1 {
				for b.Loop() {
					if _, err := bc.do(client); err != nil {
						b.Fatal(err)
					}
				}
				return
			}
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := bc.do(client); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
