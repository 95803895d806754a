package gateway

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/awakend/awakend/provider"
	"github.com/awakend/awakend/registry"
)

// table is what the gateway derives from one snapshot: a route per name
// (model, pool or agent id) and the /v1/models answer. It is immutable
// once built and shared by every request that read the snapshot.
type table struct {
	snap    *registry.Snapshot
	version []string // the VersionHeader value
	routes  map[string]*route
	list    []byte             // GET /v1/models
	clients map[string]*client // by id; nil when none is declared
}

// route is where one name leads.
type route struct {
	name    string // the registry id, the model label of the metrics
	kind    string // registry.KindAgentRoute, KindModelRoute or KindPoolRoute
	ownedBy string
	remote  bool
	sysMsg  []byte // an agent's system message, a JSON object
	effort  []byte // an agent's `"reasoning_effort":"…"` member

	// For the other APIs: the agent's system prompt, as text and as a
	// JSON string, and its reasoning effort level.
	system      string
	sysText     []byte
	effortLevel string
	plan        *plan // nil for a remote agent

	// ok caches the awakend_requests_total child of a 200 answer per
	// target of plan, so that the hot path takes no metric lock.
	ok []atomic.Pointer[counter]
}

type counter struct{ prometheus.Counter }

// plan is a model or pool: the targets a request may go to and how to
// order them.
type plan struct {
	id      string
	pool    bool
	home    registry.HomeStrategy
	sw      registry.SwitchPolicy
	maxTry  int           // attempts allowed: 1 + max_switches_per_session, or len(targets)
	quota   time.Duration // quota_retry_after_threshold_secs, 0 if unset
	targets []*target     // declaration order
	weight  uint64        // sum of the member-role weights, for round robin
	rr      *atomic.Uint64
}

// target is one model on one provider, as a member of a plan.
type target struct {
	modelID, providerID string
	upstream            []byte // the upstream model as a JSON string
	upstreamName        string
	caller              provider.Caller
	sampling            registry.SamplingRule
	adaptive            bool // the model's thinking is adaptive
	breaker             *breaker
	index               int // in plan.targets
	weight              uint32
	invWeight           float64
	failoverOnly        bool
	priceIn, priceOut   float64 // USD per token
	seed                uint64  // rendezvous hash seed of the model id
	modelHdr, provHdr   []string
	upstreamObs, ttft   prometheus.Observer
}

// breakerKey identifies a target across snapshots.
type breakerKey struct{ provider, model string }

// tableFor returns the routing table of snap, building it on first use.
// The newest table is cached; a request that read an older snapshot just
// as a newer one was published builds its own, uncached.
func (g *Gateway) tableFor(snap *registry.Snapshot) *table {
	if t := g.table.Load(); t != nil && t.snap == snap {
		return t
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	cur := g.table.Load()
	if cur != nil && cur.snap == snap {
		return cur
	}
	t := g.compile(snap)
	if cur == nil || snap.Version > cur.snap.Version {
		g.table.Store(t)
		g.prune(t)
		g.publishClients(t)
	}
	return t
}

// prune forgets the breakers and counters that t no longer uses; requests
// still on older tables keep theirs.
func (g *Gateway) prune(t *table) {
	used := make(map[breakerKey]bool, len(g.breakers))
	pools := make(map[string]bool, len(g.counters))
	for _, r := range t.routes {
		if r.plan == nil {
			continue
		}
		for _, tg := range r.plan.targets {
			used[breakerKey{tg.providerID, tg.modelID}] = true
		}
		if r.plan.pool {
			pools[r.plan.id] = true
		}
	}
	for k := range g.breakers {
		if !used[k] {
			delete(g.breakers, k)
		}
	}
	for k := range g.counters {
		if !pools[k] {
			delete(g.counters, k)
		}
	}
}

// compile builds the table of snap. Called with g.mu held.
func (g *Gateway) compile(snap *registry.Snapshot) *table {
	set := snap.Set
	t := &table{
		snap:    snap,
		version: []string{strconv.FormatUint(snap.Version, 10)},
		routes:  make(map[string]*route, len(set.ModelIDs())+len(set.PoolIDs())+len(set.AgentIDs())),
	}
	plans := make(map[string]*plan, len(set.ModelIDs())+len(set.PoolIDs()))
	for _, id := range set.ModelIDs() {
		m, _ := set.Model(id)
		p := &plan{id: id, home: registry.HomeFirstHealthy, maxTry: 1}
		p.targets = []*target{g.target(set, m, registry.RoleMember, 1)}
		p.weight = 1
		plans[id] = p
		t.routes[id] = newRoute(id, registry.KindModelRoute, m.ProviderID, p)
	}
	for _, id := range set.PoolIDs() {
		ps, _ := set.Pool(id)
		p := &plan{id: id, pool: true, home: ps.Routing.Home, sw: ps.Switch, maxTry: len(ps.Members)}
		if p.home == "" {
			p.home = registry.HomeDeterministic
		}
		if n := ps.Switch.MaxSwitchesPerSession; n != nil && int(*n)+1 < p.maxTry {
			p.maxTry = int(*n) + 1
		}
		if s := ps.Switch.QuotaRetryAfterThresholdSecs; s != nil {
			p.quota = time.Duration(min(*s, uint64(math.MaxInt64/int64(time.Second)))) * time.Second
		}
		for _, mem := range ps.Members {
			m, ok := set.Model(mem.ModelID)
			if !ok {
				continue // impossible in a validated set
			}
			role := mem.Role
			if role == "" {
				role = registry.RoleMember
			}
			tg := g.target(set, m, role, mem.EffectiveWeight())
			tg.index = len(p.targets)
			p.targets = append(p.targets, tg)
			if !tg.failoverOnly {
				p.weight += uint64(tg.weight)
			}
		}
		if p.home == registry.HomeRoundRobin {
			c := g.counters[id]
			if c == nil {
				c = new(atomic.Uint64)
				g.counters[id] = c
			}
			p.rr = c
		}
		plans[id] = p
		t.routes[id] = newRoute(id, registry.KindPoolRoute, "awakend", p)
	}
	for _, id := range set.AgentIDs() {
		a, _ := set.Agent(id)
		r := newRoute(id, registry.KindAgentRoute, "awakend", plans[a.ModelID])
		r.remote = a.Remote()
		if r.remote {
			r.plan, r.ok = nil, nil
		}
		if a.SystemPrompt != "" {
			r.sysMsg, _ = json.Marshal(struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			}{"system", a.SystemPrompt})
		}
		if a.SystemPrompt != "" {
			r.system = a.SystemPrompt
			r.sysText, _ = json.Marshal(a.SystemPrompt)
		}
		if level := openAIEffort(a.ReasoningEffort); level != "" {
			r.effort = []byte(`"reasoning_effort":"` + level + `"`)
			r.effortLevel = level
		}
		if r.plan == nil && !r.remote {
			continue // impossible in a validated set
		}
		t.routes[id] = r
	}
	t.list = modelList(t, nil)
	g.compileClients(t, set)
	return t
}

func newRoute(name, kind, ownedBy string, p *plan) *route {
	r := &route{name: name, kind: kind, ownedBy: ownedBy, plan: p}
	if p != nil {
		r.ok = make([]atomic.Pointer[counter], len(p.targets))
	}
	return r
}

// target builds the target of model m in a plan. Called with g.mu held.
func (g *Gateway) target(set *registry.Set, m registry.ModelSpec, role registry.MemberRole, weight uint32) *target {
	q, _ := json.Marshal(m.UpstreamModel)
	tg := &target{
		modelID: m.ID, providerID: m.ProviderID, upstream: q, upstreamName: m.UpstreamModel,
		sampling: m.Sampling, adaptive: m.Thinking == registry.ThinkingAdaptive,
		weight: weight, invWeight: 1 / float64(max(weight, 1)),
		failoverOnly: role == registry.RoleFailoverOnly,
		seed:         mix64(fnv64(m.ID)),
		modelHdr:     []string{m.ID}, provHdr: []string{m.ProviderID},
		upstreamObs: g.m.upstream.WithLabelValues(m.ProviderID),
		ttft:        g.m.ttft.WithLabelValues(m.ProviderID),
	}
	if p := m.InputTokenPricePerMillionUSD; p != nil {
		tg.priceIn = *p / 1e6
	}
	if p := m.OutputTokenPricePerMillionUSD; p != nil {
		tg.priceOut = *p / 1e6
	}
	if p, ok := set.Provider(m.ProviderID); ok {
		tg.caller, _ = p.Executor.(provider.Caller)
	}
	key := breakerKey{m.ProviderID, m.ID}
	b := g.breakers[key]
	if b == nil {
		b = new(breaker)
		g.breakers[key] = b
	}
	tg.breaker = b
	return tg
}

// openAIEffort maps awaken's reasoning effort to OpenAI's reasoning_effort
// value; "" means the field is not sent (see the package comment).
func openAIEffort(e *registry.ReasoningEffort) string {
	if e == nil {
		return ""
	}
	switch e.Level {
	case registry.EffortLow, registry.EffortMedium, registry.EffortHigh:
		return e.Level
	case registry.EffortMax:
		return registry.EffortHigh
	}
	return "" // none, budget
}

// modelObject is one entry of OpenAI's model list.
type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// modelList renders GET /v1/models: every model, pool and local agent
// that may (nil: any) allows, sorted by id. Remote agents are left out:
// this gateway cannot serve them.
func modelList(t *table, may func(string) bool) []byte {
	list := struct {
		Object string        `json:"object"`
		Data   []modelObject `json:"data"`
	}{Object: "list", Data: make([]modelObject, 0, len(t.routes))}
	for _, r := range t.routes {
		if !r.remote && (may == nil || may(r.name)) {
			list.Data = append(list.Data, r.object())
		}
	}
	slices.SortFunc(list.Data, func(a, b modelObject) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	b, _ := json.Marshal(list)
	return append(b, '\n')
}

func (r *route) object() modelObject {
	return modelObject{ID: r.name, Object: "model", OwnedBy: r.ownedBy}
}
