package config

import (
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/awakend/awakend/registry"
)

// The schemas of the four resources and their parts, with awaken's field
// names and defaults. Each entry decodes one field; defaults are set before
// decoding. The tables are built once and only read.

type (
	provider      = registry.ProviderSpec
	model         = registry.ModelSpec
	pool          = registry.PoolSpec
	member        = registry.PoolMember
	agent         = registry.AgentSpec
	contextPolicy = registry.ContextPolicy
)

var providerSchema = newSchema(map[string]field[provider]{
	"id":           func(d *decoder, n *yaml.Node, p *provider) { p.ID = d.str(n) },
	"adapter":      func(d *decoder, n *yaml.Node, p *provider) { p.Adapter = d.str(n) },
	"api_key":      func(d *decoder, n *yaml.Node, p *provider) { p.APIKey = d.str(n) }, // "" is absent
	"base_url":     func(d *decoder, n *yaml.Node, p *provider) { p.BaseURL = d.str(n) },
	"timeout_secs": func(d *decoder, n *yaml.Node, p *provider) { p.TimeoutSecs = d.u64(n) },
	"adapter_options": func(d *decoder, n *yaml.Node, p *provider) {
		decodeMapping(d, n, adapterOptionsSchema, &p.AdapterOptions)
	},
}, "id", "adapter")

var adapterOptionsSchema = newSchema(map[string]field[registry.AdapterOptions]{
	"headers": func(d *decoder, n *yaml.Node, o *registry.AdapterOptions) { o.Headers = d.stringMap(n) },
	"mock": func(d *decoder, n *yaml.Node, o *registry.AdapterOptions) {
		o.Mock = &registry.MockOptions{}
		decodeMapping(d, n, mockOptionsSchema, o.Mock)
	},
	"anthropic_version": func(d *decoder, n *yaml.Node, o *registry.AdapterOptions) { o.AnthropicVersion = d.str(n) },
})

var mockOptionsSchema = newSchema(map[string]field[registry.MockOptions]{
	"latency_ms":     func(d *decoder, n *yaml.Node, m *registry.MockOptions) { m.LatencyMS = d.u64(n) },
	"chunk_delay_ms": func(d *decoder, n *yaml.Node, m *registry.MockOptions) { m.ChunkDelayMS = d.u64(n) },
	"reply":          func(d *decoder, n *yaml.Node, m *registry.MockOptions) { m.Reply = d.str(n) },
	"fail_status": func(d *decoder, n *yaml.Node, m *registry.MockOptions) {
		if v, ok := d.uint(n, 16); ok {
			m.FailStatus = int(v)
		}
	},
})

func (d *decoder) provider(n *yaml.Node, p *provider) (id string) {
	p.TimeoutSecs = registry.DefaultProviderTimeoutSecs
	decodeMapping(d, n, providerSchema, p)
	return p.ID
}

var modelSchema = newSchema(map[string]field[model]{
	"id":                                 func(d *decoder, n *yaml.Node, m *model) { m.ID = d.str(n) },
	"provider_id":                        func(d *decoder, n *yaml.Node, m *model) { m.ProviderID = d.str(n) },
	"upstream_model":                     func(d *decoder, n *yaml.Node, m *model) { m.UpstreamModel = d.str(n) },
	"context_window":                     func(d *decoder, n *yaml.Node, m *model) { m.ContextWindow = d.optU32(n) },
	"max_output_tokens":                  func(d *decoder, n *yaml.Node, m *model) { m.MaxOutputTokens = d.optU32(n) },
	"modalities":                         func(d *decoder, n *yaml.Node, m *model) { decodeMapping(d, n, modalitiesSchema, &m.Modalities) },
	"knowledge_cutoff":                   func(d *decoder, n *yaml.Node, m *model) { m.KnowledgeCutoff = d.str(n) },
	"input_token_price_per_million_usd":  func(d *decoder, n *yaml.Node, m *model) { m.InputTokenPricePerMillionUSD = d.optFloat(n) },
	"output_token_price_per_million_usd": func(d *decoder, n *yaml.Node, m *model) { m.OutputTokenPricePerMillionUSD = d.optFloat(n) },
	"sampling":                           func(d *decoder, n *yaml.Node, m *model) { m.Sampling = registry.SamplingRule(d.str(n)) },
	"thinking":                           func(d *decoder, n *yaml.Node, m *model) { m.Thinking = registry.ThinkingStyle(d.str(n)) },
}, "id", "provider_id", "upstream_model")

var modalitiesSchema = newSchema(map[string]field[registry.Modalities]{
	"input":  func(d *decoder, n *yaml.Node, m *registry.Modalities) { m.Input = d.modalities(n) },
	"output": func(d *decoder, n *yaml.Node, m *registry.Modalities) { m.Output = d.modalities(n) },
})

func (d *decoder) modalities(n *yaml.Node) []registry.Modality {
	names := d.strs(n)
	ms := make([]registry.Modality, len(names))
	for i, name := range names {
		ms[i] = registry.Modality(name)
	}
	return ms
}

func (d *decoder) model(n *yaml.Node, m *model) (id string) {
	decodeMapping(d, n, modelSchema, m)
	return m.ID
}

var poolSchema = newSchema(map[string]field[pool]{
	"id":      func(d *decoder, n *yaml.Node, p *pool) { p.ID = d.str(n) },
	"members": func(d *decoder, n *yaml.Node, p *pool) { p.Members = d.members(n) },
	"routing": func(d *decoder, n *yaml.Node, p *pool) { decodeMapping(d, n, routingSchema, &p.Routing) },
	"switch":  func(d *decoder, n *yaml.Node, p *pool) { decodeMapping(d, n, switchSchema, &p.Switch) },
}, "id", "members")

var memberSchema = newSchema(map[string]field[member]{
	"model_id": func(d *decoder, n *yaml.Node, m *member) { m.ModelID = d.str(n) },
	"weight":   func(d *decoder, n *yaml.Node, m *member) { m.Weight = d.optU32(n) },
	"role":     func(d *decoder, n *yaml.Node, m *member) { m.Role = registry.MemberRole(d.str(n)) },
}, "model_id")

var routingSchema = newSchema(map[string]field[registry.PoolRouting]{
	"home": func(d *decoder, n *yaml.Node, r *registry.PoolRouting) { r.Home = registry.HomeStrategy(d.str(n)) },
	"sticky_scope": func(d *decoder, n *yaml.Node, r *registry.PoolRouting) {
		r.StickyScope = registry.StickyScope(d.str(n))
	},
})

var switchSchema = newSchema(map[string]field[registry.SwitchPolicy]{
	"on_circuit_open":                  func(d *decoder, n *yaml.Node, s *registry.SwitchPolicy) { s.OnCircuitOpen = d.boolean(n) },
	"on_quota":                         func(d *decoder, n *yaml.Node, s *registry.SwitchPolicy) { s.OnQuota = d.boolean(n) },
	"quota_retry_after_threshold_secs": func(d *decoder, n *yaml.Node, s *registry.SwitchPolicy) { s.QuotaRetryAfterThresholdSecs = d.optU64(n) },
	"on_permanent":                     func(d *decoder, n *yaml.Node, s *registry.SwitchPolicy) { s.OnPermanent = d.boolean(n) },
	"max_switches_per_session":         func(d *decoder, n *yaml.Node, s *registry.SwitchPolicy) { s.MaxSwitchesPerSession = d.optU32(n) },
})

func (d *decoder) pool(n *yaml.Node, p *pool) (id string) {
	p.Routing, p.Switch = registry.DefaultPoolRouting(), registry.DefaultSwitchPolicy()
	decodeMapping(d, n, poolSchema, p)
	return p.ID
}

func (d *decoder) members(n *yaml.Node) []member {
	n = d.deref(n)
	ms := make([]member, 0, len(n.Content))
	d.list(n, "a list of members", func(_ int, e *yaml.Node) {
		m := member{Role: registry.RoleMember}
		decodeMapping(d, e, memberSchema, &m)
		ms = append(ms, m) // one per element, so that "members.3" names the fourth
	})
	return ms
}

var agentSchema = newSchema(map[string]field[agent]{
	"id":                       func(d *decoder, n *yaml.Node, a *agent) { a.ID = d.str(n) },
	"description":              func(d *decoder, n *yaml.Node, a *agent) { a.Description = d.str(n) },
	"model_id":                 func(d *decoder, n *yaml.Node, a *agent) { a.ModelID = d.str(n) },
	"system_prompt":            func(d *decoder, n *yaml.Node, a *agent) { a.SystemPrompt = d.str(n) },
	"max_rounds":               func(d *decoder, n *yaml.Node, a *agent) { a.MaxRounds = d.u64(n) },
	"max_continuation_retries": func(d *decoder, n *yaml.Node, a *agent) { a.MaxContinuationRetries = d.u64(n) },
	"reasoning_effort":         func(d *decoder, n *yaml.Node, a *agent) { a.ReasoningEffort = d.reasoningEffort(n) },
	"context_policy":           func(d *decoder, n *yaml.Node, a *agent) { a.ContextPolicy = d.contextPolicy(n) },
	"stop_conditions":          func(d *decoder, n *yaml.Node, a *agent) { a.StopConditions = d.anyList(n) },
	"plugin_ids":               func(d *decoder, n *yaml.Node, a *agent) { a.PluginIDs = d.strs(n) },
	"active_hook_filter":       func(d *decoder, n *yaml.Node, a *agent) { a.ActiveHookFilter = d.strs(n) },
	"active_plugins": func(d *decoder, n *yaml.Node, a *agent) {
		d.rename("active_hook_filter")
		a.ActiveHookFilter = d.strs(n)
	},
	"allowed_tools":          func(d *decoder, n *yaml.Node, a *agent) { a.AllowedTools = d.optStrs(n) },
	"allowed_tool_patterns":  func(d *decoder, n *yaml.Node, a *agent) { a.AllowedToolPatterns = d.optStrs(n) },
	"excluded_tools":         func(d *decoder, n *yaml.Node, a *agent) { a.ExcludedTools = d.strs(n) },
	"excluded_tool_patterns": func(d *decoder, n *yaml.Node, a *agent) { a.ExcludedToolPatterns = d.strs(n) },
	"delegates":              func(d *decoder, n *yaml.Node, a *agent) { a.Delegates = d.strs(n) },
	"endpoint":               func(d *decoder, n *yaml.Node, a *agent) { a.Endpoint = d.endpoint(n) },
	"sections":               func(d *decoder, n *yaml.Node, a *agent) { a.Sections = d.object(n) },
	"registry":               func(d *decoder, n *yaml.Node, a *agent) { a.Registry = d.str(n) },
}, "id").withNullable("allowed_tools", "allowed_tool_patterns")

func (d *decoder) agent(n *yaml.Node, a *agent) (id string) {
	a.MaxRounds, a.MaxContinuationRetries = registry.DefaultMaxRounds, registry.DefaultMaxContinuationRetries
	present, ok := decodeMapping(d, n, agentSchema, a)
	if !ok || d.stopped {
		return a.ID
	}
	n = d.deref(n)
	if !agentSchema.has(present, "model_id") && !agentSchema.has(present, "endpoint") {
		d.missing(n, "model_id", " (an agent needs a model_id unless it has an endpoint)")
	}
	if agentSchema.has(present, "active_plugins") && agentSchema.has(present, "active_hook_filter") {
		d.conflict(n, "active_plugins", "active_hook_filter",
			"both active_hook_filter and its alias active_plugins are set in "+d.where())
	}
	// awaken's tri-state: with neither allow field given, every tool is
	// allowed; an explicit null is "no allow rules".
	if !agentSchema.has(present, "allowed_tools") && !agentSchema.has(present, "allowed_tool_patterns") {
		a.AllowedToolPatterns = []string{"*"}
	}
	return a.ID
}

// optStrs decodes a list of strings where null means "unset" (nil).
func (d *decoder) optStrs(n *yaml.Node) []string {
	if n.Kind == yaml.ScalarNode && n.Tag == tagNull {
		return nil
	}
	return d.strs(n)
}

func (d *decoder) anyList(n *yaml.Node) []any {
	if peek(n).Kind != yaml.SequenceNode {
		d.typeErr(peek(n), "a list", false)
		return nil
	}
	l, _ := d.value(n, 0).([]any)
	return l
}

var budgetSchema = newSchema(map[string]field[registry.ReasoningEffort]{
	"budget": func(d *decoder, n *yaml.Node, e *registry.ReasoningEffort) {
		if v, ok := d.uint(n, 32); ok {
			e.Budget = uint32(v)
		}
	},
}, "budget")

// reasoningEffort decodes a level ("high") or a token budget ({budget: N});
// the registry checks the level.
func (d *decoder) reasoningEffort(n *yaml.Node) *registry.ReasoningEffort {
	switch n.Kind {
	case yaml.ScalarNode:
		return &registry.ReasoningEffort{Level: d.str(n)}
	case yaml.MappingNode:
		e := &registry.ReasoningEffort{Level: registry.EffortBudget}
		decodeMapping(d, n, budgetSchema, e)
		return e
	}
	d.typeErr(n, "a level (none, low, medium, high, max) or {budget: N}", false)
	return nil
}

var contextPolicySchema = newSchema(map[string]field[contextPolicy]{
	"max_context_tokens":             func(d *decoder, n *yaml.Node, c *contextPolicy) { c.MaxContextTokens = d.u64(n) },
	"max_output_tokens":              func(d *decoder, n *yaml.Node, c *contextPolicy) { c.MaxOutputTokens = d.u64(n) },
	"min_recent_messages":            func(d *decoder, n *yaml.Node, c *contextPolicy) { c.MinRecentMessages = d.u64(n) },
	"enable_prompt_cache":            func(d *decoder, n *yaml.Node, c *contextPolicy) { c.EnablePromptCache = d.boolean(n) },
	"autocompact_threshold":          func(d *decoder, n *yaml.Node, c *contextPolicy) { c.AutocompactThreshold = d.optU64(n) },
	"compaction_mode":                func(d *decoder, n *yaml.Node, c *contextPolicy) { c.CompactionMode = d.str(n) },
	"compaction_raw_suffix_messages": func(d *decoder, n *yaml.Node, c *contextPolicy) { c.CompactionRawSuffixMessages = d.u64(n) },
}, "max_context_tokens", "max_output_tokens", "min_recent_messages", "enable_prompt_cache")

func (d *decoder) contextPolicy(n *yaml.Node) *contextPolicy {
	c := &contextPolicy{
		CompactionMode:              registry.CompactionKeepRecentRawSuffix,
		CompactionRawSuffixMessages: 2,
	}
	decodeMapping(d, n, contextPolicySchema, c)
	return c
}

// endpointDoc is a remote endpoint as written: awaken's canonical fields
// and its legacy A2A ones, which may not be mixed.
type endpointDoc struct {
	registry.Endpoint
	bearerToken    *string // set, even to "", means auth {type: bearer}
	agentID        string
	pollIntervalMS *uint64
}

var endpointSchema = newSchema(map[string]field[endpointDoc]{
	"backend":    func(d *decoder, n *yaml.Node, e *endpointDoc) { e.Backend = d.str(n) },
	"base_url":   func(d *decoder, n *yaml.Node, e *endpointDoc) { e.BaseURL = d.str(n) },
	"auth":       func(d *decoder, n *yaml.Node, e *endpointDoc) { e.Auth = d.endpointAuth(n) },
	"target":     func(d *decoder, n *yaml.Node, e *endpointDoc) { e.Target = d.str(n) },
	"timeout_ms": func(d *decoder, n *yaml.Node, e *endpointDoc) { e.TimeoutMS = d.u64(n) },
	"options":    func(d *decoder, n *yaml.Node, e *endpointDoc) { e.Options = d.object(n) },
	// Legacy A2A form: bearer_token is auth {type: bearer, token}, agent_id
	// is target, poll_interval_ms goes into options.
	"bearer_token": func(d *decoder, n *yaml.Node, e *endpointDoc) {
		d.legacy(n, "auth", "token")
		t := d.str(n)
		e.bearerToken = &t
	},
	"agent_id": func(d *decoder, n *yaml.Node, e *endpointDoc) { d.legacy(n, "target"); e.agentID = d.str(n) },
	"poll_interval_ms": func(d *decoder, n *yaml.Node, e *endpointDoc) {
		d.legacy(n, "options", "poll_interval_ms")
		e.pollIntervalMS = d.optU64(n)
	},
}, "base_url")

var (
	canonicalEndpointFields = []string{"backend", "auth", "target", "options"}
	legacyEndpointFields    = []string{"bearer_token", "agent_id", "poll_interval_ms"}
)

var endpointAuthSchema = newSchema(map[string]field[registry.EndpointAuth]{
	"type":  func(d *decoder, n *yaml.Node, a *registry.EndpointAuth) { a.Type = d.str(n) },
	"token": func(d *decoder, n *yaml.Node, a *registry.EndpointAuth) { a.Token = d.str(n) },
}, "type", "token")

func (d *decoder) endpointAuth(n *yaml.Node) *registry.EndpointAuth {
	a := &registry.EndpointAuth{}
	decodeMapping(d, n, endpointAuthSchema, a)
	return a
}

func (d *decoder) endpoint(n *yaml.Node) *registry.Endpoint {
	e := endpointDoc{Endpoint: registry.Endpoint{
		Backend:   registry.DefaultEndpointBackend,
		TimeoutMS: registry.DefaultEndpointTimeoutMS,
	}}
	present, ok := decodeMapping(d, n, endpointSchema, &e)
	if !ok {
		return nil
	}
	var legacy, canonical string
	for _, f := range legacyEndpointFields {
		if endpointSchema.has(present, f) && legacy == "" {
			legacy = f
		}
	}
	for _, f := range canonicalEndpointFields {
		if endpointSchema.has(present, f) && canonical == "" && (f != "options" || len(e.Options) > 0) {
			canonical = f
		}
	}
	switch {
	case legacy != "" && canonical != "":
		d.conflict(d.deref(n), legacy, d.pathKey(d.cur), d.where()+" mixes the legacy field "+strconv.Quote(legacy)+
			" with "+strconv.Quote(canonical)+" (use backend, auth {type: bearer, token}, target and options)")
	case legacy != "":
		if e.bearerToken != nil {
			e.Auth = &registry.EndpointAuth{Type: "bearer", Token: *e.bearerToken}
		}
		e.Target, e.Options = e.agentID, nil
		if e.pollIntervalMS != nil {
			e.Options = map[string]any{"poll_interval_ms": int64(*e.pollIntervalMS)}
		}
	}
	return &e.Endpoint
}

// rename files the current field's position under the name of the field it
// is an alias of, so that registry diagnostics about that field find it.
func (d *decoder) rename(key string) { d.l.cfg.fields.at(d.cur).key = fieldNameIDs[key] }

// legacy files the position of a legacy field also under the canonical
// path it stands for (bearer_token as auth.token), so that registry
// diagnostics about the canonical field find it.
func (d *decoder) legacy(n *yaml.Node, path ...string) {
	cur := d.cur
	d.cur = d.l.cfg.fields.at(cur).parent
	for _, key := range path {
		d.enter(fieldNameIDs[key], n)
	}
	d.cur = cur
}

// conflict reports that field key of mapping n excludes another field; the
// registry's diagnostics under taint are dropped.
func (d *decoder) conflict(n *yaml.Node, key, taint, msg string) {
	at := n
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			at = n.Content[i]
			break
		}
	}
	d.taint(taint)
	d.diag(at, CodeConflict, msg)
}
