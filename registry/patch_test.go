package registry

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"weak"
)

// contents is everything a set declares, as an update.
func contents(s *Set) Update {
	var u Update
	for _, id := range s.providerIDs {
		u.Providers = append(u.Providers, *s.providers[id])
	}
	for _, id := range s.modelIDs {
		u.Models = append(u.Models, *s.models[id])
	}
	for _, id := range s.poolIDs {
		u.Pools = append(u.Pools, *s.pools[id])
	}
	for _, id := range s.agentIDs {
		u.Agents = append(u.Agents, *s.agents[id])
	}
	for _, id := range s.clientIDs {
		u.Clients = append(u.Clients, *s.clients[id])
	}
	return u
}

// applied is p applied to u the slow way: what a Rebuild is given.
func applied(u Update, p Patch) Update {
	drop := func(ns, id string) bool { return slices.Contains(p.Remove, Ref{ns, id}) }
	var out Update
	out.Providers = patchList(u.Providers, p.Put.Providers, func(v Provider) string { return v.Spec.ID }, func(id string) bool { return drop(NSProviders, id) })
	out.Models = patchList(u.Models, p.Put.Models, func(v ModelSpec) string { return v.ID }, func(id string) bool { return drop(NSModels, id) })
	out.Pools = patchList(u.Pools, p.Put.Pools, func(v PoolSpec) string { return v.ID }, func(id string) bool { return drop(NSModelPools, id) })
	out.Agents = patchList(u.Agents, p.Put.Agents, func(v AgentSpec) string { return v.ID }, func(id string) bool { return drop(NSAgents, id) })
	out.Clients = patchList(u.Clients, p.Put.Clients, func(v ClientSpec) string { return v.ID }, func(id string) bool { return drop(NSClients, id) })
	return out
}

func patchList[V any](list, puts []V, idOf func(V) string, drop func(string) bool) []V {
	put := map[string]bool{}
	for _, v := range puts {
		put[idOf(v)] = true
	}
	var out []V
	for _, v := range list {
		if !put[idOf(v)] && !drop(idOf(v)) {
			out = append(out, v)
		}
	}
	return append(out, puts...)
}

// sameSet reports whether two sets hold the same resources, ids and key
// index.
func sameSet(a, b *Set) bool {
	return reflect.DeepEqual(a.providers, b.providers) && reflect.DeepEqual(a.models, b.models) &&
		reflect.DeepEqual(a.pools, b.pools) && reflect.DeepEqual(a.agents, b.agents) &&
		reflect.DeepEqual(a.clients, b.clients) && maps.Equal(a.clientKeys, b.clientKeys) &&
		slices.Equal(a.providerIDs, b.providerIDs) && slices.Equal(a.modelIDs, b.modelIDs) &&
		slices.Equal(a.poolIDs, b.poolIDs) && slices.Equal(a.agentIDs, b.agentIDs) &&
		slices.Equal(a.clientIDs, b.clientIDs)
}

// randomPatch changes a few resources of s: edits, broken and fixed
// references, new and removed ids, ids shared across kinds, client keys.
func randomPatch(rng *rand.Rand, s *Set) Patch {
	var p Patch
	pick := func(ids []string) string {
		if len(ids) == 0 {
			return "none"
		}
		return ids[rng.IntN(len(ids))]
	}
	fresh := func(prefix string) string { return fmt.Sprintf("%s-%d", prefix, rng.IntN(1000)+100) }
	for range rng.IntN(4) + 1 {
		switch rng.IntN(14) {
		case 0: // an agent's prompt
			a := *s.agents[pick(s.agentIDs)]
			a.SystemPrompt = fmt.Sprintf("prompt %d", rng.IntN(5))
			p.Put.Agents = append(p.Put.Agents, a)
		case 1: // an agent on another model, pool, or nothing that exists
			a := *s.agents[pick(s.agentIDs)]
			a.ModelID = pick(append(slices.Clone(s.modelIDs), append(s.poolIDs, "ghost")...))
			p.Put.Agents = append(p.Put.Agents, a)
		case 2: // a new agent, perhaps named like a model
			a := agent(fresh("agent"), pick(s.modelIDs))
			if rng.IntN(4) == 0 {
				a.ID = pick(s.modelIDs)
			}
			a.Delegates = []string{pick(s.agentIDs)}
			p.Put.Agents = append(p.Put.Agents, a)
		case 3:
			p.Remove = append(p.Remove, Ref{NSAgents, pick(s.agentIDs)})
		case 4:
			p.Remove = append(p.Remove, Ref{NSModels, pick(s.modelIDs)})
		case 5:
			p.Remove = append(p.Remove, Ref{NSModelPools, pick(s.poolIDs)})
		case 6:
			p.Remove = append(p.Remove, Ref{NSProviders, pick(s.providerIDs)})
		case 7: // a model on another provider, perhaps a missing one
			m := *s.models[pick(s.modelIDs)]
			m.ProviderID = pick(append(slices.Clone(s.providerIDs), "nowhere"))
			p.Put.Models = append(p.Put.Models, m)
		case 8: // a new model, perhaps named like a pool, perhaps invalid
			m := model(fresh("model"), pick(s.providerIDs))
			if rng.IntN(3) == 0 {
				m.ID = pick(s.poolIDs)
			}
			if rng.IntN(4) == 0 {
				m.UpstreamModel = ""
			}
			p.Put.Models = append(p.Put.Models, m)
		case 9: // a pool over other models
			pl := pool(pick(s.poolIDs), pick(s.modelIDs), pick(append(slices.Clone(s.modelIDs), "gone")))
			p.Put.Pools = append(p.Put.Pools, pl)
		case 10: // a provider changed, perhaps invalid
			pr := *s.providers[pick(s.providerIDs)]
			pr.Spec.TimeoutSecs = uint64(rng.IntN(3))
			p.Put.Providers = append(p.Put.Providers, pr)
		case 11: // a client's key, perhaps another's
			c := *s.clients[pick(s.clientIDs)]
			c.Key = fmt.Sprintf("key-%d", rng.IntN(8))
			p.Put.Clients = append(p.Put.Clients, c)
		case 12: // a client's scope
			c := *s.clients[pick(s.clientIDs)]
			c.Models = []string{pick(s.agentIDs), pick(append(slices.Clone(s.poolIDs), "nothing"))}
			p.Put.Clients = append(p.Put.Clients, c)
		case 13:
			if rng.IntN(2) == 0 {
				p.Remove = append(p.Remove, Ref{NSClients, pick(s.clientIDs)})
			} else {
				p.Put.Clients = append(p.Put.Clients, ClientSpec{ID: fresh("client"), Key: fmt.Sprintf("key-%d", rng.IntN(20))})
			}
		}
	}
	return p
}

func patchBase(t *testing.T) *Set {
	var u Update
	for i := range 4 {
		u.Providers = append(u.Providers, provider(fmt.Sprintf("provider-%d", i)))
	}
	for i := range 16 {
		u.Models = append(u.Models, model(fmt.Sprintf("model-%d", i), fmt.Sprintf("provider-%d", i%4)))
	}
	for i := range 4 {
		u.Pools = append(u.Pools, pool(fmt.Sprintf("pool-%d", i), fmt.Sprintf("model-%d", i), fmt.Sprintf("model-%d", i+4)))
	}
	for i := range 40 {
		target := fmt.Sprintf("model-%d", i%16)
		if i%5 == 0 {
			target = fmt.Sprintf("pool-%d", i%4)
		}
		a := agent(fmt.Sprintf("agent-%d", i), target)
		a.Delegates = []string{fmt.Sprintf("agent-%d", (i+1)%40)}
		u.Agents = append(u.Agents, a)
	}
	for i := range 6 {
		u.Clients = append(u.Clients, ClientSpec{ID: fmt.Sprintf("client-%d", i), Key: fmt.Sprintf("secret-%d", i),
			Models: []string{fmt.Sprintf("agent-%d", i), fmt.Sprintf("pool-%d", i%4)}})
	}
	return mustBuild(t, u)
}

// Over random patches, Patch gives what a Rebuild of the patched contents
// gives: the same set or the same diagnostics; and Diff of a patched set
// is what comparing the two sets gives.
func TestPatchMatchesRebuild(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	base := patchBase(t)
	applies, rejects := 0, 0
	for step := range 2000 {
		p := randomPatch(rng, base)
		got, gotErr := base.Patch(p)
		want, wantErr := Rebuild(nil, applied(contents(base), p))
		if !reflect.DeepEqual(gotErr, wantErr) {
			t.Fatalf("step %d: Patch error\n%v\nwant\n%v", step, gotErr, wantErr)
		}
		if wantErr != nil {
			rejects++
			continue
		}
		applies++
		if !sameSet(got, want) {
			t.Fatalf("step %d: patched set differs from the rebuilt one", step)
		}
		compared := *got
		compared.origin = weak.Pointer[Set]{}
		if d, w := Diff(base, got), Diff(base, &compared); !reflect.DeepEqual(d, w) {
			t.Fatalf("step %d: Diff %v, want %v", step, d, w)
		}
		if d := Diff(want, got); !d.Empty() { // not the patch's base: compared
			t.Fatalf("step %d: Diff against the rebuilt set: %v", step, d)
		}
		if rng.IntN(8) == 0 {
			base = patchBase(t) // start over now and then, before the set drifts away
		} else {
			base = got
		}
	}
	if applies < 200 || rejects < 200 {
		t.Fatalf("%d patches applied, %d rejected: the random patches test too little of one side", applies, rejects)
	}
}

func TestPatchKeepsWhatItDoesNotTouch(t *testing.T) {
	base := patchBase(t)
	a := *base.agents["agent-3"]
	a.SystemPrompt = "new"
	next, err := base.Patch(Patch{Put: Update{Agents: []AgentSpec{a}}})
	if err != nil {
		t.Fatal(err)
	}
	if &next.agentIDs[0] != &base.agentIDs[0] || reflect.ValueOf(next.models).UnsafePointer() != reflect.ValueOf(base.models).UnsafePointer() {
		t.Fatal("a patch of one agent's prompt copied the ids or the models")
	}
	if got := Diff(base, next).String(); got != "~1 agent (system_prompt)" {
		t.Fatalf("Diff = %q", got)
	}
	if base.agents["agent-3"].SystemPrompt == "new" {
		t.Fatal("Patch changed its base")
	}
}

func TestPatchRejectsAnIDPutTwice(t *testing.T) {
	base := patchBase(t)
	_, err := base.Patch(Patch{Put: Update{Agents: []AgentSpec{agent("x", "model-1"), agent("x", "model-2")}}})
	if err == nil || !strings.Contains(err.Error(), "agent already registered: x") {
		t.Fatalf("err = %v", err)
	}
}
