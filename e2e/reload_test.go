package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/awakend/awakend/e2e/harness"
)

// A burst of 200 in-place writes across 20 files, spread over about a
// second, is debounced into at most two watcher reloads, and what serves at
// the end is what is on disk. A marker edit afterwards proves the burst left
// nothing behind that would reload again.
func TestBurst(t *testing.T) {
	dir := baseDir(t)
	const files, writes = 20, 200
	want := []string{"a"}
	for f := range files {
		harness.Write(t, dir, fmt.Sprintf("f%02d.yaml", f), agentsFile(fmt.Sprintf("f%02d-init", f)))
	}
	d := start(t, dir)

	for i := range writes {
		f := i % files
		harness.Write(t, dir, fmt.Sprintf("f%02d.yaml", f), agentsFile(fmt.Sprintf("f%02d-w%03d", f, i)))
		if i >= writes-files {
			want = append(want, fmt.Sprintf("f%02d-w%03d", f, i))
		}
		time.Sleep(5 * time.Millisecond) // spreads the burst over ~1 s: the scenario, not synchronization
	}

	s := d.waitAgents(want...)
	burst := s.Watched("") - d.base.Watched("")
	if burst > 2 || s.Count("", "rejected") != 0 {
		t.Fatalf("the burst caused %d watcher reloads (%d rejected), want at most 2, none rejected", burst, s.Count("", "rejected"))
	}

	harness.Write(t, dir, "marker.yaml", agentsFile("marker"))
	s = d.waitAgents(append(want, "marker")...)
	if n := s.Watched("") - d.base.Watched(""); n != burst+1 {
		t.Fatalf("%d watcher reloads after the marker edit, want %d (the burst's) + 1", n, burst)
	}
	t.Logf("burst of %d writes: %d watcher reloads, version %d", writes, burst, s.Version)
}

// A→B→A: going back to content already served once is a new version with
// that content, not a no-op.
func TestRevertAfterApplied(t *testing.T) {
	t.Parallel()
	dir := baseDir(t)
	d := start(t, dir)

	harness.Replace(t, dir, "agents.yaml", agentsFile("b"))
	if s := d.waitAgents("b"); s.Version != 2 {
		t.Fatalf("B: version %d, want 2", s.Version)
	}
	harness.Replace(t, dir, "agents.yaml", agentsFile("a"))
	s := d.waitAgents("a")
	if s.Version != 3 || s.LastResult() != "applied" {
		t.Fatalf("A again: version %d, last reload %+v; want applied version 3", s.Version, s.LastReload)
	}
}

// A, then an invalid B (rejected, A still serves), then A again: the
// directory says what is served, so the reload is "unchanged", the version
// stays 1 and the rejection is over.
func TestRevertAfterRejected(t *testing.T) {
	t.Parallel()
	dir := baseDir(t)
	d := start(t, dir)

	harness.Replace(t, dir, "agents.yaml", "agents:\n  - {id: b, model_id: ghost}\n")
	s := d.WaitStatus("B is rejected", func(s harness.Status) bool { return s.LastResult() == "rejected" })
	if _, ids := d.agents(); s.Version != 1 || !slices.Equal(ids, []string{"a"}) {
		t.Fatalf("B rejected: version %d, agents %v; want version 1, [a]", s.Version, ids)
	}

	harness.Replace(t, dir, "agents.yaml", agentsFile("a"))
	s = d.WaitReload(s)
	if s.Version != 1 || s.LastResult() != "unchanged" || s.LastReload.Error != "" || len(s.LastReload.Diagnostics) != 0 {
		t.Fatalf("A again: version %d, last reload %+v; want unchanged version 1, no error", s.Version, s.LastReload)
	}
	if _, ids := d.agents(); !slices.Equal(ids, []string{"a"}) {
		t.Fatalf("agents %v, want [a]", ids)
	}
	if m := d.Metric("awakend_config_last_reload_successful"); m != 1 {
		t.Fatalf("awakend_config_last_reload_successful = %v, want 1", m)
	}
	// The recovery is logged at Info, naming what was rejected, although
	// the watcher's unchanged reload itself is logged at Debug.
	d.WaitLog(regexp.MustCompile(`level=INFO msg="config recovered" .*result=unchanged .*rejections=1 .*rejected_error=".*missing model 'ghost'`))
}

// Invalid, then valid again, with /api/v1/status and /metrics agreeing at
// each step.
func TestRecoveryStatusAndMetrics(t *testing.T) {
	t.Parallel()
	dir := baseDir(t)
	d := start(t, dir)

	const successful, reloads, version = "awakend_config_last_reload_successful", "awakend_config_reloads_total", "awakend_registry_version"
	watch := func(result string) float64 { return d.Metric(reloads, "trigger", "watch", "result", result) }
	check := func(step string, wantOK, wantRejected, wantApplied, wantVersion float64) {
		t.Helper()
		got := []float64{d.Metric(successful), watch("rejected"), watch("applied"), d.Metric(version)}
		want := []float64{wantOK, wantRejected, wantApplied, wantVersion}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: last_reload_successful, reloads{watch,rejected}, reloads{watch,applied}, registry_version = %v, want %v",
				step, got, want)
		}
	}

	// The last reload is the watcher's start-up rescan, which found nothing.
	s := d.Status()
	if s.Version != 1 || s.Count("startup", "applied") != 1 || s.LastResult() != "unchanged" {
		t.Fatalf("start: version %d, reloads %+v, last %+v", s.Version, s.Reloads, s.LastReload)
	}
	check("start", 1, 0, 0, 1)
	started := d.Metric("awakend_config_last_reload_success_timestamp_seconds")

	harness.Write(t, dir, "agents.yaml", "agents:\n  - {id: a, model_id: ghost}\n")
	s = d.WaitStatus("the invalid edit is rejected", func(s harness.Status) bool { return s.LastResult() == "rejected" })
	if s.Version != 1 || s.LastReload.Trigger != "watch" || len(s.LastReload.Diagnostics) != 1 {
		t.Fatalf("invalid: version %d, last reload %+v", s.Version, s.LastReload)
	}
	if dg := s.LastReload.Diagnostics[0]; dg.File != "agents.yaml" || dg.Line != 2 || dg.Column != 23 || dg.Code != "agent_missing_model" {
		t.Fatalf("diagnostic %+v, want agents.yaml:2:23 [agent_missing_model]", dg)
	}
	check("invalid", 0, 1, 0, 1)
	d.WaitLog(regexp.MustCompile(`level=WARN msg="config reload" trigger=watch result=rejected version=1 .*error=".*\[agent_missing_model\]"`))

	harness.Write(t, dir, "agents.yaml", agentsFile("a", "b"))
	s = d.waitAgents("a", "b")
	if s.Version != 2 || s.LastResult() != "applied" || s.LastReload.Changes != "+1 agent" {
		t.Fatalf("valid: version %d, last reload %+v; want applied version 2, +1 agent", s.Version, s.LastReload)
	}
	check("valid again", 1, 1, 1, 2)
	if ts := d.Metric("awakend_config_last_reload_success_timestamp_seconds"); ts <= started {
		t.Fatalf("last_reload_success_timestamp_seconds %v did not move past %v", ts, started)
	}
}

// A duplicate id across two files is rejected with a diagnostic that names
// both places: its own file and position, and the other file's in the
// message.
func TestDuplicateAcrossFiles(t *testing.T) {
	t.Parallel()
	dir := baseDir(t)
	d := start(t, dir)

	harness.Write(t, dir, "zz.yaml", agentsFile("a"))
	s := d.WaitStatus("the duplicate is rejected", func(s harness.Status) bool { return s.LastResult() == "rejected" })
	i := slices.IndexFunc(s.LastReload.Diagnostics, func(d harness.Diagnostic) bool { return d.Code == "duplicate_id" })
	if i < 0 {
		t.Fatalf("no duplicate_id diagnostic in %+v", s.LastReload.Diagnostics)
	}
	dg := s.LastReload.Diagnostics[i]
	if dg.File != "zz.yaml" || dg.Line != 2 || dg.Column != 10 || !strings.Contains(dg.Message, "agents.yaml:2:10") {
		t.Fatalf("diagnostic %+v, want zz.yaml:2:10 naming agents.yaml:2:10", dg)
	}
	if s.Version != 1 {
		t.Fatalf("version %d, want 1", s.Version)
	}
}

// Fifty SIGHUPs sent at once coalesce into a few forced reloads, all
// labelled "signal"; the loop does not deadlock: an API reload afterwards
// completes.
func TestSIGHUPStorm(t *testing.T) {
	t.Parallel()
	d := start(t, baseDir(t))

	for range 50 {
		d.Signal(syscall.SIGHUP)
	}
	d.WaitStatus("a signal reload finished", func(s harness.Status) bool { return s.Count("signal", "") > 0 })
	resp, err := d.Client().Post(d.URL+"/api/v1/reload", "", nil)
	if err != nil {
		t.Fatalf("POST /api/v1/reload after the SIGHUPs: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/v1/reload after the SIGHUPs: HTTP %d", resp.StatusCode)
	}

	s := d.Status()
	signals, api := s.Count("signal", ""), s.Count("api", "")
	// The API request may coalesce with a queued SIGHUP and take its label.
	if signals > 10 || api > 1 || s.Total() != d.base.Total()+signals+api {
		t.Fatalf("reloads %+v: want at most 10 signal, at most 1 api, nothing else", s.Reloads)
	}
	if s.Count("", "unchanged")-d.base.Count("", "unchanged") != signals+api || s.Version != 1 {
		t.Fatalf("reloads %+v at version %d: the files did not change, so every forced rebuild is unchanged", s.Reloads, s.Version)
	}
	if code, _, _ := d.Get("/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: HTTP %d", code)
	}
	t.Logf("50 SIGHUPs: %d signal reloads, %d api", signals, api)
}

// SIGTERM while reload requests are in flight, with SIGHUPs on top: the
// daemon sends STOPPING=1, lets the requests being served finish (the
// reload in flight answers 200), exits 0 within the shutdown timeout and
// logs "stopped". Requests that come too late are refused, or answered 503
// if their reload could not run any more; nothing else.
func TestShutdownDuringReloads(t *testing.T) {
	t.Parallel()
	dir := baseDir(t)
	// Enough agents (a thousand) that a reload takes a while, so that
	// SIGTERM lands while one runs.
	for f := range 20 {
		ids := make([]string, 50)
		for i := range ids {
			ids[i] = fmt.Sprintf("s%02d-%02d", f, i)
		}
		harness.Write(t, dir, fmt.Sprintf("s%02d.yaml", f), agentsFile(ids...))
	}
	d := start(t, dir, "AWAKEND_SHUTDOWN__TIMEOUT=5s")

	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		codes     = map[int]int{}
		afterTerm int // 200s answered to requests in flight at SIGTERM
		termSent  atomic.Bool
	)
	for range 3 {
		wg.Go(func() {
			for {
				resp, err := d.Client().Post(d.URL+"/api/v1/reload", "", nil)
				if err != nil {
					return // refused, or cut while idle: the server is closing
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				codes[resp.StatusCode]++
				if resp.StatusCode == http.StatusOK && termSent.Load() {
					afterTerm++
				}
				mu.Unlock()
				if resp.StatusCode != http.StatusOK {
					return
				}
			}
		})
	}
	// An API reload has started: its requests are in flight.
	d.WaitNote("STATUS=reloading (api)")
	for range 10 {
		d.Signal(syscall.SIGHUP)
	}
	termSent.Store(true)
	sent := time.Now()
	d.Signal(syscall.SIGTERM)
	code := d.WaitExit(15 * time.Second)
	took := time.Since(sent)
	wg.Wait()

	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0", code)
	}
	if took > 6*time.Second {
		t.Fatalf("exited %v after SIGTERM, beyond the 5s shutdown timeout", took)
	}
	if !strings.Contains(d.Logs(), "msg=stopped") {
		t.Fatal(`no "stopped" in the log`)
	}
	d.WaitExitNote()
	if !d.SawNote("STOPPING=1") {
		t.Fatal("no STOPPING=1 notification")
	}
	for c := range codes {
		if c != http.StatusOK && c != http.StatusServiceUnavailable {
			t.Fatalf("reload answers during shutdown: %v, want only 200 and 503", codes)
		}
	}
	if afterTerm == 0 {
		t.Fatalf("no reload request in flight at SIGTERM was answered 200 (answers %v)", codes)
	}
	t.Logf("shutdown took %v; reload answers %v, %d of them 200 after SIGTERM", took, codes, afterTerm)
}

// genFile is generation n of the storm's agents: three agents whose ids and
// prompts carry n, so a read tells which generation it saw.
func genFile(n int) string {
	var b strings.Builder
	b.WriteString("agents:\n")
	for _, x := range []string{"a", "b", "c"} {
		fmt.Fprintf(&b, "  - {id: g%d-%s, model_id: m, system_prompt: \"gen %d\"}\n", n, x, n)
	}
	return b.String()
}

// checkGeneration reads /api/v1/agents and checks that the body is exactly
// the generation its version header says: version v serves generation v-1.
func checkGeneration(ctx context.Context, c *http.Client, url string) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/v1/agents", nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("HTTP %d: %s", resp.StatusCode, body)
	}
	v, err := strconv.ParseUint(resp.Header.Get("X-Awakend-Config-Version"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("version header: %w", err)
	}
	var l agentList
	if err := json.Unmarshal(body, &l); err != nil {
		return 0, fmt.Errorf("%w: %s", err, body)
	}
	gen := int(v) - 1
	ok := len(l.Data) == 3
	for i, x := range []string{"a", "b", "c"} {
		ok = ok && l.Data[i].ID == fmt.Sprintf("g%d-%s", gen, x) && l.Data[i].SystemPrompt == fmt.Sprintf("gen %d", gen)
	}
	if !ok {
		return v, fmt.Errorf("version %d served %s, want generation %d", v, body, gen)
	}
	return v, nil
}

// A thousand reloads, each applying a new generation of agents, while four
// readers fetch /api/v1/agents: every read is one whole generation, the one
// its version header names; no read fails and the race detector stays
// quiet.
func TestReloadStormConsistentReads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	harness.Write(t, dir, "providers.yaml", providersYAML)
	harness.Write(t, dir, "models.yaml", modelsYAML)
	harness.Write(t, dir, "gen.yaml", genFile(0))
	d := start(t, dir)

	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	readers := &http.Client{Timeout: harness.Timeout, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	var wg sync.WaitGroup
	var reads atomic.Int64
	var mu sync.Mutex
	var readErrs []error
	versions := map[uint64]bool{}
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				v, err := checkGeneration(ctx, readers, d.URL)
				if err != nil && ctx.Err() != nil {
					return // cancelled mid-request: the storm is over
				}
				mu.Lock()
				if err != nil {
					readErrs = append(readErrs, err)
				} else {
					versions[v] = true
				}
				mu.Unlock()
				if err != nil {
					return
				}
				reads.Add(1)
			}
		})
	}

	const reloadCount = 1000
	for n := 1; n <= reloadCount; n++ {
		harness.Replace(t, dir, "gen.yaml", genFile(n))
		// force=false: the new generation is a change; the watcher may have
		// applied it first, then this reload is unchanged at the same version.
		code, body := d.Post("/api/v1/reload?force=false")
		var ans struct {
			Result  string `json:"result"`
			Version uint64 `json:"version"`
		}
		if err := json.Unmarshal(body, &ans); err != nil || code != http.StatusOK || ans.Version != uint64(n)+1 {
			stop()
			wg.Wait()
			t.Fatalf("reload %d: HTTP %d %s; want 200 at version %d", n, code, body, n+1)
		}
	}
	stop()
	wg.Wait()

	for _, err := range readErrs {
		t.Error(err)
	}
	if reads.Load() < 100 || len(versions) < 10 {
		t.Fatalf("%d reads saw %d versions: the readers did not overlap the reloads", reads.Load(), len(versions))
	}
	d.Stop()
	if strings.Contains(d.Logs(), "WARNING: DATA RACE") {
		t.Fatal("the daemon reported a data race")
	}
	t.Logf("%d reloads, %d consistent reads of %d versions", reloadCount, reads.Load(), len(versions))
}

// SIGHUP forces a rebuild even when no file changed: the reload runs and is
// counted (trigger signal, result unchanged), and the version stays. The
// provider's key comes from the environment, which cannot change under a
// running process: the forced rebuild re-reads it all the same.
func TestSIGHUPForcesRebuild(t *testing.T) {
	t.Parallel()
	dir := baseDir(t)
	harness.Write(t, dir, "providers.yaml", "providers:\n  - {id: p, adapter: mock, api_key: \"${TEST_KEY}\"}\n")
	d := start(t, dir, "TEST_KEY=k1")

	for i := uint64(1); i <= 2; i++ {
		d.Signal(syscall.SIGHUP)
		s := d.WaitStatus(fmt.Sprintf("%d signal reloads", i), func(s harness.Status) bool { return s.Count("signal", "") == i })
		if s.Count("signal", "unchanged") != i || s.Version != 1 || s.LastReload.Trigger != "signal" || s.LastResult() != "unchanged" {
			t.Fatalf("after SIGHUP %d: version %d, reloads %+v, last %+v; want %d unchanged signal reloads at version 1",
				i, s.Version, s.Reloads, s.LastReload, i)
		}
	}
	if m := d.Metric("awakend_config_reloads_total", "trigger", "signal", "result", "unchanged"); m != 2 {
		t.Fatalf("reloads_total{signal,unchanged} = %v, want 2", m)
	}
}

// The daemon never logs or serves a secret: an API key, a header value, a
// remote agent's token and a base URL's password, all from ${TEST_SECRET},
// through start-up, an applied reload, a rejected one (with the secret
// next to the errors), a forced one, and every read route.
func TestSecretsNeverLeak(t *testing.T) {
	t.Parallel()
	const secret = "sk-e2e-very-secret"
	provider := func(key, extra string) string {
		return "providers:\n" +
			"  - id: p\n" +
			"    adapter: mock\n" +
			"    api_key: \"" + key + "\"\n" +
			"    base_url: \"http://user:${TEST_SECRET}@upstream.example/v1\"\n" +
			"    adapter_options: {headers: {Authorization: \"Bearer ${TEST_SECRET}\"}}\n" + extra
	}
	dir := t.TempDir()
	harness.Write(t, dir, "providers.yaml", provider("${TEST_SECRET}", ""))
	harness.Write(t, dir, "models.yaml", modelsYAML)
	harness.Write(t, dir, "agents.yaml", "agents:\n  - {id: a, model_id: m}\n"+
		"  - id: remote\n    endpoint: {base_url: \"https://agents.example\", auth: {type: bearer, token: \"${TEST_SECRET}\"}}\n")
	d := start(t, dir, "TEST_SECRET="+secret)

	var seen []string // every response: status line, headers, body
	record := func(what string, resp *http.Response, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		seen = append(seen, fmt.Sprintf("%s: %s %v\n%s", what, resp.Status, resp.Header, body))
	}

	// Applied: the key rotates (still the secret, plus a suffix).
	harness.Replace(t, dir, "providers.yaml", provider("${TEST_SECRET}-rotated", ""))
	d.WaitStatus("the rotated key is applied", func(s harness.Status) bool { return s.Version == 2 })

	// Rejected: errors right next to the secret, and one that quotes a
	// base URL carrying it.
	harness.Replace(t, dir, "providers.yaml", provider("${TEST_SECRET}", "    bogus: \"${TEST_SECRET}\"\n")+
		"  - {id: q, adapter: openai, base_url: \"ftp://user:${TEST_SECRET}@upstream.example\"}\n")
	d.WaitStatus("the broken edit is rejected", func(s harness.Status) bool { return s.LastResult() == "rejected" })
	resp, err := d.Client().Post(d.URL+"/api/v1/reload", "", nil)
	record("POST /api/v1/reload (rejected)", resp, err)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("forced reload of the broken edit: %s, want 422", resp.Status)
	}
	for _, path := range []string{"/api/v1/status", "/metrics"} {
		resp, err := d.Client().Get(d.URL + path)
		record("GET "+path+" (rejected)", resp, err)
	}

	// Valid again, then forced.
	harness.Replace(t, dir, "providers.yaml", provider("${TEST_SECRET}", ""))
	d.WaitStatus("the fixed edit is applied", func(s harness.Status) bool { return s.Version == 3 })
	d.Signal(syscall.SIGHUP)
	d.WaitStatus("the forced reload finished", func(s harness.Status) bool { return s.Count("signal", "") == 1 })
	resp, err = d.Client().Post(d.URL+"/api/v1/reload", "", nil)
	record("POST /api/v1/reload", resp, err)

	for _, path := range []string{
		"/api/v1/status", "/api/v1/providers", "/api/v1/providers/p", "/api/v1/providers/p/removal-preview",
		"/api/v1/models", "/api/v1/models/m", "/api/v1/model-pools", "/api/v1/agents", "/api/v1/agents/a",
		"/api/v1/agents/remote", "/api/v1/agents/a/resolve", "/api/v1/nope", "/v1/models", "/healthz", "/readyz", "/metrics",
	} {
		resp, err := d.Client().Get(d.URL + path)
		record("GET "+path, resp, err)
	}
	d.Stop()

	for _, r := range seen {
		if strings.Contains(r, secret) {
			t.Errorf("a response carries the secret:\n%s", r)
		}
	}
	if strings.Contains(d.Logs(), secret) {
		t.Errorf("the log carries the secret")
	}
	if !strings.Contains(seen[0], "base_url") || !strings.Contains(seen[0], "bogus") {
		t.Fatalf("the rejected reload's answer does not show the problems:\n%s", seen[0])
	}
}

// A change made right after READY=1 is applied. The watches are set up
// after READY=1 (the start-up load comes first); the watcher rescans once
// they are up, so a file written in between, which sent no event, is still
// picked up. (Before c9120b2 it was lost until the periodic rescan, forever
// with the rescan off: 3 of 10 daemons here missed it.) Ten daemons, since
// the window is about a millisecond.
func TestChangeRightAfterReady(t *testing.T) {
	t.Parallel()
	for i := range 10 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			dir := baseDir(t)
			// harness.Start returns on READY=1, before start would wait for
			// the watcher.
			d := &daemon{Daemon: harness.Start(t, dir, harness.Options{}), t: t}
			// As soon as the daemon says it is ready, as a deploy script
			// would after `systemctl start` returns.
			harness.Write(t, dir, "agents.yaml", agentsFile("a", "b"))
			if s := d.waitAgents("a", "b"); s.Version != 2 {
				t.Fatalf("version %d, want 2", s.Version)
			}
		})
	}
}

// With Type=notify-reload, systemd sends SIGHUP and waits for RELOADING=1:
// a forced reload announces itself even when the directory then fails to
// load, and READY=1 follows. A reload the watcher started on the same
// broken file does not (it never gets to rebuild).
func TestSIGHUPAnnouncesRejectedReload(t *testing.T) {
	t.Parallel()
	dir := baseDir(t)
	d := start(t, dir)
	harness.Write(t, dir, "agents.yaml", "agents: [\n")
	d.WaitStatus("the broken edit rejected", func(s harness.Status) bool { return s.Count("watch", "rejected") == 1 })
	if n := d.NoteCount("RELOADING=1"); n != 0 {
		t.Fatalf("%d RELOADING=1 for a watcher reload that did not rebuild, want 0", n)
	}
	readies := d.NoteCount("READY=1")
	d.Signal(syscall.SIGHUP)
	d.WaitStatus("the SIGHUP reload rejected", func(s harness.Status) bool { return s.Count("signal", "rejected") == 1 })
	if n := d.NoteCount("RELOADING=1"); n != 1 {
		t.Fatalf("%d RELOADING=1 after SIGHUP on a broken directory, want 1", n)
	}
	if d.NoteCount("READY=1") != readies+1 {
		t.Fatal("no READY=1 after the rejected SIGHUP reload")
	}
}
