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
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/awakend/awakend/e2e/harness"
	"github.com/awakend/awakend/gateway"
	"github.com/awakend/awakend/internal/benchproxy"
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
	pid    int // the process that serves it, whose CPU time is its own; 0 if none
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

// sample is the latencies of one target in one phase, the wall time of
// its blocks, and the CPU time the test process (the client, and in
// BenchmarkGatewayInProcess everything) used during them.
type sample struct {
	lat  []time.Duration
	wall time.Duration
	cpu  time.Duration
}

// selfCPU returns the CPU time, user and system, the test process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// block runs n requests at concurrency conc (conc goroutines, each sending
// n/conc requests one after the other) and adds them to s.
func (s *sample) block(c *http.Client, conc, n int, do func(*http.Client) (time.Duration, error)) error {
	per := n / conc
	lats := make([][]time.Duration, conc)
	errs := make([]error, conc)
	var wg sync.WaitGroup
	t0, cpu0 := time.Now(), selfCPU()
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
	s.cpu += selfCPU() - cpu0
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
	cpu           time.Duration // the test process's, per request
	server        time.Duration // the target's process's, per request (0 without one)
}

func (s *sample) stats() stats {
	l := slices.Clone(s.lat)
	slices.Sort(l)
	return stats{p50: pct(l, .50), p90: pct(l, .90), p99: pct(l, .99), rps: float64(len(l)) / s.wall.Seconds(), n: len(l),
		cpu: s.cpu / time.Duration(max(len(l), 1))}
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

// candidateEnv names another awakend binary that BenchmarkGatewayOverhead
// measures in the same run, as the target "candidate" (at warn, like
// "gateway"): a change to the gateway is best judged against the current
// build block by block, not run by run. Build it with -tags benchproxy, as
// the benchmark builds the gateway, or the comparison measures the builds.
const candidateEnv = "INFERENCE_CANDIDATE_BINARY"

// helperEnv makes the test binary serve, in a process of its own, instead
// of running tests (see TestMain): "upstream" is the benchmark upstream,
// "proxy=URL" a bare reverse proxy to the upstream at base_url URL.
const helperEnv = "INFERENCE_HELPER"

// serveHelper serves what role names on a loopback port, prints its
// base_url, and returns when its standard input closes (when the benchmark
// that started it ends, or dies).
func serveHelper(role string) int {
	var h http.Handler = http.HandlerFunc(serveUpstream)
	if to, ok := strings.CutPrefix(role, "proxy="); ok {
		u, err := url.Parse(to)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		h = benchproxy.Handler(u)
	} else if role != "upstream" {
		fmt.Fprintf(os.Stderr, "%s=%s: unknown role\n", helperEnv, role)
		return 2
	}
	if err := benchproxy.Serve(h, os.Stdout, os.Stdin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return 0
}

// helper is a helper process (see helperEnv).
type helper struct {
	url string // the base_url it serves
	pid int
}

// startHelper runs the test binary as a helper process in role (see
// helperEnv) and returns once it serves.
//
// It runs a copy of the binary, so that the helper's code is not the very
// memory the client runs: processes that map one file share its pages, and
// on a small machine, where the client and the helpers take turns on the
// same cores, a proxy that runs the client's own pages of net/http can find
// them in the CPU's caches, as the daemon, a binary of its own, cannot.
// (Run from the test binary itself, the proxy measured faster against this
// client than against another program, and the client spent more CPU per
// request on the daemon's answers than on the proxy's.)
func startHelper(tb testing.TB, role string) helper {
	tb.Helper()
	cmd := exec.Command(copyOf(tb, os.Args[0]))
	cmd.Env = append(os.Environ(), helperEnv+"="+role)
	return startProcess(tb, role, cmd)
}

// copyOf copies the executable bin into tb's temporary directory and
// returns the copy, a file of its own (see startHelper).
func copyOf(tb testing.TB, bin string) string {
	tb.Helper()
	dst := filepath.Join(tb.TempDir(), filepath.Base(bin))
	if err := copyFile(dst, bin); err != nil {
		tb.Fatal(err)
	}
	return dst
}

// startProcess starts cmd, a process that prints its base_url and serves
// until its standard input closes, and returns once it serves.
func startProcess(tb testing.TB, name string, cmd *exec.Cmd) helper {
	tb.Helper()
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
			tb.Errorf("helper process %s: %v", name, err)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		tb.Fatalf("helper process %s: %v", name, err)
	}
	return helper{url: strings.TrimSpace(line), pid: cmd.Process.Pid}
}

// copyFile copies the executable src to dst.
func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", src, err)
	}
	return out.Close()
}

// The gateway's goals, each against the bare ReverseProxy ("proxy")
// measured in the same run.
const (
	goalAdded      = 1.0  // c1 latency added to direct's, p50 and p99: at most the proxy's
	goalThroughput = 1.15 // c16 requests per second: at least 1.15 times the proxy's
	goalCPU        = 1.0  // c16 CPU time per request of its process: less than the proxy's
	goalTTFC       = 1.1  // time to the first chunk, p50: at most 1.1 times the proxy's
	goalRSS        = 25.0 // the daemon's VmRSS after the run, MB: under this
)

// BenchmarkGatewayOverhead measures what the daemon's gateway adds to a
// chat completion and compares it with a bare httputil.ReverseProxy. A
// fast upstream, in a process of its own as a provider is, is called
// directly ("direct"), through the real awakend binary ("gateway": one
// openai provider, one model), and through "proxy": a bare ReverseProxy in
// a process of its own, between the client and the upstream as the
// gateway is, the cost of an extra HTTP hop through net/http with no
// gateway logic. The gateway and the proxy run one build, awakend with the
// benchproxy tag (`awakend bench-proxy`), each from a copy of its own: the
// same proxy code is tens of microseconds apart at concurrency 1 from two
// binaries (see package benchproxy), so a proxy of another build would
// measure the builds. "proxy-testbin", the same proxy served by the test
// binary, shows how far. All over loopback HTTP, by one client. Each phase runs
// short blocks of requests, alternating the targets block by block (and
// their order round by round) so that noise from the rest of the machine
// falls on all of them alike, after a warm-up (see phases):
//
//   - c1, concurrency 1: latency p50/p90/p99 of each target and the latency
//     it adds to direct's, percentile by percentile;
//   - c16, 16 goroutines each sending one request after the other: the
//     same, and the throughput of each;
//   - ttfc, streams at concurrency 1: time to the first data: line;
//   - per phase and target, the CPU time per request of the client and of
//     the target's own process (the daemon, the proxy), from /proc;
//   - per phase, the daemon's own view from its metrics: the mean time its
//     handler spent besides the upstream call (awakend_gateway_overhead_
//     seconds) and the mean upstream call;
//   - the daemon's VmRSS and VmHWM after the run.
//
// The figures that judge the gateway are ratios to the proxy's in the same
// run (see the goal constants): the added latency at c1, the throughput
// and the CPU per request at c16, the time to the first chunk, each
// reported as a metric (vs-proxy-…) and in the table with its goal. With
// more than one iteration (-benchtime 4x) the metrics are the medians of
// the iterations' ratios, printed after the last table: one iteration's
// move with the load of the rest of the machine, as a daemon measured
// against itself shows (INFERENCE_CANDIDATE_BINARY naming the same build).
//
// The daemons log at warn, so that the per-request Info line is not what
// is measured; "gateway+log" is a daemon logging every request at info
// (JSON, to a file). With INFERENCE_CANDIDATE_BINARY set, a daemon running
// that binary is measured too, as "candidate", and compared with the proxy
// like the gateway. The table goes to standard output. One iteration is
// one full measurement; ns/op is its wall time.
func BenchmarkGatewayOverhead(b *testing.B) {
	up := startHelper(b, "upstream")
	bench := harness.BuildTagged(b, "benchproxy")
	proxy := startProcess(b, "bench-proxy", exec.Command(copyOf(b, bench), "bench-proxy", up.url))
	testProxy := startHelper(b, "proxy="+up.url)
	config := map[string]string{"bench.yaml": `providers:
  - {id: bench, adapter: openai, base_url: "` + up.url + `"}
models:
  - {id: m, provider_id: bench, upstream_model: up-m}
`}
	// Each daemon writes its log to a file, as a service does, not to a
	// pipe the benchmark would have to drain.
	logs := b.TempDir()
	serve := func(name, level, binary string) *daemon {
		return start(b, harness.ConfigDir(b, config), harness.Options{
			LogLevel: level, LogFile: filepath.Join(logs, name+".log"), Binary: binary,
		})
	}
	quiet := serve("gateway", "warn", copyOf(b, bench))
	logged := serve("gateway+log", "info", copyOf(b, bench))
	direct := func(name string, h helper) *target {
		return &target{name: name, url: h.url + "/chat/completions", body: benchBody("up-m", false), stream: benchBody("up-m", true), pid: h.pid}
	}
	gw := func(name string, d *daemon) *target {
		return &target{name: name, url: d.URL + "/v1/chat/completions", body: benchBody("m", false), stream: benchBody("m", true), pid: d.Pid()}
	}
	// The upstream serves every target: its CPU is no one's.
	targets := []*target{direct("direct", helper{url: up.url}), gw("gateway", quiet), gw("gateway+log", logged),
		direct("proxy", proxy), direct("proxy-testbin", testProxy)}
	if cand := os.Getenv(candidateEnv); cand != "" {
		targets = append(targets, gw("candidate", serve("candidate", "warn", cand)))
	}
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: 256, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, DisableCompression: true,
	}}
	b.Cleanup(client.CloseIdleConnections)

	// Each iteration's ratios to the proxy, by target: the goals are judged
	// on their medians.
	runs := map[string][]versus{}
	for b.Loop() {
		// The daemon's own view of each phase, from its metrics.
		views := map[string]inside{}
		var last inside
		res, err := measure(client, targets, func(ph string) {
			h := scrape(b, quiet)
			if ph != "" {
				views[ph] = h.minus(last)
			}
			last = h
		})
		if err != nil {
			b.Fatal(err)
		}
		var mem [2]float64
		if mem[0], mem[1], err = memory(quiet.Pid()); err != nil {
			b.Fatal(err)
		}
		proxyRSS, _, err := memory(proxy.pid)
		if err != nil {
			b.Fatal(err)
		}
		res.report(b, targets, views, mem, proxyRSS)
		for _, name := range []string{"gateway", "candidate"} {
			if _, ok := res["c1"][name]; ok {
				runs[name] = append(runs[name], res.versusProxy(name))
			}
		}
	}
	reportMedians(b, runs)
}

// reportMedians prints, after more than one iteration, each target's
// median ratios to the proxy against the goals, and reports the gateway's
// as the vs-proxy metrics in place of the last iteration's: one
// iteration's ratio moves with the load of the rest of the machine.
func reportMedians(b *testing.B, runs map[string][]versus) {
	if len(runs["gateway"]) < 2 {
		return
	}
	fmt.Printf("\nmedian of %d iterations, target ÷ proxy [goal]:\n", len(runs["gateway"]))
	for _, name := range []string{"gateway", "candidate"} {
		if vs := runs[name]; vs != nil {
			fmt.Println(medianVersus(vs).line(name))
		}
	}
	v := medianVersus(runs["gateway"])
	b.ReportMetric(v.added50, "vs-proxy-c1-added-p50")
	b.ReportMetric(v.added99, "vs-proxy-c1-added-p99")
	b.ReportMetric(v.throughput, "vs-proxy-c16-rps")
	b.ReportMetric(v.cpu, "vs-proxy-c16-cpu")
	b.ReportMetric(v.ttfc, "vs-proxy-ttfc-p50")
}

// medianVersus is the median of each ratio over vs.
func medianVersus(vs []versus) versus {
	med := func(f func(versus) float64) float64 {
		x := make([]float64, len(vs))
		for i, v := range vs {
			x[i] = f(v)
		}
		slices.Sort(x)
		if n := len(x); n%2 == 0 {
			return (x[n/2-1] + x[n/2]) / 2
		}
		return x[len(x)/2]
	}
	return versus{
		added50:    med(func(v versus) float64 { return v.added50 }),
		added99:    med(func(v versus) float64 { return v.added99 }),
		throughput: med(func(v versus) float64 { return v.throughput }),
		cpu:        med(func(v versus) float64 { return v.cpu }),
		ttfc:       med(func(v versus) float64 { return v.ttfc }),
	}
}

// inside is the daemon's own account of its work: the sums and counts of
// its awakend_gateway_overhead_seconds (a request's time in the gateway's
// handler less its upstream call) and awakend_upstream_duration_seconds
// (the upstream call, from the request sent to the answer relayed).
type inside struct {
	overheadSum, upstreamSum     float64
	overheadCount, upstreamCount float64
}

func (h inside) minus(o inside) inside {
	return inside{h.overheadSum - o.overheadSum, h.upstreamSum - o.upstreamSum,
		h.overheadCount - o.overheadCount, h.upstreamCount - o.upstreamCount}
}

// means returns the mean overhead and upstream call per request, in µs.
func (h inside) means() (overhead, upstream float64) {
	return 1e6 * h.overheadSum / max(h.overheadCount, 1), 1e6 * h.upstreamSum / max(h.upstreamCount, 1)
}

// scrape reads the daemon's histograms from GET /metrics.
func scrape(tb testing.TB, d *daemon) inside {
	tb.Helper()
	ss := d.Metrics()
	h := inside{
		overheadSum:   ss.Sum("awakend_gateway_overhead_seconds_sum"),
		overheadCount: ss.Sum("awakend_gateway_overhead_seconds_count"),
		upstreamSum:   ss.Sum("awakend_upstream_duration_seconds_sum"),
		upstreamCount: ss.Sum("awakend_upstream_duration_seconds_count"),
	}
	if h.overheadCount == 0 {
		tb.Fatal("/metrics: no awakend_gateway_overhead_seconds")
	}
	return h
}

// clockTick is the unit of the CPU times in /proc/<pid>/stat (USER_HZ,
// 100 on Linux).
const clockTick = 100

// cpuTime returns the user and system CPU time process pid has used.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The fields after the command name (in parentheses): state is the
	// 3rd field of the line, utime the 14th, stime the 15th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	user, err1 := strconv.ParseInt(f[11], 10, 64)
	sys, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(user+sys) * time.Second / clockTick, nil
}

// phase is one part of a measurement: per target a warm-up, then rounds
// blocks of n requests.
type phase struct {
	name   string
	conc   int // client goroutines
	warm   int // warm-up requests
	rounds int // blocks
	n      int // requests per block
	do     func(*target) func(*http.Client) (time.Duration, error)
}

// BenchmarkGatewayOverhead's phases. The latency phases switch targets
// every 50 requests or 20 streams, a few tens of milliseconds: the load of
// the rest of a shared machine changes over seconds, and longer blocks let
// a change of it fall on one target more than on another (a daemon
// measured against itself, as the candidate, then differs by far more than
// the gateway's own cost). The c16 blocks are long, so that their ramp-up
// and tail, with fewer than 16 requests in flight, weigh little on the
// throughput.
var phases = []phase{
	{"c1", 1, 250, 100, 50, func(t *target) func(*http.Client) (time.Duration, error) { return t.complete }},
	{"c16", 16, 1600, 10, 3200, func(t *target) func(*http.Client) (time.Duration, error) { return t.complete }},
	{"ttfc", 1, 100, 100, 20, func(t *target) func(*http.Client) (time.Duration, error) { return t.firstChunk }},
}

// measure warms the targets up, then runs each phase in its rounds of one
// block per target, in turn (reversed every other round). It reads
// the CPU time of each target's process before and after each phase, and
// calls mark, if set, with "" after the warm-up and with each phase's name
// after it.
func measure(client *http.Client, targets []*target, mark func(phase string)) (results, error) {
	if mark == nil {
		mark = func(string) {}
	}
	// Warm-up: connections, the daemons' pools and their heaps.
	for _, tg := range targets {
		for _, ph := range phases {
			var s sample
			if err := s.block(client, ph.conc, ph.warm, ph.do(tg)); err != nil {
				return nil, err
			}
		}
	}
	mark("")
	// cpu reads the CPU time of every target's process; 0 if it has none.
	cpu := func() ([]time.Duration, error) {
		t := make([]time.Duration, len(targets))
		for i, tg := range targets {
			if tg.pid == 0 {
				continue
			}
			var err error
			if t[i], err = cpuTime(tg.pid); err != nil {
				return nil, err
			}
		}
		return t, nil
	}
	res := results{}
	for _, ph := range phases {
		samples := make([]sample, len(targets))
		before, err := cpu()
		if err != nil {
			return nil, err
		}
		for round := range ph.rounds {
			for i := range targets {
				if round%2 == 1 {
					i = len(targets) - 1 - i
				}
				if err := samples[i].block(client, ph.conc, ph.n, ph.do(targets[i])); err != nil {
					return nil, err
				}
			}
		}
		after, err := cpu()
		if err != nil {
			return nil, err
		}
		res[ph.name] = map[string]stats{}
		for i, tg := range targets {
			st := samples[i].stats()
			st.server = (after[i] - before[i]) / time.Duration(max(st.n, 1))
			res[ph.name][tg.name] = st
		}
		mark(ph.name)
	}
	return res, nil
}

// results are a run's stats by phase and target.
type results map[string]map[string]stats

// added is how much later target's q-quantile is than direct's in phase
// ph.
func (r results) added(ph, target string, q func(stats) time.Duration) time.Duration {
	return q(r[ph][target]) - q(r[ph]["direct"])
}

// ratio is target's share of direct's throughput at concurrency 16.
func (r results) ratio(target string) float64 {
	return r["c16"][target].rps / r["c16"]["direct"].rps
}

// versus are target's figures divided by the proxy's: the ones the goals
// are set in.
type versus struct {
	added50, added99 float64 // c1 latency added to direct's, p50 and p99
	throughput       float64 // c16 requests per second
	cpu              float64 // c16 CPU time per request of its process
	ttfc             float64 // time to the first chunk, p50
}

func (r results) versusProxy(target string) versus {
	div := func(a, b time.Duration) float64 { return float64(a) / float64(b) }
	t, p := r["c16"][target], r["c16"]["proxy"]
	return versus{
		added50:    div(r.added("c1", target, p50), r.added("c1", "proxy", p50)),
		added99:    div(r.added("c1", target, p99), r.added("c1", "proxy", p99)),
		throughput: t.rps / p.rps,
		cpu:        div(t.server, p.server),
		ttfc:       div(r["ttfc"][target].p50, r["ttfc"]["proxy"].p50),
	}
}

// line is target's ratios against the goals, one line of the table.
func (v versus) line(target string) string {
	return fmt.Sprintf("  %-9s c1 added p50 %.2f [≤ %.2f] %s, p99 %.2f [≤ %.2f] %s; c16 req/s %.2f [≥ %.2f] %s, CPU/request %.2f [< %.2f] %s; ttfc p50 %.2f [≤ %.2f] %s",
		target, v.added50, goalAdded, verdict(v.added50 <= goalAdded), v.added99, goalAdded, verdict(v.added99 <= goalAdded),
		v.throughput, goalThroughput, verdict(v.throughput >= goalThroughput), v.cpu, goalCPU, verdict(v.cpu < goalCPU),
		v.ttfc, goalTTFC, verdict(v.ttfc <= goalTTFC))
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func p50(s stats) time.Duration { return s.p50 }
func p90(s stats) time.Duration { return s.p90 }
func p99(s stats) time.Duration { return s.p99 }

// report prints BenchmarkGatewayOverhead's table to standard output and
// reports its key figures as metrics. Latencies are compared with
// "direct", and the gateway (and the candidate) with "proxy".
func (r results) report(b *testing.B, targets []*target, views map[string]inside, mem [2]float64, proxyRSS float64) {
	var t strings.Builder
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&t, "\nBenchmarkGatewayOverhead: %d CPUs, load average %s (after the run)\n", runtime.NumCPU(), strings.TrimSpace(string(load)))
	t.WriteString("  direct: the upstream, in a process of its own; proxy: a bare httputil.ReverseProxy to it, in a process of its own,\n")
	t.WriteString("  of the gateway's build (awakend bench-proxy); proxy-testbin: the same proxy, served by the test binary\n")
	t.WriteString("  gateway: awakend serve --log-level warn; gateway+log: --log-level info --log-format json (a line per request, to a file)\n")
	t.WriteString("  +pXX: target − direct; ratio: target req/s ÷ direct's; client, server: CPU time per request of the client and of the target's process\n")
	fmt.Fprintf(&t, "%-5s %-13s %6s %8s %8s %8s %8s %8s %8s %8s %6s %9s %9s\n",
		"phase", "target", "n", "p50 µs", "p90 µs", "p99 µs", "+p50", "+p90", "+p99", "req/s", "ratio", "client µs", "server µs")
	for _, ph := range []string{"c1", "c16", "ttfc"} {
		for _, tg := range targets {
			s := r[ph][tg.name]
			fmt.Fprintf(&t, "%-5s %-13s %6d %8.0f %8.0f %8.0f", ph, tg.name, s.n, us(s.p50), us(s.p90), us(s.p99))
			if tg.name != "direct" {
				fmt.Fprintf(&t, " %8.0f %8.0f %8.0f", us(r.added(ph, tg.name, p50)), us(r.added(ph, tg.name, p90)), us(r.added(ph, tg.name, p99)))
			} else {
				fmt.Fprintf(&t, " %8s %8s %8s", "", "", "")
			}
			fmt.Fprintf(&t, " %8.0f", s.rps)
			if tg.name != "direct" && ph == "c16" {
				fmt.Fprintf(&t, " %6.2f", r.ratio(tg.name))
			} else {
				fmt.Fprintf(&t, " %6s", "")
			}
			fmt.Fprintf(&t, " %9.1f", us(s.cpu))
			if tg.pid != 0 {
				fmt.Fprintf(&t, " %9.1f\n", us(s.server))
			} else {
				fmt.Fprintf(&t, " %9s\n", "")
			}
		}
	}
	t.WriteString("inside the gateway daemon, mean per request (its metrics; gateway_overhead = handler time less the upstream call):\n")
	for _, ph := range []string{"c1", "c16", "ttfc"} {
		o, u := views[ph].means()
		fmt.Fprintf(&t, "  %-5s gateway_overhead %6.1f µs, upstream_duration %7.1f µs\n", ph, o, u)
	}

	t.WriteString("against the bare ReverseProxy, target ÷ proxy [goal]:\n")
	for _, tg := range targets {
		if tg.name != "gateway" && tg.name != "candidate" {
			continue
		}
		t.WriteString(r.versusProxy(tg.name).line(tg.name) + "\n")
	}
	fmt.Fprintf(&t, "memory after the run: gateway daemon VmRSS %.1f MB [< %.0f] %s, VmHWM %.1f MB; proxy VmRSS %.1f MB\n",
		mem[0], goalRSS, verdict(mem[0] < goalRSS), mem[1], proxyRSS)
	fmt.Print(t.String())

	v := r.versusProxy("gateway")
	b.ReportMetric(v.added50, "vs-proxy-c1-added-p50")
	b.ReportMetric(v.added99, "vs-proxy-c1-added-p99")
	b.ReportMetric(v.throughput, "vs-proxy-c16-rps")
	b.ReportMetric(v.cpu, "vs-proxy-c16-cpu")
	b.ReportMetric(v.ttfc, "vs-proxy-ttfc-p50")
	b.ReportMetric(us(r.added("c1", "gateway", p50)), "added-p50-us")
	b.ReportMetric(us(r.added("c1", "gateway", p90)), "added-p90-us")
	b.ReportMetric(us(r.added("c1", "gateway", p99)), "added-p99-us")
	b.ReportMetric(us(r.added("c16", "gateway", p50)), "c16-added-p50-us")
	b.ReportMetric(us(r.added("c16", "gateway", p99)), "c16-added-p99-us")
	b.ReportMetric(r.ratio("gateway"), "c16-ratio")
	b.ReportMetric(us(r.added("ttfc", "gateway", p50)), "ttfc-added-p50-us")
	b.ReportMetric(us(r.added("c1", "gateway+log", p50)-r.added("c1", "gateway", p50)), "log-cost-p50-us")
	b.ReportMetric(us(r.added("c1", "proxy", p50)), "proxy-added-p50-us")
	b.ReportMetric(us(r.added("c1", "proxy", p99)), "proxy-added-p99-us")
	b.ReportMetric(r.ratio("proxy"), "proxy-c16-ratio")
	b.ReportMetric(us(r.added("ttfc", "proxy", p50)), "proxy-ttfc-added-p50-us")
	b.ReportMetric(us(r["c16"]["gateway"].server), "c16-daemon-cpu-us-per-req")
	b.ReportMetric(us(r["c16"]["proxy"].server), "c16-proxy-cpu-us-per-req")
	if _, ok := r["c1"]["candidate"]; ok {
		c := r.versusProxy("candidate")
		b.ReportMetric(us(r.added("c1", "candidate", p50)), "candidate-added-p50-us")
		b.ReportMetric(r.ratio("candidate"), "candidate-c16-ratio")
		b.ReportMetric(c.added50, "candidate-vs-proxy-c1-added-p50")
		b.ReportMetric(c.throughput, "candidate-vs-proxy-c16-rps")
		b.ReportMetric(c.cpu, "candidate-vs-proxy-c16-cpu")
	}
	o, _ := views["c1"].means()
	b.ReportMetric(o, "c1-in-handler-us")
	b.ReportMetric(mem[0], "rss-MB")
	b.ReportMetric(mem[1], "hwm-MB")
}

// BenchmarkGatewayInProcess serves BenchmarkGatewayOverhead's load from a
// gateway wired as the daemon wires it (gateway.New over a registry handle
// whose provider has the real openai executor of provider.New, metrics
// registered, logging at warn, behind http.Server on a loopback port), in the
// test process, so that a CPU profile shows where the gateway's time goes:
//
//	go test -run '^$' -bench 'InProcess/c16$' -cpuprofile cpu.out ./e2e/inference/
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
