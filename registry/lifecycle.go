package registry

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// RemovalPolicy decides what RemoveProvider does with models bound to the
// provider.
type RemovalPolicy int

const (
	// BlockIfReferenced refuses to remove a provider any model is bound to.
	BlockIfReferenced RemovalPolicy = iota
	// CascadeUnusedModels removes the provider's models along with it,
	// unless an agent (directly or through a pool) or a pool still uses
	// them. awaken calls it CascadeUnusedModelBindings.
	CascadeUnusedModels
)

// String returns the policy's name.
func (p RemovalPolicy) String() string {
	if p == CascadeUnusedModels {
		return "cascade_unused_models"
	}
	return "block_if_referenced"
}

// RemovalPreview says what removing a provider would touch. Agents that
// reach the provider through a pool are counted (awaken misses them), and
// the pools that would lose members are listed (awaken has no pools here).
type RemovalPreview struct {
	ProviderID                 string   `json:"provider_id"`
	ModelIDs                   []string `json:"model_ids"`
	PoolIDs                    []string `json:"model_pool_ids"`
	AgentIDs                   []string `json:"agent_ids"`
	BlockIfReferencedAllowed   bool     `json:"block_if_referenced_allowed"`
	CascadeUnusedModelsAllowed bool     `json:"cascade_unused_model_bindings_allowed"`
}

// RemovalImpact is what RemoveProvider did.
type RemovalImpact struct {
	ProviderID       string   `json:"provider_id"`
	RemovedModelIDs  []string `json:"removed_model_ids"`
	AffectedAgentIDs []string `json:"affected_agent_ids"`
}

// ProviderExistsError is returned when registering a provider id twice.
type ProviderExistsError struct{ ID string }

func (e *ProviderExistsError) Error() string { return "provider already registered: " + e.ID }

// ProviderNotFoundError is returned for an unknown provider id.
type ProviderNotFoundError struct{ ID string }

func (e *ProviderNotFoundError) Error() string { return "provider not found: " + e.ID }

// ProviderInUseError is returned when a removal policy forbids removing a
// provider that is still referenced.
type ProviderInUseError struct {
	ProviderID string
	ModelIDs   []string
	PoolIDs    []string
	AgentIDs   []string
}

func (e *ProviderInUseError) Error() string {
	msg := fmt.Sprintf("provider '%s' is still referenced by models %s and agents %s",
		e.ProviderID, debugList(e.ModelIDs), debugList(e.AgentIDs))
	if len(e.PoolIDs) > 0 {
		msg += " through model pools " + debugList(e.PoolIDs)
	}
	return msg
}

// debugList formats ids as Rust's {:?} formats a Vec<String>: ["a", "b"].
func debugList(ids []string) string {
	q := make([]string, len(ids))
	for i, id := range ids {
		q[i] = strconv.Quote(id)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// PreviewRemoveProvider says what removing provider id would touch.
func (s *Set) PreviewRemoveProvider(id string) (RemovalPreview, error) {
	if _, ok := s.providers[id]; !ok {
		return RemovalPreview{}, &ProviderNotFoundError{ID: id}
	}
	models := map[string]bool{}
	for _, mid := range s.modelIDs {
		if s.models[mid].ProviderID == id {
			models[mid] = true
		}
	}
	// Pools with a member on the provider; agents bound to either.
	users := maps.Clone(models)
	var pools []string
	for _, pid := range s.poolIDs {
		for _, m := range s.pools[pid].Members {
			if models[m.ModelID] {
				pools = append(pools, pid)
				users[pid] = true
				break
			}
		}
	}
	var agents []string
	for _, aid := range s.agentIDs {
		if a := s.agents[aid]; !a.Remote() && users[a.ModelID] {
			agents = append(agents, aid)
		}
	}
	modelIDs := nonNil(slices.Sorted(maps.Keys(models)))
	return RemovalPreview{
		ProviderID:                 id,
		ModelIDs:                   modelIDs,
		PoolIDs:                    nonNil(pools),
		AgentIDs:                   nonNil(agents),
		BlockIfReferencedAllowed:   len(modelIDs) == 0,
		CascadeUnusedModelsAllowed: len(agents) == 0 && len(pools) == 0,
	}, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// PreviewRemoveProvider previews the removal on the current snapshot.
func (h *Handle) PreviewRemoveProvider(id string) (RemovalPreview, error) {
	return h.Current().Set.PreviewRemoveProvider(id)
}

// RegisterProvider adds a provider and publishes the result. It fails if the
// id is already registered or the new set does not validate.
func (h *Handle) RegisterProvider(p Provider) (uint64, error) {
	return h.Update(func(cur *Set) (*Set, error) {
		if _, ok := cur.providers[p.Spec.ID]; ok {
			return nil, &ProviderExistsError{ID: p.Spec.ID}
		}
		d := NewDraft(cur)
		d.Providers[p.Spec.ID] = p
		return d.Build()
	})
}

// ReplaceProvider swaps the spec and executor of an existing provider,
// keeping the models and agents bound to it.
func (h *Handle) ReplaceProvider(p Provider) (uint64, error) {
	return h.Update(func(cur *Set) (*Set, error) {
		if _, ok := cur.providers[p.Spec.ID]; !ok {
			return nil, &ProviderNotFoundError{ID: p.Spec.ID}
		}
		d := NewDraft(cur)
		d.Providers[p.Spec.ID] = p
		return d.Build()
	})
}

// RemoveProvider removes a provider under policy and publishes the result.
// With BlockIfReferenced any bound model blocks; with CascadeUnusedModels
// the bound models go too unless an agent or pool still uses them.
func (h *Handle) RemoveProvider(id string, policy RemovalPolicy) (RemovalImpact, error) {
	var impact RemovalImpact
	_, err := h.Update(func(cur *Set) (*Set, error) {
		pv, err := cur.PreviewRemoveProvider(id)
		if err != nil {
			return nil, err
		}
		allowed := pv.BlockIfReferencedAllowed
		if policy == CascadeUnusedModels {
			allowed = pv.CascadeUnusedModelsAllowed
		}
		if !allowed {
			return nil, &ProviderInUseError{ProviderID: id, ModelIDs: pv.ModelIDs, PoolIDs: pv.PoolIDs, AgentIDs: pv.AgentIDs}
		}
		d := NewDraft(cur)
		for _, m := range pv.ModelIDs {
			delete(d.Models, m)
		}
		delete(d.Providers, id)
		impact = RemovalImpact{ProviderID: id, RemovedModelIDs: pv.ModelIDs, AffectedAgentIDs: pv.AgentIDs}
		return d.Build()
	})
	if err != nil {
		return RemovalImpact{}, err
	}
	return impact, nil
}

// Update is a whole new declaration of providers, models, pools and agents,
// as the config loader produces it.
type Update struct {
	Providers []Provider
	Models    []ModelSpec
	Pools     []PoolSpec
	Agents    []AgentSpec
	Clients   []ClientSpec
}

// BuildError reports an update that could not be assembled, such as an id
// given twice.
type BuildError struct{ Msg string }

func (e *BuildError) Error() string { return "registry build failed: " + e.Msg }

// Rebuild returns a new set with the providers, models, pools, agents and
// clients of base replaced wholesale by those of the updates together;
// tools and plugins are kept. The set holds the updates' specs where they
// are, without copying them: their lists must not be modified afterwards.
func Rebuild(base *Set, updates ...Update) (*Set, error) {
	if base == nil {
		base = &Set{}
	}
	s := &Set{tools: cloneMap(base.tools), plugins: cloneMap(base.plugins)}
	var err error
	if s.providers, err = index(updates, func(u *Update) []Provider { return u.Providers }, func(p *Provider) string { return p.Spec.ID }, "provider"); err != nil {
		return nil, err
	}
	if s.models, err = index(updates, func(u *Update) []ModelSpec { return u.Models }, func(m *ModelSpec) string { return m.ID }, "model"); err != nil {
		return nil, err
	}
	if s.pools, err = index(updates, func(u *Update) []PoolSpec { return u.Pools }, func(p *PoolSpec) string { return p.ID }, "model pool"); err != nil {
		return nil, err
	}
	if s.agents, err = index(updates, func(u *Update) []AgentSpec { return u.Agents }, func(a *AgentSpec) string { return a.ID }, "agent"); err != nil {
		return nil, err
	}
	if s.clients, err = index(updates, func(u *Update) []ClientSpec { return u.Clients }, func(c *ClientSpec) string { return c.ID }, "client"); err != nil {
		return nil, err
	}
	return s.validated()
}

// index maps the id of each item of one kind in the updates to it; an id
// given twice is an error.
func index[V any](updates []Update, list func(*Update) []V, idOf func(*V) string, kind string) (map[string]*V, error) {
	n := 0
	for i := range updates {
		n += len(list(&updates[i]))
	}
	m := make(map[string]*V, n)
	for i := range updates {
		l := list(&updates[i])
		for j := range l {
			v := &l[j]
			id := idOf(v)
			if _, dup := m[id]; dup {
				return nil, &BuildError{Msg: kind + " already registered: " + id}
			}
			m[id] = v
		}
	}
	return m, nil
}
