package registry

import (
	"maps"
	"slices"
)

// Adapter kinds: the wire protocols awakend speaks upstream.
const (
	KindOpenAI    = "openai"
	KindAnthropic = "anthropic"
	KindMock      = "mock"
)

// Adapter is what a provider's adapter name stands for: a wire protocol and
// the base URL used when the provider sets none.
type Adapter struct {
	Kind           string
	DefaultBaseURL string
}

var adapters = map[string]Adapter{
	"openai":     {KindOpenAI, "https://api.openai.com/v1"},
	"anthropic":  {KindAnthropic, "https://api.anthropic.com"},
	"mock":       {KindMock, ""},
	"ollama":     {KindOpenAI, "http://127.0.0.1:11434/v1"},
	"vllm":       {KindOpenAI, "http://127.0.0.1:8000/v1"},
	"groq":       {KindOpenAI, "https://api.groq.com/openai/v1"},
	"openrouter": {KindOpenAI, "https://openrouter.ai/api/v1"},
	"deepseek":   {KindOpenAI, "https://api.deepseek.com/v1"},
	"together":   {KindOpenAI, "https://api.together.xyz/v1"},
	"mistral":    {KindOpenAI, "https://api.mistral.ai/v1"},
	"xai":        {KindOpenAI, "https://api.x.ai/v1"},
	"lmstudio":   {KindOpenAI, "http://127.0.0.1:1234/v1"},
}

// LookupAdapter returns the adapter a provider's adapter name stands for.
func LookupAdapter(name string) (Adapter, bool) {
	a, ok := adapters[name]
	return a, ok
}

// AdapterNames returns every adapter name awakend accepts, sorted.
func AdapterNames() []string { return slices.Sorted(maps.Keys(adapters)) }

// Equal reports whether two provider specs are the same, so that a reload
// can keep the executor (and its connection pool) of an unchanged provider.
func (p ProviderSpec) Equal(q ProviderSpec) bool {
	return p.ID == q.ID && p.Adapter == q.Adapter && p.APIKey == q.APIKey &&
		p.BaseURL == q.BaseURL && p.TimeoutSecs == q.TimeoutSecs &&
		maps.Equal(p.AdapterOptions.Headers, q.AdapterOptions.Headers) &&
		equalMock(p.AdapterOptions.Mock, q.AdapterOptions.Mock)
}

func equalMock(a, b *MockOptions) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// EffectiveBaseURL is the base URL requests go to: the provider's own, or
// its adapter's default.
func (p ProviderSpec) EffectiveBaseURL() string {
	if p.BaseURL != "" {
		return p.BaseURL
	}
	a, _ := LookupAdapter(p.Adapter)
	return a.DefaultBaseURL
}
