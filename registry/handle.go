package registry

import (
	"sync"
	"sync/atomic"
)

// Snapshot is one published version of the registry.
type Snapshot struct {
	Version uint64
	Set     *Set
}

// Handle publishes snapshots: version 1 at creation, one more per successful
// publish, none on failure or when an update changes nothing. Readers never
// take a lock; writers are serialized, so each update sees its predecessor.
type Handle struct {
	current atomic.Pointer[Snapshot]
	mu      sync.Mutex // serializes writers
}

// NewHandle returns a handle serving set as version 1. A nil set is served
// as an empty one.
func NewHandle(set *Set) *Handle {
	if set == nil {
		set = Empty()
	}
	h := &Handle{}
	h.current.Store(&Snapshot{Version: 1, Set: set})
	return h
}

// Current returns the snapshot being served. It never blocks and does not
// allocate.
func (h *Handle) Current() *Snapshot { return h.current.Load() }

// Version returns the version being served.
func (h *Handle) Version() uint64 { return h.current.Load().Version }

// Update builds a new set from the current one with fn and publishes it.
// If fn fails, nothing is published and the error is returned. If fn
// returns the current set itself, nothing changes and the current version
// is returned. Updates run one at a time; readers are never blocked.
func (h *Handle) Update(fn func(cur *Set) (*Set, error)) (uint64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.current.Load()
	next, err := fn(cur.Set)
	if err != nil {
		return cur.Version, err
	}
	if next == cur.Set || next == nil {
		return cur.Version, nil
	}
	v := cur.Version + 1
	h.current.Store(&Snapshot{Version: v, Set: next})
	return v, nil
}

// Replace publishes set as the next version and returns that version.
func (h *Handle) Replace(set *Set) uint64 {
	v, _ := h.Update(func(*Set) (*Set, error) { return set, nil })
	return v
}
