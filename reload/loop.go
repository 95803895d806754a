// Package reload owns awakend's reloads: the loop — its triggers (a
// recursive fsnotify watcher on the config directory and one on input files
// outside it, signals, API requests and a periodic rescan), the debounce of
// filesystem events, the coalescing of triggers into one reload at a time
// with at most one queued after it, and the reload Status — and the Applier,
// the reload itself: every input read, the whole registry rebuilt and
// validated, then one swap, or nothing at all, so that a rejected reload
// keeps the running snapshot.
//
// The loop does not know what a reload is: it runs a Func (the Applier's
// Apply, in the daemon) that reports what it did. The Func's fingerprint of
// its inputs decides whether anything changed, so the loop triggers freely
// (any event, on any name, schedules a reload).
package reload

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Trigger says what asked for a reload.
type Trigger string

// The triggers, from least to most significant. When requests coalesce, the
// queued reload keeps the most significant trigger: startup, then signal,
// then api, then rescan, then etcd, then watch. Explicit requests win over automatic
// ones, and nothing relabels the startup reload.
const (
	TriggerWatch   Trigger = "watch"   // a filesystem event (debounced)
	TriggerEtcd    Trigger = "etcd"    // the fleet's current pack moved (or may have: the watch restarted)
	TriggerRescan  Trigger = "rescan"  // the periodic rescan, or the watcher (debounced) after an overflow, a new directory or a setup
	TriggerAPI     Trigger = "api"     // an admin API request
	TriggerSignal  Trigger = "signal"  // SIGHUP
	TriggerStartup Trigger = "startup" // the first load of the daemon
)

// rank orders triggers for coalescing; unknown triggers rank lowest.
func (t Trigger) rank() int {
	switch t {
	case TriggerWatch:
		return 1
	case TriggerEtcd:
		return 2
	case TriggerRescan:
		return 3
	case TriggerAPI:
		return 4
	case TriggerSignal:
		return 5
	case TriggerStartup:
		return 6
	}
	return 0
}

// Outcome is what a reload did.
type Outcome string

// The outcomes of a reload.
const (
	OutcomeApplied   Outcome = "applied"   // a new registry version is live
	OutcomeUnchanged Outcome = "unchanged" // the inputs' fingerprint did not change; nothing was swapped
	OutcomeRejected  Outcome = "rejected"  // the config did not load or validate; the old snapshot serves
)

// Request is what a reload is asked to do.
type Request struct {
	Trigger Trigger
	// Force rebuilds even if the inputs' fingerprint is unchanged (SIGHUP:
	// operators use it to re-read secrets).
	Force bool
}

// merge coalesces r and s into one request: Force is OR-ed and the more
// significant trigger is kept (r's on a tie).
func (r Request) merge(s Request) Request {
	if s.Trigger.rank() > r.Trigger.rank() {
		r.Trigger = s.Trigger
	}
	r.Force = r.Force || s.Force
	return r
}

// Result is what one reload did. The Func fills Outcome, Version,
// Fingerprint, Changes and Err; the loop fills Trigger, Started and Duration.
type Result struct {
	Trigger     Trigger
	Outcome     Outcome
	Version     uint64 // registry version after the reload
	Fingerprint string // of the inputs the reload read
	Pack        string // the fleet's pack the reload read; "" for a directory
	Changes     string // for applied: a summary, e.g. "+2 agents, ~1 provider (base_url)"
	// Err is why a reload was rejected. It may wrap diagnostics; callers use
	// errors.As.
	Err error
	// Repeated marks a rejected reload of the very inputs the previous
	// reload rejected, asked for by the watcher or the rescan: nothing new
	// to tell the operator, so it is logged at Debug.
	Repeated bool
	// Restart lists the settings changed in the settings file that wait
	// for a restart (the daemon keeps their running values), as "key:
	// running → new"; empty when none does.
	Restart  []string
	Started  time.Time
	Duration time.Duration
}

// Func does one reload: read the inputs, and unless their fingerprint is
// unchanged and req.Force is false, rebuild, validate and publish. ctx is the
// loop's: it ends when Run's context does. A Result with an empty Outcome and
// a non-nil Err counts as rejected.
type Func func(ctx context.Context, req Request) Result

// Options configure a Loop. The zero value is usable: no watcher, default
// timings, no logging, no hooks.
type Options struct {
	// Dir is the directory to watch, recursively; "" means no watcher.
	Dir string
	// Files are more inputs to watch, outside Dir (a TLS certificate and
	// key): an event on one of them, or on a link that leads to it, asks
	// for a debounced reload as an event in Dir does.
	Files []string
	// Debounce is the quiet period after the last filesystem event before a
	// reload; 0 means 250ms.
	Debounce time.Duration
	// MaxWait bounds the delay from the first event of a burst to its
	// reload, so constant writes still converge; 0 means 2s.
	MaxWait time.Duration
	// RescanInterval is the period of the rescan; 0 means 30s, negative
	// turns it off.
	RescanInterval time.Duration
	// Logger receives watcher trouble and reload outcomes; nil discards.
	Logger *slog.Logger
	// OnResult, if set, is called after each reload, before the Reload
	// callers waiting for it return. Calls are never concurrent.
	OnResult func(Result)
	// OnStart, if set, is called right before each reload starts (sd_notify
	// RELOADING=1), on the goroutine that then calls the Func.
	OnStart func(Request)
	// Initial, if it has an Outcome, is a reload done before the loop was
	// created (the daemon's start-up load); Status starts with it.
	Initial Result
}

// Defaults for Options.
const (
	defaultDebounce = 250 * time.Millisecond
	defaultMaxWait  = 2 * time.Second
	defaultRescan   = 30 * time.Second
)

// ErrStopped is returned by Reload when the loop has stopped, or stops before
// the reload ran.
var ErrStopped = errors.New("reload: loop stopped")

// Loop runs reloads one at a time. Create it with New, start it with Run, ask
// for reloads with Trigger and Reload, and read Status from any goroutine.
type Loop struct {
	fn   Func
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	queued  *Request      // the next reload; nil when none is queued
	waiters []chan Result // Reload callers waiting for the queued reload
	burst   *burst        // filesystem events not yet queued
	stopped bool

	work   chan struct{} // cap 1: a reload was queued
	timer  chan struct{} // cap 1: a burst began
	retime chan struct{} // cap 1: SetTimings changed the rescan period
	refile chan struct{} // cap 1: SetFiles changed the files
	done   chan struct{} // closed when Run returns
	ran    atomic.Bool

	status atomic.Pointer[Status] // written under mu

	// Rejections since the last reload that was not rejected, for the
	// "config recovered" line; used by New and then by the reload
	// goroutine only.
	rejectedFirst, rejectedLast Result
	rejections                  int
	warnedRestart               []string // the Restart list last warned about
}

// burst is a run of debounced requests.
type burst struct {
	first, last time.Time
	req         Request
}

// New returns a Loop that reloads with fn.
func New(fn Func, opts Options) *Loop {
	opts.Debounce, opts.MaxWait, opts.RescanInterval = timings(opts.Debounce, opts.MaxWait, opts.RescanInterval)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Loop{
		fn:     fn,
		opts:   opts,
		log:    log,
		work:   make(chan struct{}, 1),
		timer:  make(chan struct{}, 1),
		retime: make(chan struct{}, 1),
		refile: make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	mode := ModeOff
	if opts.Dir != "" {
		mode = ModePolling // until the watches are up
	}
	l.status.Store(&Status{Watcher: WatcherStatus{Mode: mode, Files: len(absFiles(opts.Files))}})
	if opts.Initial.Outcome != "" {
		l.record(opts.Initial)
		l.track(opts.Initial)
	}
	return l
}

// timings applies the defaults of Options' timings.
func timings(debounce, maxWait, rescan time.Duration) (time.Duration, time.Duration, time.Duration) {
	if debounce <= 0 {
		debounce = defaultDebounce
	}
	if maxWait <= 0 {
		maxWait = defaultMaxWait
	}
	if rescan == 0 {
		rescan = defaultRescan
	}
	return debounce, maxWait, rescan
}

// SetTimings replaces Options' Debounce, MaxWait and RescanInterval (with
// their defaults for 0) while the loop runs: a burst of events in progress
// is flushed by the new timings, and a new rescan period starts now.
func (l *Loop) SetTimings(debounce, maxWait, rescan time.Duration) {
	debounce, maxWait, rescan = timings(debounce, maxWait, rescan)
	l.mu.Lock()
	changed := rescan != l.opts.RescanInterval
	l.opts.Debounce, l.opts.MaxWait, l.opts.RescanInterval = debounce, maxWait, rescan
	l.mu.Unlock()
	poke(l.timer)
	if changed {
		poke(l.retime)
	}
}

// SetFiles replaces Options.Files while the loop runs (the files the
// settings name now, say): the file watcher watches them from its next
// turn, and asks for a rescan. A loop that started with no files has no
// file watcher, and only records them.
func (l *Loop) SetFiles(files []string) {
	l.mu.Lock()
	l.opts.Files = slices.Clone(files)
	s := *l.status.Load()
	s.Watcher.Files = len(absFiles(files))
	l.status.Store(&s)
	l.mu.Unlock()
	poke(l.refile)
}

// files are Options.Files as SetFiles last set them.
func (l *Loop) files() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.opts.Files)
}

// rescanInterval is the rescan period; negative means none.
func (l *Loop) rescanInterval() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.opts.RescanInterval
}

// Run watches the directory, runs the periodic rescan and runs the reloads
// asked for, one at a time, until ctx is done. It sets up the watches before
// it starts the first reload, so no change made after that is missed. It
// returns once every goroutine it started has exited, a running reload
// included; reloads still queued then are dropped and their Reload callers
// get ErrStopped. Run returns nil, or an error if called twice.
func (l *Loop) Run(ctx context.Context) error {
	if l.ran.Swap(true) {
		return errors.New("reload: loop already run")
	}
	var wg sync.WaitGroup
	if l.opts.Dir != "" {
		w := newWatcher(l.opts.Dir, l.log, l.debounce, l.setWatcher)
		w.start()
		wg.Go(func() { w.run(ctx) })
	}
	if files := l.files(); len(files) > 0 {
		fw := newFileWatcher(files, l.log, l.debounce, l.setFiles)
		fw.start()
		wg.Go(func() { fw.run(ctx, l.refile, l.files) })
	}
	wg.Go(func() { l.runReloads(ctx) })
	l.schedule(ctx)
	wg.Wait()

	l.mu.Lock()
	l.stopped = true
	l.queued, l.waiters, l.burst = nil, nil, nil
	l.mu.Unlock()
	close(l.done)
	return nil
}

// Trigger schedules a reload and returns at once. A TriggerWatch request is
// debounced (Options.Debounce, Options.MaxWait). Any other request is queued
// at once and takes in the pending debounced events, since the reload it
// queues will read their effect. Requests queued while a reload runs
// coalesce into the single queued one. Before Run, requests wait for it;
// after Run has returned, they are dropped.
func (l *Loop) Trigger(req Request) {
	if req.Trigger == TriggerWatch {
		l.debounce(req)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.enqueue(req)
}

// Reload queues req at once (never debounced) and waits for the result of
// the first reload that starts after the call, so that reload reads the disk
// as it is now; Reload callers waiting at the same time share it. A
// rejected reload is a Result with Err set, not an error: Reload returns an
// error only if ctx ends first (the reload still happens) or the loop stops.
func (l *Loop) Reload(ctx context.Context, req Request) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	ch := make(chan Result, 1)
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return Result{}, ErrStopped
	}
	l.enqueue(req)
	l.waiters = append(l.waiters, ch)
	l.mu.Unlock()

	select {
	case res := <-ch:
		return res, nil
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-l.done:
		select {
		case res := <-ch:
			return res, nil
		default:
			return Result{}, ErrStopped
		}
	}
}

// enqueue merges req into the queued reload. The queued reload starts after
// any pending filesystem event, so it takes the burst in as well. l.mu is
// held.
func (l *Loop) enqueue(req Request) {
	if l.stopped {
		return
	}
	if l.burst != nil {
		req = req.merge(l.burst.req)
		l.burst = nil
	}
	if l.queued != nil {
		req = l.queued.merge(req)
	}
	l.queued = &req
	poke(l.work)
}

// debounce adds req to the current burst of filesystem events, or starts one.
func (l *Loop) debounce(req Request) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	if l.burst != nil {
		l.burst.last = now
		l.burst.req = l.burst.req.merge(req)
		return
	}
	l.burst = &burst{first: now, last: now, req: req}
	poke(l.timer)
}

// flush queues the burst if it is due, and otherwise says how long until it
// is.
func (l *Loop) flush() (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.burst
	if b == nil {
		return 0, false
	}
	due := b.last.Add(l.opts.Debounce)
	if limit := b.first.Add(l.opts.MaxWait); limit.Before(due) {
		due = limit
	}
	if wait := time.Until(due); wait > 0 {
		return wait, true
	}
	l.burst = nil
	l.enqueue(b.req)
	return 0, false
}

// schedule fires debounced bursts and the periodic rescan until ctx is done.
func (l *Loop) schedule(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var ticker *time.Ticker
	var rescan <-chan time.Time
	startRescan := func() {
		if ticker != nil {
			ticker.Stop()
			ticker, rescan = nil, nil
		}
		if d := l.rescanInterval(); d > 0 {
			ticker = time.NewTicker(d)
			rescan = ticker.C
		}
	}
	startRescan()
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-rescan:
			l.Trigger(Request{Trigger: TriggerRescan})
			continue
		case <-l.retime:
			startRescan()
			continue
		case <-l.timer:
		case <-timer.C:
		}
		if wait, ok := l.flush(); ok {
			timer.Reset(wait)
		}
	}
}

// runReloads runs queued reloads one at a time until ctx is done.
func (l *Loop) runReloads(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.work:
		}
		for ctx.Err() == nil {
			l.mu.Lock()
			req, waiters := l.queued, l.waiters
			l.queued, l.waiters = nil, nil
			l.mu.Unlock()
			if req == nil {
				break
			}
			res := l.do(ctx, *req)
			for _, ch := range waiters {
				ch <- res
			}
		}
	}
}

// do runs one reload and records it.
func (l *Loop) do(ctx context.Context, req Request) Result {
	if l.opts.OnStart != nil {
		l.opts.OnStart(req)
	}
	start := time.Now()
	res := l.fn(ctx, req)
	res.Trigger, res.Started, res.Duration = req.Trigger, start, time.Since(start)
	if res.Outcome == "" && res.Err != nil {
		res.Outcome = OutcomeRejected
	}
	l.record(res)
	l.logResult(ctx, res)
	if l.rejections > 0 && res.Outcome != OutcomeRejected {
		l.log.Log(ctx, slog.LevelInfo, "config recovered",
			"trigger", res.Trigger,
			"result", res.Outcome,
			"version", res.Version,
			"fingerprint", res.Fingerprint,
			"rejections", l.rejections,
			"rejected_since", l.rejectedFirst.Started,
			"rejected_fingerprint", l.rejectedLast.Fingerprint,
			"rejected_error", l.rejectedLast.Err,
		)
	}
	l.track(res)
	if l.opts.OnResult != nil {
		l.opts.OnResult(res)
	}
	return res
}

// track counts a run of rejected reloads; any other outcome ends it.
func (l *Loop) track(res Result) {
	if res.Outcome != OutcomeRejected {
		l.rejections = 0
		return
	}
	if l.rejections == 0 {
		l.rejectedFirst = res
	}
	l.rejections++
	l.rejectedLast = res
}

// logResult logs an outcome: applied at Info, rejected at Warn, unchanged at
// Info when someone asked for the reload and at Debug when the watcher or the
// rescan did.
func (l *Loop) logResult(ctx context.Context, res Result) {
	attrs := []any{
		"trigger", res.Trigger,
		"result", res.Outcome,
		"version", res.Version,
		"fingerprint", res.Fingerprint,
		"took", res.Duration,
	}
	if res.Pack != "" {
		attrs = append(attrs, "pack", res.Pack[:min(len(res.Pack), 12)])
	}
	level := slog.LevelInfo
	switch {
	case res.Outcome == OutcomeApplied:
		attrs = append(attrs, "changes", res.Changes)
	case res.Outcome == OutcomeRejected:
		level = slog.LevelWarn
		if res.Repeated {
			level = slog.LevelDebug
		}
		attrs = append(attrs, "error", res.Err)
	case res.Trigger == TriggerWatch || res.Trigger == TriggerRescan:
		level = slog.LevelDebug
	}
	if len(res.Restart) > 0 && res.Outcome != OutcomeRejected {
		attrs = append(attrs, "restart_required", strings.Join(res.Restart, "; "))
	}
	l.log.Log(ctx, level, "config reload", attrs...)
	if len(res.Restart) > 0 && res.Outcome != OutcomeRejected && !slices.Equal(res.Restart, l.warnedRestart) {
		l.log.Warn("settings changed that apply only after a restart; running with the old values",
			"restart_required", strings.Join(res.Restart, "; "))
	}
	if res.Outcome != OutcomeRejected {
		l.warnedRestart = res.Restart
	}
}

// Key identifies a reload counter: one per trigger and outcome.
type Key struct {
	Trigger Trigger
	Outcome Outcome
}

// Mode is how the directory is being watched.
type Mode string

// The watcher modes.
const (
	ModeFsnotify Mode = "fsnotify" // event-driven, every directory watched
	ModePolling  Mode = "polling"  // watches could not be set up; only the periodic rescan (and retries) notice changes
	ModeOff      Mode = "off"      // no directory to watch
)

// WatcherStatus is the health of the directory watcher and of the one on
// input files outside it (Options.Files).
type WatcherStatus struct {
	Up   bool // every directory of the tree is watched
	Mode Mode
	Dirs int // directories watched, the root included
	// LastError is the latest watcher error since the watches were last set
	// up, or the error that made the watcher set them up again; "" if none.
	LastError string
	// Files is how many input files outside the tree are watched for, and
	// FilesUp whether their watches are all set up; FilesError is as
	// LastError, for them.
	Files      int
	FilesUp    bool
	FilesError string
}

// AllUp reports whether every watch, of the tree and of the files, is set
// up: only then is a change noticed before the periodic rescan.
func (ws WatcherStatus) AllUp() bool {
	return (ws.Mode == ModeOff || ws.Up) && (ws.Files == 0 || ws.FilesUp)
}

// Status is a snapshot of the loop's state.
type Status struct {
	Last        Result // the latest reload; zero if none ran
	LastApplied Result // the latest applied reload; zero if none
	// Counts counts finished reloads by trigger and outcome.
	Counts  map[Key]uint64
	Watcher WatcherStatus
	// Restart is the latest Result.Restart of a reload that was not
	// rejected: the settings that wait for a restart.
	Restart []string
}

// Status returns the current status. It takes no lock.
func (l *Loop) Status() Status {
	s := *l.status.Load()
	s.Counts = maps.Clone(s.Counts)
	return s
}

// record adds a finished reload to the status.
func (l *Loop) record(res Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := *l.status.Load()
	s.Last = res
	if res.Outcome == OutcomeApplied {
		s.LastApplied = res
	}
	if res.Outcome != OutcomeRejected && res.Err == nil {
		s.Restart = res.Restart
	}
	s.Counts = maps.Clone(s.Counts)
	if s.Counts == nil {
		s.Counts = make(map[Key]uint64)
	}
	s.Counts[Key{res.Trigger, res.Outcome}]++
	l.status.Store(&s)
}

// setWatcher publishes the directory watcher's health.
func (l *Loop) setWatcher(ws WatcherStatus) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := *l.status.Load()
	ws.Files, ws.FilesUp, ws.FilesError = s.Watcher.Files, s.Watcher.FilesUp, s.Watcher.FilesError
	s.Watcher = ws
	l.status.Store(&s)
}

// setFiles publishes the file watcher's health.
func (l *Loop) setFiles(up bool, lastErr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := *l.status.Load()
	s.Watcher.FilesUp, s.Watcher.FilesError = up, lastErr
	l.status.Store(&s)
}

// poke sends on a one-slot channel without blocking.
func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
