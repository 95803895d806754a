package gateway

import (
	"sync/atomic"
	"time"
)

// breaker is a target's circuit breaker, lock-free. Closed while
// openUntil is 0; open until openUntil (nanoseconds on the gateway's
// clock); half-open after that, when one caller at a time wins probing.
type breaker struct {
	fails     atomic.Int32
	openUntil atomic.Int64
	probing   atomic.Bool
}

// allow reports whether a call may go to the target now. probe is true
// for the one call let through a half-open breaker: its outcome must be
// reported. wait is how long the breaker stays open.
func (b *breaker) allow(now int64) (ok, probe bool, wait time.Duration) {
	until := b.openUntil.Load()
	if until == 0 {
		return true, false, 0
	}
	if now < until {
		return false, false, time.Duration(until - now)
	}
	if b.probing.CompareAndSwap(false, true) {
		return true, true, 0
	}
	return false, false, time.Second // a probe is in flight
}

// success records an answer from the target: it closes the breaker.
func (b *breaker) success() {
	if b.fails.Load() != 0 || b.openUntil.Load() != 0 {
		b.fails.Store(0)
		b.openUntil.Store(0)
		b.probing.Store(false)
	}
}

// failure records a retryable failure: the threshold-th consecutive one
// opens the breaker until now+openFor, and so does a failed probe.
func (b *breaker) failure(now, openFor int64, threshold int32, probe bool) {
	if probe {
		b.openUntil.Store(now + openFor)
		b.probing.Store(false)
		return
	}
	if b.fails.Add(1) == threshold {
		b.openUntil.Store(now + openFor)
	}
}

// release gives back a probe whose outcome says nothing about the target
// (the client went away).
func (b *breaker) release(probe bool) {
	if probe {
		b.probing.Store(false)
	}
}

// state names the breaker's state at now, for tests and logs.
func (b *breaker) state(now int64) string {
	until := b.openUntil.Load()
	switch {
	case until == 0:
		return "closed"
	case now < until:
		return "open"
	}
	return "half-open"
}
