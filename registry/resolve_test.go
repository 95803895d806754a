package registry

import (
	"errors"
	"testing"
)

func TestResolve(t *testing.T) {
	d := NewDraft(pooledSet(t))
	d.Agents["remote"] = AgentSpec{ID: "remote", Endpoint: &Endpoint{Backend: "a2a", BaseURL: "https://a.example.com", TimeoutMS: 1}}
	s, err := d.Build()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, kind, model, pool string
		targets                 []string // model@provider
		remote                  bool
	}{
		{name: "a", kind: KindAgentRoute, model: "m", targets: []string{"m@p"}},
		{name: "b", kind: KindAgentRoute, model: "fast", pool: "fast", targets: []string{"m@p", "n@q"}},
		{name: "m", kind: KindModelRoute, model: "m", targets: []string{"m@p"}},
		{name: "fast", kind: KindPoolRoute, model: "fast", pool: "fast", targets: []string{"m@p", "n@q"}},
		{name: "remote", kind: KindAgentRoute, remote: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := s.Resolve(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if r.Kind != tt.kind || r.ModelID != tt.model || r.PoolID != tt.pool || r.Remote != tt.remote || len(r.Targets) != len(tt.targets) {
				t.Fatalf("route = %+v", r)
			}
			for i, tg := range r.Targets {
				if got := tg.ModelID + "@" + tg.ProviderID; got != tt.targets[i] {
					t.Errorf("target %d = %s, want %s", i, got, tt.targets[i])
				}
				if tg.UpstreamModel != "upstream-"+tg.ModelID || tg.Adapter != "mock" {
					t.Errorf("target %d = %+v", i, tg)
				}
				if tt.pool != "" && (tg.Role != RoleMember || tg.Weight != 1) {
					t.Errorf("pool target %d = %+v, want role member weight 1", i, tg)
				}
			}
		})
	}
	_, err = s.Resolve("nope")
	var nf *NotFoundError
	if !errors.As(err, &nf) || err.Error() != "no agent, model or model pool named 'nope'" {
		t.Fatalf("err = %v", err)
	}
}
