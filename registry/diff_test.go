package registry

import (
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
