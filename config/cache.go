package config

import (
	"bytes"
	"crypto/sha256"
	"io/fs"
	"maps"
	"slices"
	"sync"
	"time"
	"weak"

	"github.com/awakend/awakend/registry"
)

// Cache keeps what Load made of each config file, keyed by path, so that a
// reload of a large directory reads and decodes only the files that
// changed: a file whose size, modification time and mode are those of its
// last read is not read again (unless it was modified too shortly before
// that read to tell), a file read again with the same bytes is not decoded
// again, and neither is reused when a variable or a file its references
// read is not what it was. The ids of the directory are linked, and a Build
// validates the registry, at the cost of what changed since the last load
// (the last Build) with the cache, and with the result of a load (a Build)
// without one. A nil *Cache caches nothing. A Cache may be shared by
// concurrent loads; it holds no parsed YAML, only the decoded resources,
// and no registry alive.
type Cache struct {
	mu    sync.Mutex
	key   cacheKey
	files map[string]*cached
	built *built // of the last Build of a config loaded with the cache
	links *links // of the last load that linked without a problem
}

// links is the id index of a load that linked without a problem, and the
// files, units and resource offsets it was made from.
type links struct {
	files []string
	units []*unit
	first []int32
	n     int32 // resources
	index [len(kinds)]map[string]int32
}

// built is what a Build made (held weakly: the cache keeps no registry
// alive) and the unit of each file it was made from.
type built struct {
	set   weak.Pointer[registry.Set]
	units map[string]*unit
}

// cacheKey is what of Options changes what a file decodes to, besides the
// variables and referenced files each unit records.
type cacheKey struct {
	maxFileSize    int64
	credentialsDir string
	readFile       bool
}

// cached is one file's entry: the stat of the file when its bytes were
// read, the time of that read, and what they decoded to.
type cached struct {
	size    int64
	modTime time.Time
	mode    fs.FileMode
	readAt  time.Time
	unit    *unit
}

// racyWindow is how long before a read a file's modification time must be
// for its stat to stand for its contents: a write within the same tick of
// a coarse clock (or of a filesystem's timestamps) leaves size and time as
// they were.
const racyWindow = 2 * time.Second

// NewCache returns an empty cache.
func NewCache() *Cache { return &Cache{files: map[string]*cached{}} }

// Len returns the number of files cached.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.files)
}

// get returns the entry of a file, after dropping every entry if the
// options changed.
func (c *Cache) get(name string, key cacheKey) *cached {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.key != key {
		c.key, c.files, c.built, c.links = key, map[string]*cached{}, nil, nil
	}
	return c.files[name]
}

func (c *Cache) put(name string, e *cached) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.files[name] = e
}

// keep drops the entries of files that are no longer in the directory.
func (c *Cache) keep(names []string) {
	if c == nil {
		return
	}
	live := make(map[string]bool, len(names))
	for _, n := range names {
		live[n] = true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for n := range c.files {
		if !live[n] {
			delete(c.files, n)
		}
	}
}

// unchanged reports whether info says the file is as it was when e was
// read. Files without modification times (in-memory ones) never are.
func (e *cached) unchanged(info fs.FileInfo) bool {
	return e != nil && !e.modTime.IsZero() && info.ModTime().Equal(e.modTime) && info.Size() == e.size &&
		info.Mode() == e.mode && e.modTime.Before(e.readAt.Add(-racyWindow))
}

// unit is what one config file decoded to, on its own: its specs, their
// field positions and its diagnostics, with indexes local to the file
// (Load merges the units of a directory), and the inputs besides the file
// that went into it.
type unit struct {
	sum [sha256.Size]byte // of the file's bytes

	env  map[string]envValue // variables its references looked up
	refs map[refKey]refFile  // files its references read

	providers []provider
	models    []model
	pools     []pool
	agents    []agent
	clients   []client
	resources []resource // spec, start and end local to the unit; file unset
	fields    []fieldPos // parent local to the unit
	diags     []Diagnostic
	items     int
	failed    bool
	gaps      gaps
}

// current reports whether the variables and referenced files that went
// into u are still what they were, as exp sees them now.
func (u *unit) current(exp *expander) bool {
	for name, v := range u.env {
		if got, ok := exp.getenv(name); got != v.value || ok != v.set {
			return false
		}
	}
	for key, f := range u.refs {
		now := exp.reread(key)
		if !bytes.Equal(now.data, f.data) || (now.err == nil) != (f.err == nil) ||
			now.err != nil && errText(now.err) != errText(f.err) {
			return false
		}
	}
	return true
}

// decodeUnit decodes one file on its own.
func (l *loader) decodeUnit(name string, data []byte) *unit {
	fl := &loader{fsys: l.fsys, opts: l.opts, cfg: &Config{}}
	fl.exp = expander{fsys: l.fsys, opts: &fl.opts}
	fl.decodeFile(0, name, data)
	return &unit{
		sum:       sha256.Sum256(data),
		env:       fl.exp.env,
		refs:      fl.exp.files,
		providers: fl.providers.flatten(),
		models:    fl.models.flatten(),
		pools:     fl.pools.flatten(),
		agents:    fl.agents.flatten(),
		clients:   fl.clients.flatten(),
		resources: fl.cfg.resources.flatten(),
		fields:    fl.cfg.fields.flatten(),
		diags:     fl.diags,
		items:     fl.items,
		failed:    fl.failed,
		gaps:      fl.gaps,
	}
}

// merge adds the unit of file ix to the directory being loaded.
func (l *loader) merge(ix int32, u *unit) {
	cfg := l.cfg
	first := cfg.resources.appendAll(u.resources)
	cfg.first[ix] = first
	for i := first; i < cfg.resources.len(); i++ {
		r := cfg.resources.at(i)
		r.file = ix                    // its spec and fields stay the unit's
		r.taint = slices.Clip(r.taint) // Load appends to it; the unit's stays as it is
	}
	l.diags = append(l.diags, u.diags...)
	l.items += u.items
	l.failed = l.failed || u.failed
	l.gaps.add(&u.gaps)
	for k, f := range u.refs {
		if l.exp.files == nil {
			l.exp.files = make(map[refKey]refFile)
		}
		l.exp.files[k] = f
	}
}

// setBuilt records that set was built from cfg's units.
func (c *Cache) setBuilt(set *registry.Set, cfg *Config) {
	b := &built{set: weak.Make(set), units: make(map[string]*unit, len(cfg.Files))}
	for i, name := range cfg.Files {
		b.units[name] = cfg.units[i]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.built = b
}

// builtFrom returns the units set was built from, if it was the last set
// built from a config loaded with the cache.
func (c *Cache) builtFrom(set *registry.Set) (map[string]*unit, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.built == nil || c.built.set.Value() != set {
		return nil, false
	}
	return c.built.units, true
}

// relink gives the config the id index of the last load that linked
// without a problem, updated for the units that changed since, when the
// files and the number of resources in each are what they were (an edit
// that keeps its resources, renamed or not): what link would build, at
// the cost of the changed files. It reports false, having changed
// nothing, when link must run instead: no such load, other files or
// counts, or any id of a changed file that link would report.
func (l *loader) relink() bool {
	c := l.cfg
	prev := l.opts.Cache.lastLinks()
	if prev == nil || prev.n != c.resources.len() || !slices.Equal(prev.files, c.Files) || !slices.Equal(prev.first, c.first) {
		return false
	}
	var index [len(kinds)]map[string]int32
	for k := range index {
		index[k] = maps.Clone(prev.index[k])
	}
	var changed []int
	for i, u := range c.units {
		if u == nil || prev.units[i] == nil {
			return false
		}
		if u == prev.units[i] {
			continue
		}
		changed = append(changed, i)
		for j, r := range prev.units[i].resources {
			if at, ok := index[r.kind][r.key.ID]; ok && at == c.first[i]+int32(j) {
				delete(index[r.kind], r.key.ID)
			}
		}
	}
	for _, i := range changed {
		for j := range c.units[i].resources {
			at := c.first[i] + int32(j)
			r := c.resources.at(at)
			if r.skip || clashes(&index, r) {
				return false
			}
			index[r.kind][r.key.ID] = at
		}
	}
	c.index = index
	l.opts.Cache.setLinks(c)
	return true
}

// clashes reports whether the id of r is taken in index, by its kind or by
// one link does not allow beside it.
func clashes(index *[len(kinds)]map[string]int32, r *resource) bool {
	taken := func(k kind) bool { _, ok := index[k][r.key.ID]; return ok }
	switch r.kind {
	case kindModel, kindPool:
		return taken(kindModel) || taken(kindPool) || taken(kindAgent)
	case kindAgent:
		return taken(kindAgent) || taken(kindModel) || taken(kindPool)
	}
	return taken(r.kind)
}

func (c *Cache) lastLinks() *links {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.links
}

// setLinks records the id index of cfg, which linked without a problem
// (it shares cfg's maps: a Config is not modified).
func (c *Cache) setLinks(cfg *Config) {
	if c == nil {
		return
	}
	ln := &links{files: cfg.Files, units: cfg.units, first: cfg.first, n: cfg.resources.len(), index: cfg.index}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.links = ln
}
