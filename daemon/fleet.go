package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/awakend/awakend/config"
	"github.com/awakend/awakend/fleet"
	"github.com/awakend/awakend/lastgood"
	"github.com/awakend/awakend/pack"
	"github.com/awakend/awakend/registry"
	"github.com/awakend/awakend/reload"
)

// fleetSource is a fleet's current pack in etcd. Each open reads the
// pointer; a pack not seen before is fetched whole and checked against its
// ID. When etcd cannot be read, it serves what it has — the pack it serves,
// or at start-up the local copy — and says it is stale.
type fleetSource struct {
	store    *fleet.Store
	stateDir string // the state directory, for the local copy (the last-known-good); "" keeps none
	log      *slog.Logger

	mu      sync.Mutex
	cur     *pack.Pack // the pack the pointer named at the last read
	serving *pack.Pack // the pack applied last
	saved   string     // the ID of the local copy
	rev     int64      // the store's revision at the last read
	stale   bool       // the last open could not read etcd
	reason  string     // why, when stale
}

func newFleetSource(st *fleet.Store, stateDir string, log *slog.Logger) *fleetSource {
	return &fleetSource{store: st, stateDir: stateDir, log: log}
}

// Open reads the pointer and returns the pack it names.
func (f *fleetSource) Open(ctx context.Context) (reload.Input, error) {
	ptr, rev, err := f.store.Current(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.stale, f.reason = true, err.Error()
		if f.serving != nil {
			return reload.Input{FS: f.serving.FS(), Pack: f.serving}, nil
		}
		p, lerr := f.readLocal()
		if lerr != nil {
			return reload.Input{}, fmt.Errorf("%w; and no local copy of a pack to serve meanwhile: %w", err, lerr)
		}
		f.log.Error("etcd unreachable at start-up: serving the local copy of the last pack applied; it may be stale",
			"pack", pack.Short(p.ID), "state", filepath.Join(f.stateDir, lastgood.FileName), "error", err)
		return reload.Input{FS: p.FS(), Pack: p}, nil
	}
	f.stale, f.reason, f.rev = false, "", rev
	if ptr.ID == "" {
		return reload.Input{}, fmt.Errorf("etcd: nothing is published under %s (run awakend publish DIR)", f.store.Prefix())
	}
	if f.cur == nil || f.cur.ID != ptr.ID {
		p, err := f.store.Fetch(ctx, ptr.ID)
		if err != nil {
			return reload.Input{}, err
		}
		f.cur = p
	}
	return reload.Input{FS: f.cur.FS(), Pack: f.cur}, nil
}

// Served records the applied pack and keeps a local copy of it, as the
// state directory's last-known-good configuration.
func (f *fleetSource) Served(in reload.Input) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.serving = in.Pack
	if f.stateDir == "" || in.Pack == nil || in.Pack.ID == f.saved {
		return
	}
	saved := lastgood.Saved{Origin: lastgood.OriginEtcd, Fingerprint: in.Pack.ID, SavedAt: time.Now(), Pack: in.Pack}
	if err := lastgood.Save(f.stateDir, saved); err != nil {
		f.log.Warn("could not keep a local copy of the pack", "error", err)
		return
	}
	f.saved = in.Pack.ID
}

// readLocal reads the local copy; one that is corrupt, or that a config
// directory left, is an error, as if there were none.
func (f *fleetSource) readLocal() (*pack.Pack, error) {
	if f.stateDir == "" {
		return nil, errors.New("no state directory (state_dir) to keep one in")
	}
	saved, err := lastgood.Read(f.stateDir)
	if err != nil {
		return nil, err
	}
	if saved.Origin != lastgood.OriginEtcd {
		return nil, fmt.Errorf("the last-known-good configuration in %s came from a config directory, not from etcd", f.stateDir)
	}
	p, err := pack.New(saved.Files)
	if err != nil {
		return nil, err
	}
	f.saved = p.ID
	return p, nil
}

// revision is the store's revision at the last read of the pointer, 0 if
// none succeeded: where following it starts.
func (f *fleetSource) revision() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rev
}

// fleetState is the fleet source's state, for the status API.
type fleetState struct {
	Prefix  string `json:"prefix"`
	Pack    string `json:"pack,omitempty"` // the pack served
	Stale   bool   `json:"stale"`
	Reason  string `json:"reason,omitempty"`
	Current string `json:"current,omitempty"` // the pack the pointer named at the last read
}

func (f *fleetSource) state() fleetState {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := fleetState{Prefix: f.store.Prefix(), Stale: f.stale, Reason: f.reason}
	if f.serving != nil {
		st.Pack = f.serving.ID
	}
	if f.cur != nil {
		st.Current = f.cur.ID
	}
	return st
}

// ack is the acknowledgement of host after res.
func (f *fleetSource) ack(host string, started time.Time, h *registry.Handle, applied reload.Result, res reload.Result) fleet.Ack {
	st := f.state()
	a := fleet.Ack{
		Host: host, Pack: st.Pack, Fingerprint: applied.Fingerprint, Stale: st.Stale,
		Started: started, At: time.Now().UTC(),
		Last: fleet.Attempt{Pack: res.Pack, Result: string(res.Outcome), Trigger: string(res.Trigger), At: res.Started.Add(res.Duration).UTC()},
	}
	if h != nil {
		a.Version = h.Version()
	}
	if res.Err != nil {
		a.Last.Diagnostics = diagnosticLines(res.Err)
	}
	return a
}

// diagnosticLines renders a rejection as text lines, as `awakend check`
// prints them; at most 50.
func diagnosticLines(err error) []string {
	var lines []string
	switch ds := Diagnostics(err).(type) {
	case []config.Diagnostic:
		for _, d := range ds {
			lines = append(lines, d.String())
		}
	default:
		lines = []string{err.Error()}
	}
	if len(lines) > 50 {
		lines = append(lines[:50], fmt.Sprintf("… and %d more", len(lines)-50))
	}
	return lines
}
