package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"

	"github.com/awakend/awakend/config"
	"github.com/awakend/awakend/registry"
	"github.com/awakend/awakend/reload"
)

// Factory builds the executor of a provider.
type Factory = config.Factory

// Applier loads the config directory and publishes it: one full rebuild and
// validation, then one swap on the handle, or nothing at all. It is the
// reload.Func of the daemon and the start-up load.
type Applier struct {
	dir     string
	fsys    fs.FS
	opts    config.Options
	factory Factory

	// OnRebuild, if set, is called when a reload is about to rebuild the
	// registry (its inputs changed, or it was forced) — not for a reload
	// that finds nothing new, nor for the first load.
	OnRebuild func(reload.Request)

	mu          sync.Mutex // one apply at a time (the loop serializes too)
	handle      *registry.Handle
	fingerprint string // of the inputs the current snapshot came from
	rejected    string // of the inputs last rejected, "" if none since
}

// NewApplier returns an applier for the config directory dir.
func NewApplier(dir string, opts config.Options, factory Factory) *Applier {
	return &Applier{dir: dir, fsys: os.DirFS(dir), opts: opts, factory: factory}
}

// Handle returns the handle the applier publishes to; nil before the first
// successful apply.
func (a *Applier) Handle() *registry.Handle {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.handle
}

// Apply loads the directory and, unless its fingerprint is unchanged and the
// request is not forced, rebuilds the registry on top of the current set and
// publishes it. A rebuild that changes nothing publishes nothing. Executors
// of providers that are gone or changed are closed after the swap; requests
// in flight on them finish.
func (a *Applier) Apply(ctx context.Context, req reload.Request) reload.Result {
	a.mu.Lock()
	defer a.mu.Unlock()
	res := reload.Result{Trigger: req.Trigger}
	if a.handle != nil {
		res.Version = a.handle.Version()
	}
	if err := ctx.Err(); err != nil {
		res.Outcome, res.Err = reload.OutcomeRejected, err
		return res
	}
	if fi, err := os.Stat(a.dir); err != nil || !fi.IsDir() {
		if err == nil {
			err = errors.New("not a directory")
		}
		res.Outcome, res.Err = reload.OutcomeRejected, fmt.Errorf("config directory %s: %w", a.dir, unwrapPath(err))
		return res
	}
	cfg, err := config.Load(a.fsys, a.opts)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			res.Fingerprint = ce.Fingerprint
		}
		return a.reject(res, req, err)
	}
	res.Fingerprint = cfg.Fingerprint
	if a.handle != nil && !req.Force && cfg.Fingerprint == a.fingerprint {
		a.rejected = ""
		res.Outcome = reload.OutcomeUnchanged
		return res
	}
	var base *registry.Set
	if a.handle != nil {
		base = a.handle.Current().Set
		if a.OnRebuild != nil {
			a.OnRebuild(req)
		}
	}
	set, err := cfg.Build(base, a.factory)
	if err != nil {
		return a.reject(res, req, err)
	}
	a.rejected = ""
	if a.handle == nil {
		a.handle = registry.NewHandle(set)
		a.fingerprint = cfg.Fingerprint
		res.Outcome, res.Version = reload.OutcomeApplied, 1
		res.Changes = registry.Diff(nil, set).String()
		return res
	}
	changes := registry.Diff(base, set)
	a.fingerprint = cfg.Fingerprint
	if changes.Empty() {
		res.Outcome = reload.OutcomeUnchanged
		return res
	}
	res.Version = a.handle.Replace(set)
	res.Outcome, res.Changes = reload.OutcomeApplied, changes.String()
	closeReplaced(base, set)
	return res
}

// reject records a rejected reload. Inputs identical to those rejected last
// time, reloaded without force (the watcher, the rescan), are marked
// Repeated, so that a broken directory left alone is not logged as a fresh
// rejection every rescan; it stays rejected everywhere else.
func (a *Applier) reject(res reload.Result, req reload.Request, err error) reload.Result {
	res.Outcome, res.Err = reload.OutcomeRejected, err
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
