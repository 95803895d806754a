package reload

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/awakend/awakend/config"
	"github.com/awakend/awakend/edge"
	"github.com/awakend/awakend/lastgood"
	"github.com/awakend/awakend/pack"
	"github.com/awakend/awakend/registry"
	"github.com/awakend/awakend/settings"
)

// Factory builds the executor of a provider.
type Factory = config.Factory

// Applier loads the config directory and publishes it: one full rebuild and
// validation, then one swap on the handle, or nothing at all. With TLS, the
// certificate pair is one more input: read at every apply, published with
// the registry or, if anything fails, not at all. It is the Func of
// the daemon and the start-up load.
type Applier struct {
	src     Source // a Dir, or a fleet's etcd
	opts    config.Options
	factory Factory

	// TLS, if set, is the certificate the daemon serves: one more input.
	TLS *edge.Certificate

	// OnRebuild, if set, is called when a reload is about to rebuild the
	// registry (the config's inputs changed, or it was forced) — not for a
	// reload that finds nothing new or only a new certificate, nor for the
	// first load.
	OnRebuild func(Request)
	// Keep, if set, is given the config files of each configuration that
	// goes live from the directory, as they were read: the first, and each
	// one whose files differ from the last, once it serves.
	Keep func(lastgood.Saved)
	// Logger receives what goes wrong beside a reload's result: files that
	// could not be kept. nil discards.
	Logger *slog.Logger

	settings *settingsInput // nil: the settings are not read again

	mu          sync.Mutex // one apply at a time (the loop serializes too)
	handle      *registry.Handle
	fingerprint string // of the inputs the current snapshot and certificate came from
	configFP    string // of the config files alone
	certFP      string // of the certificate pair alone
	rejected    string // of the inputs last rejected, "" if none since
}

// NewApplier returns an applier that loads src with opts, building
// providers' executors with factory.
func NewApplier(src Source, opts config.Options, factory Factory) *Applier {
	return &Applier{src: src, opts: opts, factory: factory}
}

// settingsInput is the daemon settings as an input of every apply.
type settingsInput struct {
	file  string // the settings file read at start-up; "" for none
	read  func() (settings.Settings, string, error)
	apply func(settings.Settings)
	live  settings.Settings // what the daemon runs with now
}

// ReadSettings makes every apply read the daemon settings again with read
// (settings.Load's results), as one more input under the same rule: an
// invalid settings file rejects the reload, and nothing changes. started
// are the settings the daemon started with, from file ("" for none); a
// reload that finds that file gone is rejected rather than falling back to
// the defaults. After each apply that changes them, apply is given the
// settings the daemon runs with (settings.Live): next's for every setting
// that can change at run time, started's for the others, which Result.Restart
// lists while they differ. The first apply calls nothing: its settings are
// Settings' to start with.
func (a *Applier) ReadSettings(started settings.Settings, file string, read func() (settings.Settings, string, error), apply func(settings.Settings)) {
	a.settings = &settingsInput{file: file, read: read, apply: apply, live: started}
}

// Settings returns the settings the daemon runs with: as ReadSettings
// started them, then as the last apply that went live left them.
func (a *Applier) Settings() settings.Settings {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.settings == nil {
		return settings.Settings{}
	}
	return a.settings.live
}

// readSettings reads the settings for one apply: those the daemon would
// run with, the pending restarts, and the fingerprint of what was read.
func (si *settingsInput) readSettings() (live settings.Settings, restart []string, fp string, err error) {
	next, file, err := si.read()
	switch {
	case err == nil && si.file != "" && file == "":
		err = fmt.Errorf("settings file %s: no longer there (put it back; without it, a restart would run on the defaults)", si.file)
	case err == nil:
		var pending []settings.Pending
		live, pending = settings.Live(si.live, next)
		for _, p := range pending {
			restart = append(restart, p.String())
		}
		if file != "" {
			fp = next.Fingerprint()
		}
		return live, restart, fp, nil
	}
	sum := sha256.Sum256([]byte(err.Error())) // the same broken file is a repeated rejection
	return settings.Settings{}, nil, hex.EncodeToString(sum[:]), err
}

// Source returns where the applier reads the config.
func (a *Applier) Source() Source { return a.src }

// Handle returns the handle the applier publishes to; nil before the first
// successful apply.
func (a *Applier) Handle() *registry.Handle {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.handle
}

// Apply loads the directory and the certificate pair and, unless their
// fingerprint is unchanged and the request is not forced, rebuilds the
// registry on top of the current set and publishes it with the pair. A
// rebuild that changes nothing publishes no new version; a changed
// certificate alone is applied without one (the registry did not change)
// and listed in the changes. Executors of providers that are gone or
// changed are closed after the swap; requests in flight on them finish.
func (a *Applier) Apply(ctx context.Context, req Request) Result {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := ctx.Err(); err != nil {
		res := a.result(req)
		res.Outcome, res.Err = OutcomeRejected, err
		return res
	}
	in, err := a.src.Open(ctx)
	if err != nil {
		res := a.result(req)
		res.Outcome, res.Err = OutcomeRejected, err
		return res
	}
	res := a.apply(ctx, req, in.FS, in.Rec)
	res.Pack = in.id()
	if res.Outcome != OutcomeRejected {
		a.src.Served(in)
	}
	return res
}

// ApplySaved publishes a saved configuration as the first one, for a
// start-up whose directory was rejected (rejected is that result): the
// files come from saved, anything they reference from the directory, which
// must be the Source. The directory's inputs count as rejected, so that
// reloads of them unchanged stay quiet. Nothing is kept.
func (a *Applier) ApplySaved(ctx context.Context, req Request, saved *lastgood.Saved, rejected Result) Result {
	a.mu.Lock()
	defer a.mu.Unlock()
	dir, ok := a.src.(Dir)
	if a.handle != nil || !ok {
		panic("reload: ApplySaved after a configuration went live, or not from a directory")
	}
	res := a.apply(ctx, req, saved.FS(os.DirFS(string(dir))), nil)
	if res.Outcome == OutcomeApplied {
		a.rejected = rejected.Fingerprint
	}
	return res
}

func (a *Applier) result(req Request) Result {
	res := Result{Trigger: req.Trigger}
	if a.handle != nil {
		res.Version = a.handle.Version()
	}
	return res
}

// apply is Apply on fsys; what goes live is given to Keep when rec, the
// recorder fsys reads through, is set.
func (a *Applier) apply(ctx context.Context, req Request, fsys fs.FS, rec *pack.Recorder) Result {
	res := a.result(req)
	if err := ctx.Err(); err != nil {
		res.Outcome, res.Err = OutcomeRejected, err
		return res
	}
	opts := a.opts
	opts.Reread = req.Force // a reload by hand trusts no file's stat
	var live settings.Settings
	var settingsFP string
	var setErr error
	if a.settings != nil {
		live, res.Restart, settingsFP, setErr = a.settings.readSettings()
		if setErr == nil {
			opts.AllowEmpty = live.AllowEmpty
		}
	}
	cfg, cfgErr := config.Load(fsys, opts)
	var configFP string
	var ce *config.Error
	switch {
	case cfgErr == nil:
		configFP = cfg.Fingerprint
	case errors.As(cfgErr, &ce):
		configFP = ce.Fingerprint
	}
	var cert *edge.Pair
	var certErr error
	if a.TLS != nil {
		ts := a.TLS.Settings()
		if a.settings != nil && setErr == nil {
			ts = TLSSettings(live)
		}
		p, err := edge.LoadPair(ts)
		cert, certErr = &p, err
	}
	res.Fingerprint = inputsFingerprint(configFP, cert, settingsFP)
	if err := errors.Join(setErr, cfgErr, certErr); err != nil {
		if configFP == "" {
			res.Fingerprint = "" // an unreadable directory: nothing to compare
		}
		res.Restart = nil
		return a.reject(res, req, err)
	}
	if a.handle != nil && !req.Force && res.Fingerprint == a.fingerprint {
		a.rejected = ""
		res.Outcome = OutcomeUnchanged
		return res
	}
	if a.handle == nil {
		set, err := cfg.Build(nil, a.factory)
		if err != nil {
			return a.reject(res, req, err)
		}
		a.rejected = ""
		a.handle = registry.NewHandle(set)
		a.publishSettings(live, true)
		a.publishCert(cert)
		a.fingerprint, a.configFP = res.Fingerprint, configFP
		a.keep(cfg, rec)
		res.Outcome, res.Version = OutcomeApplied, 1
		res.Changes = registry.Diff(nil, set).String()
		return res
	}
	// The registry is rebuilt when its own inputs changed or the reload is
	// forced; a new certificate alone leaves it as it is.
	base := a.handle.Current().Set
	set := base
	if req.Force || configFP != a.configFP {
		if a.OnRebuild != nil {
			a.OnRebuild(req)
		}
		var err error
		if set, err = cfg.Build(base, a.factory); err != nil {
			return a.reject(res, req, err)
		}
	}
	a.rejected = ""
	kept := configFP != a.configFP
	a.fingerprint, a.configFP = res.Fingerprint, configFP
	var changes []string
	if diff := registry.Diff(base, set); !diff.Empty() {
		res.Version = a.handle.Replace(set)
		changes = append(changes, diff.String())
		closeReplaced(base, set)
	}
	if kept { // after the swap: the new files serve before they are written down
		a.keep(cfg, rec)
	}
	if changed := a.publishSettings(live, false); len(changed) > 0 {
		changes = append(changes, "~settings ("+strings.Join(changed, ", ")+")")
	}
	if cert != nil && cert.Fingerprint != a.certFP {
		a.publishCert(cert)
		changes = append(changes, "~"+cert.Summary())
	}
	if len(changes) == 0 {
		res.Outcome = OutcomeUnchanged
		return res
	}
	res.Outcome, res.Changes = OutcomeApplied, strings.Join(changes, ", ")
	return res
}

// keep hands the files cfg was loaded from, as rec recorded them, to Keep;
// a nil rec keeps nothing.
func (a *Applier) keep(cfg *config.Config, rec *pack.Recorder) {
	if a.Keep == nil || rec == nil {
		return
	}
	p, err := rec.Pack(cfg.Files)
	if err != nil {
		// A file changed between the load and now: the next reload,
		// which the change triggers, keeps what it reads.
		a.log().Warn("last-known-good configuration not saved", "error", err)
		return
	}
	a.Keep(lastgood.Saved{Origin: lastgood.OriginDirectory, Fingerprint: cfg.Fingerprint, SavedAt: time.Now(), Files: p.Files})
}

func (a *Applier) log() *slog.Logger {
	if a.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Logger
}

// publishSettings makes live the settings the daemon runs with and, unless
// first, hands them to the daemon if they changed; it returns the keys that
// did. Without ReadSettings it does nothing.
func (a *Applier) publishSettings(live settings.Settings, first bool) []string {
	si := a.settings
	if si == nil {
		return nil
	}
	changed := settings.Changed(si.live, live)
	si.live = live
	if a.TLS != nil {
		a.TLS.Set(TLSSettings(live))
	}
	if first || len(changed) == 0 {
		return nil
	}
	if si.apply != nil {
		si.apply(live)
	}
	return changed
}

// TLSSettings are the TLS inputs s names, as Applier.TLS reads them.
func TLSSettings(s settings.Settings) edge.TLSSettings {
	return edge.TLSSettings{Cert: s.TLS.CertFile, Key: s.TLS.KeyFile, ClientCA: s.TLS.ClientCAFile, ClientSANs: s.TLS.ClientAllowedSANs}
}

// publishCert serves a newly loaded pair; nil (no TLS) does nothing.
func (a *Applier) publishCert(p *edge.Pair) {
	if p != nil {
		a.TLS.Serve(*p)
		a.certFP = p.Fingerprint
	}
}

// reject records a rejected  Inputs identical to those rejected last
// time, reloaded without force (the watcher, the rescan), are marked
// Repeated, so that a broken directory left alone is not logged as a fresh
// rejection every rescan; it stays rejected everywhere else.
func (a *Applier) reject(res Result, req Request, err error) Result {
	res.Outcome, res.Err = OutcomeRejected, err
	res.Repeated = res.Fingerprint != "" && !req.Force && res.Fingerprint == a.rejected
	a.rejected = res.Fingerprint
	return res
}

// closeReplaced closes the executors of base that next no longer holds.
func closeReplaced(base, next *registry.Set) {
	for _, id := range base.ProviderIDs() {
		old, _ := base.Provider(id)
		if cur, ok := next.Provider(id); ok && cur.Executor == old.Executor {
			continue
		}
		if c, ok := old.Executor.(io.Closer); ok {
			c.Close()
		}
	}
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// inputsFingerprint is the fingerprint of a reload's inputs: the config's
// alone without TLS and a settings file, so that it matches `awakend
// check`, and otherwise the config's, the pair's and the settings' together.
func inputsFingerprint(configFP string, p *edge.Pair, settingsFP string) string {
	if p == nil && settingsFP == "" {
		return configFP
	}
	certFP := ""
	if p != nil {
		certFP = p.Fingerprint
	}
	h := sha256.New()
	for _, part := range []string{configFP, certFP, settingsFP} {
		h.Write(binary.AppendUvarint(nil, uint64(len(part))))
		io.WriteString(h, part)
	}
	return hex.EncodeToString(h.Sum(nil))
}
