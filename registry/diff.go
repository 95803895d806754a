package registry

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"unicode"
)

// Change is one resource that differs between two sets. Fields names the
// top-level fields that changed, for Op "changed"; secrets are named,
// never shown.
type Change struct {
	Namespace string   `json:"namespace"`
	ID        string   `json:"id"`
	Op        string   `json:"op"` // "added", "changed" or "removed"
	Fields    []string `json:"fields,omitempty"`
}

// Change operations.
const (
	OpAdded   = "added"
	OpChanged = "changed"
	OpRemoved = "removed"
)

// Changes lists what differs between two sets, by namespace (providers,
// models, model pools, agents, clients) and then id.
type Changes []Change

// Diff returns what changed from old to next. A nil set is empty. When
// next is old patched (Set.Patch), the patch's own changes are returned,
// the same as comparing the two sets would give.
func Diff(old, next *Set) Changes {
	if old != nil && next != nil && next.origin.Value() == old {
		return slices.Clone(next.changes)
	}
	if old == nil {
		old = Empty()
	}
	if next == nil {
		next = Empty()
	}
	var cs Changes
	cs = diffKind(cs, NSProviders, old.providerIDs, next.providerIDs, nil,
		func(id string) any { return old.providers[id].Spec },
		func(id string) any { return next.providers[id].Spec })
	cs = diffKind(cs, NSModels, old.modelIDs, next.modelIDs, nil,
		func(id string) any { return *old.models[id] }, func(id string) any { return *next.models[id] })
	cs = diffKind(cs, NSModelPools, old.poolIDs, next.poolIDs, nil,
		func(id string) any { return *old.pools[id] }, func(id string) any { return *next.pools[id] })
	cs = diffKind(cs, NSAgents, old.agentIDs, next.agentIDs,
		func(id string) bool { return agentEqual(old.agents[id], next.agents[id]) },
		func(id string) any { return *old.agents[id] }, func(id string) any { return *next.agents[id] })
	cs = diffKind(cs, NSClients, old.clientIDs, next.clientIDs, nil,
		func(id string) any { return *old.clients[id] }, func(id string) any { return *next.clients[id] })
	return cs
}

// agentEqual is reflect.DeepEqual for agent specs, field by field, so that
// the diff of a set of thousands of agents, nearly all unchanged (and
// sharing their lists with the set before), does not reflect over each.
func agentEqual(a, b *AgentSpec) bool {
	return a.ID == b.ID && a.Description == b.Description && a.ModelID == b.ModelID &&
		a.SystemPrompt == b.SystemPrompt && a.MaxRounds == b.MaxRounds &&
		a.MaxContinuationRetries == b.MaxContinuationRetries && a.Registry == b.Registry &&
		deepPtr(a.ReasoningEffort, b.ReasoningEffort) && deepPtr(a.ContextPolicy, b.ContextPolicy) &&
		deepPtr(a.Endpoint, b.Endpoint) &&
		strsEqual(a.PluginIDs, b.PluginIDs) && strsEqual(a.ActiveHookFilter, b.ActiveHookFilter) &&
		strsEqual(a.AllowedTools, b.AllowedTools) && strsEqual(a.AllowedToolPatterns, b.AllowedToolPatterns) &&
		strsEqual(a.ExcludedTools, b.ExcludedTools) && strsEqual(a.ExcludedToolPatterns, b.ExcludedToolPatterns) &&
		strsEqual(a.Delegates, b.Delegates) &&
		reflect.DeepEqual(a.StopConditions, b.StopConditions) && reflect.DeepEqual(a.Sections, b.Sections)
}

// strsEqual is reflect.DeepEqual for string lists: nil is not empty.
func strsEqual(a, b []string) bool { return (a == nil) == (b == nil) && slices.Equal(a, b) }

// deepPtr is reflect.DeepEqual for pointers, quick when they are the same.
func deepPtr[T any](a, b *T) bool {
	if a == b {
		return true
	}
	return a != nil && b != nil && reflect.DeepEqual(*a, *b)
}

// diffKind merges two sorted id lists. same, if set, says quickly whether
// the specs of an id are equal.
func diffKind(cs Changes, ns string, oldIDs, newIDs []string, same func(string) bool, oldSpec, newSpec func(string) any) Changes {
	i, j := 0, 0
	for i < len(oldIDs) || j < len(newIDs) {
		switch {
		case j == len(newIDs) || (i < len(oldIDs) && oldIDs[i] < newIDs[j]):
			cs = append(cs, Change{Namespace: ns, ID: oldIDs[i], Op: OpRemoved})
			i++
		case i == len(oldIDs) || newIDs[j] < oldIDs[i]:
			cs = append(cs, Change{Namespace: ns, ID: newIDs[j], Op: OpAdded})
			j++
		default:
			if same != nil && same(oldIDs[i]) {
				i++
				j++
				continue
			}
			if f := changedFields(oldSpec(oldIDs[i]), newSpec(newIDs[j])); len(f) > 0 {
				cs = append(cs, Change{Namespace: ns, ID: oldIDs[i], Op: OpChanged, Fields: f})
			}
			i++
			j++
		}
	}
	return cs
}

// changedFields names the top-level struct fields that differ, by their
// JSON names (secret fields by their config names).
func changedFields(a, b any) []string {
	if reflect.DeepEqual(a, b) { // the common case, in one walk
		return nil
	}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	t := va.Type()
	var fields []string
	for i := range t.NumField() {
		if !reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			fields = append(fields, fieldName(t.Field(i)))
		}
	}
	return fields
}

func fieldName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name != "" && name != "-" {
		return name
	}
	// snake_case of the Go name: APIKey → api_key.
	var b strings.Builder
	rs := []rune(f.Name)
	for i, r := range rs {
		if unicode.IsUpper(r) && i > 0 && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]))) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// Empty reports whether nothing changed.
func (cs Changes) Empty() bool { return len(cs) == 0 }

var nouns = map[string][2]string{
	NSProviders:  {"provider", "providers"},
	NSModels:     {"model", "models"},
	NSModelPools: {"model pool", "model pools"},
	NSAgents:     {"agent", "agents"},
	NSClients:    {"client", "clients"},
}

// String summarizes the changes for a log line, added first, then changed
// with the fields, then removed: "+2 agents, ~1 provider (base_url), -1 model".
// No changes read "no changes".
func (cs Changes) String() string {
	if len(cs) == 0 {
		return "no changes"
	}
	var parts []string
	for _, op := range []struct{ op, sign string }{{OpAdded, "+"}, {OpChanged, "~"}, {OpRemoved, "-"}} {
		for _, ns := range []string{NSProviders, NSModels, NSModelPools, NSAgents, NSClients} {
			n := 0
			var fields []string
			for _, c := range cs {
				if c.Op == op.op && c.Namespace == ns {
					n++
					for _, f := range c.Fields {
						if !slices.Contains(fields, f) {
							fields = append(fields, f)
						}
					}
				}
			}
			if n == 0 {
				continue
			}
			noun := nouns[ns][1]
			if n == 1 {
				noun = nouns[ns][0]
			}
			part := fmt.Sprintf("%s%d %s", op.sign, n, noun)
			if len(fields) > 0 {
				slices.Sort(fields)
				part += " (" + strings.Join(fields, ", ") + ")"
			}
			parts = append(parts, part)
		}
	}
	return strings.Join(parts, ", ")
}
