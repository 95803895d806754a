package gateway

import (
	"crypto/sha256"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/awakend/awakend/edge"
	"github.com/awakend/awakend/registry"
)

// NoClient is the client id that usage is counted under for requests no
// client key made: while no client is declared, and for the settings'
// gateway.api_keys.
const NoClient = "-"

// client is a declared client as one table serves it.
type client struct {
	id    string
	scope map[string]struct{} // nil: every model, pool and agent
	acct  *account
	list  atomic.Pointer[[]byte] // its GET /v1/models answer, once built
}

// may reports whether the client may call name.
func (c *client) may(name string) bool {
	if c.scope == nil {
		return true
	}
	_, ok := c.scope[name]
	return ok
}

// account is what the gateway keeps of a client across reloads, by id:
// its limiter and its usage since start.
type account struct {
	id  string
	lim limiter

	mu     sync.Mutex                        // serializes additions to models
	models atomic.Pointer[map[string]*tally] // by serving model id; copied on write
}

// tally is one client's usage of one model.
type tally struct {
	requests, in, out atomic.Uint64
	cost              atomic.Uint64 // float64 bits, USD
	inC, outC, costC  prometheus.Counter
}

// tally returns a's tally of model, adding it on first use.
func (a *account) tally(m *gatewayMetrics, model string) *tally {
	if p := a.models.Load(); p != nil {
		if t := (*p)[model]; t != nil {
			return t
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var old map[string]*tally
	if p := a.models.Load(); p != nil {
		if t := (*p)[model]; t != nil {
			return t
		}
		old = *p
	}
	t := &tally{
		inC:   m.tokens.WithLabelValues(a.id, model, "input"),
		outC:  m.tokens.WithLabelValues(a.id, model, "output"),
		costC: m.cost.WithLabelValues(a.id, model),
	}
	next := make(map[string]*tally, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	next[model] = t
	a.models.Store(&next)
	return t
}

// add counts one request that model served, with the tokens the upstream
// reported (negative: none reported) at the model's prices per token.
func (t *tally) add(in, out int, priceIn, priceOut float64) {
	t.requests.Add(1)
	if in < 0 || out < 0 {
		return
	}
	t.in.Add(uint64(in))
	t.out.Add(uint64(out))
	t.inC.Add(float64(in))
	t.outC.Add(float64(out))
	cost := float64(in)*priceIn + float64(out)*priceOut
	if cost == 0 {
		return
	}
	t.costC.Add(cost)
	for {
		old := t.cost.Load()
		if t.cost.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+cost)) {
			return
		}
	}
}

// compileClients adds the snapshot's clients to t. Called with g.mu held.
func (g *Gateway) compileClients(t *table, set *registry.Set) {
	ids := set.ClientIDs()
	if len(ids) == 0 {
		return
	}
	t.clients = make(map[string]*client, len(ids))
	for _, id := range ids {
		spec, _ := set.Client(id)
		a := g.accounts[id]
		if a == nil {
			a = &account{id: id}
			a.lim.set(spec.Limits, g.clock())
			g.accounts[id] = a
		}
		c := &client{id: id, acct: a}
		if spec.Models != nil {
			c.scope = make(map[string]struct{}, len(spec.Models))
			for _, m := range spec.Models {
				c.scope[m] = struct{}{}
			}
		}
		t.clients[id] = c
	}
}

// publishClients makes t's clients the ones whose limits apply and whose
// usage is kept: the limits of every client are set from t's snapshot,
// and the accounts of clients it no longer declares are dropped, with
// their metrics, as are the tallies of models it no longer has. Called
// with g.mu held, for the newest table.
func (g *Gateway) publishClients(t *table) {
	set := t.snap.Set
	now := g.clock()
	for id, a := range g.accounts {
		if _, ok := t.clients[id]; !ok {
			delete(g.accounts, id)
			g.m.forget(prometheus.Labels{"client": id})
			continue
		}
		spec, _ := set.Client(id)
		a.lim.set(spec.Limits, now)
	}
	for _, a := range g.accounts {
		g.pruneTallies(a, set)
	}
	g.pruneTallies(g.anon, set)
}

// pruneTallies drops a's tallies of models set does not have.
func (g *Gateway) pruneTallies(a *account, set *registry.Set) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.models.Load()
	if p == nil {
		return
	}
	var next map[string]*tally
	for model := range *p {
		if _, ok := set.Model(model); ok {
			continue
		}
		if next == nil {
			next = make(map[string]*tally, len(*p))
			for k, v := range *p {
				next[k] = v
			}
		}
		delete(next, model)
		g.m.forget(prometheus.Labels{"client": a.id, "model": model})
	}
	if next != nil {
		a.models.Store(&next)
	}
}

// authenticate finds who sent r by its key: a bearer token or, on
// Anthropic's routes, x-api-key. A key of the settings' gateway.api_keys
// is accepted as no client (rs.client stays nil); a client's key makes
// rs.client that client of t. false when no key matched.
//
// A settings key is compared in constant time against every key. A
// client key is found by the SHA-256 of the presented key in a map: the
// time of that lookup depends on the presented key's hash, never on how
// much of a client's key it shares, and learning part of a client key's
// hash from it gives no preimage, so no byte of a key leaks.
func (g *Gateway) authenticate(r *http.Request, rs *reqState, t *table) bool {
	if token, ok := edge.Bearer(r); ok && g.known(token, rs, t) {
		return true
	}
	if rs.anthropic {
		token, ok := edge.APIKey(r)
		return ok && g.known(token, rs, t)
	}
	return false
}

// known reports whether token is a settings key or a client key of t,
// setting rs.client for the latter.
func (g *Gateway) known(token string, rs *reqState, t *table) bool {
	if g.keys.Load().Match(token) {
		return true
	}
	if t.clients == nil {
		return false
	}
	spec, ok := t.snap.Set.ClientByKey(keySum(token))
	if !ok {
		return false
	}
	rs.client = t.clients[spec.ID]
	return rs.client != nil
}

// keySum is the SHA-256 of a presented key. Keys up to 256 bytes are
// hashed from a copy on the stack, so that the check allocates nothing.
func keySum(token string) [sha256.Size]byte {
	var buf [256]byte
	if len(token) > len(buf) {
		return sha256.Sum256([]byte(token))
	}
	n := copy(buf[:], token)
	return sha256.Sum256(buf[:n])
}

// admit applies the limits of rs's client to the request; false when it
// is over one, and that was answered (429 with Retry-After).
func (g *Gateway) admit(w http.ResponseWriter, rs *reqState) bool {
	c := rs.client
	if c == nil || !c.acct.lim.on.Load() {
		return true
	}
	rs.quota = c.acct.lim.admit(g.clock())
	rs.limited = true
	q := &rs.quota
	if q.retry == 0 {
		return true
	}
	h := w.Header()
	q.stamp(h)
	h["Retry-After"] = []string{retryAfterSecs(q.retry)}
	what, limit := "requests per minute", q.rpm
	if q.byTokens {
		what, limit = "tokens per minute", q.tpm
	}
	g.fail(w, rs, http.StatusTooManyRequests, edge.NewError(edge.TypeRateLimit, "rate_limit_exceeded", "",
		"Rate limit reached for client '"+c.id+"' on "+what+": limit "+formatCount(limit)+
			" on this gateway. Please try again in "+q.retry.String()+"."))
	return false
}

func formatCount(f float64) string { return strconv.FormatFloat(f, 'f', 0, 64) }

// account records a finished request's usage under its client (NoClient
// for none) and takes its tokens from the client's limit. A non-streaming
// answer's usage is read here; a stream's was read as it passed.
func (g *Gateway) account(rs *reqState) {
	tg := rs.tg
	if tg == nil {
		return
	}
	if rs.forwarded {
		if p, c, ok := usage(rs.out); ok {
			rs.promptTokens, rs.completionTokens = p, c
		}
	}
	a := g.anon
	if rs.client != nil {
		a = rs.client.acct
	}
	a.tally(g.m, tg.modelID).add(rs.promptTokens, rs.completionTokens, tg.priceIn, tg.priceOut)
	if rs.limited && rs.promptTokens >= 0 && rs.completionTokens >= 0 {
		a.lim.spend(rs.promptTokens+rs.completionTokens, g.clock())
	}
}

// modelsFor returns the GET /v1/models answer of c: the names of t it may
// call.
func (c *client) modelsFor(t *table) []byte {
	if c.scope == nil {
		return t.list
	}
	if p := c.list.Load(); p != nil {
		return *p
	}
	b := modelList(t, c.may)
	c.list.Store(&b)
	return b
}

// Usage is a client's usage since the daemon started (or since the client
// was last declared): served requests, tokens the upstreams reported and
// their cost at the models' declared prices, in total and by the model
// that served.
type Usage struct {
	Counts
	Models map[string]Counts `json:"models"`
}

// Counts are the figures of a Usage.
type Counts struct {
	Requests     uint64  `json:"requests"`
	InputTokens  uint64  `json:"input_tokens"`
	OutputTokens uint64  `json:"output_tokens"`
	CostUSD      float64 `json:"cost_usd"`
}

// ClientUsage returns the usage of the client with id (NoClient for the
// requests of none); zero for a client the gateway has not seen. The
// requests of no client are counted only while the gateway exports its
// metrics (Options.Metrics) or logs requests (at Info), which report them.
func (g *Gateway) ClientUsage(id string) Usage {
	g.mu.Lock()
	a := g.accounts[id]
	g.mu.Unlock()
	if id == NoClient {
		a = g.anon
	}
	u := Usage{Models: map[string]Counts{}}
	if a == nil {
		return u
	}
	if p := a.models.Load(); p != nil {
		for model, t := range *p {
			c := Counts{t.requests.Load(), t.in.Load(), t.out.Load(), math.Float64frombits(t.cost.Load())}
			u.Models[model] = c
			u.Requests += c.Requests
			u.InputTokens += c.InputTokens
			u.OutputTokens += c.OutputTokens
			u.CostUSD += c.CostUSD
		}
	}
	return u
}
