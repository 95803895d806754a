package registry

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/awakend/awakend/internal/suggest"
)

// checker collects diagnostics for one resource.
type checker struct {
	ref   Ref
	kind  string // "provider", "model", "model pool", "agent"
	diags []Diagnostic
}

func (c *checker) add(code, field, format string, args ...any) {
	c.diags = append(c.diags, Diagnostic{
		Code:     code,
		Severity: SeverityError,
		Resource: c.ref,
		Field:    field,
		Message:  fmt.Sprintf("%s '%s': ", c.kind, c.ref.ID) + fmt.Sprintf(format, args...),
	})
}

func (c *checker) required(field, value string) {
	if value == "" {
		c.add(CodeRequired, field, "%s must not be empty", field)
	}
}

func (c *checker) ids(field string, ids []string) {
	for i, id := range ids {
		if id == "" {
			f := field + "." + strconv.Itoa(i)
			c.add(CodeRequired, f, "%s must not contain an empty id", field)
		}
	}
}

// CheckProvider reports the rules a provider spec breaks on its own.
func CheckProvider(p ProviderSpec) []Diagnostic {
	c := checker{ref: Ref{NSProviders, p.ID}, kind: "provider"}
	c.required("id", p.ID)
	if _, ok := LookupAdapter(p.Adapter); !ok && p.Adapter != "" {
		c.add(CodeInvalidEnum, "adapter", "unknown adapter %q%s", p.Adapter, suggest.Hint(p.Adapter, AdapterNames()))
	}
	c.required("adapter", p.Adapter)
	if p.TimeoutSecs == 0 {
		c.add(CodeInvalidEnum, "timeout_secs", "timeout_secs must be greater than 0")
	}
	a, _ := LookupAdapter(p.Adapter)
	if p.BaseURL == "" && a.Kind == KindOpenAI && a.DefaultBaseURL == "" {
		c.add(CodeRequired, "base_url", "base_url must be set for adapter %q", p.Adapter)
	}
	if p.BaseURL != "" {
		if err := checkHTTPURL(p.BaseURL, true); err != nil {
			c.add(CodeInvalidEndpoint, "base_url", "base_url %v", err)
		}
	}
	if v := p.AdapterOptions.AnthropicVersion; v != "" {
		if _, err := time.Parse("2006-01-02", v); err != nil {
			c.add(CodeInvalidDate, "adapter_options.anthropic_version", "adapter_options.anthropic_version %q is not a date (YYYY-MM-DD)", v)
		} else if a.Kind != KindAnthropic {
			c.add(CodeInvalidEnum, "adapter_options.anthropic_version", "adapter_options.anthropic_version is for the anthropic adapter, not %q", p.Adapter)
		}
	}
	return c.diags
}

// CheckModel reports the rules a model spec breaks on its own.
func CheckModel(m ModelSpec) []Diagnostic {
	c := checker{ref: Ref{NSModels, m.ID}, kind: "model"}
	c.required("id", m.ID)
	c.required("provider_id", m.ProviderID)
	c.required("upstream_model", m.UpstreamModel)
	if m.ContextWindow != nil && *m.ContextWindow == 0 {
		c.add(CodeInvalidTokenLimit, "context_window", "context_window must be greater than 0")
	}
	if m.MaxOutputTokens != nil && *m.MaxOutputTokens == 0 {
		c.add(CodeInvalidTokenLimit, "max_output_tokens", "max_output_tokens must be greater than 0")
	}
	if m.ContextWindow != nil && m.MaxOutputTokens != nil && *m.MaxOutputTokens > *m.ContextWindow {
		c.add(CodeInvalidTokenLimit, "max_output_tokens",
			"max_output_tokens (%d) must not exceed context_window (%d)", *m.MaxOutputTokens, *m.ContextWindow)
	}
	if m.KnowledgeCutoff != "" && !validCutoff(m.KnowledgeCutoff) {
		c.add(CodeInvalidDate, "knowledge_cutoff",
			"knowledge_cutoff %q is not a calendar date (YYYY-MM or YYYY-MM-DD)", m.KnowledgeCutoff)
	}
	checkPrice(&c, "input_token_price_per_million_usd", m.InputTokenPricePerMillionUSD)
	checkPrice(&c, "output_token_price_per_million_usd", m.OutputTokenPricePerMillionUSD)
	checkModalities(&c, "modalities.input", m.Modalities.Input)
	checkModalities(&c, "modalities.output", m.Modalities.Output)
	switch m.Sampling {
	case "", SamplingPass, SamplingDrop, SamplingRefuse:
	default:
		c.add(CodeInvalidEnum, "sampling", "sampling %q is not pass, drop or refuse", m.Sampling)
	}
	switch m.Thinking {
	case "", ThinkingBudget, ThinkingAdaptive:
	default:
		c.add(CodeInvalidEnum, "thinking", "thinking %q is not budget or adaptive", m.Thinking)
	}
	return c.diags
}

func checkPrice(c *checker, field string, p *float64) {
	if p == nil {
		return
	}
	if math.IsNaN(*p) || math.IsInf(*p, 0) || *p < 0 {
		c.add(CodeInvalidPrice, field, "%s must be a finite number >= 0", field)
	}
}

func checkModalities(c *checker, field string, ms []Modality) {
	for i, m := range ms {
		switch {
		case !m.Valid():
			c.add(CodeInvalidModality, field+"."+strconv.Itoa(i),
				"unknown modality %q in %s (want text, image, audio, video or pdf)", m, field)
		case slices.Contains(ms[:i], m):
			c.add(CodeInvalidModality, field+"."+strconv.Itoa(i), "duplicate modality %q in %s", m, field)
		}
	}
}

// validCutoff accepts YYYY-MM and YYYY-MM-DD naming a real calendar date.
func validCutoff(s string) bool {
	layout := "2006-01-02"
	if len(s) == len("2006-01") {
		layout = "2006-01"
	}
	_, err := time.Parse(layout, s)
	return err == nil && len(s) == len(layout)
}

// CheckPool reports the rules a model pool spec breaks on its own.
func CheckPool(p PoolSpec) []Diagnostic {
	c := checker{ref: Ref{NSModelPools, p.ID}, kind: "model pool"}
	c.required("id", p.ID)
	if len(p.Members) == 0 {
		c.add(CodePoolNoMembers, "members", "members must not be empty")
	}
	seen := make(map[string]bool, len(p.Members))
	home := false
	for i, m := range p.Members {
		f := "members." + strconv.Itoa(i)
		if m.ModelID == "" {
			c.add(CodeRequired, f+".model_id", "members[%d].model_id must not be empty", i)
		} else if seen[m.ModelID] {
			c.add(CodePoolDuplicateMember, f+".model_id", "model '%s' is a member more than once", m.ModelID)
		}
		seen[m.ModelID] = true
		if m.Weight != nil && *m.Weight == 0 {
			c.add(CodePoolInvalidWeight, f+".weight", "members[%d].weight must be greater than 0", i)
		}
		switch m.Role {
		case RoleMember, "":
			home = true
		case RoleFailoverOnly:
		default:
			home = true // reported as an invalid role, not as "all failover_only"
			c.add(CodeInvalidEnum, f+".role", "members[%d].role %q is not member or failover_only", i, m.Role)
		}
	}
	if len(p.Members) > 0 && !home {
		c.add(CodePoolNoMembers, "members", "at least one member must have role member (all are failover_only)")
	}
	switch p.Routing.Home {
	case HomeDeterministic, HomeRoundRobin, HomeFirstHealthy, "":
	default:
		c.add(CodeInvalidEnum, "routing.home", "routing.home %q is not deterministic, round_robin or first_healthy", p.Routing.Home)
	}
	switch p.Routing.StickyScope {
	case StickyThread, StickyRun, "":
	default:
		c.add(CodeInvalidEnum, "routing.sticky_scope", "routing.sticky_scope %q is not thread or run", p.Routing.StickyScope)
	}
	return c.diags
}

// CheckAgent reports the rules an agent spec breaks on its own.
func CheckAgent(a AgentSpec) []Diagnostic {
	c := checker{ref: Ref{NSAgents, a.ID}, kind: "agent"}
	c.required("id", a.ID)
	if a.Endpoint == nil {
		c.required("model_id", a.ModelID)
	}
	c.ids("plugin_ids", a.PluginIDs)
	c.ids("active_hook_filter", a.ActiveHookFilter)
	c.ids("delegates", a.Delegates)
	if e := a.ReasoningEffort; e != nil {
		switch e.Level {
		case EffortNone, EffortLow, EffortMedium, EffortHigh, EffortMax:
		case EffortBudget:
			if e.Budget == 0 {
				c.add(CodeInvalidReasoning, "reasoning_effort.budget", "reasoning_effort budget must be greater than 0")
			}
		default:
			c.add(CodeInvalidReasoning, "reasoning_effort",
				"reasoning_effort %q is not none, low, medium, high, max or {budget: N}", e.Level)
		}
	}
	if p := a.ContextPolicy; p != nil {
		switch p.CompactionMode {
		case CompactionKeepRecentRawSuffix, CompactionCompactToSafeFrontier, "":
		default:
			c.add(CodeInvalidEnum, "context_policy.compaction_mode",
				"context_policy.compaction_mode %q is not keep_recent_raw_suffix or compact_to_safe_frontier", p.CompactionMode)
		}
	}
	if e := a.Endpoint; e != nil {
		if e.Backend == "" {
			c.add(CodeInvalidEndpoint, "endpoint.backend", "endpoint.backend must not be empty")
		}
		if err := checkHTTPURL(e.BaseURL, false); err != nil {
			c.add(CodeInvalidEndpoint, "endpoint.base_url", "endpoint.base_url %v", err)
		}
		if au := e.Auth; au != nil {
			switch {
			case au.Type != "bearer":
				c.add(CodeInvalidEndpoint, "endpoint.auth.type", "endpoint.auth.type %q is not supported (want bearer)", au.Type)
			case au.Token == "":
				c.add(CodeInvalidEndpoint, "endpoint.auth.token", "endpoint.auth.token must not be empty")
			case au.Token == "***":
				c.add(CodeInvalidEndpoint, "endpoint.auth.token", "endpoint.auth.token is the redaction placeholder \"***\", not a token")
			}
		}
	}
	return c.diags
}

// checkHTTPURL accepts absolute http(s) URLs with a host; a base URL of a
// provider may carry a query (some proxies need one), an endpoint's may not.
func checkHTTPURL(raw string, allowQuery bool) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("%q is not a URL", raw)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q must use http or https", raw)
	case u.Host == "":
		return fmt.Errorf("%q has no host", raw)
	case u.Fragment != "" || (!allowQuery && u.RawQuery != ""):
		return fmt.Errorf("%q must not have a query or fragment", raw)
	}
	return nil
}
