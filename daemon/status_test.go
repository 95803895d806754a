package daemon

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/awakend/awakend/api"
	"github.com/awakend/awakend/config"
	"github.com/awakend/awakend/registry"
	"github.com/awakend/awakend/reload"
)

func TestStatusLine(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "p.yaml", "providers:\n  - {id: p, adapter: mock}\n")
	a := reload.NewApplier(reload.Dir(dir), config.Options{}, func(registry.ProviderSpec) (registry.Executor, error) { return nil, nil })
	a.Apply(context.Background(), reload.Request{Trigger: reload.TriggerStartup})
	h := a.Handle()
	deg := &api.Degraded{SavedAt: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)}
	for _, tt := range []struct {
		res  reload.Result
		deg  *api.Degraded
		want string
	}{
		{reload.Result{Outcome: reload.OutcomeApplied}, nil, "serving version 1"},
		{reload.Result{Outcome: reload.OutcomeRejected, Err: errors.New("a.yaml:1:1: error: x [syntax]")}, nil, "serving version 1; last reload rejected: a.yaml:1:1: error: x [syntax]"},
		// A rescan of the same rejected files must not hide the problem.
		{reload.Result{Outcome: reload.OutcomeRejected, Repeated: true, Err: errors.New("still bad")}, nil, "serving version 1; last reload rejected: still bad"},
		{reload.Result{Outcome: reload.OutcomeRejected, Err: errors.New("still bad")}, deg,
			"DEGRADED: serving the last-known-good configuration (version 1, saved 2026-05-06T07:08:09Z); the config directory was rejected at start-up; last reload rejected: still bad"},
	} {
		if got := statusLine(h, tt.res, tt.deg, nil); got != tt.want {
			t.Errorf("statusLine(%s) = %q, want %q", tt.res.Outcome, got, tt.want)
		}
	}
}
