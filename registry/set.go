// Package registry owns awakend's domain model: provider, model, model pool
// and agent specs, the immutable Set they form once validated, the Draft that
// builds a new Set, graph diagnostics, versioned snapshots behind a Handle,
// and the provider lifecycle of awaken's registry module.
//
// The package is pure: it does no I/O, does not log and starts no goroutines.
package registry

import (
	"maps"
	"slices"
	"strconv"
	"weak"

	"github.com/awakend/awakend/internal/suggest"
)

// Set is an immutable, validated registry: providers with their executors,
// models, model pools, agents, tools and plugins. A Set is safe for
// concurrent use; the specs it hands out share backing arrays with it and
// must not be modified.
type Set struct {
	// The resources are held by pointer, so that a patch copies a map of
	// pointers, not every spec (a map holds a large value by pointer
	// anyway, one allocation each). The specs are never modified.
	providers map[string]*Provider
	models    map[string]*ModelSpec
	pools     map[string]*PoolSpec
	agents    map[string]*AgentSpec
	clients   map[string]*ClientSpec
	tools     map[string]Tool
	plugins   map[string]Plugin

	providerIDs, modelIDs, poolIDs, agentIDs, clientIDs []string
	clientKeys                                          map[[32]byte]string // key hash → client id

	origin  weak.Pointer[Set] // the set Patch made this one from, if it did
	changes Changes           // what that patch changed
}

// Empty returns a valid set with nothing in it.
func Empty() *Set {
	s, _ := NewDraft(nil).Build()
	return s
}

// Provider returns the provider with the given id.
func (s *Set) Provider(id string) (Provider, bool) { return get(s.providers, id) }

// Model returns the model with the given id.
func (s *Set) Model(id string) (ModelSpec, bool) { return get(s.models, id) }

// Pool returns the model pool with the given id.
func (s *Set) Pool(id string) (PoolSpec, bool) { return get(s.pools, id) }

// Agent returns the agent with the given id.
func (s *Set) Agent(id string) (AgentSpec, bool) { return get(s.agents, id) }

// get returns the value m holds for id, or the zero value.
func get[V any](m map[string]*V, id string) (V, bool) {
	if p, ok := m[id]; ok {
		return *p, true
	}
	var zero V
	return zero, false
}

// spec returns the value m holds for id, or the zero value.
func spec[V any](m map[string]*V, id string) V { v, _ := get(m, id); return v }

// Tool returns the tool with the given id.
func (s *Set) Tool(id string) (Tool, bool) { t, ok := s.tools[id]; return t, ok }

// Plugin returns the plugin with the given id.
func (s *Set) Plugin(id string) (Plugin, bool) { p, ok := s.plugins[id]; return p, ok }

// ProviderIDs returns the provider ids in sorted order. The slice is shared.
func (s *Set) ProviderIDs() []string { return s.providerIDs }

// ModelIDs returns the model ids in sorted order. The slice is shared.
func (s *Set) ModelIDs() []string { return s.modelIDs }

// PoolIDs returns the model pool ids in sorted order. The slice is shared.
func (s *Set) PoolIDs() []string { return s.poolIDs }

// AgentIDs returns the agent ids in sorted order. The slice is shared.
func (s *Set) AgentIDs() []string { return s.agentIDs }

// ToolIDs returns the tool ids in sorted order.
func (s *Set) ToolIDs() []string { return slices.Sorted(maps.Keys(s.tools)) }

// PluginIDs returns the plugin ids in sorted order.
func (s *Set) PluginIDs() []string { return slices.Sorted(maps.Keys(s.plugins)) }

// Draft is a mutable registry under construction. Build validates it as a
// whole and turns it into a new Set; a draft is built once.
type Draft struct {
	Providers map[string]Provider
	Models    map[string]ModelSpec
	Pools     map[string]PoolSpec
	Agents    map[string]AgentSpec
	Clients   map[string]ClientSpec
	Tools     map[string]Tool
	Plugins   map[string]Plugin
}

// NewDraft copies base, everything in it including pools and provider
// specs (awaken's RegistrySetDraft::from_set drops pools). A nil base gives
// an empty draft.
func NewDraft(base *Set) *Draft {
	if base == nil {
		base = &Set{}
	}
	return &Draft{
		Providers: values(base.providers),
		Models:    values(base.models),
		Pools:     values(base.pools),
		Agents:    values(base.agents),
		Clients:   values(base.clients),
		Tools:     cloneMap(base.tools),
		Plugins:   cloneMap(base.plugins),
	}
}

func orEmpty[V any](m map[string]V) map[string]V {
	if m == nil {
		return map[string]V{}
	}
	return m
}

func cloneMap[V any](m map[string]V) map[string]V {
	c := make(map[string]V, len(m))
	maps.Copy(c, m)
	return c
}

// values is cloneMap for a set's map of pointers.
func values[V any](m map[string]*V) map[string]V {
	c := make(map[string]V, len(m))
	for id, p := range m {
		c[id] = *p
	}
	return c
}

// pointers holds the values of m by pointer, all in one allocation; a nil
// m gives an empty map.
func pointers[V any](m map[string]V) map[string]*V {
	out := make(map[string]*V, len(m))
	vals := make([]V, 0, len(m))
	for id, v := range m {
		vals = append(vals, v)
		out[id] = &vals[len(vals)-1]
	}
	return out
}

// Build validates the draft and returns the new set, or a *ValidationError
// listing every problem: the spec rules of each resource first, then the
// graph (references between resources). A draft is built once: Build
// empties it, so that writing to it afterwards panics.
func (d *Draft) Build() (*Set, error) {
	s := &Set{
		providers: pointers(d.Providers),
		models:    pointers(d.Models),
		pools:     pointers(d.Pools),
		agents:    pointers(d.Agents),
		clients:   pointers(d.Clients),
		tools:     orEmpty(d.Tools),
		plugins:   orEmpty(d.Plugins),
	}
	*d = Draft{}
	return s.validated()
}

// validated sorts the ids of s and returns it if it has no problem.
func (s *Set) validated() (*Set, error) {
	s.providerIDs = slices.Sorted(maps.Keys(s.providers))
	s.modelIDs = slices.Sorted(maps.Keys(s.models))
	s.poolIDs = slices.Sorted(maps.Keys(s.pools))
	s.agentIDs = slices.Sorted(maps.Keys(s.agents))
	s.clientIDs = slices.Sorted(maps.Keys(s.clients))
	if err := newValidationError(s.Diagnose()); err != nil {
		return nil, err
	}
	return s, nil
}

// Diagnose returns every problem in the set, spec rules first and then the
// graph, in a stable order. A set returned by Build has none.
func (s *Set) Diagnose() []Diagnostic {
	var diags []Diagnostic
	for _, id := range s.providerIDs {
		diags = append(diags, CheckProvider(s.providers[id].Spec)...)
	}
	for _, id := range s.modelIDs {
		diags = append(diags, CheckModel(*s.models[id])...)
	}
	for _, id := range s.poolIDs {
		diags = append(diags, CheckPool(*s.pools[id])...)
		if _, clash := s.models[id]; clash {
			diags = append(diags, Diagnostic{
				Code: CodeDuplicateID, Severity: SeverityError,
				Resource: Ref{NSModelPools, id}, Field: "id",
				Message: "model pool '" + id + "' has the same id as a model (models and pools share one namespace)",
			})
		}
	}
	for _, id := range s.agentIDs {
		diags = append(diags, CheckAgent(*s.agents[id])...)
		if s.isModelOrPool(id) {
			diags = append(diags, Diagnostic{
				Code: CodeAmbiguousID, Severity: SeverityError,
				Resource: Ref{NSAgents, id}, Field: "id",
				Message: "agent '" + id + "' has the same id as a model or model pool (the gateway addresses all three by one name)",
			})
		}
	}
	diags = append(diags, s.diagnoseGraph()...)
	return append(diags, s.indexClients()...)
}

func (s *Set) isModelOrPool(id string) bool {
	_, m := s.models[id]
	_, p := s.pools[id]
	return m || p
}

// diagnoseGraph reports references to missing resources, with awaken's
// codes and messages.
func (s *Set) diagnoseGraph() []Diagnostic {
	var diags []Diagnostic
	add := func(code string, res, dep Ref, field, msg string) {
		diags = append(diags, Diagnostic{
			Code: code, Severity: SeverityError,
			Resource: res, DependsOn: &dep, Field: field, Message: msg,
		})
	}
	for _, id := range s.modelIDs {
		m := s.models[id]
		if _, ok := s.providers[m.ProviderID]; !ok && m.ProviderID != "" {
			add(CodeModelMissingProvider, Ref{NSModels, id}, Ref{NSProviders, m.ProviderID}, "provider_id",
				"model '"+id+"' references missing provider '"+m.ProviderID+"'"+didYouMean(m.ProviderID, s.providerIDs))
		}
	}
	for _, id := range s.poolIDs {
		for i, m := range s.pools[id].Members {
			if _, ok := s.models[m.ModelID]; !ok && m.ModelID != "" {
				add(CodeModelPoolMissingModel, Ref{NSModelPools, id}, Ref{NSModels, m.ModelID},
					"members."+strconv.Itoa(i)+".model_id",
					"model pool '"+id+"' references missing model '"+m.ModelID+"'"+didYouMean(m.ModelID, s.modelIDs))
			}
		}
	}
	for _, id := range s.agentIDs {
		a := s.agents[id]
		res := Ref{NSAgents, id}
		if !a.Remote() && a.ModelID != "" && !s.isModelOrPool(a.ModelID) {
			add(CodeAgentMissingModel, res, Ref{NSModels, a.ModelID}, "model_id",
				"agent '"+id+"' references missing model '"+a.ModelID+"'"+didYouMean(a.ModelID, s.modelIDs, s.poolIDs))
		}
		for i, p := range a.PluginIDs {
			if _, ok := s.plugins[p]; !ok && p != "" {
				add(CodeAgentMissingPlugin, res, Ref{NSPlugins, p}, "plugin_ids."+strconv.Itoa(i),
					"agent '"+id+"' uses missing plugin '"+p+"'"+didYouMean(p, s.PluginIDs()))
			}
		}
		for i, p := range a.ActiveHookFilter {
			if !slices.Contains(a.PluginIDs, p) && p != "" {
				add(CodeAgentHookFilterPluginNotLoaded, res, Ref{NSPlugins, p}, "active_hook_filter."+strconv.Itoa(i),
					"agent '"+id+"' active hook filter references unloaded plugin '"+p+"'")
			}
		}
		for i, del := range a.Delegates {
			if _, ok := s.agents[del]; !ok && del != "" {
				add(CodeAgentMissingDelegate, res, Ref{NSAgents, del}, "delegates."+strconv.Itoa(i),
					"agent '"+id+"' delegates to missing agent '"+del+"'"+didYouMean(del, s.agentIDs))
			}
		}
	}
	return diags
}

// didYouMean returns " (did you mean 'x'?)" for the existing id closest to
// a missing one, from the ids of the kinds the reference may name, or "".
func didYouMean(missing string, ids ...[]string) string {
	best, bestD := "", 0
	for _, list := range ids {
		if c := suggest.Closest(missing, list); c != "" {
			if d := suggest.Distance(missing, c); best == "" || d < bestD {
				best, bestD = c, d
			}
		}
	}
	if best == "" {
		return ""
	}
	return " (did you mean '" + best + "'?)"
}
