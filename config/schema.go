package config

import (
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/awakend/awakend/registry"
)

// The schemas of the four resources and their parts, with awaken's field
// names and defaults. Each entry says what the field takes (for the JSON
// Schema, jsonschema.go) and decodes it; defaults are set before decoding.
// The tables are built once and only read.

// Patterns of string fields, in the JSON Schema's dialect (ECMA-262).
const (
	httpURLPattern = `^https?://[^/?#\s]+[^?#\s]*$`   // an endpoint's: no query or fragment
	baseURLPattern = `^(https?://[^/?#\s]+[^#\s]*)?$` // a provider's: a query is fine, "" is absent
	// A month, or a day of a month (February: up to the 29th, leap year
	// or not).
	cutoffPattern = `^[0-9]{4}-((0[13578]|1[02])(-(0[1-9]|[12][0-9]|3[01]))?|(0[469]|11)(-(0[1-9]|[12][0-9]|30))?|02(-(0[1-9]|1[0-9]|2[0-9]))?)$`
)

type (
	provider      = registry.ProviderSpec
	model         = registry.ModelSpec
	pool          = registry.PoolSpec
	member        = registry.PoolMember
	agent         = registry.AgentSpec
	client        = registry.ClientSpec
	contextPolicy = registry.ContextPolicy
)

var providerSchema = newSchema(map[string]field[provider]{
	"id": {str("The provider's id, unique among providers."),
		func(d *decoder, n *yaml.Node, p *provider) { p.ID = d.str(n) }},
	"adapter": {enumOf("The wire protocol: openai (any OpenAI-compatible endpoint), anthropic, mock, or an alias of openai with its own default base_url.", registry.AdapterNames()...),
		func(d *decoder, n *yaml.Node, p *provider) { p.Adapter = d.str(n) }},
	"api_key": {str("The API key; a secret, never logged or served. Normally ${credential:NAME} or ${VAR}."),
		func(d *decoder, n *yaml.Node, p *provider) { p.APIKey = d.str(n) }}, // "" is absent
	"base_url": {str("The endpoint, an absolute http(s) URL with a host and no fragment; default (or \"\"): the adapter's.").withPattern(baseURLPattern),
		func(d *decoder, n *yaml.Node, p *provider) { p.BaseURL = d.str(n) }},
	"timeout_secs": {integer("Timeout of one upstream request, in seconds.", 64).withMin(1).withDefault(registry.DefaultProviderTimeoutSecs),
		func(d *decoder, n *yaml.Node, p *provider) { p.TimeoutSecs = d.u64(n) }},
	"adapter_options": {object("Adapter settings: headers, and mock for the mock adapter.", adapterOptionsSchema),
		func(d *decoder, n *yaml.Node, p *provider) {
			decodeMapping(d, n, adapterOptionsSchema, &p.AdapterOptions)
		}},
}, "id", "adapter")

var adapterOptionsSchema = newSchema(map[string]field[registry.AdapterOptions]{
	"headers": {strMap("Headers sent with every upstream request; their values are treated as secrets."),
		func(d *decoder, n *yaml.Node, o *registry.AdapterOptions) { o.Headers = d.stringMap(n) }},
	"mock": {object("The mock adapter's behaviour.", mockOptionsSchema),
		func(d *decoder, n *yaml.Node, o *registry.AdapterOptions) {
			o.Mock = &registry.MockOptions{}
			decodeMapping(d, n, mockOptionsSchema, o.Mock)
		}},
	"anthropic_version": {str("The anthropic adapter's anthropic-version header; default: the adapter's current one. A YYYY-MM-DD date.").withPattern(anthropicVersionPattern),
		func(d *decoder, n *yaml.Node, o *registry.AdapterOptions) { o.AnthropicVersion = d.str(n) }},
})

var mockOptionsSchema = newSchema(map[string]field[registry.MockOptions]{
	"latency_ms": {integer("Delay before the answer, in milliseconds.", 64),
		func(d *decoder, n *yaml.Node, m *registry.MockOptions) { m.LatencyMS = d.u64(n) }},
	"chunk_delay_ms": {integer("Pause between stream chunks, in milliseconds.", 64),
		func(d *decoder, n *yaml.Node, m *registry.MockOptions) { m.ChunkDelayMS = d.u64(n) }},
	"reply": {str("A fixed reply text; default: an echo of the request."),
		func(d *decoder, n *yaml.Node, m *registry.MockOptions) { m.Reply = d.str(n) }},
	"fail_status": {integer("Fail every request with this HTTP status.", 16),
		func(d *decoder, n *yaml.Node, m *registry.MockOptions) {
			if v, ok := d.uint(n, 16); ok {
				m.FailStatus = int(v)
			}
		}},
})

func (d *decoder) provider(n *yaml.Node, p *provider) (id string) {
	p.TimeoutSecs = registry.DefaultProviderTimeoutSecs
	decodeMapping(d, n, providerSchema, p)
	return p.ID
}

var modelSchema = newSchema(map[string]field[model]{
	"id": {str("The model's id, unique among models and model pools; what clients ask for."),
		func(d *decoder, n *yaml.Node, m *model) { m.ID = d.str(n) }},
	"provider_id": {str("The provider that serves the model."),
		func(d *decoder, n *yaml.Node, m *model) { m.ProviderID = d.str(n) }},
	"upstream_model": {str("The model's name at the provider."),
		func(d *decoder, n *yaml.Node, m *model) { m.UpstreamModel = d.str(n) }},
	"context_window": {integer("The context window, in tokens.", 32).withMin(1),
		func(d *decoder, n *yaml.Node, m *model) { m.ContextWindow = d.optU32(n) }},
	"max_output_tokens": {integer("The most tokens one answer may have; at most context_window.", 32).withMin(1),
		func(d *decoder, n *yaml.Node, m *model) { m.MaxOutputTokens = d.optU32(n) }},
	"modalities": {object("What the model accepts and produces; empty lists mean unspecified.", modalitiesSchema),
		func(d *decoder, n *yaml.Node, m *model) { decodeMapping(d, n, modalitiesSchema, &m.Modalities) }},
	"knowledge_cutoff": {str("The training data cutoff, a calendar date: YYYY-MM or YYYY-MM-DD.").withPattern(cutoffPattern),
		func(d *decoder, n *yaml.Node, m *model) { m.KnowledgeCutoff = d.str(n) }},
	"input_token_price_per_million_usd": {number("Price of a million input tokens, in USD; finite, at least 0.").withMin(0),
		func(d *decoder, n *yaml.Node, m *model) { m.InputTokenPricePerMillionUSD = d.optFloat(n) }},
	"output_token_price_per_million_usd": {number("Price of a million output tokens, in USD; finite, at least 0.").withMin(0),
		func(d *decoder, n *yaml.Node, m *model) { m.OutputTokenPricePerMillionUSD = d.optFloat(n) }},
	"sampling": {enumOf("What the gateway does with a request's temperature, top_p and top_k for this model: pass them (default), drop them, or refuse the request.",
		string(registry.SamplingPass), string(registry.SamplingDrop), string(registry.SamplingRefuse)),
		func(d *decoder, n *yaml.Node, m *model) { m.Sampling = registry.SamplingRule(d.str(n)) }},
	"thinking": {enumOf("How the anthropic adapter asks this model to think for a reasoning_effort: a token budget (default), or adaptive thinking with an effort.",
		string(registry.ThinkingBudget), string(registry.ThinkingAdaptive)),
		func(d *decoder, n *yaml.Node, m *model) { m.Thinking = registry.ThinkingStyle(d.str(n)) }},
}, "id", "provider_id", "upstream_model")

var modalities = []string{
	string(registry.ModalityText), string(registry.ModalityImage), string(registry.ModalityAudio),
	string(registry.ModalityVideo), string(registry.ModalityPDF),
}

var modalitiesSchema = newSchema(map[string]field[registry.Modalities]{
	"input": {strList("What the model accepts.").withItems(modalities...).withUniqueItems(),
		func(d *decoder, n *yaml.Node, m *registry.Modalities) { m.Input = d.modalities(n) }},
	"output": {strList("What the model produces.").withItems(modalities...).withUniqueItems(),
		func(d *decoder, n *yaml.Node, m *registry.Modalities) { m.Output = d.modalities(n) }},
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
	"id": {str("The pool's id, unique among models and model pools; what clients ask for."),
		func(d *decoder, n *yaml.Node, p *pool) { p.ID = d.str(n) }},
	"members": {objects("The models of the pool, each once; at least one with role member.", memberSchema),
		func(d *decoder, n *yaml.Node, p *pool) { p.Members = d.members(n) }},
	"routing": {object("How a session's home member is chosen.", routingSchema),
		func(d *decoder, n *yaml.Node, p *pool) { decodeMapping(d, n, routingSchema, &p.Routing) }},
	"switch": {object("When a request fails over to another member.", switchSchema),
		func(d *decoder, n *yaml.Node, p *pool) { decodeMapping(d, n, switchSchema, &p.Switch) }},
}, "id", "members")

var memberSchema = newSchema(map[string]field[member]{
	"model_id": {str("The member model."),
		func(d *decoder, n *yaml.Node, m *member) { m.ModelID = d.str(n) }},
	"weight": {integer("The member's share of sessions.", 32).withMin(1).withDefault(registry.DefaultPoolMemberWeight),
		func(d *decoder, n *yaml.Node, m *member) { m.Weight = d.optU32(n) }},
	"role": {enumOf("member may be a session's home; failover_only serves only when others fail.",
		string(registry.RoleMember), string(registry.RoleFailoverOnly)).withDefault(string(registry.RoleMember)),
		func(d *decoder, n *yaml.Node, m *member) { m.Role = registry.MemberRole(d.str(n)) }},
}, "model_id")

var routingSchema = newSchema(map[string]field[registry.PoolRouting]{
	"home": {enumOf("How the home member is picked: a weighted hash of the session key, round robin, or the first healthy member.",
		string(registry.HomeDeterministic), string(registry.HomeRoundRobin), string(registry.HomeFirstHealthy)).
		withDefault(string(registry.DefaultPoolRouting().Home)),
		func(d *decoder, n *yaml.Node, r *registry.PoolRouting) { r.Home = registry.HomeStrategy(d.str(n)) }},
	"sticky_scope": {enumOf("What a home sticks to.", string(registry.StickyThread), string(registry.StickyRun)).
		withDefault(string(registry.DefaultPoolRouting().StickyScope)),
		func(d *decoder, n *yaml.Node, r *registry.PoolRouting) {
			r.StickyScope = registry.StickyScope(d.str(n))
		}},
})

var switchSchema = newSchema(map[string]field[registry.SwitchPolicy]{
	"on_circuit_open": {boolean("Fail over when the member's circuit breaker is open.").withDefault(registry.DefaultSwitchPolicy().OnCircuitOpen),
		func(d *decoder, n *yaml.Node, s *registry.SwitchPolicy) { s.OnCircuitOpen = d.boolean(n) }},
	"on_quota": {boolean("Fail over when the member is over its quota (HTTP 429).").withDefault(registry.DefaultSwitchPolicy().OnQuota),
		func(d *decoder, n *yaml.Node, s *registry.SwitchPolicy) { s.OnQuota = d.boolean(n) }},
	"quota_retry_after_threshold_secs": {integer("Fail over on a quota error only when its Retry-After exceeds this many seconds.", 64),
		func(d *decoder, n *yaml.Node, s *registry.SwitchPolicy) { s.QuotaRetryAfterThresholdSecs = d.optU64(n) }},
	"on_permanent": {boolean("Fail over on a permanent upstream error.").withDefault(registry.DefaultSwitchPolicy().OnPermanent),
		func(d *decoder, n *yaml.Node, s *registry.SwitchPolicy) { s.OnPermanent = d.boolean(n) }},
	"max_switches_per_session": {integer("The most failovers of one request.", 32),
		func(d *decoder, n *yaml.Node, s *registry.SwitchPolicy) { s.MaxSwitchesPerSession = d.optU32(n) }},
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
	"id": {str("The agent's id, unique among agents and not a model or pool id; what clients ask for."),
		func(d *decoder, n *yaml.Node, a *agent) { a.ID = d.str(n) }},
	"description": {str("What the agent is for."),
		func(d *decoder, n *yaml.Node, a *agent) { a.Description = d.str(n) }},
	"model_id": {str("The model or model pool the agent runs on; required unless endpoint is set."),
		func(d *decoder, n *yaml.Node, a *agent) { a.ModelID = d.str(n) }},
	"system_prompt": {str("The system prompt put before every conversation."),
		func(d *decoder, n *yaml.Node, a *agent) { a.SystemPrompt = d.str(n) }},
	"max_rounds": {integer("The most model rounds of one run.", 64).withDefault(registry.DefaultMaxRounds),
		func(d *decoder, n *yaml.Node, a *agent) { a.MaxRounds = d.u64(n) }},
	"max_continuation_retries": {integer("How often a truncated answer is continued.", 64).withDefault(registry.DefaultMaxContinuationRetries),
		func(d *decoder, n *yaml.Node, a *agent) { a.MaxContinuationRetries = d.u64(n) }},
	"reasoning_effort": {effort("How hard the model thinks: a level, or {budget: N} tokens."),
		func(d *decoder, n *yaml.Node, a *agent) { a.ReasoningEffort = d.reasoningEffort(n) }},
	"context_policy": {object("awaken's context window policy.", contextPolicySchema),
		func(d *decoder, n *yaml.Node, a *agent) { a.ContextPolicy = d.contextPolicy(n) }},
	"stop_conditions": {freeList("awaken's stop conditions, free-form."),
		func(d *decoder, n *yaml.Node, a *agent) { a.StopConditions = d.anyList(n) }},
	"plugin_ids": {strList("The plugins the agent uses; each must be registered (awakend registers none)."),
		func(d *decoder, n *yaml.Node, a *agent) { a.PluginIDs = d.strs(n) }},
	"active_hook_filter": {strList("The plugins whose hooks run; a subset of plugin_ids."),
		func(d *decoder, n *yaml.Node, a *agent) { a.ActiveHookFilter = d.strs(n) }},
	"active_plugins": {strList("Alias of active_hook_filter."),
		func(d *decoder, n *yaml.Node, a *agent) {
			d.rename("active_hook_filter")
			a.ActiveHookFilter = d.strs(n)
		}},
	"allowed_tools": {strList("Tools the agent may use; null: no allow rules. With neither allow field, every tool is allowed."),
		func(d *decoder, n *yaml.Node, a *agent) { a.AllowedTools = d.optStrs(n) }},
	"allowed_tool_patterns": {strList("Patterns of tools the agent may use; null: no allow rules."),
		func(d *decoder, n *yaml.Node, a *agent) { a.AllowedToolPatterns = d.optStrs(n) }},
	"excluded_tools": {strList("Tools the agent may not use; they win over the allow fields."),
		func(d *decoder, n *yaml.Node, a *agent) { a.ExcludedTools = d.strs(n) }},
	"excluded_tool_patterns": {strList("Patterns of tools the agent may not use."),
		func(d *decoder, n *yaml.Node, a *agent) { a.ExcludedToolPatterns = d.strs(n) }},
	"delegates": {strList("Agents this agent may hand work to."),
		func(d *decoder, n *yaml.Node, a *agent) { a.Delegates = d.strs(n) }},
	"endpoint": {object("A remote agent: where it runs. An agent with an endpoint needs no model_id.", endpointSchema),
		func(d *decoder, n *yaml.Node, a *agent) { a.Endpoint = d.endpoint(n) }},
	"sections": {freeMap("Free-form plugin configuration."),
		func(d *decoder, n *yaml.Node, a *agent) { a.Sections = d.object(n) }},
	"registry": {str("awaken's registry field, passed through."),
		func(d *decoder, n *yaml.Node, a *agent) { a.Registry = d.str(n) }},
}, "id").withNullable("allowed_tools", "allowed_tool_patterns").withOneOf("model_id", "endpoint")

// keySHA256Pattern is a SHA-256 in hex.
const keySHA256Pattern = `^[0-9a-fA-F]{64}$`

// anthropicVersionPattern is an anthropic-version: a date.
const anthropicVersionPattern = `^[0-9]{4}-[0-9]{2}-[0-9]{2}$`

var clientSchema = newSchema(map[string]field[client]{
	"id": {str("The client's id, unique among clients; it names the client in logs, metrics and the API."),
		func(d *decoder, n *yaml.Node, c *client) { c.ID = d.str(n) }},
	"description": {str("What the client is, for people."),
		func(d *decoder, n *yaml.Node, c *client) { c.Description = d.str(n) }},
	"key": {str("The client's key, a secret: normally ${credential:NAME}; never logged or served. Set key or key_sha256."),
		func(d *decoder, n *yaml.Node, c *client) { c.Key = d.str(n) }},
	"key_sha256": {str("The SHA-256 of the key, in hex, so that the directory holds no secret. Set key or key_sha256.").withPattern(keySHA256Pattern),
		func(d *decoder, n *yaml.Node, c *client) { c.KeySHA256 = d.str(n) }},
	"models": {strList("The models, pools and agents the client may call; absent or null: all, []: none."),
		func(d *decoder, n *yaml.Node, c *client) { c.Models = d.optStrs(n) }},
	"limits": {object("What the client may use, per daemon.", clientLimitsSchema),
		func(d *decoder, n *yaml.Node, c *client) { decodeMapping(d, n, clientLimitsSchema, &c.Limits) }},
}, "id").withNullable("models").withExactlyOne("key", "key_sha256")

var clientLimitsSchema = newSchema(map[string]field[registry.ClientLimits]{
	"requests_per_minute": {integer("Requests a minute; absent: no limit.", 32).withMin(1),
		func(d *decoder, n *yaml.Node, l *registry.ClientLimits) { l.RequestsPerMinute = d.optU32(n) }},
	"tokens_per_minute": {integer("Tokens a minute, prompt and completion, as the upstreams report them; absent: no limit.", 32).withMin(1),
		func(d *decoder, n *yaml.Node, l *registry.ClientLimits) { l.TokensPerMinute = d.optU32(n) }},
})

func (d *decoder) client(n *yaml.Node, c *client) (id string) {
	decodeMapping(d, n, clientSchema, c)
	return c.ID
}

func (d *decoder) agent(n *yaml.Node, a *agent) (id string) {
	a.MaxRounds, a.MaxContinuationRetries = registry.DefaultMaxRounds, registry.DefaultMaxContinuationRetries
	present, ok := decodeMapping(d, n, agentSchema, a)
	if !ok || d.stopped {
		return a.ID
	}
	n = d.deref(n)
	if present&agentSchema.oneOf == 0 { // neither model_id nor endpoint

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
	"budget": {integer("Thinking budget, in tokens.", 32).withMin(1),
		func(d *decoder, n *yaml.Node, e *registry.ReasoningEffort) {
			if v, ok := d.uint(n, 32); ok {
				e.Budget = uint32(v)
			}
		}},
}, "budget")

// effort is the prop of a reasoning effort: a level or a budgetSchema.
func effort(desc string) prop {
	return prop{kind: kindEffort, desc: desc, obj: &budgetSchema.shape, enum: []string{
		registry.EffortNone, registry.EffortLow, registry.EffortMedium, registry.EffortHigh, registry.EffortMax,
	}}
}

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

const defaultCompactionRawSuffixMessages = 2

var contextPolicySchema = newSchema(map[string]field[contextPolicy]{
	"max_context_tokens": {integer("The most tokens of context sent to the model.", 64),
		func(d *decoder, n *yaml.Node, c *contextPolicy) { c.MaxContextTokens = d.u64(n) }},
	"max_output_tokens": {integer("Tokens kept free for the answer.", 64),
		func(d *decoder, n *yaml.Node, c *contextPolicy) { c.MaxOutputTokens = d.u64(n) }},
	"min_recent_messages": {integer("Recent messages always kept.", 64),
		func(d *decoder, n *yaml.Node, c *contextPolicy) { c.MinRecentMessages = d.u64(n) }},
	"enable_prompt_cache": {boolean("Use the provider's prompt cache."),
		func(d *decoder, n *yaml.Node, c *contextPolicy) { c.EnablePromptCache = d.boolean(n) }},
	"autocompact_threshold": {integer("Compact the context once it has this many tokens.", 64),
		func(d *decoder, n *yaml.Node, c *contextPolicy) { c.AutocompactThreshold = d.optU64(n) }},
	"compaction_mode": {enumOf("How the context is compacted.",
		registry.CompactionKeepRecentRawSuffix, registry.CompactionCompactToSafeFrontier).withDefault(registry.CompactionKeepRecentRawSuffix),
		func(d *decoder, n *yaml.Node, c *contextPolicy) { c.CompactionMode = d.str(n) }},
	"compaction_raw_suffix_messages": {integer("Messages kept verbatim after a compaction.", 64).withDefault(defaultCompactionRawSuffixMessages),
		func(d *decoder, n *yaml.Node, c *contextPolicy) { c.CompactionRawSuffixMessages = d.u64(n) }},
}, "max_context_tokens", "max_output_tokens", "min_recent_messages", "enable_prompt_cache")

func (d *decoder) contextPolicy(n *yaml.Node) *contextPolicy {
	c := &contextPolicy{
		CompactionMode:              registry.CompactionKeepRecentRawSuffix,
		CompactionRawSuffixMessages: defaultCompactionRawSuffixMessages,
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
	"backend": {str("The remote protocol.").withDefault(registry.DefaultEndpointBackend),
		func(d *decoder, n *yaml.Node, e *endpointDoc) { e.Backend = d.str(n) }},
	"base_url": {str("Where the remote agent is: an absolute http(s) URL with a host and no query or fragment.").withPattern(httpURLPattern),
		func(d *decoder, n *yaml.Node, e *endpointDoc) { e.BaseURL = d.str(n) }},
	"auth": {object("How awakend authenticates to the remote agent.", endpointAuthSchema),
		func(d *decoder, n *yaml.Node, e *endpointDoc) { e.Auth = d.endpointAuth(n) }},
	"target": {str("The agent's id at the remote end."),
		func(d *decoder, n *yaml.Node, e *endpointDoc) { e.Target = d.str(n) }},
	"timeout_ms": {integer("Timeout of a remote call, in milliseconds.", 64).withDefault(registry.DefaultEndpointTimeoutMS),
		func(d *decoder, n *yaml.Node, e *endpointDoc) { e.TimeoutMS = d.u64(n) }},
	"options": {freeMap("Free-form options of the backend."),
		func(d *decoder, n *yaml.Node, e *endpointDoc) { e.Options = d.object(n) }},
	// Legacy A2A form: bearer_token is auth {type: bearer, token}, agent_id
	// is target, poll_interval_ms goes into options.
	"bearer_token": {str("Legacy form of auth: {type: bearer, token}; not with the canonical fields."),
		func(d *decoder, n *yaml.Node, e *endpointDoc) {
			d.legacy(n, "auth", "token")
			t := d.str(n)
			e.bearerToken = &t
		}},
	"agent_id": {str("Legacy form of target."),
		func(d *decoder, n *yaml.Node, e *endpointDoc) { d.legacy(n, "target"); e.agentID = d.str(n) }},
	"poll_interval_ms": {integer("Legacy form of options.poll_interval_ms.", 64),
		func(d *decoder, n *yaml.Node, e *endpointDoc) {
			d.legacy(n, "options", "poll_interval_ms")
			e.pollIntervalMS = d.optU64(n)
		}},
}, "base_url")

var (
	canonicalEndpointFields = []string{"backend", "auth", "target", "options"}
	legacyEndpointFields    = []string{"bearer_token", "agent_id", "poll_interval_ms"}
)

var endpointAuthSchema = newSchema(map[string]field[registry.EndpointAuth]{
	"type": {enumOf("The scheme.", "bearer"),
		func(d *decoder, n *yaml.Node, a *registry.EndpointAuth) { a.Type = d.str(n) }},
	"token": {str("The bearer token; a secret, normally ${credential:NAME}."),
		func(d *decoder, n *yaml.Node, a *registry.EndpointAuth) { a.Token = d.str(n) }},
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
