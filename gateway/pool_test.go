package gateway

import (
	"context"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/awakend/awakend/edge"
	"github.com/awakend/awakend/provider"
	"github.com/awakend/awakend/registry"
)

// poolWorld has one provider per model a, b, c and a pool "pl" over the
// given members.
func poolWorld(home registry.HomeStrategy, sw registry.SwitchPolicy, members ...string) *world {
	w := newWorld()
	for _, id := range []string{"a", "b", "c"} {
		w.provider("p" + id)
		w.model(id, "p"+id)
	}
	w.pool("pl", home, sw, members...)
	return w
}

func u32(n uint32) *uint32 { return &n }
func u64(n uint64) *uint64 { return &n }

func TestDeterministicHomeIsStable(t *testing.T) {
	w := poolWorld(registry.HomeDeterministic, registry.DefaultSwitchPolicy(), "a", "b", "c")
	g, _ := w.gw(t, Options{})
	for i := range 20 {
		key := "session-" + strconv.Itoa(i)
		first := do(t, g, "POST", "/v1/chat/completions", chatReq("pl"), SessionHeader, key).header.Get(ModelHeader)
		for range 3 {
			if got := do(t, g, "POST", "/v1/chat/completions", chatReq("pl"), SessionHeader, key).header.Get(ModelHeader); got != first {
				t.Fatalf("key %s: served by %s then %s", key, first, got)
			}
		}
		// The body's user field is the same key.
		body := `{"model":"pl","messages":[],"user":"` + key + `"}`
		if got := do(t, g, "POST", "/v1/chat/completions", body).header.Get(ModelHeader); got != first {
			t.Fatalf("key %s as user: served by %s, header key by %s", key, got, first)
		}
	}
}

func TestDeterministicHomeSpreadsByWeight(t *testing.T) {
	w := poolWorld(registry.HomeDeterministic, registry.DefaultSwitchPolicy(), "a:3", "b:1", "c:1")
	g, h := w.gw(t, Options{})
	p := g.tableFor(h.Current()).routes["pl"].plan
	const n = 10_000
	count := map[string]int{}
	homes := make([]string, n)
	for i := range n {
		home := p.order(fnv64("user-"+strconv.Itoa(i)), nil)[0].modelID
		count[home]++
		homes[i] = home
	}
	for id, want := range map[string]float64{"a": 0.6, "b": 0.2, "c": 0.2} {
		if got := float64(count[id]) / n; math.Abs(got-want) > 0.02 {
			t.Errorf("member %s homes %.3f of keys, want %.2f ± 0.02 (%v)", id, got, want, count)
		}
	}

	// Removing c moves only c's keys.
	w2 := poolWorld(registry.HomeDeterministic, registry.DefaultSwitchPolicy(), "a:3", "b:1")
	g2, h2 := w2.gw(t, Options{})
	p2 := g2.tableFor(h2.Current()).routes["pl"].plan
	for i := range n {
		home := p2.order(fnv64("user-"+strconv.Itoa(i)), nil)[0].modelID
		if homes[i] != "c" && home != homes[i] {
			t.Fatalf("key %d moved from %s to %s when c left", i, homes[i], home)
		}
	}
}

func TestDeterministicWithoutKeySpreads(t *testing.T) {
	w := poolWorld(registry.HomeDeterministic, registry.DefaultSwitchPolicy(), "a", "b")
	g, _ := w.gw(t, Options{})
	count := map[string]int{}
	for range 400 {
		count[do(t, g, "POST", "/v1/chat/completions", chatReq("pl")).header.Get(ModelHeader)]++
	}
	if count["a"] < 120 || count["b"] < 120 {
		t.Errorf("requests without a session key are not spread: %v", count)
	}
}

func TestFailoverOrder(t *testing.T) {
	// Members first in hash order, failover_only last.
	w := poolWorld(registry.HomeDeterministic, registry.DefaultSwitchPolicy(), "c:failover", "a", "b")
	g, h := w.gw(t, Options{})
	p := g.tableFor(h.Current()).routes["pl"].plan
	for i := range 100 {
		ord := p.order(fnv64(strconv.Itoa(i)), nil)
		if len(ord) != 3 || ord[2].modelID != "c" || ord[0].modelID == ord[1].modelID {
			t.Fatalf("order %v", ids(ord))
		}
	}
}

func ids(ts []*target) []string {
	var s []string
	for _, t := range ts {
		s = append(s, t.modelID)
	}
	return s
}

func TestRoundRobin(t *testing.T) {
	for _, tt := range []struct {
		members []string
		want    string
	}{
		{[]string{"a", "b", "c"}, "a b c a b c"},
		{[]string{"a:2", "b", "c:failover"}, "a a b a a b"},
	} {
		t.Run(strings.Join(tt.members, ","), func(t *testing.T) {
			w := poolWorld(registry.HomeRoundRobin, registry.DefaultSwitchPolicy(), tt.members...)
			g, _ := w.gw(t, Options{})
			var got []string
			for range 6 {
				got = append(got, do(t, g, "POST", "/v1/chat/completions", chatReq("pl")).header.Get(ModelHeader))
			}
			if strings.Join(got, " ") != tt.want {
				t.Errorf("served %v, want %s", got, tt.want)
			}
		})
	}
}

func TestRoundRobinCounterSurvivesReload(t *testing.T) {
	w := poolWorld(registry.HomeRoundRobin, registry.DefaultSwitchPolicy(), "a", "b")
	g, h := w.gw(t, Options{})
	if got := do(t, g, "POST", "/v1/chat/completions", chatReq("pl")).header.Get(ModelHeader); got != "a" {
		t.Fatalf("first = %s", got)
	}
	h.Replace(w.set(t))
	if got := do(t, g, "POST", "/v1/chat/completions", chatReq("pl")).header.Get(ModelHeader); got != "b" {
		t.Errorf("after reload = %s, want b", got)
	}
}

func TestFirstHealthy(t *testing.T) {
	clk := newClock()
	w := poolWorld(registry.HomeFirstHealthy, registry.DefaultSwitchPolicy(), "b", "a", "c")
	g, _ := w.gw(t, Options{Now: clk.Now})
	for range 3 {
		if got := do(t, g, "POST", "/v1/chat/completions", chatReq("pl")).header.Get(ModelHeader); got != "b" {
			t.Fatalf("served by %s, want b (declared first)", got)
		}
	}
	w.fakes["pb"].set(failing(provider.ClassOverloaded, 503, 0))
	for range 5 {
		if got := do(t, g, "POST", "/v1/chat/completions", chatReq("pl")).header.Get(ModelHeader); got != "a" {
			t.Fatalf("failed over to %s, want a", got)
		}
	}
	// b's breaker is open: a is now the first healthy member, b is not called.
	before := w.fakes["pb"].calls()
	res := do(t, g, "POST", "/v1/chat/completions", chatReq("pl"))
	if res.header.Get(ModelHeader) != "a" || res.header.Get(AttemptsHeader) != "1" || w.fakes["pb"].calls() != before {
		t.Errorf("with b open: served by %s after %s attempts, b called %d times more",
			res.header.Get(ModelHeader), res.header.Get(AttemptsHeader), w.fakes["pb"].calls()-before)
	}
}

func TestFailover(t *testing.T) {
	connectErr := func(context.Context, *provider.Request) (*provider.Response, error) {
		return nil, &provider.Error{Class: provider.ClassConnect, Message: "dial tcp: connection refused"}
	}
	notProviderErr := func(context.Context, *provider.Request) (*provider.Response, error) {
		return nil, errors.New("executor bug")
	}
	for _, tt := range []struct {
		name     string
		fn       func(context.Context, *provider.Request) (*provider.Response, error)
		failover bool
		code     int // when not failing over
	}{
		{"429", failing(provider.ClassRateLimit, 429, 0), true, 0},
		{"503", failing(provider.ClassOverloaded, 503, 0), true, 0},
		{"500", failing(provider.ClassServer, 500, 0), true, 0},
		{"connect", connectErr, true, 0},
		{"timeout", failing(provider.ClassTimeout, 0, 0), true, 0},
		{"not a provider.Error", notProviderErr, true, 0},
		{"400", failing(provider.ClassInvalidRequest, 400, 0), false, 400},
		{"401", failing(provider.ClassAuth, 401, 0), false, 401},
		{"403", failing(provider.ClassAuth, 403, 0), false, 403},
		{"404", failing(provider.ClassNotFound, 404, 0), false, 404},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := poolWorld(registry.HomeFirstHealthy, registry.DefaultSwitchPolicy(), "a", "b")
			w.fakes["pa"].set(tt.fn)
			g, _ := w.gw(t, Options{})
			res := do(t, g, "POST", "/v1/chat/completions", chatReq("pl"))
			if tt.failover {
				if res.code != 200 || res.header.Get(ModelHeader) != "b" || res.header.Get(AttemptsHeader) != "2" {
					t.Fatalf("got %d from %s after %s attempts, want 200 from b after 2: %s",
						res.code, res.header.Get(ModelHeader), res.header.Get(AttemptsHeader), res.body)
				}
				return
			}
			if res.code != tt.code {
				t.Fatalf("status %d, want %d: %s", res.code, tt.code, res.body)
			}
			if n := w.fakes["pb"].calls(); n != 0 {
				t.Errorf("failed over on %s (%d calls to b)", tt.name, n)
			}
			env := res.json(t)["error"].(map[string]any)
			if env["message"] != "upstream says "+string(failingClass(tt.code)) || env["type"] != "upstream_type" || env["code"] != "upstream_code" {
				t.Errorf("envelope %v", env)
			}
			if res.header.Get(AttemptsHeader) != "1" {
				t.Errorf("attempts %q", res.header.Get(AttemptsHeader))
			}
		})
	}
}

func failingClass(code int) provider.Class {
	switch code {
	case 400:
		return provider.ClassInvalidRequest
	case 401, 403:
		return provider.ClassAuth
	}
	return provider.ClassNotFound
}

func TestAllMembersFail(t *testing.T) {
	for _, tt := range []struct {
		class      provider.Class
		code       int
		retryAfter string
	}{
		{provider.ClassRateLimit, 429, "7"},
		{provider.ClassOverloaded, 503, ""},
		{provider.ClassServer, 502, ""},
		{provider.ClassConnect, 502, ""},
		{provider.ClassTimeout, 504, ""},
	} {
		t.Run(string(tt.class), func(t *testing.T) {
			w := poolWorld(registry.HomeFirstHealthy, registry.DefaultSwitchPolicy(), "a", "b", "c")
			for _, f := range w.fakes {
				f.set(failing(tt.class, 0, 6500*time.Millisecond))
			}
			g, _ := w.gw(t, Options{})
			res := do(t, g, "POST", "/v1/chat/completions", chatReq("pl"))
			if res.code != tt.code || res.header.Get(AttemptsHeader) != "3" {
				t.Fatalf("status %d after %s attempts, want %d after 3: %s", res.code, res.header.Get(AttemptsHeader), tt.code, res.body)
			}
			if got := res.header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			if res.errCode(t) != "upstream_code" {
				t.Errorf("body %s", res.body)
			}
		})
	}
}

func TestSwitchPolicy(t *testing.T) {
	quota := func(d time.Duration) func(context.Context, *provider.Request) (*provider.Response, error) {
		return failing(provider.ClassRateLimit, 429, d)
	}
	def := registry.DefaultSwitchPolicy()
	noQuota := def
	noQuota.OnQuota = false
	threshold := def
	threshold.QuotaRetryAfterThresholdSecs = u64(30)
	oneSwitch := def
	oneSwitch.MaxSwitchesPerSession = u32(1)
	noSwitch := def
	noSwitch.MaxSwitchesPerSession = u32(0)
	for _, tt := range []struct {
		name     string
		sw       registry.SwitchPolicy
		fail     func(context.Context, *provider.Request) (*provider.Response, error)
		failing  int // how many members fail (in order a, b, c)
		code     int
		attempts string
	}{
		{"quota switches by default", def, quota(0), 1, 200, "2"},
		{"on_quota false answers 429", noQuota, quota(0), 1, 429, "1"},
		{"on_quota false still switches on 503", noQuota, failing(provider.ClassOverloaded, 503, 0), 1, 200, "2"},
		{"retry-after below threshold answers 429", threshold, quota(5 * time.Second), 1, 429, "1"},
		{"retry-after at threshold switches", threshold, quota(30 * time.Second), 1, 200, "2"},
		{"retry-after above threshold switches", threshold, quota(60 * time.Second), 1, 200, "2"},
		{"no retry-after switches", threshold, quota(0), 1, 200, "2"},
		{"max one switch", oneSwitch, failing(provider.ClassServer, 500, 0), 2, 502, "2"},
		{"max one switch is enough", oneSwitch, failing(provider.ClassServer, 500, 0), 1, 200, "2"},
		{"max zero switches", noSwitch, failing(provider.ClassServer, 500, 0), 1, 502, "1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := poolWorld(registry.HomeFirstHealthy, tt.sw, "a", "b", "c")
			for _, id := range []string{"a", "b", "c"}[:tt.failing] {
				w.fakes["p"+id].set(tt.fail)
			}
			g, _ := w.gw(t, Options{})
			res := do(t, g, "POST", "/v1/chat/completions", chatReq("pl"))
			if res.code != tt.code || res.header.Get(AttemptsHeader) != tt.attempts {
				t.Errorf("status %d after %s attempts, want %d after %s: %s",
					res.code, res.header.Get(AttemptsHeader), tt.code, tt.attempts, res.body)
			}
		})
	}
}

func TestBreakerSingleModel(t *testing.T) {
	clk := newClock()
	w := newWorld()
	f := w.provider("p")
	w.model("m", "p")
	g, _ := w.gw(t, Options{Now: clk.Now})
	f.set(failing(provider.ClassServer, 500, 0))
	for i := range 5 {
		if res := do(t, g, "POST", "/v1/chat/completions", chatReq("m")); res.code != 502 {
			t.Fatalf("failure %d: status %d", i, res.code)
		}
	}
	// Open: fail fast without calling.
	clk.advance(10 * time.Second)
	res := do(t, g, "POST", "/v1/chat/completions", chatReq("m"))
	if res.code != 503 || res.errCode(t) != "circuit_open" || res.header.Get("Retry-After") != "20" {
		t.Fatalf("open breaker: %d Retry-After %q %s", res.code, res.header.Get("Retry-After"), res.body)
	}
	if f.calls() != 5 {
		t.Fatalf("open breaker called the upstream: %d calls", f.calls())
	}
	// Half-open after 30 s: one probe; its failure opens again.
	clk.advance(20 * time.Second)
	if res := do(t, g, "POST", "/v1/chat/completions", chatReq("m")); res.code != 502 || f.calls() != 6 {
		t.Fatalf("probe: %d, %d calls", res.code, f.calls())
	}
	if res := do(t, g, "POST", "/v1/chat/completions", chatReq("m")); res.code != 503 || f.calls() != 6 {
		t.Fatalf("after a failed probe: %d, %d calls", res.code, f.calls())
	}
	// Next probe succeeds: closed.
	clk.advance(30 * time.Second)
	f.set(nil)
	for i := range 3 {
		if res := do(t, g, "POST", "/v1/chat/completions", chatReq("m")); res.code != 200 {
			t.Fatalf("request %d after a good probe: %d %s", i, res.code, res.body)
		}
	}
	// Closed means counting from zero again: four failures do not open.
	f.set(failing(provider.ClassServer, 500, 0))
	for range 4 {
		do(t, g, "POST", "/v1/chat/completions", chatReq("m"))
	}
	f.set(nil)
	if res := do(t, g, "POST", "/v1/chat/completions", chatReq("m")); res.code != 200 {
		t.Fatalf("after 4 failures: %d", res.code)
	}
}

func TestBreakerHalfOpenLetsOneProbe(t *testing.T) {
	clk := newClock()
	w := newWorld()
	f := w.provider("p")
	w.model("m", "p")
	g, h := w.gw(t, Options{Now: clk.Now, BreakerFailures: 2, BreakerOpen: time.Minute})
	f.set(failing(provider.ClassTimeout, 0, 0))
	do(t, g, "POST", "/v1/chat/completions", chatReq("m"))
	do(t, g, "POST", "/v1/chat/completions", chatReq("m"))
	clk.advance(time.Minute)
	b := g.tableFor(h.Current()).routes["m"].plan.targets[0].breaker
	if s := b.state(g.clock()); s != "half-open" {
		t.Fatalf("state %s", s)
	}
	ok1, probe1, _ := b.allow(g.clock())
	ok2, _, _ := b.allow(g.clock())
	if !ok1 || !probe1 || ok2 {
		t.Fatalf("half-open allowed %v (probe %v) then %v", ok1, probe1, ok2)
	}
	b.release(true)
	if ok, probe, _ := b.allow(g.clock()); !ok || !probe {
		t.Fatal("a released probe was not handed out again")
	}
}

func TestBreakerSkipsPoolMember(t *testing.T) {
	clk := newClock()
	w := poolWorld(registry.HomeFirstHealthy, registry.DefaultSwitchPolicy(), "a", "b")
	g, _ := w.gw(t, Options{Now: clk.Now})
	w.fakes["pa"].set(failing(provider.ClassOverloaded, 503, 0))
	for range 5 {
		if res := do(t, g, "POST", "/v1/chat/completions", chatReq("pl")); res.header.Get(ModelHeader) != "b" {
			t.Fatalf("not failed over: %d %s", res.code, res.body)
		}
	}
	if n := w.fakes["pa"].calls(); n != 5 {
		t.Fatalf("a called %d times", n)
	}
	for range 3 {
		res := do(t, g, "POST", "/v1/chat/completions", chatReq("pl"))
		if res.header.Get(ModelHeader) != "b" || res.header.Get(AttemptsHeader) != "1" {
			t.Fatalf("open member not skipped: %s after %s", res.header.Get(ModelHeader), res.header.Get(AttemptsHeader))
		}
	}
	if n := w.fakes["pa"].calls(); n != 5 {
		t.Fatalf("open member a called: %d calls", n)
	}
	// Half-open: the probe goes to a, succeeds, a is home again.
	clk.advance(30 * time.Second)
	w.fakes["pa"].set(nil)
	if res := do(t, g, "POST", "/v1/chat/completions", chatReq("pl")); res.header.Get(ModelHeader) != "a" {
		t.Fatalf("probe not sent to a: %s", res.header.Get(ModelHeader))
	}
	if res := do(t, g, "POST", "/v1/chat/completions", chatReq("pl")); res.header.Get(ModelHeader) != "a" {
		t.Fatalf("a not closed after its probe: %s", res.header.Get(ModelHeader))
	}

	// All members open: 503 with Retry-After, nobody called.
	for _, f := range w.fakes {
		f.set(failing(provider.ClassOverloaded, 503, 0))
	}
	for range 5 {
		do(t, g, "POST", "/v1/chat/completions", chatReq("pl"))
	}
	calls := w.fakes["pa"].calls() + w.fakes["pb"].calls()
	res := do(t, g, "POST", "/v1/chat/completions", chatReq("pl"))
	if res.code != 503 || res.errCode(t) != "circuit_open" || res.header.Get("Retry-After") == "" {
		t.Fatalf("all open: %d %s", res.code, res.body)
	}
	if w.fakes["pa"].calls()+w.fakes["pb"].calls() != calls {
		t.Fatal("an open member was called")
	}
}

func TestBreakerOnCircuitOpenFalse(t *testing.T) {
	clk := newClock()
	sw := registry.DefaultSwitchPolicy()
	sw.OnCircuitOpen = false
	w := poolWorld(registry.HomeFirstHealthy, sw, "a", "b")
	g, _ := w.gw(t, Options{Now: clk.Now})
	w.fakes["pa"].set(failing(provider.ClassOverloaded, 503, 0))
	for range 8 {
		do(t, g, "POST", "/v1/chat/completions", chatReq("pl"))
	}
	if n := w.fakes["pa"].calls(); n != 8 {
		t.Errorf("with on_circuit_open false the open member is still tried: %d calls, want 8", n)
	}
}

func TestBreakerSurvivesReload(t *testing.T) {
	clk := newClock()
	w := newWorld()
	f := w.provider("p")
	w.model("m", "p")
	g, h := w.gw(t, Options{Now: clk.Now})
	f.set(failing(provider.ClassServer, 500, 0))
	for range 5 {
		do(t, g, "POST", "/v1/chat/completions", chatReq("m"))
	}
	// A reload with the same model on the same provider, plus an agent.
	w.agent(registry.AgentSpec{ID: "ag", ModelID: "m"})
	if v := h.Replace(w.set(t)); v != 2 {
		t.Fatalf("version %d", v)
	}
	for _, name := range []string{"m", "ag"} {
		res := do(t, g, "POST", "/v1/chat/completions", chatReq(name))
		if res.code != 503 || res.errCode(t) != "circuit_open" || res.header.Get(edge.VersionHeader) != "2" {
			t.Errorf("%s after reload: %d v%s %s", name, res.code, res.header.Get(edge.VersionHeader), res.body)
		}
	}
	if f.calls() != 5 {
		t.Errorf("calls %d", f.calls())
	}
	// A reload that drops the model forgets its breaker.
	w2 := newWorld()
	w2.fakes, w2.providers = w.fakes, w.providers
	w2.model("other", "p")
	h.Replace(w2.set(t))
	do(t, g, "GET", "/v1/models", "")
	g.mu.Lock()
	_, kept := g.breakers[breakerKey{"p", "m"}]
	g.mu.Unlock()
	if kept {
		t.Error("the breaker of a removed model is kept")
	}
}

// A stream that fails before its first event fails over too.
func TestStreamFailsOverBeforeFirstEvent(t *testing.T) {
	w := poolWorld(registry.HomeFirstHealthy, registry.DefaultSwitchPolicy(), "a", "b")
	w.fakes["pa"].set(func(context.Context, *provider.Request) (*provider.Response, error) {
		return &provider.Response{StatusCode: 200, Body: io.NopCloser(&brokenReader{})}, nil
	})
	w.fakes["pb"].set(func(context.Context, *provider.Request) (*provider.Response, error) {
		return sseAnswer(`{"x":1}`, "[DONE]"), nil
	})
	g, _ := w.gw(t, Options{})
	res := do(t, g, "POST", "/v1/chat/completions", `{"model":"pl","messages":[],"stream":true}`)
	if res.code != 200 || res.header.Get(ModelHeader) != "b" || res.body != "data: {\"x\":1}\n\ndata: [DONE]\n\n" {
		t.Fatalf("%d from %s: %q", res.code, res.header.Get(ModelHeader), res.body)
	}
}

type brokenReader struct{}

func (*brokenReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by peer") }
