package config

import (
	"errors"
	"io"
	"strings"

	"github.com/awakend/awakend/registry"
)

// Factory creates the executor of a provider. Its errors are shown to the
// operator and must not contain the provider's secrets (the loader also
// masks the api_key and header values it knows of).
type Factory func(registry.ProviderSpec) (registry.Executor, error)

// Build turns a loaded config into a validated registry set, replacing the
// providers, models, pools and agents of base and keeping its tools and
// plugins (registry.Rebuild). Providers get an executor from factory; a
// provider whose spec is Equal to one in base keeps base's executor, so
// that connection pools stay warm across reloads. base may be nil; a nil
// factory leaves executors nil (for checking a directory). Registry
// diagnostics come back positioned at the field they are about, as *Error.
// When Build fails, the executors it created (not those kept from base)
// are closed if they implement io.Closer.
//
// With a Cache, a Build on top of the set the last Build from the cache
// made is a patch of it (registry.Set.Patch): only the resources of files
// that decoded to something new are put, and those of files that did not
// removed, with the same result as a whole rebuild.
func (c *Config) Build(base *registry.Set, factory Factory) (*registry.Set, error) {
	var set *registry.Set
	var err error
	var created []registry.Executor
	var diags []Diagnostic
	if p, ok := c.patch(base, factory); ok {
		created, diags = c.executors(&p.Put, p.from, base, factory)
		set, err = base.Patch(p.Patch)
	} else {
		us, from := c.updates()
		created, diags = c.executors(&us[0], from, base, factory)
		set, err = registry.Rebuild(base, us...)
	}
	var ve *registry.ValidationError
	if errors.As(err, &ve) {
		for _, rd := range ve.Diagnostics {
			diags = append(diags, c.Locate(rd))
		}
		err = nil
	}
	if err == nil && len(diags) == 0 {
		if c.cache != nil {
			c.cache.setBuilt(set, c)
		}
		return set, nil
	}
	for _, ex := range created {
		if cl, ok := ex.(io.Closer); ok {
			cl.Close()
		}
	}
	if err != nil {
		return nil, err // not reached: Load leaves no duplicate ids
	}
	return nil, newError(diags, c.Fingerprint)
}

// patch is the change from base to c, when base is the set last built
// from c's cache: the resources of every file whose unit is not the one
// base was built from are put, those of the units base was built from
// and c no longer has removed. from holds the resource of each put
// provider. ok is false when Build must rebuild instead: no cache, another
// base, or a factory that would give executors to providers base holds
// without one.
func (c *Config) patch(base *registry.Set, factory Factory) (_ change, ok bool) {
	if c.cache == nil || base == nil {
		return change{}, false
	}
	prev, ok := c.cache.builtFrom(base)
	if !ok {
		return change{}, false
	}
	if factory != nil {
		for _, id := range base.ProviderIDs() {
			if p, _ := base.Provider(id); p.Executor == nil {
				return change{}, false
			}
		}
	}
	var p change
	remove := func(u *unit) {
		for _, r := range u.resources {
			p.Remove = append(p.Remove, r.key)
		}
	}
	kept := 0
	for i, name := range c.Files {
		u, old := c.units[i], prev[name]
		if old != nil {
			kept++
		}
		if u == old {
			continue
		}
		if old != nil {
			remove(old)
		}
		for j := range len(u.resources) {
			r := c.resources.at(c.first[i] + int32(j))
			if r.skip {
				return change{}, false // not reached: Load skips only what it reports
			}
			c.add(&p.Put, r)
			if r.kind == kindProvider {
				p.from = append(p.from, r)
			}
		}
	}
	if kept < len(prev) { // files are gone
		names := make(map[string]bool, len(c.Files))
		for _, name := range c.Files {
			names[name] = true
		}
		for name, old := range prev {
			if !names[name] {
				remove(old)
			}
		}
	}
	return p, true
}

// change is a registry patch and the resource of each provider it puts.
type change struct {
	registry.Patch
	from []*resource
}

// executors gives each provider of u (whose resources are from) its
// executor: base's for an Equal spec, the factory's otherwise. It returns
// those it created and the diagnostics of those it could not create.
func (c *Config) executors(u *registry.Update, from []*resource, base *registry.Set, factory Factory) (created []registry.Executor, diags []Diagnostic) {
	for i := range u.Providers {
		p := &u.Providers[i]
		old, ok := baseProvider(base, p.Spec.ID)
		switch {
		case ok && old.Spec.Equal(p.Spec) && (old.Executor != nil || factory == nil):
			p.Executor = old.Executor
		case factory != nil:
			ex, err := factory(p.Spec)
			if err != nil {
				diags = append(diags, c.executorDiagnostic(from[i], p.Spec, err))
			}
			if ex != nil {
				created = append(created, ex)
			}
			p.Executor = ex
		}
	}
	return created, diags
}

// updates is what c declares, as registry updates: the providers, the
// resource of each in from, then each file's models, pools, agents and
// clients as its unit holds them (a Config is not modified), so that a set
// holds the specs the units, and a cache, hold. Resources that Load found
// no usable id for, or that repeat an id (only a failed Load has those),
// are left out: then the first update holds the rest too, copied.
func (c *Config) updates() (us []registry.Update, from []*resource) {
	us = make([]registry.Update, 1, len(c.units)+1)
	skipped := false
	for _, r := range c.resources.all() {
		switch {
		case r.skip:
			skipped = true
		case r.kind == kindProvider:
			c.add(&us[0], r)
			from = append(from, r)
		}
	}
	if skipped {
		for _, r := range c.resources.all() {
			if !r.skip && r.kind != kindProvider {
				c.add(&us[0], r)
			}
		}
		return us, from
	}
	for _, f := range c.units {
		if f != nil {
			us = append(us, registry.Update{Models: f.models, Pools: f.pools, Agents: f.agents, Clients: f.clients})
		}
	}
	return us, from
}

// add appends the spec of resource r to the list of its kind in u.
func (c *Config) add(u *registry.Update, r *resource) {
	f := c.units[r.file]
	switch r.kind {
	case kindProvider:
		u.Providers = append(u.Providers, registry.Provider{Spec: f.providers[r.spec]})
	case kindModel:
		u.Models = append(u.Models, f.models[r.spec])
	case kindPool:
		u.Pools = append(u.Pools, f.pools[r.spec])
	case kindAgent:
		u.Agents = append(u.Agents, f.agents[r.spec])
	case kindClient:
		u.Clients = append(u.Clients, f.clients[r.spec])
	}
}

// draft is what c declares as a registry draft, without executors, for
// validate to overlay resources on.
func (c *Config) draft() *registry.Draft {
	us, _ := c.updates()
	d := registry.NewDraft(nil)
	for _, u := range us {
		put(d, u)
	}
	return d
}

// put puts the resources of u into d, in place of any of the same kind
// and id.
func put(d *registry.Draft, u registry.Update) {
	for _, p := range u.Providers {
		d.Providers[p.Spec.ID] = p
	}
	for _, m := range u.Models {
		d.Models[m.ID] = m
	}
	for _, p := range u.Pools {
		d.Pools[p.ID] = p
	}
	for _, a := range u.Agents {
		d.Agents[a.ID] = a
	}
	for _, cl := range u.Clients {
		d.Clients[cl.ID] = cl
	}
}

func (c *Config) executorDiagnostic(r *resource, spec registry.ProviderSpec, err error) Diagnostic {
	msg := err.Error()
	secrets := []string{spec.APIKey}
	for _, v := range spec.AdapterOptions.Headers {
		secrets = append(secrets, v)
	}
	for _, s := range secrets {
		if len(s) >= 4 {
			msg = strings.ReplaceAll(msg, s, "***")
		}
	}
	for _, s := range r.subst {
		if len(s.value) >= 4 {
			msg = strings.ReplaceAll(msg, s.value, s.source)
		}
	}
	at := c.position(r, "adapter")
	ref := r.ref
	return Diagnostic{File: at.File, Line: at.Line, Column: at.Column, Code: CodeExecutor,
		Severity: string(registry.SeverityError), Resource: &ref,
		Message: "cannot create the executor of " + r.label() + ": " + msg}
}

// validate runs the registry's checks on a config that failed to load, for
// Load to report with its own diagnostics: on everything that decoded,
// duplicates included. It leaves out what would repeat a load diagnostic,
// and references to missing resources that may be in what did not decode
// (see gaps).
func (c *Config) validate(g *gaps) []Diagnostic {
	for _, r := range c.resources.all() {
		if r.key.ID == "" {
			g.kinds[r.kind] = true
		}
	}
	g.kinds[kindModel] = g.kinds[kindModel] || g.kinds[kindPool] // agents name either
	g.kinds[kindPool] = g.kinds[kindModel]
	var out []Diagnostic
	keep := func(r *resource, rd registry.Diagnostic) {
		if !g.mayHold(rd.DependsOn) && !r.tainted(rd.Field) {
			out = append(out, c.locate(r, rd))
		}
	}
	draft := c.draft()
	for _, rd := range buildDiagnostics(draft) {
		if r, ok := c.lookup(rd.Resource); ok {
			keep(r, rd)
		} else if !g.mayHold(rd.DependsOn) {
			out = append(out, c.Locate(rd))
		}
	}
	// Each duplicate is checked in place of the resource it repeats, in
	// rounds: the second definitions of every id, then the third, and so
	// on. Only the diagnostics about the duplicates are kept.
	var dups []*resource
	for _, r := range c.resources.all() {
		if r.dup {
			dups = append(dups, r)
		}
	}
	for len(dups) > 0 {
		round := c.draft()
		placed := map[registry.Ref]*resource{}
		var later []*resource
		for _, r := range dups {
			if _, taken := placed[r.key]; taken {
				later = append(later, r)
				continue
			}
			placed[r.key] = r
			c.overlay(round, r)
		}
		for _, rd := range buildDiagnostics(round) {
			if r, ok := placed[rd.Resource]; ok {
				keep(r, rd)
			}
		}
		dups = later
	}
	return out
}

// buildDiagnostics returns the registry's diagnostics for a draft.
func buildDiagnostics(d *registry.Draft) []registry.Diagnostic {
	_, err := d.Build()
	var ve *registry.ValidationError
	if errors.As(err, &ve) {
		return ve.Diagnostics
	}
	return nil
}

// overlay puts the spec of resource r into d, in place of any resource of
// the same kind and id.
func (c *Config) overlay(d *registry.Draft, r *resource) {
	var u registry.Update
	c.add(&u, r)
	put(d, u)
}

// baseProvider is base.Provider(id) for a base that may be nil.
func baseProvider(base *registry.Set, id string) (registry.Provider, bool) {
	if base == nil {
		return registry.Provider{}, false
	}
	return base.Provider(id)
}

// Locate positions a registry diagnostic about this config at the field it
// names (see Position), with interpolated values shown as written.
func (c *Config) Locate(rd registry.Diagnostic) Diagnostic {
	if r, ok := c.lookup(rd.Resource); ok {
		return c.locate(r, rd)
	}
	d := Diagnostic{Code: rd.Code, Severity: string(rd.Severity), Message: rd.Message}
	if d.Severity == "" {
		d.Severity = string(registry.SeverityError)
	}
	res := rd.Resource
	d.Resource = &res
	if rd.DependsOn != nil {
		dep := *rd.DependsOn
		d.DependsOn = &dep
	}
	return d
}

// locate positions a registry diagnostic about resource r.
func (c *Config) locate(r *resource, rd registry.Diagnostic) Diagnostic {
	at := c.position(r, rd.Field)
	ref := r.ref
	d := Diagnostic{File: at.File, Line: at.Line, Column: at.Column, Code: rd.Code,
		Severity: string(rd.Severity), Resource: &ref, Message: r.redact(rd.Message)}
	if d.Severity == "" {
		d.Severity = string(registry.SeverityError)
	}
	if rd.DependsOn != nil {
		d.DependsOn = &registry.Ref{Namespace: rd.DependsOn.Namespace, ID: r.source(rd.DependsOn.ID)}
	}
	return d
}

// Position returns where a field of resource ref is written. field is a
// registry.Diagnostic field path such as "members.1.model_id"; "" asks for
// the resource itself (its id). When the field is not written (a default, say), the
// nearest enclosing field that is gives the position, then the resource's
// id, then its mapping. ok is false when the config has no resource ref.
func (c *Config) Position(ref registry.Ref, field string) (Position, bool) {
	r, ok := c.lookup(ref)
	if !ok {
		return Position{}, false
	}
	return c.position(r, field), true
}

func (c *Config) position(r *resource, field string) Position {
	at := Position{File: c.Files[r.file], Line: int(r.line), Column: int(r.col)}
	if f, ok := c.find(r, field); ok {
		at.Line, at.Column = int(f.line), int(f.col)
	} else if f, ok := c.find(r, "id"); ok {
		at.Line, at.Column = int(f.line), int(f.col)
	}
	return at
}

func (c *Config) idPosition(r *resource) Position { return c.position(r, "id") }

// find returns the position of the deepest field of r on path that is
// written in the file; ok is false when not even the first is. Of fields
// written twice (a merge key and an override), the last wins.
func (c *Config) find(r *resource, path string) (fieldPos, bool) {
	var found fieldPos
	ok := false
	parent := int32(-1)
	for path != "" {
		name, rest, _ := strings.Cut(path, ".")
		path = rest
		key, known := keyOf(name)
		if !known {
			break
		}
		next := int32(-1)
		for i := r.start; i < r.end; i++ {
			if f := c.field(r, i); f.parent == parent && f.key == key {
				next = i
			}
		}
		if next < 0 {
			break
		}
		parent, found, ok = next, *c.field(r, next), true
	}
	return found, ok
}

// field returns field i of resource r: in its file's unit, or in the
// fields of the file being decoded.
func (c *Config) field(r *resource, i int32) *fieldPos {
	if c.units != nil {
		return &c.units[r.file].fields[i]
	}
	return c.fields.at(i)
}
