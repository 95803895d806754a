package etcdtest

import "testing"

func TestClusterElectsAgainAfterItsLeaderDies(t *testing.T) {
	c := Start(t, 3)
	l := c.Leader()
	if l < 0 {
		t.Fatal("no leader")
	}
	c.Kill(l)
	other := (l + 1) % 3
	c.WaitHealthy(other)
	if n := c.Leader(); n < 0 || n == l {
		t.Fatalf("leader after killing member %d: %d", l, n)
	}
	c.Restart(l)
}
