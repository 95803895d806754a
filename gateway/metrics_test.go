package gateway

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/awakend/awakend/provider"
	"github.com/awakend/awakend/registry"
)

// A pool's failovers are counted by pool, a target whose breaker opened
// shows in awakend_breaker_open, and a request is in flight while its
// upstream call runs, not after.
func TestPoolBreakerAndInFlightMetrics(t *testing.T) {
	clk := newClock()
	w := poolWorld(registry.HomeFirstHealthy, registry.DefaultSwitchPolicy(), "a", "b")
	w.fakes["pa"].set(failing(provider.ClassServer, 500, 0))
	reg := prometheus.NewRegistry()
	g, _ := w.gw(t, Options{Now: clk.Now, Metrics: reg, BreakerFailures: 2})
	var during float64
	w.fakes["pb"].set(func(context.Context, *provider.Request) (*provider.Response, error) {
		during = testutil.ToFloat64(g.m.inFlight)
		return answer("b"), nil
	})
	for i := range 3 {
		if res := do(t, g, "POST", "/v1/chat/completions", chatReq("pl")); res.code != 200 || res.header.Get(ModelHeader) != "b" {
			t.Fatalf("request %d: %d from %s: %s", i, res.code, res.header.Get(ModelHeader), res.body)
		}
	}
	// Two failures open a's breaker; the third request skips a, which is
	// not an attempt, so it does not fail over.
	if got := testutil.ToFloat64(g.m.failover.WithLabelValues("pl")); got != 2 {
		t.Errorf("awakend_pool_failovers_total{pool=pl} = %v, want 2", got)
	}
	want := `
# HELP awakend_breaker_open 1 while a target's circuit breaker is open (calls refused until it half-opens), else 0; by provider and model.
# TYPE awakend_breaker_open gauge
awakend_breaker_open{model="a",provider="pa"} 1
awakend_breaker_open{model="b",provider="pb"} 0
awakend_breaker_open{model="c",provider="pc"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "awakend_breaker_open"); err != nil {
		t.Error(err)
	}
	if during != 1 {
		t.Errorf("awakend_requests_in_flight during the upstream call = %v, want 1", during)
	}
	if got := testutil.ToFloat64(g.m.inFlight); got != 0 {
		t.Errorf("awakend_requests_in_flight after = %v, want 0", got)
	}
}
