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
func (c *Config) Build(base *registry.Set, factory Factory) (*registry.Set, error) {
	draft, created, diags := c.draft(base, factory)
	set, err := draft.Build()
	var ve *registry.ValidationError
	if errors.As(err, &ve) {
		for _, rd := range ve.Diagnostics {
			diags = append(diags, c.Locate(rd))
		}
		err = nil
	}
	if err == nil && len(diags) == 0 {
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

// draft is registry.Rebuild without its intermediate copies: base's tools
// and plugins, the config's providers, models, pools and agents. Resources
// that Load found no usable id for (only a failed Load has those) are left
// out.
func (c *Config) draft(base *registry.Set, factory Factory) (_ *registry.Draft, created []registry.Executor, _ []Diagnostic) {
	d := registry.NewDraft(nil)
	if base != nil {
		for _, id := range base.ToolIDs() {
			d.Tools[id], _ = base.Tool(id)
		}
		for _, id := range base.PluginIDs() {
			d.Plugins[id], _ = base.Plugin(id)
		}
	}
	d.Providers = make(map[string]registry.Provider, len(c.Providers))
	d.Models = make(map[string]registry.ModelSpec, len(c.Models))
	d.Pools = make(map[string]registry.PoolSpec, len(c.Pools))
	d.Agents = make(map[string]registry.AgentSpec, len(c.Agents))
	d.Clients = make(map[string]registry.ClientSpec, len(c.Clients))
	var diags []Diagnostic
	for _, r := range c.resources.all() {
		if r.skip {
			continue
		}
		switch r.kind {
		case kindProvider:
			p := registry.Provider{Spec: c.Providers[r.spec]}
			old, ok := baseProvider(base, p.Spec.ID)
			switch {
			case ok && old.Spec.Equal(p.Spec) && (old.Executor != nil || factory == nil):
				p.Executor = old.Executor
			case factory != nil:
				ex, err := factory(p.Spec)
				if err != nil {
					diags = append(diags, c.executorDiagnostic(r, p.Spec, err))
				}
				if ex != nil {
					created = append(created, ex)
				}
				p.Executor = ex
			}
			d.Providers[p.Spec.ID] = p
		case kindModel:
			d.Models[r.key.ID] = c.Models[r.spec]
		case kindPool:
			d.Pools[r.key.ID] = c.Pools[r.spec]
		case kindAgent:
			d.Agents[r.key.ID] = c.Agents[r.spec]
		case kindClient:
			d.Clients[r.key.ID] = c.Clients[r.spec]
		}
	}
	return d, created, diags
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
	draft, _, _ := c.draft(nil, nil)
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
		round, _, _ := c.draft(nil, nil)
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
	switch r.kind {
	case kindProvider:
		d.Providers[r.key.ID] = registry.Provider{Spec: c.Providers[r.spec]}
	case kindModel:
		d.Models[r.key.ID] = c.Models[r.spec]
	case kindPool:
		d.Pools[r.key.ID] = c.Pools[r.spec]
	case kindAgent:
		d.Agents[r.key.ID] = c.Agents[r.spec]
	case kindClient:
		d.Clients[r.key.ID] = c.Clients[r.spec]
	}
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
			if f := c.fields.at(i); f.parent == parent && f.key == key {
				next = i
			}
		}
		if next < 0 {
			break
		}
		parent, found, ok = next, *c.fields.at(next), true
	}
	return found, ok
}
