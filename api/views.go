package api

import (
	"net/url"

	"github.com/awakend/awakend/registry"
)

// The read API serves registry specs by their JSON tags, except where a spec
// holds a secret: providers are served through an explicit view listing what
// may be shown, and agents with their endpoint's auth replaced.

// list is the body of a list route.
type list[T any] struct {
	Data []T `json:"data"`
}

// providerView is a provider as the API serves it: no API key, no header
// values.
type providerView struct {
	ID             string              `json:"id"`
	Adapter        string              `json:"adapter"`
	BaseURL        string              `json:"base_url,omitempty"`
	TimeoutSecs    uint64              `json:"timeout_secs"`
	HasAPIKey      bool                `json:"has_api_key"`
	AdapterOptions *adapterOptionsView `json:"adapter_options,omitempty"`
}

// adapterOptionsView names a provider's extra headers; their values may be
// credentials.
type adapterOptionsView struct {
	HeaderNames []string `json:"header_names"`
}

func newProviderView(p registry.ProviderSpec) providerView {
	v := providerView{
		ID:          p.ID,
		Adapter:     p.Adapter,
		BaseURL:     maskURL(p.BaseURL),
		TimeoutSecs: p.TimeoutSecs,
		HasAPIKey:   p.HasAPIKey(),
	}
	if len(p.AdapterOptions.Headers) > 0 {
		v.AdapterOptions = &adapterOptionsView{HeaderNames: sortedKeys(p.AdapterOptions.Headers)}
	}
	return v
}

// agentFields and endpointFields have the specs' fields and JSON tags but
// none of their methods, so that a MarshalJSON added to a spec could not
// bypass the fields the views below override.
type (
	agentFields    registry.AgentSpec
	endpointFields registry.Endpoint
)

// agentView is an agent as the API serves it: its endpoint's token is
// replaced by whether it has one. The outer Endpoint field hides the
// embedded one.
type agentView struct {
	agentFields
	Endpoint *endpointView `json:"endpoint,omitempty"`
}

// endpointView is a remote agent's endpoint without its token.
type endpointView struct {
	endpointFields
	BaseURL string    `json:"base_url"`
	Auth    *authView `json:"auth,omitempty"`
}

// authView says how a remote endpoint authenticates, not with what.
type authView struct {
	Type     string `json:"type"`
	HasToken bool   `json:"has_token"`
}

func newAgentView(a registry.AgentSpec) agentView {
	v := agentView{agentFields: agentFields(a)}
	if e := a.Endpoint; e != nil {
		ev := &endpointView{endpointFields: endpointFields(*e), BaseURL: maskURL(e.BaseURL)}
		if e.Auth != nil {
			ev.Auth = &authView{Type: e.Auth.Type, HasToken: e.Auth.Token != ""}
		}
		v.Endpoint = ev
	}
	return v
}

// clientView is a client without its key, or its key's hash: only which
// of the two the directory gives.
type clientView struct {
	ID          string          `json:"id"`
	Description string          `json:"description,omitempty"`
	HasKey      bool            `json:"has_key"`
	KeyForm     string          `json:"key_form"` // "key" or "key_sha256"
	Models      []string        `json:"models"`   // null: every model, pool and agent
	Limits      clientLimitView `json:"limits"`
	Usage       any             `json:"usage,omitempty"` // Options.Usage's
}

// clientLimitView is a client's limits; null is no limit.
type clientLimitView struct {
	RequestsPerMinute *uint32 `json:"requests_per_minute"`
	TokensPerMinute   *uint32 `json:"tokens_per_minute"`
}

func newClientView(c registry.ClientSpec) clientView {
	form := "key"
	if c.Key == "" {
		form = "key_sha256"
	}
	return clientView{
		ID: c.ID, Description: c.Description, HasKey: c.Key != "" || c.KeySHA256 != "", KeyForm: form,
		Models: c.Models, Limits: clientLimitView(c.Limits),
	}
}

// newRouteView masks the URLs of a route's targets.
func newRouteView(r registry.Route) registry.Route {
	targets := make([]registry.Target, len(r.Targets))
	for i, t := range r.Targets {
		t.BaseURL = maskURL(t.BaseURL)
		targets[i] = t
	}
	r.Targets = targets
	return r
}

// maskURL replaces the user information of a URL (https://user:key@host),
// a common place for credentials, with "xxxxx".
func maskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = url.User("xxxxx")
	return u.String()
}
