package registry

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	old := pooledSet(t)
	d := NewDraft(old)
	q := d.Providers["q"]
	q.Spec.BaseURL = "http://127.0.0.1:9/v1"
	q.Spec.APIKey = "sk-secret-value"
	d.Providers["q"] = q
	delete(d.Models, "m")
	delete(d.Agents, "a")
	d.Pools["fast"] = pool("fast", "n")
	d.Agents["c"] = agent("c", "n")
	d.Agents["d"] = agent("d", "fast")
	next, err := d.Build()
	if err != nil {
		t.Fatal(err)
	}
	cs := Diff(old, next)
	want := Changes{
		{Namespace: NSProviders, ID: "q", Op: OpChanged, Fields: []string{"api_key", "base_url"}},
		{Namespace: NSModels, ID: "m", Op: OpRemoved},
		{Namespace: NSModelPools, ID: "fast", Op: OpChanged, Fields: []string{"members"}},
		{Namespace: NSAgents, ID: "a", Op: OpRemoved},
		{Namespace: NSAgents, ID: "c", Op: OpAdded},
		{Namespace: NSAgents, ID: "d", Op: OpAdded},
	}
	if len(cs) != len(want) {
		t.Fatalf("changes = %+v\nwant %+v", cs, want)
	}
	for i := range want {
		if cs[i].Namespace != want[i].Namespace || cs[i].ID != want[i].ID || cs[i].Op != want[i].Op || !slices.Equal(cs[i].Fields, want[i].Fields) {
			t.Errorf("change %d = %+v, want %+v", i, cs[i], want[i])
		}
	}
	s := cs.String()
	if want := "+2 agents, ~1 provider (api_key, base_url), ~1 model pool (members), -1 model, -1 agent"; s != want {
		t.Errorf("String = %q\nwant %q", s, want)
	}
	if strings.Contains(s, "sk-secret") {
		t.Error("summary leaks the key")
	}
}

func TestDiffNoChanges(t *testing.T) {
	a, b := seedSet(t), seedSet(t)
	if cs := Diff(a, b); !cs.Empty() || cs.String() != "no changes" {
		t.Fatalf("Diff of equal sets = %v", cs)
	}
	if cs := Diff(nil, a); len(cs) != 3 || cs.String() != "+1 provider, +1 model, +1 agent" {
		t.Fatalf("Diff from nil = %v", cs)
	}
}

func TestFieldName(t *testing.T) {
	cs := Diff(seedSet(t), func() *Set {
		d := NewDraft(seedSet(t))
		p := d.Providers["p"]
		p.Spec.APIKey = "x"
		d.Providers["p"] = p
		s, _ := d.Build()
		return s
	}())
	if len(cs) != 1 || !slices.Equal(cs[0].Fields, []string{"api_key"}) {
		t.Fatalf("changes = %+v", cs)
	}
}

func TestReasoningEffortJSON(t *testing.T) {
	for _, in := range []string{`"high"`, `{"budget":4096}`} {
		var e ReasoningEffort
		if err := e.UnmarshalJSON([]byte(in)); err != nil {
			t.Fatal(err)
		}
		out, _ := e.MarshalJSON()
		if string(out) != in {
			t.Errorf("%s round-trips to %s", in, out)
		}
	}
	var e ReasoningEffort
	if err := e.UnmarshalJSON([]byte(`{"tokens":1}`)); err == nil {
		t.Error("accepted {tokens: 1}")
	}
}

// agentEqual must be reflect.DeepEqual: a change to any field of an agent
// spec, or to anything it points to, makes two specs differ.
func TestAgentEqualIsDeepEqual(t *testing.T) {
	budget := uint64(5)
	base := AgentSpec{
		ID: "a", Description: "d", ModelID: "m", SystemPrompt: "p", MaxRounds: 1, MaxContinuationRetries: 2,
		ReasoningEffort: &ReasoningEffort{Level: EffortLow}, ContextPolicy: &ContextPolicy{MaxContextTokens: 1, AutocompactThreshold: &budget},
		StopConditions: []any{"x"}, PluginIDs: []string{"p"}, ActiveHookFilter: []string{"p"}, AllowedTools: []string{"t"},
		AllowedToolPatterns: []string{"*"}, ExcludedTools: []string{"e"}, ExcludedToolPatterns: []string{"e*"}, Delegates: []string{"b"},
		Endpoint: &Endpoint{Backend: "a2a", BaseURL: "https://x", Options: map[string]any{"k": "v"}}, Sections: map[string]any{"s": 1}, Registry: "r",
	}
	clone := func() AgentSpec {
		c := base
		c.ReasoningEffort = &ReasoningEffort{Level: EffortLow}
		other := budget
		c.ContextPolicy = &ContextPolicy{MaxContextTokens: 1, AutocompactThreshold: &other}
		c.StopConditions = []any{"x"}
		c.Endpoint = &Endpoint{Backend: "a2a", BaseURL: "https://x", Options: map[string]any{"k": "v"}}
		c.Sections = map[string]any{"s": 1}
		for _, l := range []*[]string{&c.PluginIDs, &c.ActiveHookFilter, &c.AllowedTools, &c.AllowedToolPatterns, &c.ExcludedTools, &c.ExcludedToolPatterns, &c.Delegates} {
			*l = slices.Clone(*l)
		}
		return c
	}
	if c := clone(); !agentEqual(&base, &c) || !reflect.DeepEqual(base, c) {
		t.Fatal("a deep copy differs")
	}
	typ := reflect.TypeFor[AgentSpec]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		for _, change := range []string{"zero", "other"} {
			c := clone()
			v := reflect.ValueOf(&c).Elem().Field(i)
			switch {
			case change == "zero":
				v.SetZero()
			case v.Kind() == reflect.String:
				v.SetString(v.String() + "x")
			case v.Kind() == reflect.Uint64:
				v.SetUint(v.Uint() + 1)
			case v.Kind() == reflect.Slice:
				v.Set(reflect.Append(v, v.Index(0)))
			case v.Kind() == reflect.Map:
				v.SetMapIndex(reflect.ValueOf("new"), reflect.ValueOf(any(2)))
			case v.Kind() == reflect.Pointer: // the value it points to, one field deep
				v.Elem().Field(0).SetZero()
			}
			if reflect.DeepEqual(base, c) {
				continue // e.g. a pointer's first field already zero
			}
			if agentEqual(&base, &c) {
				t.Errorf("%s changed (%s): agentEqual still says equal", f.Name, change)
			}
		}
	}
	// nil is not empty, as DeepEqual has it.
	c := clone()
	c.AllowedTools = []string{}
	d := clone()
	d.AllowedTools = nil
	if agentEqual(&c, &d) {
		t.Error("nil and empty allowed_tools compare equal")
	}
}
