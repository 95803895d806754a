package h1

import "time"

// The wait for a request (ReadHeaderTimeout for a new connection's first,
// IdleTimeout for a kept one's next) is bounded by a sweep of the
// server's connections, not by a read deadline per request: a deadline
// costs a runtime timer update to set and another to clear, about 2 µs
// of a request at concurrency 1 on two cores. One timer, running while
// the server has connections, ticks every eighth of the shorter timeout
// and counts, for each connection waiting, the ticks it has waited; a
// connection that waited longer than its timeout is closed, between the
// timeout and an eighth more after it.
//
// A request whose head did not arrive whole in one read still gets
// ReadHeaderTimeout as a read deadline for the rest (conn.serve).

// sweepsPerTimeout is how many ticks the shorter timeout spans.
const sweepsPerTimeout = 8

// sweepPeriod returns the sweep's period, or 0 when neither timeout is
// set.
func (s *Server) sweepPeriod() time.Duration {
	shortest := s.ReadHeaderTimeout
	if shortest <= 0 || s.IdleTimeout > 0 && s.IdleTimeout < shortest {
		shortest = s.IdleTimeout
	}
	if shortest <= 0 {
		return 0
	}
	return max(shortest/sweepsPerTimeout, time.Millisecond)
}

// startSweepLocked starts the sweep if it is due and not running; s.mu
// is held.
func (s *Server) startSweepLocked() {
	if s.sweeping || s.closed.Load() {
		return
	}
	p := s.sweepPeriod()
	if p == 0 {
		return
	}
	s.sweeping = true
	if s.sweepTimer == nil {
		s.sweepTimer = time.AfterFunc(p, s.sweep)
		return
	}
	s.sweepTimer.Reset(p)
}

// sweep closes the connections that waited too long for a request, and
// runs again while the server has connections.
func (s *Server) sweep() {
	p := s.sweepPeriod()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		st := c.st.Load()
		limit := s.IdleTimeout
		if st == stateNew {
			limit = s.ReadHeaderTimeout
		}
		if st == stateActive || st == stateClosed || limit <= 0 {
			continue
		}
		// waited ticks span more than (waited-1) periods: the first
		// may come at once after the connection began to wait.
		if time.Duration(c.waited.Add(1)-1)*p >= limit && c.st.CompareAndSwap(st, stateClosed) {
			c.rwc.Close()
		}
	}
	s.sweeping = len(s.conns) > 0 && !s.closed.Load()
	if s.sweeping {
		s.sweepTimer.Reset(p)
	}
}

// stopSweepLocked stops the sweep; s.mu is held.
func (s *Server) stopSweepLocked() {
	s.sweeping = false
	if s.sweepTimer != nil {
		s.sweepTimer.Stop()
	}
}
