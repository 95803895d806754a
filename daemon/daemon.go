// Package daemon wires awakend's parts into the running service: the
// start-up load, the reload loop and its triggers, the HTTP server, metrics
// and systemd notifications. It holds no logic of its own beyond that
// wiring; cmd/awakend parses the command line and calls Run.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/awakend/awakend/api"
	"github.com/awakend/awakend/config"
	"github.com/awakend/awakend/edge"
	"github.com/awakend/awakend/fleet"
	"github.com/awakend/awakend/gateway"
	"github.com/awakend/awakend/lastgood"
	"github.com/awakend/awakend/metrics"
	"github.com/awakend/awakend/pack"
	"github.com/awakend/awakend/provider"
	"github.com/awakend/awakend/registry"
	"github.com/awakend/awakend/reload"
	"github.com/awakend/awakend/sdnotify"
	"github.com/awakend/awakend/settings"
)

// Options are what Run needs from the command line and the environment.
type Options struct {
	Settings settings.Settings
	// SettingsFile is the file Settings were read from, "" for none;
	// ReadSettings, if set, reads them again (that file and what it
	// references, the environment and flags as they were at start-up) at
	// every reload, which applies what can change live.
	SettingsFile string
	ReadSettings func() (settings.Settings, string, error)
	Logger       *slog.Logger
	// LogLevel, if set, is the level Logger logs at: a reload sets it
	// from log.level.
	LogLevel *slog.LevelVar
	Notifier *sdnotify.Notifier
	// Hangup delivers SIGHUP: each one forces a rebuild.
	Hangup <-chan os.Signal
	// Env and CredentialsDir feed ${VAR} and ${credential:NAME}.
	LookupEnv      func(string) (string, bool)
	CredentialsDir string
	Version        string
	// Listeners, if any, are served instead of a listener on
	// Settings.Listen: the sockets systemd passed (socket activation), or
	// a test's. Run closes them.
	Listeners []net.Listener
	// RuntimeDir, if set, is where the daemon writes the URL it serves at
	// (URLFile) while it runs: systemd's $RUNTIME_DIRECTORY.
	RuntimeDir string
	// Report, if set, prints the diagnostics of a configuration rejected
	// at start-up, one per line. Run calls it before it returns a
	// StartupError and before it serves the last-known-good configuration.
	Report func(error)
}

// StartupError is a config that did not load when the daemon started; the
// daemon does not start.
type StartupError struct{ Err error }

func (e *StartupError) Error() string { return "config rejected at start-up:\n" + e.Err.Error() }
func (e *StartupError) Unwrap() error { return e.Err }

// Run loads the config directory (and the TLS certificate, when the
// settings name one), serves it over HTTP (or HTTPS, with HTTP/2), and
// reloads both until ctx is done, then shuts down gracefully: it stops
// accepting connections, lets requests in flight finish (bounded by the
// shutdown timeout) and stops the reload loop.
func Run(ctx context.Context, o Options) error {
	s, log := o.Settings, o.Logger
	started := time.Now()
	defer func() { // served and closed below, unless the start-up fails
		for _, ln := range o.Listeners {
			ln.Close()
		}
	}()
	var src reload.Source = reload.Dir(s.ConfigDir)
	var fl *fleetSource // the etcd source, when the settings name one
	if e := s.Source.Etcd; len(e.Endpoints) > 0 {
		st, err := fleet.Dial(fleet.Options{Endpoints: e.Endpoints, Prefix: e.Prefix})
		if err != nil {
			return err
		}
		defer st.Close()
		fl = newFleetSource(st, s.StateDir, log)
		src = fl
	}
	applier := reload.NewApplier(src, config.Options{
		LookupEnv:      o.LookupEnv,
		ReadFile:       os.ReadFile,
		CredentialsDir: o.CredentialsDir,
		AllowEmpty:     s.AllowEmpty,
		Cache:          config.NewCache(),
	}, provider.New)
	var cert *edge.Certificate
	if s.TLS.CertFile != "" {
		cert = edge.NewCertificate(reload.TLSSettings(s))
		applier.TLS = cert
	}
	// The inputs outside the config directory: the TLS files the settings
	// name (with TLS on since the start) and the settings file itself.
	watchSettings := o.ReadSettings != nil && regularFile(o.SettingsFile) // not --settings /dev/null
	inputFiles := func(s settings.Settings) []string {
		var files []string
		if cert != nil {
			files = append(files, s.TLS.CertFile, s.TLS.KeyFile)
			if s.TLS.ClientCAFile != "" {
				files = append(files, s.TLS.ClientCAFile)
			}
		}
		if watchSettings {
			files = append(files, o.SettingsFile)
		}
		return files
	}
	// What a reload may change in the settings is read from here: the
	// keys, the reload loop's timings, the log level, the shutdown
	// timeout. The listen address, the source and the log format stay.
	adminKeys := edge.NewKeysVar(edge.NewKeys(s.Admin.Token))
	gatewayKeys := edge.NewKeysVar(edge.NewKeys(s.Gateway.APIKeys...))
	var running atomic.Pointer[settings.Settings]
	running.Store(&s)
	var loop *reload.Loop
	var lns []net.Listener
	var clientsDeclared func() bool
	applyLive := func(live settings.Settings) {
		running.Store(&live)
		if o.LogLevel != nil {
			_ = o.LogLevel.UnmarshalText([]byte(live.Log.Level)) // validated by settings.Load
		}
		adminKeys.Store(edge.NewKeys(live.Admin.Token))
		gatewayKeys.Store(edge.NewKeys(live.Gateway.APIKeys...))
		if loop != nil {
			loop.SetTimings(live.Reload.Debounce, live.Reload.MaxWait, rescanInterval(live.Reload.RescanInterval))
			loop.SetFiles(inputFiles(live))
		}
		for _, ln := range lns {
			warnIfExposed(log, ln.Addr(), live, clientsDeclared())
		}
	}
	if o.ReadSettings != nil {
		applier.ReadSettings(s, o.SettingsFile, o.ReadSettings, applyLive)
	}

	applier.Logger = log
	if s.StateDir != "" && fl == nil { // the fleet keeps its own local copy
		applier.Keep = func(saved lastgood.Saved) {
			if err := lastgood.Save(s.StateDir, saved); err != nil {
				log.Error("last-known-good configuration not saved", "error", err)
				return
			}
			log.Debug("last-known-good configuration saved", "dir", s.StateDir, "fingerprint", saved.Fingerprint)
		}
	}
	res, initial, deg, err := loadAtStartup(ctx, o, applier, started)
	if err != nil {
		return err
	}
	if o.ReadSettings != nil {
		applyLive(applier.Settings()) // as the start-up load read them, a moment after s
	}
	var degraded atomic.Pointer[api.Degraded]
	degraded.Store(deg)
	handle := applier.Handle()
	where := []any{"dir", s.ConfigDir}
	if fl != nil {
		where = []any{"etcd", strings.Join(s.Source.Etcd.Endpoints, ","), "prefix", s.Source.Etcd.Prefix, "pack", pack.Short(res.Pack)}
	}
	log.Info("config loaded", append(where, "version", res.Version, "fingerprint", res.Fingerprint,
		"resources", res.Changes, "took", time.Since(started))...)
	var expiry expiryLog // touched by the start-up, then by the reload loop's goroutine only
	if leaf := cert.Leaf(); leaf != nil {
		attrs := []any{"file", cert.Settings().Cert, "subject", leaf.Subject.String(), "dns_names", leaf.DNSNames, "not_after", leaf.NotAfter}
		if ca := cert.Settings().ClientCA; ca != "" {
			attrs = append(attrs, "client_ca_file", ca)
		}
		log.Info("tls certificate loaded", attrs...)
		expiry.check(log, leaf, time.Now())
	}

	// RELOADING=1 at the start of every forced reload (SIGHUP, the API):
	// with Type=notify-reload, systemd waits for it after sending SIGHUP,
	// even if the reload then fails to load. A reload the watcher or the
	// rescan started announces itself only once it knows it will rebuild:
	// the rescan every 30 s almost always finds nothing, and must not flip
	// the unit to "reloading".
	var stopping atomic.Bool // after STOPPING=1, reloads still draining stay quiet
	reloading := func(req reload.Request) {
		if !stopping.Load() {
			o.Notifier.Reloading(fmt.Sprintf("reloading (%s), serving version %d", req.Trigger, handle.Version()))
		}
	}
	applier.OnRebuild = func(req reload.Request) {
		if !req.Force {
			reloading(req)
		}
	}
	m := metrics.New(handle, func() reload.WatcherStatus { return loop.Status().Watcher })
	m.SetDegraded(degraded.Load() != nil)
	watchDir := s.ConfigDir
	if fl != nil {
		watchDir = "" // the fleet's pointer is watched instead
	}
	var announce *fleet.Announcer
	ackOf := func(reload.Result) fleet.Ack { return fleet.Ack{} }
	if fl != nil {
		host := s.Source.Etcd.Host
		if host == "" {
			host, _ = os.Hostname()
		}
		announce = fl.store.Announcer(host, 0)
		announce.OnState = func(err error) {
			if err != nil {
				log.Warn("fleet acknowledgement lost; retrying", "error", err)
			}
		}
		ackOf = func(r reload.Result) fleet.Ack {
			applied := res
			if loop != nil {
				applied = loop.Status().LastApplied
			}
			return fl.ack(host, started, handle, applied, r)
		}
	}
	loop = reload.New(applier.Apply, reload.Options{
		Dir:            watchDir,
		Files:          inputFiles(*running.Load()),
		Debounce:       running.Load().Reload.Debounce,
		MaxWait:        running.Load().Reload.MaxWait,
		RescanInterval: rescanInterval(running.Load().Reload.RescanInterval),
		Logger:         log,
		Initial:        initial,
		OnStart: func(req reload.Request) {
			if req.Force {
				reloading(req)
			}
		},
		OnResult: func(r reload.Result) {
			m.ObserveReload(r)
			expiry.check(log, cert.Leaf(), time.Now())
			if r.Outcome != reload.OutcomeRejected && r.Err == nil && degraded.Swap(nil) != nil {
				m.SetDegraded(false)
				log.Warn("config directory valid again; no longer degraded", "dir", s.ConfigDir, "version", r.Version)
			}
			if !stopping.Load() {
				o.Notifier.Ready(statusLine(handle, r, degraded.Load(), fl))
			}
			if announce != nil {
				announce.Set(ackOf(r))
			}
		},
	})
	m.ObserveReload(initial)
	m.SetBuildInfo(o.Version)
	if cert != nil {
		m.Registerer().MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "awakend_tls_certificate_expiry_timestamp_seconds",
			Help: "Unix time at which the TLS certificate being served expires (its NotAfter).",
		}, func() float64 {
			if leaf := cert.Leaf(); leaf != nil {
				return float64(leaf.NotAfter.Unix())
			}
			return 0
		}))
	}
	if fl != nil {
		m.Registerer().MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "awakend_config_stale",
			Help: "1 while the daemon cannot read the fleet's etcd and serves what it has (a pack that may have been replaced), else 0.",
		}, func() float64 {
			if fl.state().Stale {
				return 1
			}
			return 0
		}))
	}

	lns = o.Listeners
	if len(lns) == 0 {
		ln, err := net.Listen("tcp", s.Listen)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		defer ln.Close()
		lns = []net.Listener{ln}
	}
	if remove, err := writeURL(o.RuntimeDir, lns[0].Addr(), cert != nil); err != nil {
		log.Warn("the daemon's URL is not written; awakend reload will connect to the listen setting", "dir", o.RuntimeDir, "error", err)
	} else {
		defer remove()
	}
	addrs := []string{s.Listen}
	for _, ln := range lns {
		addrs = append(addrs, ln.Addr().String())
	}
	// A local client may name the daemon by its listen addresses or by
	// the machine's own name (which Debian maps to 127.0.1.1), besides
	// localhost: none of these is a name a web page can rebind.
	hosts := slices.Clone(addrs)
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	gw := gateway.New(gateway.Options{
		Handle:  handle,
		Logger:  log,
		Metrics: m.Registerer(),
		Keys:    gatewayKeys,
		Guard:   edge.NewGuard(hosts...),
	})
	rest := api.New(api.Options{
		Handle:      handle,
		Reloader:    loop,
		Metrics:     m.Handler(),
		Admin:       adminKeys,
		NextAdmin:   nextAdmin(o.ReadSettings),
		Diagnostics: Diagnostics,
		Logger:      log,
		Version:     o.Version,
		Started:     started,
		Guard:       edge.NewGuard(hosts...),
		ClientAdmin: func(r *http.Request) (string, bool, error) { return cert.ClientAdmin(r, time.Now()) },
		Degraded:    degraded.Load,
		Source:      sourceState(fl),
		Usage:       func(id string) any { return gw.ClientUsage(id) },
	})
	// While draining, each response closes its connection: a client's
	// next request goes to a new connection, which the next process, after
	// a restart, accepts.
	var draining atomic.Bool
	// The gateway routes /v1/ itself, so its requests, the hot path, skip
	// a ServeMux's pattern matching; the API has its own mux.
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() {
			w.Header().Set("Connection", "close")
		}
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			gw.ServeHTTP(w, r)
			return
		}
		rest.ServeHTTP(w, r)
	})
	srv, conns := newServer(handler, log)
	if cert != nil {
		srv.TLSConfig = cert.TLSConfig()
	}
	clientsDeclared = func() bool { return len(handle.Current().Set.ClientIDs()) > 0 }
	for _, ln := range lns {
		warnIfExposed(log, ln.Addr(), *running.Load(), clientsDeclared())
	}

	loopCtx, stopLoop := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoop()
	var wg sync.WaitGroup
	wg.Go(func() { loop.Run(loopCtx) })
	serveErr := make(chan error, len(lns))
	for _, ln := range lns {
		wg.Go(func() {
			var err error
			if cert != nil {
				err = srv.ServeTLS(ln, "", "") // certificates from TLSConfig; HTTP/2 through ALPN
			} else {
				err = srv.Serve(ln)
			}
			if !errors.Is(err, http.ErrServerClosed) && !draining.Load() {
				serveErr <- fmt.Errorf("serve %s: %w", ln.Addr(), err)
			}
		})
	}
	if d, ok := sdnotify.WatchdogInterval(); ok {
		wg.Go(func() {
			o.Notifier.RunWatchdog(loopCtx, d, func(err error) { log.Warn("watchdog notification failed", "error", err) })
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-loopCtx.Done():
				return
			case <-o.Hangup:
				loop.Trigger(reload.Request{Trigger: reload.TriggerSignal, Force: true})
			}
		}
	})

	if fl != nil {
		announce.Set(ackOf(res))
		wg.Go(func() { announce.Run(loopCtx) })
		wg.Go(func() {
			fl.store.Follow(loopCtx, fl.revision(), func(fleet.Pointer) {
				loop.Trigger(reload.Request{Trigger: reload.TriggerEtcd})
			})
		})
	}
	o.Notifier.Ready(statusLine(handle, initial, degraded.Load(), fl))
	log.Info("serving", "listen", strings.Join(addrs[1:], " "), "version", handle.Version())

	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	stopping.Store(true)
	o.Notifier.Stopping()
	timeout := running.Load().Shutdown.Timeout
	log.Info("shutting down", "timeout", timeout)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	// Stop accepting first. A socket systemd passed stays open in systemd,
	// which queues new connections for the next process. Open connections
	// get a moment to close by themselves (a request on one is answered
	// with Connection: close) before Shutdown closes those that are idle,
	// so that a client does not lose a request it sends just as its
	// connection is closed.
	draining.Store(true)
	for _, ln := range lns {
		ln.Close()
	}
	conns.awaitClosed(shutdownCtx, min(drainGrace, timeout))
	// Shutdown closes the listeners again; one it finds closed already
	// (a Serve that has not yet let go of it) is not a failure.
	if serr := srv.Shutdown(shutdownCtx); serr != nil && !errors.Is(serr, net.ErrClosed) {
		log.Warn("requests still running at the shutdown timeout were cut", "error", serr)
		srv.Close()
	}
	stopLoop()
	wg.Wait()
	log.Info("stopped")
	return err
}

// loadAtStartup is the start-up load: the config directory or, when it is rejected
// and a last-known-good configuration was saved, that one, degraded. It
// returns the load that went live, the start-up's result as the status and
// the metrics show it (the directory's), and what deg says about serving
// the saved configuration (nil when the directory's serves). It fails
// with a *StartupError when nothing can serve.
func loadAtStartup(ctx context.Context, o Options, a *reload.Applier, started time.Time) (live, initial reload.Result, deg *api.Degraded, err error) {
	s, log := o.Settings, o.Logger
	req := reload.Request{Trigger: reload.TriggerStartup}
	res := a.Apply(ctx, req)
	res.Started, res.Duration = started, time.Since(started)
	if res.Outcome == reload.OutcomeApplied {
		return res, res, nil, nil
	}
	if o.Report != nil {
		o.Report(res.Err)
	}
	if _, ok := a.Source().(reload.Dir); !ok { // a fleet's daemon serves its own local copy (fleetSource)
		return res, res, nil, &StartupError{Err: res.Err}
	}
	saved, ok := readLastGood(log, s.StateDir)
	if !ok {
		return res, res, nil, &StartupError{Err: res.Err}
	}
	state := filepath.Join(s.StateDir, lastgood.FileName)
	live = a.ApplySaved(ctx, req, saved, res)
	if live.Outcome != reload.OutcomeApplied {
		log.Error("the last-known-good configuration does not load either", "state", state, "saved_at", saved.SavedAt)
		if o.Report != nil {
			o.Report(live.Err)
		}
		return res, res, nil, &StartupError{Err: res.Err}
	}
	log.Error("DEGRADED: config rejected at start-up; serving the last-known-good configuration until the directory is fixed",
		"dir", s.ConfigDir, "state", state, "saved_at", saved.SavedAt, "fingerprint", saved.Fingerprint)
	res.Version = live.Version
	return live, res, &api.Degraded{Since: time.Now(), SavedAt: saved.SavedAt, Fingerprint: saved.Fingerprint, Reason: summary(res.Err)}, nil
}

// sourceState feeds the status API's "source" for the etcd source; nil
// for a directory.
func sourceState(fl *fleetSource) func() any {
	if fl == nil {
		return nil
	}
	return func() any { return fl.state() }
}

// statusLine is the STATUS= systemd shows: the version served (and, from
// etcd, the pack and whether it is stale), whether it is the last-known-good
// configuration and, after a rejected reload, why the running config was
// kept.
func statusLine(h *registry.Handle, r reload.Result, d *api.Degraded, fl *fleetSource) string {
	line := fmt.Sprintf("serving version %d", h.Version())
	if d != nil {
		line = fmt.Sprintf("DEGRADED: serving the last-known-good configuration (version %d, saved %s); the config directory was rejected at start-up",
			h.Version(), d.SavedAt.UTC().Format(time.RFC3339))
	}
	if fl != nil {
		st := fl.state()
		line += " of pack " + pack.Short(st.Pack)
		if st.Stale {
			line += "; stale: etcd unreachable"
		}
	}
	if r.Outcome == reload.OutcomeRejected && r.Err != nil {
		line += "; last reload rejected: " + summary(r.Err)
	} else if len(r.Restart) > 0 {
		line += "; restart to apply " + strings.Join(r.Restart, "; ")
	}
	return line
}

// regularFile reports whether path names a regular file, through links.
func regularFile(path string) bool {
	fi, err := os.Stat(path)
	return path != "" && err == nil && fi.Mode().IsRegular()
}

// nextAdmin is the API's NextAdmin: whether a token is the admin token the
// settings name now. It reads them, one request at a time: a reload request
// with another token than the running one costs a read of the settings
// file. nil without read.
func nextAdmin(read func() (settings.Settings, string, error)) func(string) bool {
	if read == nil {
		return nil
	}
	var mu sync.Mutex
	return func(token string) bool {
		mu.Lock()
		defer mu.Unlock()
		next, _, err := read()
		switch {
		case err != nil:
			return false
		case next.Admin.Token == "":
			return token == ""
		}
		return edge.NewKeys(next.Admin.Token).Match(token)
	}
}

// summary is an error's text cut to fit a status line.
func summary(err error) string {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200] + "…"
	}
	return msg
}

// readLastGood reads the configuration saved in dir; ok is false when
// there is none to serve: no state directory, no state file, or one that
// cannot be used, which is logged as the error it is.
func readLastGood(log *slog.Logger, dir string) (saved *lastgood.Saved, ok bool) {
	if dir == "" {
		return nil, false
	}
	saved, err := lastgood.Read(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		log.Info("no last-known-good configuration saved", "state", filepath.Join(dir, lastgood.FileName))
		return nil, false
	case err != nil:
		log.Error("last-known-good configuration unusable", "error", err)
		return nil, false
	}
	return saved, true
}

// Diagnostics renders a rejected reload's error for the API: the
// positioned diagnostics of a config error and of a settings error, one
// diagnostic per certificate file that did not load, or the message.
func Diagnostics(err error) any {
	var out []config.Diagnostic
	other := false // an error that has no diagnostics of its own
	var walk func(error)
	walk = func(err error) {
		var ce *config.Error
		var se *settings.Error
		var cert *edge.CertError
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		switch {
		case errors.As(err, &ce):
			out = append(out, ce.Diagnostics...)
		case errors.As(err, &se):
			for _, p := range se.Problems {
				msg := p.Message
				if p.File == "" && p.Source != "" {
					msg = p.Source + ": " + msg // a variable or a flag
				}
				out = append(out, config.Diagnostic{File: p.File, Line: p.Line, Column: p.Column, Code: "settings", Severity: "error", Message: msg})
			}
		case errors.As(err, &cert):
			out = append(out, config.Diagnostic{File: cert.File, Code: "tls_certificate", Severity: "error", Message: cert.Setting + ": " + cert.Err.Error()})
		default:
			other = true
		}
	}
	walk(err)
	if other || len(out) == 0 {
		return []map[string]string{{"severity": "error", "message": err.Error()}}
	}
	return out
}

// rescanInterval maps the setting (0 = off) to the loop's option (negative
// = off).
func rescanInterval(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}
