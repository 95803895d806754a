package registry

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func u32(v uint32) *uint32   { return &v }
func f64(v float64) *float64 { return &v }

// diagnose builds u on top of a valid base (provider p, model m, agent a)
// and returns the diagnostics, or nil when the set is valid.
func diagnose(t *testing.T, u Update) []Diagnostic {
	t.Helper()
	u.Providers = append([]Provider{provider("p")}, u.Providers...)
	u.Models = append([]ModelSpec{model("m", "p")}, u.Models...)
	_, err := Rebuild(nil, u)
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want ValidationError", err)
	}
	return ve.Diagnostics
}

func TestRules(t *testing.T) {
	withProvider := func(f func(*ProviderSpec)) Update {
		p := provider("x")
		f(&p.Spec)
		return Update{Providers: []Provider{p}}
	}
	withModel := func(f func(*ModelSpec)) Update {
		m := model("x", "p")
		f(&m)
		return Update{Models: []ModelSpec{m}}
	}
	withPool := func(f func(*PoolSpec)) Update {
		pl := pool("pl", "m")
		f(&pl)
		return Update{Pools: []PoolSpec{pl}}
	}
	withAgent := func(f func(*AgentSpec)) Update {
		a := agent("x", "m")
		f(&a)
		return Update{Agents: []AgentSpec{a}}
	}
	remote := func(f func(*Endpoint)) Update {
		return withAgent(func(a *AgentSpec) {
			a.ModelID = ""
			a.Endpoint = &Endpoint{Backend: "a2a", BaseURL: "https://agents.example.com/a2a", TimeoutMS: DefaultEndpointTimeoutMS,
				Auth: &EndpointAuth{Type: "bearer", Token: "t0ken"}}
			f(a.Endpoint)
		})
	}

	tests := []struct {
		name  string
		bad   Update
		good  Update
		code  string
		field string
		msg   string
	}{
		{"provider id empty", withProvider(func(p *ProviderSpec) { p.ID = "" }), withProvider(func(*ProviderSpec) {}),
			CodeRequired, "id", "provider '': id must not be empty"},
		{"provider adapter empty", withProvider(func(p *ProviderSpec) { p.Adapter = "" }), withProvider(func(p *ProviderSpec) { p.Adapter = "anthropic" }),
			CodeRequired, "adapter", "provider 'x': adapter must not be empty"},
		{"provider adapter unknown", withProvider(func(p *ProviderSpec) { p.Adapter = "antropic" }), withProvider(func(p *ProviderSpec) { p.Adapter = "ollama" }),
			CodeInvalidEnum, "adapter", `provider 'x': unknown adapter "antropic" (did you mean "anthropic"?)`},
		{"provider timeout zero", withProvider(func(p *ProviderSpec) { p.TimeoutSecs = 0 }), withProvider(func(p *ProviderSpec) { p.TimeoutSecs = 1 }),
			CodeInvalidEnum, "timeout_secs", "provider 'x': timeout_secs must be greater than 0"},
		{"provider base_url scheme", withProvider(func(p *ProviderSpec) { p.BaseURL = "ftp://example.com" }), withProvider(func(p *ProviderSpec) { p.BaseURL = "https://example.com/v1" }),
			CodeInvalidEndpoint, "base_url", `provider 'x': base_url "ftp://example.com" must use http or https`},
		{"provider base_url no host", withProvider(func(p *ProviderSpec) { p.BaseURL = "http:///v1" }), withProvider(func(p *ProviderSpec) { p.BaseURL = "http://127.0.0.1:8080/v1?api-version=1" }),
			CodeInvalidEndpoint, "base_url", `provider 'x': base_url "http:///v1" has no host`},

		{"provider anthropic_version not a date", withProvider(func(p *ProviderSpec) { p.Adapter, p.AdapterOptions.AnthropicVersion = "anthropic", "latest" }),
			withProvider(func(p *ProviderSpec) { p.Adapter, p.AdapterOptions.AnthropicVersion = "anthropic", "2023-06-01" }),
			CodeInvalidDate, "adapter_options.anthropic_version", `provider 'x': adapter_options.anthropic_version "latest" is not a date (YYYY-MM-DD)`},
		{"provider anthropic_version on openai", withProvider(func(p *ProviderSpec) { p.Adapter, p.AdapterOptions.AnthropicVersion = "ollama", "2023-06-01" }),
			withProvider(func(p *ProviderSpec) { p.Adapter = "ollama" }),
			CodeInvalidEnum, "adapter_options.anthropic_version", `provider 'x': adapter_options.anthropic_version is for the anthropic adapter, not "ollama"`},
		{"model sampling unknown", withModel(func(m *ModelSpec) { m.Sampling = "strip" }), withModel(func(m *ModelSpec) { m.Sampling = SamplingDrop }),
			CodeInvalidEnum, "sampling", `model 'x': sampling "strip" is not pass, drop or refuse`},
		{"model thinking unknown", withModel(func(m *ModelSpec) { m.Thinking = "always" }), withModel(func(m *ModelSpec) { m.Thinking = ThinkingAdaptive }),
			CodeInvalidEnum, "thinking", `model 'x': thinking "always" is not budget or adaptive`},
		{"model provider_id empty", withModel(func(m *ModelSpec) { m.ProviderID = "" }), withModel(func(*ModelSpec) {}),
			CodeRequired, "provider_id", "model 'x': provider_id must not be empty"},
		{"model upstream empty", withModel(func(m *ModelSpec) { m.UpstreamModel = "" }), withModel(func(m *ModelSpec) { m.UpstreamModel = "gpt-4o" }),
			CodeRequired, "upstream_model", "model 'x': upstream_model must not be empty"},
		{"model context_window zero", withModel(func(m *ModelSpec) { m.ContextWindow = u32(0) }), withModel(func(m *ModelSpec) { m.ContextWindow = u32(1) }),
			CodeInvalidTokenLimit, "context_window", "model 'x': context_window must be greater than 0"},
		{"model max_output zero", withModel(func(m *ModelSpec) { m.MaxOutputTokens = u32(0) }), withModel(func(m *ModelSpec) { m.MaxOutputTokens = u32(4096) }),
			CodeInvalidTokenLimit, "max_output_tokens", "model 'x': max_output_tokens must be greater than 0"},
		{"model max_output over window",
			withModel(func(m *ModelSpec) { m.ContextWindow, m.MaxOutputTokens = u32(8192), u32(8193) }),
			withModel(func(m *ModelSpec) { m.ContextWindow, m.MaxOutputTokens = u32(8192), u32(8192) }),
			CodeInvalidTokenLimit, "max_output_tokens", "model 'x': max_output_tokens (8193) must not exceed context_window (8192)"},
		{"model cutoff not a date", withModel(func(m *ModelSpec) { m.KnowledgeCutoff = "2024-02-30" }), withModel(func(m *ModelSpec) { m.KnowledgeCutoff = "2024-02-29" }),
			CodeInvalidDate, "knowledge_cutoff", `model 'x': knowledge_cutoff "2024-02-30" is not a calendar date (YYYY-MM or YYYY-MM-DD)`},
		{"model cutoff month 13", withModel(func(m *ModelSpec) { m.KnowledgeCutoff = "2024-13" }), withModel(func(m *ModelSpec) { m.KnowledgeCutoff = "2024-12" }),
			CodeInvalidDate, "knowledge_cutoff", `model 'x': knowledge_cutoff "2024-13" is not a calendar date (YYYY-MM or YYYY-MM-DD)`},
		{"model cutoff free text", withModel(func(m *ModelSpec) { m.KnowledgeCutoff = "early 2024" }), withModel(func(m *ModelSpec) { m.KnowledgeCutoff = "2024-01-01" }),
			CodeInvalidDate, "knowledge_cutoff", `model 'x': knowledge_cutoff "early 2024" is not a calendar date (YYYY-MM or YYYY-MM-DD)`},
		{"model price negative", withModel(func(m *ModelSpec) { m.InputTokenPricePerMillionUSD = f64(-1) }), withModel(func(m *ModelSpec) { m.InputTokenPricePerMillionUSD = f64(0) }),
			CodeInvalidPrice, "input_token_price_per_million_usd", "model 'x': input_token_price_per_million_usd must be a finite number >= 0"},
		{"model price NaN", withModel(func(m *ModelSpec) { m.OutputTokenPricePerMillionUSD = f64(math.NaN()) }), withModel(func(m *ModelSpec) { m.OutputTokenPricePerMillionUSD = f64(15) }),
			CodeInvalidPrice, "output_token_price_per_million_usd", "model 'x': output_token_price_per_million_usd must be a finite number >= 0"},
		{"model price infinite", withModel(func(m *ModelSpec) { m.OutputTokenPricePerMillionUSD = f64(math.Inf(1)) }), withModel(func(m *ModelSpec) { m.OutputTokenPricePerMillionUSD = f64(0.5) }),
			CodeInvalidPrice, "output_token_price_per_million_usd", "model 'x': output_token_price_per_million_usd must be a finite number >= 0"},
		{"model duplicate modality",
			withModel(func(m *ModelSpec) { m.Modalities.Input = []Modality{ModalityText, ModalityImage, ModalityText} }),
			withModel(func(m *ModelSpec) { m.Modalities.Input = []Modality{ModalityText, ModalityImage} }),
			CodeInvalidModality, "modalities.input.2", `model 'x': duplicate modality "text" in modalities.input`},
		{"model unknown modality",
			withModel(func(m *ModelSpec) { m.Modalities.Output = []Modality{"smell"} }),
			withModel(func(m *ModelSpec) { m.Modalities.Output = []Modality{ModalityAudio} }),
			CodeInvalidModality, "modalities.output.0", `model 'x': unknown modality "smell" in modalities.output (want text, image, audio, video or pdf)`},

		{"pool no members", withPool(func(p *PoolSpec) { p.Members = nil }), withPool(func(*PoolSpec) {}),
			CodePoolNoMembers, "members", "model pool 'pl': members must not be empty"},
		{"pool zero weight", withPool(func(p *PoolSpec) { p.Members[0].Weight = u32(0) }), withPool(func(p *PoolSpec) { p.Members[0].Weight = u32(3) }),
			CodePoolInvalidWeight, "members.0.weight", "model pool 'pl': members[0].weight must be greater than 0"},
		{"pool duplicate member",
			withPool(func(p *PoolSpec) { p.Members = append(p.Members, PoolMember{ModelID: "m", Role: RoleFailoverOnly}) }),
			Update{Models: []ModelSpec{model("m2", "p")}, Pools: []PoolSpec{{ID: "pl", Members: []PoolMember{{ModelID: "m", Role: RoleMember}, {ModelID: "m2", Role: RoleFailoverOnly}}}}},
			CodePoolDuplicateMember, "members.1.model_id", "model pool 'pl': model 'm' is a member more than once"},
		{"pool only failover members",
			withPool(func(p *PoolSpec) { p.Members[0].Role = RoleFailoverOnly }),
			withPool(func(p *PoolSpec) { p.Members[0].Role = RoleMember }),
			CodePoolNoMembers, "members", "model pool 'pl': at least one member must have role member (all are failover_only)"},
		{"pool member model empty", withPool(func(p *PoolSpec) { p.Members[0].ModelID = "" }), withPool(func(*PoolSpec) {}),
			CodeRequired, "members.0.model_id", "model pool 'pl': members[0].model_id must not be empty"},
		{"pool bad role", withPool(func(p *PoolSpec) { p.Members[0].Role = "backup" }), withPool(func(*PoolSpec) {}),
			CodeInvalidEnum, "members.0.role", `model pool 'pl': members[0].role "backup" is not member or failover_only`},
		{"pool bad home", withPool(func(p *PoolSpec) { p.Routing.Home = "random" }), withPool(func(p *PoolSpec) { p.Routing.Home = HomeRoundRobin }),
			CodeInvalidEnum, "routing.home", `model pool 'pl': routing.home "random" is not deterministic, round_robin or first_healthy`},
		{"pool id shared with model", Update{Pools: []PoolSpec{pool("m", "m")}}, Update{Pools: []PoolSpec{pool("m-pool", "m")}},
			CodeDuplicateID, "id", "model pool 'm' has the same id as a model (models and pools share one namespace)"},

		{"agent model_id empty", withAgent(func(a *AgentSpec) { a.ModelID = "" }), withAgent(func(*AgentSpec) {}),
			CodeRequired, "model_id", "agent 'x': model_id must not be empty"},
		{"agent id equals model id", Update{Agents: []AgentSpec{agent("m", "m")}}, Update{Agents: []AgentSpec{agent("m-agent", "m")}},
			CodeAmbiguousID, "id", "agent 'm' has the same id as a model or model pool (the gateway addresses all three by one name)"},
		{"agent empty delegate", withAgent(func(a *AgentSpec) { a.Delegates = []string{""} }), withAgent(func(a *AgentSpec) { a.Delegates = []string{"x"} }),
			CodeRequired, "delegates.0", "agent 'x': delegates must not contain an empty id"},
		{"agent reasoning budget zero",
			withAgent(func(a *AgentSpec) { a.ReasoningEffort = &ReasoningEffort{Level: EffortBudget} }),
			withAgent(func(a *AgentSpec) { a.ReasoningEffort = &ReasoningEffort{Level: EffortBudget, Budget: 1024} }),
			CodeInvalidReasoning, "reasoning_effort.budget", "agent 'x': reasoning_effort budget must be greater than 0"},
		{"agent reasoning level unknown",
			withAgent(func(a *AgentSpec) { a.ReasoningEffort = &ReasoningEffort{Level: "extreme"} }),
			withAgent(func(a *AgentSpec) { a.ReasoningEffort = &ReasoningEffort{Level: EffortMax} }),
			CodeInvalidReasoning, "reasoning_effort", `agent 'x': reasoning_effort "extreme" is not none, low, medium, high, max or {budget: N}`},
		{"agent compaction mode",
			withAgent(func(a *AgentSpec) { a.ContextPolicy = &ContextPolicy{CompactionMode: "squash"} }),
			withAgent(func(a *AgentSpec) { a.ContextPolicy = &ContextPolicy{CompactionMode: CompactionCompactToSafeFrontier} }),
			CodeInvalidEnum, "context_policy.compaction_mode", `agent 'x': context_policy.compaction_mode "squash" is not keep_recent_raw_suffix or compact_to_safe_frontier`},
		{"endpoint not http", remote(func(e *Endpoint) { e.BaseURL = "grpc://agents.example.com" }), remote(func(*Endpoint) {}),
			CodeInvalidEndpoint, "endpoint.base_url", `agent 'x': endpoint.base_url "grpc://agents.example.com" must use http or https`},
		{"endpoint no host", remote(func(e *Endpoint) { e.BaseURL = "https://" }), remote(func(e *Endpoint) { e.BaseURL = "http://10.0.0.1:8080" }),
			CodeInvalidEndpoint, "endpoint.base_url", `agent 'x': endpoint.base_url "https://" has no host`},
		{"endpoint query", remote(func(e *Endpoint) { e.BaseURL = "https://a.example.com/x?y=1" }), remote(func(e *Endpoint) { e.BaseURL = "https://a.example.com/x" }),
			CodeInvalidEndpoint, "endpoint.base_url", `agent 'x': endpoint.base_url "https://a.example.com/x?y=1" must not have a query or fragment`},
		{"endpoint fragment", remote(func(e *Endpoint) { e.BaseURL = "https://a.example.com/x#frag" }), remote(func(*Endpoint) {}),
			CodeInvalidEndpoint, "endpoint.base_url", `agent 'x': endpoint.base_url "https://a.example.com/x#frag" must not have a query or fragment`},
		{"endpoint backend empty", remote(func(e *Endpoint) { e.Backend = "" }), remote(func(e *Endpoint) { e.Backend = "acp" }),
			CodeInvalidEndpoint, "endpoint.backend", "agent 'x': endpoint.backend must not be empty"},
		{"endpoint token empty", remote(func(e *Endpoint) { e.Auth.Token = "" }), remote(func(e *Endpoint) { e.Auth = nil }),
			CodeInvalidEndpoint, "endpoint.auth.token", "agent 'x': endpoint.auth.token must not be empty"},
		{"endpoint token redacted", remote(func(e *Endpoint) { e.Auth.Token = "***" }), remote(func(*Endpoint) {}),
			CodeInvalidEndpoint, "endpoint.auth.token", `agent 'x': endpoint.auth.token is the redaction placeholder "***", not a token`},
		{"endpoint auth type", remote(func(e *Endpoint) { e.Auth.Type = "basic" }), remote(func(*Endpoint) {}),
			CodeInvalidEndpoint, "endpoint.auth.type", `agent 'x': endpoint.auth.type "basic" is not supported (want bearer)`},

		// The six graph codes, each positioned at the referencing field.
		{"graph agent_missing_model", withAgent(func(a *AgentSpec) { a.ModelID = "ghost" }), withAgent(func(a *AgentSpec) { a.ModelID = "m" }),
			CodeAgentMissingModel, "model_id", "agent 'x' references missing model 'ghost'"},
		{"graph agent on pool", withAgent(func(a *AgentSpec) { a.ModelID = "pl" }), Update{Pools: []PoolSpec{pool("pl", "m")}, Agents: []AgentSpec{agent("x", "pl")}},
			CodeAgentMissingModel, "model_id", "agent 'x' references missing model 'pl'"},
		{"graph model_missing_provider", withModel(func(m *ModelSpec) { m.ProviderID = "ghost" }), withModel(func(m *ModelSpec) { m.ProviderID = "p" }),
			CodeModelMissingProvider, "provider_id", "model 'x' references missing provider 'ghost'"},
		{"graph model_pool_missing_model", withPool(func(p *PoolSpec) { p.Members = append(p.Members, PoolMember{ModelID: "ghost", Role: RoleMember}) }), withPool(func(*PoolSpec) {}),
			CodeModelPoolMissingModel, "members.1.model_id", "model pool 'pl' references missing model 'ghost'"},
		{"graph agent_missing_plugin", withAgent(func(a *AgentSpec) { a.PluginIDs = []string{"audit"} }), withAgent(func(a *AgentSpec) { a.PluginIDs = []string{} }),
			CodeAgentMissingPlugin, "plugin_ids.0", "agent 'x' uses missing plugin 'audit'"},
		{"graph agent_missing_delegate", withAgent(func(a *AgentSpec) { a.Delegates = []string{"helper"} }), Update{Agents: []AgentSpec{agent("x", "m"), agent("helper", "m")}},
			CodeAgentMissingDelegate, "delegates.0", "agent 'x' delegates to missing agent 'helper'"},
		{"graph agent_hook_filter_plugin_not_loaded", withAgent(func(a *AgentSpec) { a.ActiveHookFilter = []string{"audit"} }), withAgent(func(*AgentSpec) {}),
			CodeAgentHookFilterPluginNotLoaded, "active_hook_filter.0", "agent 'x' active hook filter references unloaded plugin 'audit'"},
		{"remote agent needs no model", withAgent(func(a *AgentSpec) { a.ModelID = "" }), remote(func(*Endpoint) {}),
			CodeRequired, "model_id", "agent 'x': model_id must not be empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			diags := diagnose(t, tt.bad)
			var found *Diagnostic
			for i := range diags {
				if diags[i].Code == tt.code && diags[i].Message == tt.msg {
					found = &diags[i]
				}
			}
			if found == nil {
				t.Fatalf("want [%s] %q, got %v", tt.code, tt.msg, diags)
			}
			if found.Field != tt.field {
				t.Errorf("field = %q, want %q", found.Field, tt.field)
			}
			if found.Severity != SeverityError {
				t.Errorf("severity = %q", found.Severity)
			}
			if got := diagnose(t, tt.good); got != nil {
				t.Errorf("passing case reported %v", got)
			}
		})
	}
}

func TestGraphDiagnosticsCarryResourceAndDependency(t *testing.T) {
	diags := diagnose(t, Update{
		Pools:  []PoolSpec{pool("pl", "m", "gone")},
		Agents: []AgentSpec{{ID: "x", ModelID: "nope", PluginIDs: []string{"pa"}, ActiveHookFilter: []string{"pb"}, Delegates: []string{"d"}}},
	})
	want := map[string][2]Ref{
		CodeModelPoolMissingModel:          {{NSModelPools, "pl"}, {NSModels, "gone"}},
		CodeAgentMissingModel:              {{NSAgents, "x"}, {NSModels, "nope"}},
		CodeAgentMissingPlugin:             {{NSAgents, "x"}, {NSPlugins, "pa"}},
		CodeAgentHookFilterPluginNotLoaded: {{NSAgents, "x"}, {NSPlugins, "pb"}},
		CodeAgentMissingDelegate:           {{NSAgents, "x"}, {NSAgents, "d"}},
	}
	if len(diags) != len(want) {
		t.Fatalf("got %d diagnostics, want %d: %v", len(diags), len(want), diags)
	}
	for _, d := range diags {
		w, ok := want[d.Code]
		if !ok || d.Resource != w[0] || d.DependsOn == nil || *d.DependsOn != w[1] {
			t.Errorf("%s: resource %v depends_on %v, want %v", d.Code, d.Resource, d.DependsOn, w)
		}
	}
}

func TestEveryProblemReported(t *testing.T) {
	diags := diagnose(t, Update{
		Models: []ModelSpec{{ID: "bad", ProviderID: "ghost", UpstreamModel: "", ContextWindow: u32(0), KnowledgeCutoff: "soon"}},
		Agents: []AgentSpec{agent("a1", "ghost1"), agent("a2", "ghost2")},
	})
	if len(diags) != 6 {
		t.Fatalf("got %d diagnostics, want 6:\n%v", len(diags), diags)
	}
}

func TestSecretsNotInDiagnostics(t *testing.T) {
	p := provider("x")
	p.Spec.APIKey = "sk-supersecret"
	p.Spec.Adapter = "nope"
	p.Spec.AdapterOptions.Headers = map[string]string{"Authorization": "Bearer sk-headersecret"}
	a := agent("r", "")
	a.Endpoint = &Endpoint{Backend: "a2a", BaseURL: "ftp://x", Auth: &EndpointAuth{Type: "basic", Token: "tok-secret"}}
	_, err := Rebuild(nil, Update{Providers: []Provider{p}, Agents: []AgentSpec{a}})
	if err == nil {
		t.Fatal("want errors")
	}
	for _, secret := range []string{"sk-supersecret", "sk-headersecret", "tok-secret"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error leaks %q: %v", secret, err)
		}
	}
}

func TestAdapters(t *testing.T) {
	for _, name := range []string{"openai", "anthropic", "mock", "ollama", "vllm", "groq", "openrouter", "deepseek", "together"} {
		if _, ok := LookupAdapter(name); !ok {
			t.Errorf("adapter %q unknown", name)
		}
	}
	if a, _ := LookupAdapter("ollama"); a.Kind != KindOpenAI || a.DefaultBaseURL == "" {
		t.Errorf("ollama = %+v, want openai kind with a default base_url", a)
	}
	p := ProviderSpec{Adapter: "groq"}
	if got := p.EffectiveBaseURL(); got != "https://api.groq.com/openai/v1" {
		t.Errorf("EffectiveBaseURL = %q", got)
	}
	p.BaseURL = "http://proxy:8080/v1"
	if got := p.EffectiveBaseURL(); got != "http://proxy:8080/v1" {
		t.Errorf("EffectiveBaseURL = %q", got)
	}
}

func TestProviderSpecEqual(t *testing.T) {
	a := ProviderSpec{ID: "p", Adapter: "openai", APIKey: "k", TimeoutSecs: 30, AdapterOptions: AdapterOptions{Headers: map[string]string{"X": "1"}}}
	b := a
	b.AdapterOptions.Headers = map[string]string{"X": "1"}
	if !a.Equal(b) {
		t.Fatal("equal specs differ")
	}
	for name, change := range map[string]func(*ProviderSpec){
		"key":     func(p *ProviderSpec) { p.APIKey = "k2" },
		"url":     func(p *ProviderSpec) { p.BaseURL = "http://x" },
		"timeout": func(p *ProviderSpec) { p.TimeoutSecs = 31 },
		"header":  func(p *ProviderSpec) { p.AdapterOptions.Headers = map[string]string{"X": "2"} },
		"adapter": func(p *ProviderSpec) { p.Adapter = "groq" },
	} {
		c := a
		change(&c)
		if a.Equal(c) {
			t.Errorf("%s change not detected", name)
		}
	}
}

// TestGraphSuggestsClosestID checks that a reference to a missing resource
// names the closest existing id of the kinds it may refer to, and nothing
// when no id is close or the close one is of another kind.
func TestGraphSuggestsClosestID(t *testing.T) {
	base := Update{
		Providers: []Provider{provider("openai"), provider("anthropic")},
		Models:    []ModelSpec{model("gpt-4o", "openai"), model("claude", "anthropic")},
		Pools:     []PoolSpec{pool("fast-pool", "gpt-4o")},
		Agents:    []AgentSpec{agent("helper", "gpt-4o")},
	}
	tests := []struct {
		name string
		bad  func(*Update)
		msg  string
	}{
		{"provider", func(u *Update) { u.Models = append(u.Models, model("x", "opnai")) },
			"model 'x' references missing provider 'opnai' (did you mean 'openai'?)"},
		{"model of an agent", func(u *Update) { u.Agents = append(u.Agents, agent("x", "gtp-4o")) },
			"agent 'x' references missing model 'gtp-4o' (did you mean 'gpt-4o'?)"},
		{"pool of an agent", func(u *Update) { u.Agents = append(u.Agents, agent("x", "fast-pol")) },
			"agent 'x' references missing model 'fast-pol' (did you mean 'fast-pool'?)"},
		{"pool member is a model, never a pool", func(u *Update) { u.Pools = append(u.Pools, pool("p2", "fast-pol")) },
			"model pool 'p2' references missing model 'fast-pol'"},
		{"delegate", func(u *Update) {
			a := agent("x", "gpt-4o")
			a.Delegates = []string{"helpr"}
			u.Agents = append(u.Agents, a)
		}, "agent 'x' delegates to missing agent 'helpr' (did you mean 'helper'?)"},
		{"nothing close", func(u *Update) { u.Agents = append(u.Agents, agent("x", "llama")) },
			"agent 'x' references missing model 'llama'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := base
			u.Models, u.Pools, u.Agents = slices.Clone(u.Models), slices.Clone(u.Pools), slices.Clone(u.Agents)
			tt.bad(&u)
			_, err := Rebuild(nil, u)
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Diagnostics) != 1 || ve.Diagnostics[0].Message != tt.msg {
				t.Fatalf("got %v, want one diagnostic %q", err, tt.msg)
			}
		})
	}
}
