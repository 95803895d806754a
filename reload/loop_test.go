package reload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fake is a Func that records its calls. While gate is open (non-nil and not
// closed), each call blocks until gate is closed or its context ends.
type fake struct {
	gate     chan struct{}
	outcomes []Outcome // per call, then OutcomeApplied

	mu    sync.Mutex
	calls []call
}

type call struct {
	req    Request
	at     time.Time
	ctxErr error // the context's error when the call returned
}

func (f *fake) reload(ctx context.Context, req Request) Result {
	f.mu.Lock()
	n := len(f.calls)
	f.calls = append(f.calls, call{req: req, at: time.Now()})
	f.mu.Unlock()

	res := Result{Outcome: OutcomeApplied, Version: uint64(n + 1)}
	if n < len(f.outcomes) {
		res.Outcome = f.outcomes[n]
	}
	if res.Outcome == OutcomeRejected {
		res.Err = errors.New("bad config")
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			res = Result{Err: ctx.Err()}
		}
	}
	f.mu.Lock()
	f.calls[n].ctxErr = ctx.Err()
	f.mu.Unlock()
	return res
}

func (f *fake) got() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// start runs a Loop until the returned stop is called or the test ends.
func start(t *testing.T, fn Func, opts Options) (*Loop, func()) {
	t.Helper()
	l := New(fn, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return l, stop
}

// sleepUntil advances the bubble's clock to at and lets every goroutine
// settle.
func sleepUntil(at time.Time) {
	time.Sleep(time.Until(at))
	synctest.Wait()
}

var (
	watch  = Request{Trigger: TriggerWatch}
	signal = Request{Trigger: TriggerSignal}
)

func TestDebounce(t *testing.T) {
	ms := time.Millisecond
	every100ms := func(n int) []time.Duration {
		var d []time.Duration
		for i := range n {
			d = append(d, time.Duration(i)*100*ms)
		}
		return d
	}
	tests := []struct {
		name    string
		opts    Options
		events  []time.Duration // since the start
		reloads []time.Duration // since the start
	}{
		{
			name:    "single event reloads after the quiet period",
			events:  []time.Duration{0},
			reloads: []time.Duration{250 * ms},
		},
		{
			name:    "burst within the quiet period reloads once",
			events:  []time.Duration{0, 100 * ms, 200 * ms, 300 * ms},
			reloads: []time.Duration{550 * ms},
		},
		{
			name:    "bursts apart reload apart",
			events:  []time.Duration{0, 400 * ms, 450 * ms},
			reloads: []time.Duration{250 * ms, 700 * ms},
		},
		{
			name:    "constant writes converge at max wait",
			events:  every100ms(50), // 0 to 4.9s
			reloads: []time.Duration{2 * time.Second, 4 * time.Second, 5150 * ms},
		},
		{
			name:    "custom timings",
			opts:    Options{Debounce: time.Second, MaxWait: 3 * time.Second},
			events:  []time.Duration{0, 900 * ms, 1800 * ms, 2700 * ms, 3500 * ms},
			reloads: []time.Duration{3 * time.Second, 4500 * ms},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fake{}
				tc.opts.RescanInterval = -1
				l, stop := start(t, f.reload, tc.opts)
				begin := time.Now()
				for _, at := range tc.events {
					sleepUntil(begin.Add(at))
					l.Trigger(watch)
				}
				sleepUntil(begin.Add(time.Minute))
				stop()

				var got []time.Duration
				for _, c := range f.got() {
					if c.req != watch {
						t.Errorf("request = %+v, want %+v", c.req, watch)
					}
					got = append(got, c.at.Sub(begin))
				}
				if !slices.Equal(got, tc.reloads) {
					t.Errorf("reloads at %v, want %v", got, tc.reloads)
				}
			})
		})
	}
}

func TestEventDuringReload(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		release time.Duration // when the first reload returns
		second  time.Duration // when the second one starts
	}{
		{name: "reload ends before the quiet period", release: 150 * ms, second: 350 * ms},
		{name: "reload ends after the quiet period", release: time.Second, second: time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fake{gate: make(chan struct{})}
				l, stop := start(t, f.reload, Options{RescanInterval: -1})
				begin := time.Now()
				l.Trigger(signal)
				synctest.Wait() // the first reload runs
				for _, at := range []time.Duration{0, 50 * ms, 100 * ms} {
					sleepUntil(begin.Add(at))
					l.Trigger(watch)
				}
				sleepUntil(begin.Add(tc.release))
				close(f.gate)
				sleepUntil(begin.Add(time.Minute))
				stop()

				calls := f.got()
				if len(calls) != 2 {
					t.Fatalf("%d reloads, want 2: %+v", len(calls), calls)
				}
				if calls[1].req != watch {
					t.Errorf("second request = %+v, want %+v", calls[1].req, watch)
				}
				if got := calls[1].at.Sub(begin); got != tc.second {
					t.Errorf("second reload at %v, want %v", got, tc.second)
				}
			})
		})
	}
}

func TestCoalesce(t *testing.T) {
	repeat := func(r Request, n int) []Request {
		var rs []Request
		for range n {
			rs = append(rs, r)
		}
		return rs
	}
	tests := []struct {
		name   string
		during []Request // triggered while the first reload runs
		want   Request   // the one reload queued after it
	}{
		{
			name:   "50 signals make one reload",
			during: repeat(signal, 50),
			want:   signal,
		},
		{
			name:   "force is or-ed",
			during: []Request{{TriggerAPI, false}, {TriggerSignal, true}, {TriggerRescan, false}},
			want:   Request{TriggerSignal, true},
		},
		{
			name:   "explicit beats automatic",
			during: []Request{{TriggerWatch, false}, {TriggerRescan, false}, {TriggerAPI, false}},
			want:   Request{TriggerAPI, false},
		},
		{
			name:   "signal beats api",
			during: []Request{{TriggerAPI, false}, {TriggerSignal, false}},
			want:   signal,
		},
		{
			name:   "startup keeps its label",
			during: []Request{{TriggerWatch, false}, {TriggerStartup, false}, {TriggerSignal, true}},
			want:   Request{TriggerStartup, true},
		},
		{
			name:   "a pending burst folds into an explicit request",
			during: []Request{{TriggerWatch, false}, {TriggerAPI, false}},
			want:   Request{TriggerAPI, false},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fake{gate: make(chan struct{})}
				l, stop := start(t, f.reload, Options{RescanInterval: -1})
				l.Trigger(signal)
				synctest.Wait()
				for _, r := range tc.during {
					l.Trigger(r)
				}
				synctest.Wait()
				close(f.gate)
				time.Sleep(time.Minute)
				stop()

				calls := f.got()
				if len(calls) != 2 {
					t.Fatalf("%d reloads, want 2: %+v", len(calls), calls)
				}
				if calls[1].req != tc.want {
					t.Errorf("queued request = %+v, want %+v", calls[1].req, tc.want)
				}
			})
		})
	}
}

func TestBurstFoldsIntoSignal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{}
		l, stop := start(t, f.reload, Options{RescanInterval: -1})
		l.Trigger(watch)
		l.Trigger(signal)
		time.Sleep(time.Minute)
		stop()
		calls := f.got()
		if len(calls) != 1 || calls[0].req != signal {
			t.Fatalf("reloads = %+v, want one signal reload", calls)
		}
	})
}

func TestReloadWaitsForNextReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{gate: make(chan struct{})}
		l, stop := start(t, f.reload, Options{RescanInterval: -1})
		defer stop()
		l.Trigger(signal)
		synctest.Wait() // reload 1 runs

		api := Request{Trigger: TriggerAPI}
		results := make(chan Result, 2)
		for range 2 {
			go func() {
				res, err := l.Reload(context.Background(), api)
				if err != nil {
					t.Errorf("Reload: %v", err)
				}
				results <- res
			}()
		}
		synctest.Wait()
		if len(results) != 0 {
			t.Fatal("Reload returned while the earlier reload was still running")
		}
		close(f.gate)
		for range 2 {
			res := <-results
			if res.Version != 2 || res.Trigger != TriggerAPI || res.Outcome != OutcomeApplied {
				t.Errorf("Reload = %+v, want version 2 from an api reload", res)
			}
		}
		if n := len(f.got()); n != 2 {
			t.Errorf("%d reloads, want 2", n)
		}
	})
}

func TestReloadErrors(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, l *Loop, stop func()) error
		want error
	}{
		{
			name: "context cancelled before the call",
			run: func(t *testing.T, l *Loop, _ func()) error {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				_, err := l.Reload(ctx, signal)
				return err
			},
			want: context.Canceled,
		},
		{
			name: "context ends while waiting",
			run: func(t *testing.T, l *Loop, _ func()) error {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				_, err := l.Reload(ctx, signal)
				return err
			},
			want: context.DeadlineExceeded,
		},
		{
			name: "loop stopped",
			run: func(t *testing.T, l *Loop, stop func()) error {
				stop()
				_, err := l.Reload(context.Background(), signal)
				return err
			},
			want: ErrStopped,
		},
		{
			name: "loop stops while waiting",
			run: func(t *testing.T, l *Loop, stop func()) error {
				go func() {
					synctest.Wait()
					stop()
				}()
				_, err := l.Reload(context.Background(), signal)
				return err
			},
			want: ErrStopped,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fake{gate: make(chan struct{})} // never opens
				l, stop := start(t, f.reload, Options{RescanInterval: -1})
				l.Trigger(signal)
				synctest.Wait() // a reload runs and blocks
				if err := tc.run(t, l, stop); !errors.Is(err, tc.want) {
					t.Errorf("Reload error = %v, want %v", err, tc.want)
				}
				stop()
				if n := len(f.got()); n != 1 {
					t.Errorf("%d reloads, want 1 (the blocked one)", n)
				}
			})
		})
	}
}

func TestRunStopsDuringReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{gate: make(chan struct{})} // never opens
		var results []Result
		l, stop := start(t, f.reload, Options{
			RescanInterval: -1,
			OnResult:       func(r Result) { results = append(results, r) },
		})
		l.Trigger(signal)
		synctest.Wait()
		l.Trigger(Request{Trigger: TriggerAPI}) // queued, never runs
		stop()                                  // returns only once the reload has

		calls := f.got()
		if len(calls) != 1 || calls[0].ctxErr == nil {
			t.Fatalf("reloads = %+v, want one that saw its context end", calls)
		}
		if len(results) != 1 || results[0].Outcome != OutcomeRejected {
			t.Errorf("results = %+v, want one rejected", results)
		}
		l.Trigger(signal) // dropped after Run
		if n := len(f.got()); n != 1 {
			t.Errorf("%d reloads after stop, want 1", n)
		}
	})
}

func TestRunTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, _ := start(t, (&fake{}).reload, Options{})
		synctest.Wait()
		if err := l.Run(t.Context()); err == nil {
			t.Error("second Run returned nil, want an error")
		}
	})
}

func TestRescan(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
		want     int // reloads in 95s
	}{
		{name: "default 30s", interval: 0, want: 3},
		{name: "every 10s", interval: 10 * time.Second, want: 9},
		{name: "off", interval: -1, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &fake{}
				_, stop := start(t, f.reload, Options{RescanInterval: tc.interval})
				time.Sleep(95 * time.Second)
				stop()
				calls := f.got()
				if len(calls) != tc.want {
					t.Fatalf("%d reloads, want %d", len(calls), tc.want)
				}
				for _, c := range calls {
					if c.req != (Request{Trigger: TriggerRescan}) {
						t.Errorf("request = %+v, want a non-forced rescan", c.req)
					}
				}
			})
		})
	}
}

func TestStatusAndHooks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{outcomes: []Outcome{OutcomeApplied, OutcomeUnchanged, OutcomeRejected}}
		var log []string
		l, stop := start(t, f.reload, Options{
			RescanInterval: -1,
			OnStart:        func(r Request) { log = append(log, "start "+string(r.Trigger)) },
			OnResult:       func(r Result) { log = append(log, "result "+string(r.Outcome)) },
		})
		defer stop()

		if s := l.Status(); s.Last.Outcome != "" || s.Watcher.Mode != ModeOff || len(s.Counts) != 0 {
			t.Errorf("initial status = %+v", s)
		}
		reqs := []Request{{Trigger: TriggerStartup}, {Trigger: TriggerAPI}, {Trigger: TriggerAPI}}
		for _, r := range reqs {
			time.Sleep(time.Second)
			if _, err := l.Reload(context.Background(), r); err != nil {
				t.Fatal(err)
			}
		}

		s := l.Status()
		if s.Last.Outcome != OutcomeRejected || s.Last.Err == nil || s.Last.Version != 3 {
			t.Errorf("Last = %+v, want the rejected reload", s.Last)
		}
		if s.LastApplied.Version != 1 || s.LastApplied.Trigger != TriggerStartup || s.LastApplied.Started.IsZero() {
			t.Errorf("LastApplied = %+v, want the startup reload", s.LastApplied)
		}
		want := map[Key]uint64{
			{TriggerStartup, OutcomeApplied}: 1,
			{TriggerAPI, OutcomeUnchanged}:   1,
			{TriggerAPI, OutcomeRejected}:    1,
		}
		if len(s.Counts) != len(want) {
			t.Errorf("Counts = %v, want %v", s.Counts, want)
		}
		for k, n := range want {
			if s.Counts[k] != n {
				t.Errorf("Counts[%v] = %d, want %d", k, s.Counts[k], n)
			}
		}
		s.Counts[Key{TriggerAPI, OutcomeApplied}] = 99 // a copy
		if l.Status().Counts[Key{TriggerAPI, OutcomeApplied}] != 0 {
			t.Error("Status shares its Counts map")
		}
		wantLog := []string{
			"start startup", "result applied",
			"start api", "result unchanged",
			"start api", "result rejected",
		}
		if !slices.Equal(log, wantLog) {
			t.Errorf("hooks = %q, want %q", log, wantLog)
		}
	})
}

func TestTriggerBeforeRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{}
		l := New(f.reload, Options{RescanInterval: -1})
		l.Trigger(Request{Trigger: TriggerStartup})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- l.Run(ctx) }()
		synctest.Wait()
		cancel()
		<-done
		calls := f.got()
		if len(calls) != 1 || calls[0].req.Trigger != TriggerStartup {
			t.Errorf("reloads = %+v, want the startup reload", calls)
		}
	})
}

func TestInitialResultSeedsStatus(t *testing.T) {
	initial := Result{Trigger: TriggerStartup, Outcome: OutcomeApplied, Version: 1, Fingerprint: "fp"}
	l := New(func(context.Context, Request) Result { return Result{} }, Options{Initial: initial})
	st := l.Status()
	if !reflect.DeepEqual(st.Last, initial) || !reflect.DeepEqual(st.LastApplied, initial) {
		t.Fatalf("status = %+v, want the initial result as last and last applied", st)
	}
	if n := st.Counts[Key{TriggerStartup, OutcomeApplied}]; n != 1 {
		t.Fatalf("startup/applied count = %d, want 1", n)
	}
}

// A repeated rejection (the same broken inputs, found again by the watcher
// or the rescan) is logged at Debug; a first one at Warn.
func TestRepeatedRejectionLoggedAtDebug(t *testing.T) {
	var buf bytes.Buffer
	l := New(func(context.Context, Request) Result { return Result{} },
		Options{Logger: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	rejected := Result{Trigger: TriggerRescan, Outcome: OutcomeRejected, Err: errors.New("bad")}
	l.logResult(context.Background(), rejected)
	rejected.Repeated = true
	l.logResult(context.Background(), rejected)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[1], "level=DEBUG") {
		t.Fatalf("log:\n%s\nwant a WARN line, then a DEBUG line", buf.String())
	}
}

// A reload that is not rejected after rejected ones logs "config recovered"
// at Info, with how many were rejected and the last error: restoring the
// last good files is an unchanged reload, which the watcher's reloads
// otherwise log at Debug only.
func TestRecoveryLogged(t *testing.T) {
	var buf syncBuffer
	f := &fake{outcomes: []Outcome{OutcomeRejected, OutcomeRejected, OutcomeUnchanged, OutcomeApplied, OutcomeApplied}}
	initial := Result{Trigger: TriggerStartup, Outcome: OutcomeRejected, Err: errors.New("startup config bad")}
	l, _ := start(t, f.reload, Options{Initial: initial, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	for range 5 {
		if _, err := l.Reload(t.Context(), Request{Trigger: TriggerRescan}); err != nil {
			t.Fatal(err)
		}
	}
	var recovered []string
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.Contains(line, `msg="config recovered"`) {
			recovered = append(recovered, line)
		}
	}
	if len(recovered) != 1 {
		t.Fatalf("recovered lines = %q, want one", recovered)
	}
	for _, want := range []string{"level=INFO", "result=unchanged", "rejections=3", `rejected_error="bad config"`} {
		if !strings.Contains(recovered[0], want) {
			t.Errorf("recovered line %q lacks %s", recovered[0], want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a logger on another goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestSetTimings: new timings apply while the loop runs — the debounce of
// the next burst and the rescan period, which restarts when it changes.
func TestSetTimings(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fake{}
		l, stop := start(t, f.reload, Options{RescanInterval: -1})
		begin := time.Now()
		l.Trigger(watch) // the default 250ms debounce
		sleepUntil(begin.Add(time.Second))
		l.SetTimings(2*time.Second, 5*time.Second, 10*time.Second)
		l.Trigger(watch) // at 1s, debounced 2s: at 3s
		sleepUntil(begin.Add(25 * time.Second))
		l.SetTimings(2*time.Second, 5*time.Second, 10*time.Second) // unchanged: the period goes on
		sleepUntil(begin.Add(35 * time.Second))
		l.SetTimings(0, 0, -1) // defaults, and no rescan
		sleepUntil(begin.Add(time.Minute))
		stop()

		var got []string
		for _, c := range f.got() {
			got = append(got, fmt.Sprintf("%s@%v", c.req.Trigger, c.at.Sub(begin)))
		}
		want := []string{"watch@250ms", "watch@3s", "rescan@11s", "rescan@21s", "rescan@31s"}
		if !slices.Equal(got, want) {
			t.Errorf("reloads %v, want %v", got, want)
		}
	})
}

// TestFilesWatcherStatus: the status tells whether the input files outside
// the tree are watched.
func TestFilesWatcherStatus(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "settings.yaml")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := &fake{}
	l := New(f.reload, Options{Files: []string{file, filepath.Join(t.TempDir(), "gone", "key.pem")}, RescanInterval: -1})
	if ws := l.Status().Watcher; ws.Files != 2 || ws.FilesUp || ws.AllUp() {
		t.Fatalf("before Run: %+v", ws)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// One file's directory does not exist: the file watcher cannot be up.
	deadline := time.Now().Add(10 * time.Second)
	for l.Status().Watcher.FilesError == "" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if ws := l.Status().Watcher; ws.FilesUp || ws.AllUp() || !strings.Contains(ws.FilesError, "no such file") {
		t.Errorf("with a missing directory: %+v", ws)
	}
}
