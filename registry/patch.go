package registry

import (
	"cmp"
	"maps"
	"slices"
	"weak"
)

// Patch is a change to some resources of a set: Put adds each resource or
// replaces the one of its kind and id, Remove drops resources by
// namespace and id. A resource both removed and put is replaced.
type Patch struct {
	Put    Update
	Remove []Ref
}

// Patch returns the set with p applied, validated as Build validates: the
// same set, or the same *ValidationError, as a Build of everything the
// patched set holds. It costs what p touches, not what s holds: s is valid,
// so only the put resources and the references to removed ids can break
// it (should any check fail, the whole set is diagnosed, for the exact
// diagnostics of a Build). Unpatched kinds share their maps and id lists
// with s, and Diff(s, result) is the patch's, without comparing the rest.
// Tools and plugins are kept.
func (s *Set) Patch(p Patch) (*Set, error) {
	removed := map[Ref]bool{}
	for _, r := range p.Remove {
		removed[r] = true
	}
	n := *s
	n.origin, n.changes = weak.Pointer[Set]{}, nil
	var (
		ch   Changes
		err  error
		gone [len(patchKinds)][]string // ids of each kind the patch removed for good
	)
	n.providers, n.providerIDs, gone[0], ch, err = patchKind(s.providers, s.providerIDs, p.Put.Providers, removed, NSProviders, "provider", ch,
		func(p Provider) string { return p.Spec.ID },
		func(a, b Provider) []string { return changedFields(a.Spec, b.Spec) })
	if err != nil {
		return nil, err
	}
	n.models, n.modelIDs, gone[1], ch, err = patchKind(s.models, s.modelIDs, p.Put.Models, removed, NSModels, "model", ch,
		func(m ModelSpec) string { return m.ID }, func(a, b ModelSpec) []string { return changedFields(a, b) })
	if err != nil {
		return nil, err
	}
	n.pools, n.poolIDs, gone[2], ch, err = patchKind(s.pools, s.poolIDs, p.Put.Pools, removed, NSModelPools, "model pool", ch,
		func(p PoolSpec) string { return p.ID }, func(a, b PoolSpec) []string { return changedFields(a, b) })
	if err != nil {
		return nil, err
	}
	n.agents, n.agentIDs, gone[3], ch, err = patchKind(s.agents, s.agentIDs, p.Put.Agents, removed, NSAgents, "agent", ch,
		func(a AgentSpec) string { return a.ID },
		func(a, b AgentSpec) []string {
			if agentEqual(&a, &b) {
				return nil
			}
			return changedFields(a, b)
		})
	if err != nil {
		return nil, err
	}
	n.clients, n.clientIDs, gone[4], ch, err = patchKind(s.clients, s.clientIDs, p.Put.Clients, removed, NSClients, "client", ch,
		func(c ClientSpec) string { return c.ID }, func(a, b ClientSpec) []string { return changedFields(a, b) })
	if err != nil {
		return nil, err
	}
	if !n.patchValid(s, p, removed, gone) {
		if err := newValidationError(n.Diagnose()); err != nil {
			return nil, err
		}
	}
	n.origin = weak.Make(s)
	n.changes = sortChanges(ch)
	return &n, nil
}

// patchKinds are the kinds a patch touches, in Diff's order.
var patchKinds = [...]string{NSProviders, NSModels, NSModelPools, NSAgents, NSClients}

// patchKind applies the puts and removals of one kind to m and its sorted
// ids, copying them only if anything changes, and appends the changes to
// ch. It returns the ids removed and not put again.
func patchKind[V any](m map[string]*V, ids []string, puts []V, removed map[Ref]bool, ns, noun string, ch Changes,
	idOf func(V) string, fields func(a, b V) []string) (map[string]*V, []string, []string, Changes, error) {
	var drop []string
	for r := range removed {
		if r.Namespace == ns {
			if _, ok := m[r.ID]; ok {
				drop = append(drop, r.ID)
			}
		}
	}
	if len(puts) == 0 && len(drop) == 0 {
		return m, ids, nil, ch, nil
	}
	next := maps.Clone(m)
	put := make(map[string]bool, len(puts))
	puts = slices.Clone(puts) // the set's own copy
	var added []string
	for i := range puts {
		v := &puts[i]
		id := idOf(*v)
		if put[id] {
			return nil, nil, nil, nil, &BuildError{Msg: noun + " already registered: " + id}
		}
		put[id] = true
		next[id] = v
		if old, ok := m[id]; !ok {
			added = append(added, id)
			ch = append(ch, Change{Namespace: ns, ID: id, Op: OpAdded})
		} else if f := fields(*old, *v); len(f) > 0 {
			ch = append(ch, Change{Namespace: ns, ID: id, Op: OpChanged, Fields: f})
		}
	}
	var gone []string
	for _, id := range drop {
		if !put[id] {
			delete(next, id)
			gone = append(gone, id)
			ch = append(ch, Change{Namespace: ns, ID: id, Op: OpRemoved})
		}
	}
	if len(added) == 0 && len(gone) == 0 {
		return next, ids, nil, ch, nil
	}
	return next, mergeIDs(ids, added, gone), gone, ch, nil
}

// mergeIDs returns the sorted ids without gone and with added (neither
// sorted), in one pass over ids.
func mergeIDs(ids, added, gone []string) []string {
	slices.Sort(added)
	skip := make(map[string]bool, len(gone))
	for _, id := range gone {
		skip[id] = true
	}
	out := make([]string, 0, len(ids)+len(added)-len(gone))
	j := 0
	for _, id := range ids {
		for j < len(added) && added[j] < id {
			out = append(out, added[j])
			j++
		}
		if !skip[id] {
			out = append(out, id)
		}
	}
	return append(out, added[j:]...)
}

// sortChanges orders changes as Diff does: by kind, then id.
func sortChanges(ch Changes) Changes {
	rank := func(ns string) int { return slices.Index(patchKinds[:], ns) }
	slices.SortFunc(ch, func(a, b Change) int {
		return cmp.Or(cmp.Compare(rank(a.Namespace), rank(b.Namespace)), cmp.Compare(a.ID, b.ID))
	})
	return ch
}

// patchValid reports whether n, which is base with p applied, has no
// problem, checking only what p can have broken: the spec rules and
// references of the put resources, ids they share with other kinds,
// client keys, and references to the ids p removed (gone, by kind in
// patchKinds order). It may report false for a valid set; never true for
// an invalid one.
func (n *Set) patchValid(base *Set, p Patch, removed map[Ref]bool, gone [len(patchKinds)][]string) bool {
	u := p.Put
	for _, pr := range u.Providers {
		if len(CheckProvider(pr.Spec)) > 0 {
			return false
		}
	}
	for _, m := range u.Models {
		if _, ok := n.providers[m.ProviderID]; len(CheckModel(m)) > 0 || !ok && m.ProviderID != "" {
			return false
		}
		if _, clash := n.pools[m.ID]; clash {
			return false
		}
		if _, clash := n.agents[m.ID]; clash {
			return false
		}
	}
	for _, pl := range u.Pools {
		if len(CheckPool(pl)) > 0 {
			return false
		}
		if _, clash := n.models[pl.ID]; clash {
			return false
		}
		if _, clash := n.agents[pl.ID]; clash {
			return false
		}
		for _, m := range pl.Members {
			if _, ok := n.models[m.ModelID]; !ok && m.ModelID != "" {
				return false
			}
		}
	}
	for i := range u.Agents {
		a := &u.Agents[i]
		if len(CheckAgent(*a)) > 0 || n.isModelOrPool(a.ID) {
			return false
		}
		if !a.Remote() && a.ModelID != "" && !n.isModelOrPool(a.ModelID) {
			return false
		}
		for _, pl := range a.PluginIDs {
			if _, ok := n.plugins[pl]; !ok && pl != "" {
				return false
			}
		}
		for _, pl := range a.ActiveHookFilter {
			if !slices.Contains(a.PluginIDs, pl) && pl != "" {
				return false
			}
		}
		for _, d := range a.Delegates {
			if _, ok := n.agents[d]; !ok && d != "" {
				return false
			}
		}
	}
	for _, c := range u.Clients {
		if len(CheckClient(c)) > 0 || !n.callable(c.Models) {
			return false
		}
	}
	if !n.indexPatchedClients(base, u.Clients, removed) {
		return false
	}
	return n.stillReferenced(gone)
}

// callable reports whether every id names a model, pool or agent of n.
func (n *Set) callable(ids []string) bool {
	for _, id := range ids {
		if _, agent := n.agents[id]; id != "" && !agent && !n.isModelOrPool(id) {
			return false
		}
	}
	return true
}

// indexPatchedClients gives n the key index of base updated for the put
// and removed clients, and reports whether every key is still unique.
func (n *Set) indexPatchedClients(base *Set, puts []ClientSpec, removed map[Ref]bool) bool {
	if len(puts) == 0 && len(n.clients) == len(base.clients) {
		return true // no client put, none removed: n.clientKeys is base's
	}
	keys := maps.Clone(base.clientKeys)
	drop := func(id string) {
		if old, ok := base.clients[id]; ok {
			if h, ok := old.KeyHash(); ok && keys[h] == id {
				delete(keys, h)
			}
		}
	}
	for _, c := range puts {
		drop(c.ID)
	}
	for r := range removed {
		if r.Namespace == NSClients {
			drop(r.ID)
		}
	}
	for _, c := range puts {
		h, ok := c.KeyHash()
		if _, dup := keys[h]; !ok || dup {
			return false
		}
		keys[h] = c.ID
	}
	n.clientKeys = keys
	return true
}

// stillReferenced reports whether no resource of n refers to an id a
// patch removed (gone, by kind in patchKinds order), unless n still has
// one of that name where the reference may point.
func (n *Set) stillReferenced(gone [len(patchKinds)][]string) bool {
	if len(gone[0])+len(gone[1])+len(gone[2])+len(gone[3]) == 0 {
		return true // a removed client is referred to by nothing
	}
	missing := map[string]bool{}
	for _, ids := range gone[:4] {
		for _, id := range ids {
			missing[id] = true
		}
	}
	// Every reference is checked against n (a removed model may have
	// become a pool), but only references to a removed name.
	if len(gone[0]) > 0 {
		for _, m := range n.models {
			if _, ok := n.providers[m.ProviderID]; missing[m.ProviderID] && !ok {
				return false
			}
		}
	}
	for _, pl := range n.pools {
		for _, m := range pl.Members {
			if _, ok := n.models[m.ModelID]; missing[m.ModelID] && !ok {
				return false
			}
		}
	}
	for _, a := range n.agents {
		if missing[a.ModelID] && !a.Remote() && !n.isModelOrPool(a.ModelID) {
			return false
		}
		for _, d := range a.Delegates {
			if _, ok := n.agents[d]; missing[d] && !ok {
				return false
			}
		}
	}
	for _, c := range n.clients {
		for _, id := range c.Models {
			if missing[id] && !n.callable([]string{id}) {
				return false
			}
		}
	}
	return true
}
