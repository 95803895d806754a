package registry

import (
	"encoding/json"
	"fmt"
)

// Field names, defaults and shapes follow awaken's registry specs (serde
// names) so that an awaken AgentSystemConfig file describes the same
// resources here. The JSON tags are the wire names used by the read API.

// Defaults applied by the loader when a field is absent.
const (
	DefaultProviderTimeoutSecs    = 300
	DefaultMaxRounds              = 16
	DefaultMaxContinuationRetries = 2
	DefaultEndpointBackend        = "a2a"
	DefaultEndpointTimeoutMS      = 300_000
	DefaultPoolMemberWeight       = 1
)

// ProviderSpec describes one upstream LLM provider. APIKey is a secret: it is
// never serialized (see HasAPIKey) and never appears in diagnostics.
type ProviderSpec struct {
	ID             string         `json:"id"`
	Adapter        string         `json:"adapter"`
	APIKey         string         `json:"-"`
	BaseURL        string         `json:"base_url,omitempty"`
	TimeoutSecs    uint64         `json:"timeout_secs"`
	AdapterOptions AdapterOptions `json:"adapter_options,omitzero"`
}

// HasAPIKey reports whether the provider carries an API key.
func (p ProviderSpec) HasAPIKey() bool { return p.APIKey != "" }

// AdapterOptions holds adapter-specific, non-secret settings.
type AdapterOptions struct {
	// Headers are sent with every upstream request. Their values may hold
	// credentials, so the read API serves header names only.
	Headers map[string]string `json:"headers,omitempty"`
	// Mock shapes the replies of the mock adapter.
	Mock *MockOptions `json:"mock,omitempty"`
	// AnthropicVersion is the anthropic-version header the anthropic
	// adapter sends; "" is the adapter's default.
	AnthropicVersion string `json:"anthropic_version,omitempty"`
}

// MockOptions shape the mock adapter's behaviour, for demos and tests.
type MockOptions struct {
	// LatencyMS delays the answer (the first byte of a stream).
	LatencyMS uint64 `json:"latency_ms,omitempty"`
	// ChunkDelayMS is the pause between stream chunks.
	ChunkDelayMS uint64 `json:"chunk_delay_ms,omitempty"`
	// Reply is the text of every answer; empty echoes the last user message.
	Reply string `json:"reply,omitempty"`
	// FailStatus, when set, fails every request with this HTTP status (for
	// example 429 or 503) in the provider's error format.
	FailStatus int `json:"fail_status,omitempty"`
}

// Modality is one input or output modality of a model.
type Modality string

// The modalities awaken knows.
const (
	ModalityText  Modality = "text"
	ModalityImage Modality = "image"
	ModalityAudio Modality = "audio"
	ModalityVideo Modality = "video"
	ModalityPDF   Modality = "pdf"
)

// Valid reports whether m is one of the known modalities.
func (m Modality) Valid() bool {
	switch m {
	case ModalityText, ModalityImage, ModalityAudio, ModalityVideo, ModalityPDF:
		return true
	}
	return false
}

// Modalities lists what a model accepts and produces. Empty lists mean
// "unspecified", as in awaken.
type Modalities struct {
	Input  []Modality `json:"input,omitempty"`
	Output []Modality `json:"output,omitempty"`
}

// ModelSpec binds a model id to a provider and an upstream model name, with
// its published capabilities and prices. Optional numbers are pointers so
// that an explicit zero can be told from an absent field.
type ModelSpec struct {
	ID                            string     `json:"id"`
	ProviderID                    string     `json:"provider_id"`
	UpstreamModel                 string     `json:"upstream_model"`
	ContextWindow                 *uint32    `json:"context_window,omitempty"`
	MaxOutputTokens               *uint32    `json:"max_output_tokens,omitempty"`
	Modalities                    Modalities `json:"modalities,omitzero"`
	KnowledgeCutoff               string     `json:"knowledge_cutoff,omitempty"`
	InputTokenPricePerMillionUSD  *float64   `json:"input_token_price_per_million_usd,omitempty"`
	OutputTokenPricePerMillionUSD *float64   `json:"output_token_price_per_million_usd,omitempty"`
	// Sampling says what the gateway does with a request's temperature,
	// top_p and top_k for this model; "" is SamplingPass.
	Sampling SamplingRule `json:"sampling,omitempty"`
	// Thinking says how the anthropic adapter asks this model to think
	// for a reasoning_effort; "" is ThinkingBudget.
	Thinking ThinkingStyle `json:"thinking,omitempty"`
}

// ThinkingStyle is how a model of Anthropic's is asked to think.
type ThinkingStyle string

// Thinking styles.
const (
	// ThinkingBudget is extended thinking with a budget of tokens.
	ThinkingBudget ThinkingStyle = "budget"
	// ThinkingAdaptive is adaptive thinking with an effort level, for the
	// models that have the effort setting.
	ThinkingAdaptive ThinkingStyle = "adaptive"
)

// SamplingRule is what the gateway does with the sampling parameters
// (temperature, top_p, top_k) of a request to a model that may not accept
// them.
type SamplingRule string

// Sampling rules.
const (
	SamplingPass   SamplingRule = "pass"   // sent as the client sent them
	SamplingDrop   SamplingRule = "drop"   // removed from the request
	SamplingRefuse SamplingRule = "refuse" // a request with any of them is a 400
)

// MemberRole says whether a pool member may be a session's home.
type MemberRole string

// Pool member roles.
const (
	RoleMember       MemberRole = "member"
	RoleFailoverOnly MemberRole = "failover_only"
)

// HomeStrategy chooses a session's home member.
type HomeStrategy string

// Home strategies.
const (
	HomeDeterministic HomeStrategy = "deterministic"
	HomeRoundRobin    HomeStrategy = "round_robin"
	HomeFirstHealthy  HomeStrategy = "first_healthy"
)

// StickyScope is how long a session holds its active member.
type StickyScope string

// Sticky scopes.
const (
	StickyThread StickyScope = "thread"
	StickyRun    StickyScope = "run"
)

// PoolSpec is a named set of models that behaves like one model.
type PoolSpec struct {
	ID      string       `json:"id"`
	Members []PoolMember `json:"members"`
	Routing PoolRouting  `json:"routing"`
	Switch  SwitchPolicy `json:"switch"`
}

// PoolMember references a model of the pool.
type PoolMember struct {
	ModelID string     `json:"model_id"`
	Weight  *uint32    `json:"weight,omitempty"`
	Role    MemberRole `json:"role"`
}

// EffectiveWeight is the member's weight, DefaultPoolMemberWeight when unset.
func (m PoolMember) EffectiveWeight() uint32 {
	if m.Weight == nil {
		return DefaultPoolMemberWeight
	}
	return *m.Weight
}

// PoolRouting is a pool's home-selection and stickiness policy.
type PoolRouting struct {
	Home        HomeStrategy `json:"home"`
	StickyScope StickyScope  `json:"sticky_scope"`
}

// DefaultPoolRouting is awaken's default routing policy.
func DefaultPoolRouting() PoolRouting {
	return PoolRouting{Home: HomeDeterministic, StickyScope: StickyThread}
}

// SwitchPolicy says when a pool abandons its active member.
type SwitchPolicy struct {
	OnCircuitOpen                bool    `json:"on_circuit_open"`
	OnQuota                      bool    `json:"on_quota"`
	QuotaRetryAfterThresholdSecs *uint64 `json:"quota_retry_after_threshold_secs,omitempty"`
	OnPermanent                  bool    `json:"on_permanent"`
	MaxSwitchesPerSession        *uint32 `json:"max_switches_per_session,omitempty"`
}

// DefaultSwitchPolicy is awaken's default switch policy: switch on every
// signal, no threshold, no cap.
func DefaultSwitchPolicy() SwitchPolicy {
	return SwitchPolicy{OnCircuitOpen: true, OnQuota: true, OnPermanent: true}
}

// ReasoningEffort is an agent's default reasoning effort: one of the levels
// none, low, medium, high, max, or an explicit token budget.
type ReasoningEffort struct {
	Level  string `json:"-"`
	Budget uint32 `json:"-"`
}

// Reasoning effort levels.
const (
	EffortNone   = "none"
	EffortLow    = "low"
	EffortMedium = "medium"
	EffortHigh   = "high"
	EffortMax    = "max"
	EffortBudget = "budget"
)

// MarshalJSON encodes the effort as awaken does: a level string, or
// {"budget": N}.
func (e ReasoningEffort) MarshalJSON() ([]byte, error) {
	if e.Level == EffortBudget {
		return json.Marshal(map[string]uint32{"budget": e.Budget})
	}
	return json.Marshal(e.Level)
}

// UnmarshalJSON decodes awaken's forms: a level string, or {"budget": N}.
func (e *ReasoningEffort) UnmarshalJSON(b []byte) error {
	var level string
	if err := json.Unmarshal(b, &level); err == nil {
		*e = ReasoningEffort{Level: level}
		return nil
	}
	var budget struct {
		Budget *uint32 `json:"budget"`
	}
	if err := json.Unmarshal(b, &budget); err != nil || budget.Budget == nil {
		return fmt.Errorf("reasoning_effort: want a level or {\"budget\": N}, got %s", b)
	}
	*e = ReasoningEffort{Level: EffortBudget, Budget: *budget.Budget}
	return nil
}

// ContextPolicy is awaken's context window management policy.
type ContextPolicy struct {
	MaxContextTokens            uint64  `json:"max_context_tokens"`
	MaxOutputTokens             uint64  `json:"max_output_tokens"`
	MinRecentMessages           uint64  `json:"min_recent_messages"`
	EnablePromptCache           bool    `json:"enable_prompt_cache"`
	AutocompactThreshold        *uint64 `json:"autocompact_threshold,omitempty"`
	CompactionMode              string  `json:"compaction_mode"`
	CompactionRawSuffixMessages uint64  `json:"compaction_raw_suffix_messages"`
}

// Compaction modes of a context policy.
const (
	CompactionKeepRecentRawSuffix   = "keep_recent_raw_suffix"
	CompactionCompactToSafeFrontier = "compact_to_safe_frontier"
)

// AgentSpec declares an agent. A nil tool list means the field is unset; an
// empty non-nil list is an explicit empty list. When both allow fields are
// absent from the input, the loader sets AllowedToolPatterns to ["*"]
// (awaken's "absent catalog allows all").
type AgentSpec struct {
	ID                     string           `json:"id"`
	Description            string           `json:"description,omitempty"`
	ModelID                string           `json:"model_id,omitempty"`
	SystemPrompt           string           `json:"system_prompt"`
	MaxRounds              uint64           `json:"max_rounds"`
	MaxContinuationRetries uint64           `json:"max_continuation_retries"`
	ReasoningEffort        *ReasoningEffort `json:"reasoning_effort,omitempty"`
	ContextPolicy          *ContextPolicy   `json:"context_policy,omitempty"`
	StopConditions         []any            `json:"stop_conditions,omitempty"`
	PluginIDs              []string         `json:"plugin_ids"`
	ActiveHookFilter       []string         `json:"active_hook_filter,omitempty"`
	AllowedTools           []string         `json:"allowed_tools"`
	AllowedToolPatterns    []string         `json:"allowed_tool_patterns"`
	ExcludedTools          []string         `json:"excluded_tools,omitempty"`
	ExcludedToolPatterns   []string         `json:"excluded_tool_patterns,omitempty"`
	Delegates              []string         `json:"delegates,omitempty"`
	Endpoint               *Endpoint        `json:"endpoint,omitempty"`
	Sections               map[string]any   `json:"sections,omitempty"`
	// Registry names the registry an agent came from (awaken pass-through).
	Registry string `json:"registry,omitempty"`
}

// Remote reports whether the agent runs on a remote backend.
func (a AgentSpec) Remote() bool { return a.Endpoint != nil }

// Endpoint is a remote agent's backend. Auth holds a secret token.
type Endpoint struct {
	Backend   string         `json:"backend"`
	BaseURL   string         `json:"base_url"`
	Auth      *EndpointAuth  `json:"auth,omitempty"`
	Target    string         `json:"target,omitempty"`
	TimeoutMS uint64         `json:"timeout_ms"`
	Options   map[string]any `json:"options,omitempty"`
}

// EndpointAuth authenticates calls to a remote backend. Token is a secret
// and is never serialized.
type EndpointAuth struct {
	Type  string `json:"type"`
	Token string `json:"-"`
}

// Provider is a provider spec together with the executor built from it.
type Provider struct {
	Spec     ProviderSpec
	Executor Executor
}

// Executor runs inference for one provider. The registry only holds
// executors; the gateway's adapters implement the rest of the contract.
type Executor interface {
	// Name identifies the executor kind, for example "openai".
	Name() string
}

// Tool is a tool registered programmatically; it is opaque to the registry.
type Tool any

// Plugin is a plugin registered programmatically; it is opaque to the
// registry.
type Plugin any
