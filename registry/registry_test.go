package registry

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeExecutor is a hand-written executor; its tag tells instances apart.
type fakeExecutor struct{ tag string }

func (f *fakeExecutor) Name() string { return "fake" }

func provider(id string) Provider {
	return Provider{
		Spec:     ProviderSpec{ID: id, Adapter: "mock", TimeoutSecs: DefaultProviderTimeoutSecs},
		Executor: &fakeExecutor{tag: id},
	}
}

func model(id, providerID string) ModelSpec {
	return ModelSpec{ID: id, ProviderID: providerID, UpstreamModel: "upstream-" + id}
}

func agent(id, modelID string) AgentSpec {
	return AgentSpec{
		ID: id, ModelID: modelID, SystemPrompt: "s",
		MaxRounds: DefaultMaxRounds, MaxContinuationRetries: DefaultMaxContinuationRetries,
		AllowedToolPatterns: []string{"*"},
	}
}

func pool(id string, models ...string) PoolSpec {
	p := PoolSpec{ID: id, Routing: DefaultPoolRouting(), Switch: DefaultSwitchPolicy()}
	for _, m := range models {
		p.Members = append(p.Members, PoolMember{ModelID: m, Role: RoleMember})
	}
	return p
}

func mustBuild(t testing.TB, u Update) *Set {
	t.Helper()
	s, err := Rebuild(nil, u)
	if err != nil {
		t.Fatalf("Rebuild: %v", err)
	}
	return s
}

// seedSet is awaken's lifecycle fixture: agent a → model m → provider p.
func seedSet(t testing.TB) *Set {
	return mustBuild(t, Update{
		Providers: []Provider{provider("p")},
		Models:    []ModelSpec{model("m", "p")},
		Agents:    []AgentSpec{agent("a", "m")},
	})
}

// pooledSet adds a pool over models of two providers and an agent on it.
func pooledSet(t testing.TB) *Set {
	return mustBuild(t, Update{
		Providers: []Provider{provider("p"), provider("q")},
		Models:    []ModelSpec{model("m", "p"), model("n", "q")},
		Pools:     []PoolSpec{pool("fast", "m", "n")},
		Agents:    []AgentSpec{agent("a", "m"), agent("b", "fast")},
	})
}

func TestNewHandleStartsAtVersionOne(t *testing.T) {
	h := NewHandle(seedSet(t))
	if got := h.Version(); got != 1 {
		t.Fatalf("version = %d, want 1", got)
	}
	if got := h.Current().Set.AgentIDs(); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("agents = %v, want [a]", got)
	}
	if NewHandle(nil).Current().Set == nil {
		t.Fatal("NewHandle(nil) serves a nil set")
	}
}

func TestReplacePublishesNewVersion(t *testing.T) {
	h := NewHandle(seedSet(t))
	next := mustBuild(t, Update{Providers: []Provider{provider("p")}, Models: []ModelSpec{model("m", "p")}, Agents: []AgentSpec{agent("b", "m")}})
	if v := h.Replace(next); v != 2 {
		t.Fatalf("Replace version = %d, want 2", v)
	}
	snap := h.Current()
	if snap.Version != 2 || !slices.Equal(snap.Set.AgentIDs(), []string{"b"}) {
		t.Fatalf("snapshot = v%d %v, want v2 [b]", snap.Version, snap.Set.AgentIDs())
	}
}

func TestUpdateFailureAndNoOpKeepVersion(t *testing.T) {
	h := NewHandle(seedSet(t))
	before := h.Current()
	boom := errors.New("boom")
	if _, err := h.Update(func(*Set) (*Set, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if v, err := h.Update(func(cur *Set) (*Set, error) { return cur, nil }); err != nil || v != 1 {
		t.Fatalf("no-op update = v%d, %v; want v1, nil", v, err)
	}
	if h.Current() != before {
		t.Fatal("a failed or no-op update published a new snapshot")
	}
}

func TestRemoveProviderBlockedByDependentAgent(t *testing.T) {
	h := NewHandle(seedSet(t))
	pv, err := h.PreviewRemoveProvider("p")
	if err != nil {
		t.Fatal(err)
	}
	want := RemovalPreview{
		ProviderID: "p", ModelIDs: []string{"m"}, PoolIDs: []string{}, AgentIDs: []string{"a"},
		BlockIfReferencedAllowed: false, CascadeUnusedModelsAllowed: false,
	}
	if fmt.Sprint(pv) != fmt.Sprint(want) {
		t.Fatalf("preview = %+v, want %+v", pv, want)
	}
	for _, policy := range []RemovalPolicy{BlockIfReferenced, CascadeUnusedModels} {
		_, err := h.RemoveProvider("p", policy)
		var inUse *ProviderInUseError
		if !errors.As(err, &inUse) {
			t.Fatalf("%v: err = %v, want ProviderInUseError", policy, err)
		}
		if got, want := err.Error(), `provider 'p' is still referenced by models ["m"] and agents ["a"]`; got != want {
			t.Fatalf("%v: error = %q, want %q", policy, got, want)
		}
	}
	if h.Version() != 1 {
		t.Fatalf("blocked removal bumped the version to %d", h.Version())
	}
}

func TestRemoveProviderCascadesUnusedModel(t *testing.T) {
	base := seedSet(t)
	set, err := Rebuild(base, Update{Providers: []Provider{provider("p")}, Models: []ModelSpec{model("m", "p")}})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandle(set)
	if _, err := h.RemoveProvider("p", BlockIfReferenced); err == nil {
		t.Fatal("BlockIfReferenced removed a provider with a bound model")
	}
	impact, err := h.RemoveProvider("p", CascadeUnusedModels)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(impact.RemovedModelIDs, []string{"m"}) || len(impact.AffectedAgentIDs) != 0 {
		t.Fatalf("impact = %+v", impact)
	}
	cur := h.Current()
	if _, ok := cur.Set.Provider("p"); ok {
		t.Fatal("provider p still present")
	}
	if _, ok := cur.Set.Model("m"); ok {
		t.Fatal("model m still present")
	}
	if cur.Version != 2 {
		t.Fatalf("version = %d, want 2", cur.Version)
	}
}

func TestRemoveUnreferencedProviderWithBlockPolicy(t *testing.T) {
	set := mustBuild(t, Update{Providers: []Provider{provider("p"), provider("spare")}, Models: []ModelSpec{model("m", "p")}})
	h := NewHandle(set)
	impact, err := h.RemoveProvider("spare", BlockIfReferenced)
	if err != nil {
		t.Fatal(err)
	}
	if impact.ProviderID != "spare" || len(impact.RemovedModelIDs) != 0 {
		t.Fatalf("impact = %+v", impact)
	}
	if _, err := h.RemoveProvider("spare", BlockIfReferenced); err == nil || err.Error() != "provider not found: spare" {
		t.Fatalf("second removal: err = %v, want provider not found: spare", err)
	}
}

func TestReplaceProviderKeepsModelAndAgent(t *testing.T) {
	h := NewHandle(seedSet(t))
	next := provider("p")
	next.Spec.BaseURL = "http://127.0.0.1:9/v1"
	v, err := h.ReplaceProvider(next)
	if err != nil || v != 2 {
		t.Fatalf("ReplaceProvider = v%d, %v; want v2", v, err)
	}
	s := h.Current().Set
	p, _ := s.Provider("p")
	if p.Executor != next.Executor || p.Spec.BaseURL != next.Spec.BaseURL {
		t.Fatal("provider was not replaced")
	}
	if _, ok := s.Model("m"); !ok {
		t.Fatal("model m lost")
	}
	if _, ok := s.Agent("a"); !ok {
		t.Fatal("agent a lost")
	}
	if _, err := h.ReplaceProvider(provider("nope")); err == nil || err.Error() != "provider not found: nope" {
		t.Fatalf("replace missing: err = %v", err)
	}
}

func TestRegisterProviderTwiceFails(t *testing.T) {
	h := NewHandle(seedSet(t))
	_, err := h.RegisterProvider(provider("p"))
	var exists *ProviderExistsError
	if !errors.As(err, &exists) || err.Error() != "provider already registered: p" {
		t.Fatalf("err = %v, want provider already registered: p", err)
	}
	if h.Version() != 1 {
		t.Fatal("failed registration bumped the version")
	}
}

func TestRegisterInvalidProviderPublishesNothing(t *testing.T) {
	h := NewHandle(seedSet(t))
	bad := provider("bad")
	bad.Spec.Adapter = "opnai"
	_, err := h.RegisterProvider(bad)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want ValidationError", err)
	}
	if !strings.Contains(err.Error(), `unknown adapter "opnai" (did you mean "openai"?)`) {
		t.Fatalf("err = %v", err)
	}
	if h.Version() != 1 {
		t.Fatal("invalid registration bumped the version")
	}
}

func TestConcurrentRegistrationsAllSurvive(t *testing.T) {
	h := NewHandle(seedSet(t))
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if _, err := h.RegisterProvider(provider(fmt.Sprintf("p-%d", i))); err != nil {
				t.Errorf("register p-%d: %v", i, err)
			}
		})
	}
	wg.Wait()
	snap := h.Current()
	for i := range 16 {
		if _, ok := snap.Set.Provider(fmt.Sprintf("p-%d", i)); !ok {
			t.Errorf("provider p-%d lost to a concurrent update", i)
		}
	}
	if snap.Version != 17 {
		t.Fatalf("version = %d, want 17 (1 + 16 publishes)", snap.Version)
	}
}

func TestReadersNotBlockedWhileUpdateBuilds(t *testing.T) {
	h := NewHandle(seedSet(t))
	building := make(chan struct{})
	release := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.Update(func(cur *Set) (*Set, error) {
			close(building)
			<-release
			return NewDraft(cur).Build()
		})
	}()
	<-building
	// The writer holds its lock and is parked; readers must still answer.
	read := make(chan uint64)
	go func() { read <- h.Current().Version }()
	select {
	case v := <-read:
		if v != 1 {
			t.Fatalf("reader saw v%d during the build, want v1", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reader blocked behind an update")
	}
	close(release)
	<-done
	if h.Version() != 2 {
		t.Fatalf("version after update = %d, want 2", h.Version())
	}
}

// awaken's RegistrySetDraft::from_set drops pools; every lifecycle
// operation here must keep them.
func TestLifecycleKeepsPools(t *testing.T) {
	ops := map[string]func(h *Handle) error{
		"register": func(h *Handle) error { _, err := h.RegisterProvider(provider("r")); return err },
		"replace":  func(h *Handle) error { _, err := h.ReplaceProvider(provider("q")); return err },
		"remove": func(h *Handle) error {
			if _, err := h.RegisterProvider(provider("spare")); err != nil {
				return err
			}
			_, err := h.RemoveProvider("spare", BlockIfReferenced)
			return err
		},
		"rebuild-keeps-tools": func(h *Handle) error {
			_, err := h.Update(func(cur *Set) (*Set, error) { return NewDraft(cur).Build() })
			return err
		},
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			h := NewHandle(pooledSet(t))
			if err := op(h); err != nil {
				t.Fatal(err)
			}
			p, ok := h.Current().Set.Pool("fast")
			if !ok || len(p.Members) != 2 {
				t.Fatalf("pool fast = %+v, %v; want kept with 2 members", p, ok)
			}
		})
	}
}

func TestPreviewCountsAgentsThroughPools(t *testing.T) {
	s := pooledSet(t)
	pv, err := s.PreviewRemoveProvider("q")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pv.ModelIDs, []string{"n"}) || !slices.Equal(pv.PoolIDs, []string{"fast"}) || !slices.Equal(pv.AgentIDs, []string{"b"}) {
		t.Fatalf("preview = %+v, want models [n], pools [fast], agents [b]", pv)
	}
	if pv.BlockIfReferencedAllowed || pv.CascadeUnusedModelsAllowed {
		t.Fatalf("preview allows removal: %+v", pv)
	}
	h := NewHandle(s)
	_, err = h.RemoveProvider("q", CascadeUnusedModels)
	want := `provider 'q' is still referenced by models ["n"] and agents ["b"] through model pools ["fast"]`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

func TestPreviewSortsAndDeduplicates(t *testing.T) {
	s := mustBuild(t, Update{
		Providers: []Provider{provider("p")},
		Models:    []ModelSpec{model("z", "p"), model("a", "p"), model("m", "p")},
		Pools:     []PoolSpec{pool("pl", "z", "a")},
		Agents:    []AgentSpec{agent("y", "z"), agent("b", "a"), agent("c", "pl"), agent("d", "pl")},
	})
	pv, err := s.PreviewRemoveProvider("p")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pv.ModelIDs, []string{"a", "m", "z"}) || !slices.Equal(pv.AgentIDs, []string{"b", "c", "d", "y"}) {
		t.Fatalf("preview = %+v", pv)
	}
	if _, err := s.PreviewRemoveProvider("nope"); err == nil || err.Error() != "provider not found: nope" {
		t.Fatalf("err = %v", err)
	}
}

func TestPreviewIgnoresRemoteAgents(t *testing.T) {
	remote := AgentSpec{ID: "r", ModelID: "m", Endpoint: &Endpoint{Backend: "a2a", BaseURL: "https://agents.example/a2a", TimeoutMS: DefaultEndpointTimeoutMS}}
	s := mustBuild(t, Update{Providers: []Provider{provider("p")}, Models: []ModelSpec{model("m", "p")}, Agents: []AgentSpec{remote}})
	pv, _ := s.PreviewRemoveProvider("p")
	if len(pv.AgentIDs) != 0 || !pv.CascadeUnusedModelsAllowed {
		t.Fatalf("remote agent counted: %+v", pv)
	}
}

func TestRebuildReplacesWholesaleKeepsToolsAndPlugins(t *testing.T) {
	d := NewDraft(pooledSet(t))
	d.Tools["search"] = "tool"
	d.Plugins["audit"] = "plugin"
	base, err := d.Build()
	if err != nil {
		t.Fatal(err)
	}
	next, err := Rebuild(base, Update{
		Providers: []Provider{provider("x")},
		Models:    []ModelSpec{model("mx", "x")},
		Agents:    []AgentSpec{agent("ax", "mx")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := next.ProviderIDs(); !slices.Equal(got, []string{"x"}) {
		t.Errorf("providers = %v, want [x]", got)
	}
	if got := next.PoolIDs(); len(got) != 0 {
		t.Errorf("pools = %v, want none (replaced wholesale)", got)
	}
	if got := next.ToolIDs(); !slices.Equal(got, []string{"search"}) {
		t.Errorf("tools = %v, want [search]", got)
	}
	if got := next.PluginIDs(); !slices.Equal(got, []string{"audit"}) {
		t.Errorf("plugins = %v, want [audit]", got)
	}
	// base is untouched: sets are immutable.
	if got := base.ProviderIDs(); !slices.Equal(got, []string{"p", "q"}) {
		t.Errorf("base providers = %v, changed by Rebuild", got)
	}
}

func TestRebuildRejectsDuplicateIDs(t *testing.T) {
	_, err := Rebuild(nil, Update{Providers: []Provider{provider("p"), provider("p")}})
	if err == nil || err.Error() != "registry build failed: provider already registered: p" {
		t.Fatalf("err = %v", err)
	}
}

func TestDraftCopiesEverything(t *testing.T) {
	base := pooledSet(t)
	d := NewDraft(base)
	if len(d.Providers) != 2 || len(d.Models) != 2 || len(d.Pools) != 1 || len(d.Agents) != 2 {
		t.Fatalf("draft = %d providers, %d models, %d pools, %d agents", len(d.Providers), len(d.Models), len(d.Pools), len(d.Agents))
	}
	if d.Providers["p"].Spec.Adapter != "mock" {
		t.Fatal("provider metadata not copied")
	}
	delete(d.Models, "m")
	d.Agents["new"] = agent("new", "n")
	if _, ok := base.Model("m"); !ok {
		t.Fatal("editing the draft changed the base set")
	}
	if _, ok := base.Agent("new"); ok {
		t.Fatal("editing the draft changed the base set")
	}
}

func TestValidationErrorFormatAndDedup(t *testing.T) {
	_, err := Rebuild(nil, Update{
		Models: []ModelSpec{model("m", "missing")},
		Agents: []AgentSpec{agent("a", "m"), agent("b", "ghost")},
	})
	want := "registry validation failed: model 'm' references missing provider 'missing'; agent 'b' references missing model 'ghost'"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant  %s", err, want)
	}
	var ve *ValidationError
	errors.As(err, &ve)
	if len(ve.Diagnostics) != 2 {
		t.Fatalf("diagnostics = %v, want 2 (deduplicated)", ve.Diagnostics)
	}
	d := ve.Diagnostics[0]
	if d.Code != CodeModelMissingProvider || d.Severity != SeverityError || d.Resource != (Ref{NSModels, "m"}) ||
		d.DependsOn == nil || *d.DependsOn != (Ref{NSProviders, "missing"}) || d.Field != "provider_id" {
		t.Fatalf("diagnostic = %+v", d)
	}
}

func TestDraftIsBuiltOnce(t *testing.T) {
	d := NewDraft(seedSet(t))
	s, err := d.Build()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("writing to a built draft did not panic")
		}
		if _, ok := s.Agent("late"); ok {
			t.Fatal("a write to the draft after Build changed the set")
		}
	}()
	d.Agents["late"] = agent("late", "m")
}
