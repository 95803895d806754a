package registry

import "fmt"

// Target is one concrete upstream a name resolves to: a model on a
// provider.
type Target struct {
	ModelID       string     `json:"model_id"`
	ProviderID    string     `json:"provider_id"`
	UpstreamModel string     `json:"upstream_model"`
	Adapter       string     `json:"adapter"`
	BaseURL       string     `json:"base_url,omitempty"`
	Role          MemberRole `json:"role,omitempty"`   // pool members only
	Weight        uint32     `json:"weight,omitempty"` // pool members only
}

// Route is what a name (agent, model or pool id) resolves to in a set.
type Route struct {
	Name    string   `json:"name"`
	Kind    string   `json:"kind"`               // "agent", "model" or "model_pool"
	AgentID string   `json:"agent_id,omitempty"` // for an agent
	ModelID string   `json:"model_id,omitempty"` // the model or pool served
	PoolID  string   `json:"model_pool_id,omitempty"`
	Remote  bool     `json:"remote,omitempty"` // a remote agent: no upstream model here
	Targets []Target `json:"targets"`
}

// Route kinds.
const (
	KindAgentRoute = "agent"
	KindModelRoute = "model"
	KindPoolRoute  = "model_pool"
)

// NotFoundError says that a name is not in the set.
type NotFoundError struct {
	Namespace string
	ID        string
}

func (e *NotFoundError) Error() string {
	if e.Namespace == "" {
		return fmt.Sprintf("no agent, model or model pool named '%s'", e.ID)
	}
	return fmt.Sprintf("%s '%s' not found", e.Namespace, e.ID)
}

// Resolve follows a name through the set: an agent to its model or pool,
// a pool to its members, each model to its provider and upstream model.
// Targets of a pool are in declaration order. In a validated set every
// reference resolves.
func (s *Set) Resolve(name string) (Route, error) {
	r := Route{Name: name, Targets: []Target{}}
	target := name
	if a, ok := s.agents[name]; ok {
		r.Kind, r.AgentID = KindAgentRoute, name
		if a.Remote() {
			r.Remote = true
			return r, nil
		}
		target = a.ModelID
	}
	if m, ok := s.models[target]; ok {
		if r.Kind == "" {
			r.Kind = KindModelRoute
		}
		r.ModelID = target
		r.Targets = append(r.Targets, s.target(*m))
		return r, nil
	}
	if p, ok := s.pools[target]; ok {
		if r.Kind == "" {
			r.Kind = KindPoolRoute
		}
		r.ModelID, r.PoolID = target, target
		for _, mem := range p.Members {
			t := s.target(spec(s.models, mem.ModelID))
			t.Role = mem.Role
			if t.Role == "" {
				t.Role = RoleMember
			}
			t.Weight = mem.EffectiveWeight()
			r.Targets = append(r.Targets, t)
		}
		return r, nil
	}
	if r.Kind == KindAgentRoute {
		return r, &NotFoundError{Namespace: NSModels, ID: target}
	}
	return r, &NotFoundError{ID: name}
}

func (s *Set) target(m ModelSpec) Target {
	p := spec(s.providers, m.ProviderID).Spec
	return Target{
		ModelID: m.ID, ProviderID: m.ProviderID, UpstreamModel: m.UpstreamModel,
		Adapter: p.Adapter, BaseURL: p.EffectiveBaseURL(),
	}
}
