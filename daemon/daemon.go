// Package daemon wires awakend's parts into the running service: the
// start-up load, the reload loop and its triggers, the HTTP server, metrics
// and systemd notifications. It holds no logic of its own beyond that
// wiring; cmd/awakend parses the command line and calls Run.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
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
	"github.com/awakend/awakend/metrics"
	"github.com/awakend/awakend/pack"
	"github.com/awakend/awakend/provider"
	"github.com/awakend/awakend/registry"
	"github.com/awakend/awakend/reload"
	"github.com/awakend/awakend/sdnotify"
)

// Options are what Run needs from the command line and the environment.
type Options struct {
	Settings config.Settings
	Logger   *slog.Logger
	Notifier *sdnotify.Notifier
	// Hangup delivers SIGHUP: each one forces a rebuild.
	Hangup <-chan os.Signal
	// Env and CredentialsDir feed ${VAR} and ${credential:NAME}.
	LookupEnv      func(string) (string, bool)
	CredentialsDir string
	Version        string
	// Listener, if set, is served instead of a listener on
	// Settings.Listen (socket activation, tests). Run closes it.
	Listener net.Listener
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
	if o.Listener != nil {
		defer o.Listener.Close() // served and closed below, unless the start-up fails
	}
	applier := NewApplier(s.ConfigDir, config.Options{
		LookupEnv:      o.LookupEnv,
		ReadFile:       os.ReadFile,
		CredentialsDir: o.CredentialsDir,
		AllowEmpty:     s.AllowEmpty,
		Cache:          config.NewCache(),
	}, provider.New)
	var fl *fleetSource // the etcd source, when the settings name one
	if e := s.Source.Etcd; len(e.Endpoints) > 0 {
		st, err := fleet.Dial(fleet.Options{Endpoints: e.Endpoints, Prefix: e.Prefix})
		if err != nil {
			return err
		}
		defer st.Close()
		fl = newFleetSource(st, s.StateDir, log)
		applier.src = fl
	}
	var cert *certificate
	if s.TLS.CertFile != "" {
		cert = newCertificate(s.TLS.CertFile, s.TLS.KeyFile)
		applier.tls = cert
	}

	res := applier.Apply(ctx, reload.Request{Trigger: reload.TriggerStartup})
	res.Started, res.Duration = started, time.Since(started)
	if res.Outcome != reload.OutcomeApplied {
		return &StartupError{Err: res.Err}
	}
	handle := applier.Handle()
	where := []any{"dir", s.ConfigDir}
	if fl != nil {
		where = []any{"etcd", strings.Join(s.Source.Etcd.Endpoints, ","), "prefix", s.Source.Etcd.Prefix, "pack", pack.Short(res.Pack)}
	}
	log.Info("config loaded", append(where, "version", res.Version, "fingerprint", res.Fingerprint,
		"resources", res.Changes, "took", time.Since(started))...)
	if leaf := cert.leaf(); leaf != nil {
		log.Info("tls certificate loaded", "file", s.TLS.CertFile, "subject", leaf.Subject.String(),
			"dns_names", leaf.DNSNames, "not_after", leaf.NotAfter)
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
	var loop *reload.Loop
	m := metrics.New(handle, func() reload.WatcherStatus { return loop.Status().Watcher })
	var certFiles []string
	if cert != nil {
		certFiles = []string{cert.certFile, cert.keyFile}
	}
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
		Files:          certFiles,
		Debounce:       s.Reload.Debounce,
		MaxWait:        s.Reload.MaxWait,
		RescanInterval: rescanInterval(s.Reload.RescanInterval),
		Logger:         log,
		Initial:        res,
		OnStart: func(req reload.Request) {
			if req.Force {
				reloading(req)
			}
		},
		OnResult: func(r reload.Result) {
			m.ObserveReload(r)
			if !stopping.Load() {
				o.Notifier.Ready(statusLine(handle, r, fl))
			}
			if announce != nil {
				announce.Set(ackOf(r))
			}
		},
	})
	m.ObserveReload(res)
	m.SetBuildInfo(o.Version)
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

	ln := o.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.Listen); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	// A local client may name the daemon by its listen address or by the
	// machine's own name (which Debian maps to 127.0.1.1), besides
	// localhost: none of these is a name a web page can rebind.
	hosts := []string{s.Listen, ln.Addr().String()}
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	gw := gateway.New(gateway.Options{
		Handle:  handle,
		Logger:  log,
		Metrics: m.Registerer(),
		APIKeys: s.Gateway.APIKeys,
		Guard:   edge.NewGuard(hosts...),
	})
	rest := api.New(api.Options{
		Handle:      handle,
		Reloader:    loop,
		Metrics:     m.Handler(),
		AdminToken:  s.Admin.Token,
		Diagnostics: Diagnostics,
		Logger:      log,
		Version:     o.Version,
		Started:     started,
		Guard:       edge.NewGuard(hosts...),
		Source:      sourceState(fl),
	})
	// The gateway routes /v1/ itself, so its requests, the hot path, skip
	// a ServeMux's pattern matching; the API has its own mux.
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/") {
			gw.ServeHTTP(w, r)
			return
		}
		rest.ServeHTTP(w, r)
	})
	srv := newServer(handler, log)
	if cert != nil {
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cert.getCertificate}
	}
	warnIfExposed(log, ln.Addr(), s)

	loopCtx, stopLoop := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoop()
	var wg sync.WaitGroup
	wg.Go(func() { loop.Run(loopCtx) })
	serveErr := make(chan error, 1)
	wg.Go(func() {
		var err error
		if cert != nil {
			err = srv.ServeTLS(ln, "", "") // certificates from TLSConfig; HTTP/2 through ALPN
		} else {
			err = srv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
	})
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
	o.Notifier.Ready(statusLine(handle, res, fl))
	log.Info("serving", "listen", ln.Addr().String(), "version", handle.Version())

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("serve: %w", err)
	}
	stopping.Store(true)
	o.Notifier.Stopping()
	log.Info("shutting down", "timeout", s.Shutdown.Timeout)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.Shutdown.Timeout)
	defer cancel()
	if serr := srv.Shutdown(shutdownCtx); serr != nil {
		log.Warn("requests still running at the shutdown timeout were cut", "error", serr)
		srv.Close()
	}
	stopLoop()
	wg.Wait()
	log.Info("stopped")
	return err
}

// sourceState feeds the status API's "source" for the etcd source; nil
// for a directory.
func sourceState(fl *fleetSource) func() any {
	if fl == nil {
		return nil
	}
	return func() any { return fl.state() }
}

// statusLine is the STATUS= systemd shows: the version served and, after
// a rejected reload, why the running config was kept.
func statusLine(h *registry.Handle, r reload.Result, fl *fleetSource) string {
	line := fmt.Sprintf("serving version %d", h.Version())
	if fl != nil {
		st := fl.state()
		line += " of pack " + pack.Short(st.Pack)
		if st.Stale {
			line += "; stale: etcd unreachable"
		}
	}
	if r.Outcome == reload.OutcomeRejected && r.Err != nil {
		msg := r.Err.Error()
		if i := len(msg); i > 200 {
			msg = msg[:200] + "…"
		}
		line += "; last reload rejected: " + msg
	}
	return line
}

// Diagnostics renders a rejected reload's error for the API: the
// positioned diagnostics of a config error, one diagnostic per certificate
// file that did not load, or the message.
func Diagnostics(err error) any {
	var out []config.Diagnostic
	other := false // an error that has no diagnostics of its own
	var walk func(error)
	walk = func(err error) {
		var ce *config.Error
		var cert *CertError
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		switch {
		case errors.As(err, &ce):
			out = append(out, ce.Diagnostics...)
		case errors.As(err, &cert):
			out = append(out, cert.Diagnostic())
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
