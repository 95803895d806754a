package gateway

import (
	"math"

	"github.com/awakend/awakend/provider"
	"github.com/awakend/awakend/registry"
)

// order appends to dst the targets of p in the order a request tries
// them: the home member first, the other members next, the failover_only
// members last. key is the session key's hash (deterministic homes only);
// breakers are not consulted here but when each target is tried.
func (p *plan) order(key uint64, dst []*target) []*target {
	switch p.home {
	case registry.HomeRoundRobin:
		return p.roundRobin(dst)
	case registry.HomeFirstHealthy:
		for _, t := range p.targets {
			if !t.failoverOnly {
				dst = append(dst, t)
			}
		}
	default:
		return p.rendezvous(key, dst)
	}
	for _, t := range p.targets {
		if t.failoverOnly {
			dst = append(dst, t)
		}
	}
	return dst
}

// rendezvous orders the members by weighted rendezvous hashing (highest
// random weight): member i scores -ln(u_i)/w_i with u_i uniform in (0, 1)
// from the hash of the key and the member, and the lowest score wins. A
// member's share of keys is proportional to its weight, and removing a
// member moves only the keys it held. Failover_only members follow, in
// the same order among themselves.
func (p *plan) rendezvous(key uint64, dst []*target) []*target {
	var buf [16]float64
	scores := buf[:0]
	if len(p.targets) > len(buf) {
		scores = make([]float64, 0, len(p.targets))
	}
	base := len(dst)
	for _, t := range p.targets {
		u := (float64(mix64(key^t.seed)>>11) + 0.5) * (1.0 / (1 << 53))
		s := -math.Log(u) * t.invWeight
		if t.failoverOnly {
			s += 1e3 // after every member: -ln(u) <= 38 and w >= 1
		}
		// Insertion sort: pools are small.
		dst = append(dst, t)
		scores = append(scores, s)
		for j := len(scores) - 1; j > 0 && scores[j] < scores[j-1]; j-- {
			scores[j], scores[j-1] = scores[j-1], scores[j]
			dst[base+j], dst[base+j-1] = dst[base+j-1], dst[base+j]
		}
	}
	return dst
}

// roundRobin takes the next home from the pool's counter, each member
// holding it for as many turns as its weight; the other members follow in
// declaration order from the home on.
func (p *plan) roundRobin(dst []*target) []*target {
	n := p.rr.Add(1) - 1
	pos := n % max(p.weight, 1)
	home := 0
	for i, t := range p.targets {
		if t.failoverOnly {
			continue
		}
		if pos < uint64(t.weight) {
			home = i
			break
		}
		pos -= uint64(t.weight)
	}
	for i := range p.targets {
		t := p.targets[(home+i)%len(p.targets)]
		if !t.failoverOnly {
			dst = append(dst, t)
		}
	}
	for _, t := range p.targets {
		if t.failoverOnly {
			dst = append(dst, t)
		}
	}
	return dst
}

// mayFailOver reports whether a retryable failure lets the request switch
// to the next member under the pool's switch policy (see the package
// comment).
func (p *plan) mayFailOver(e *provider.Error) bool {
	if !p.pool || !e.Retryable() {
		return false
	}
	if e.Class == provider.ClassRateLimit {
		if !p.sw.OnQuota {
			return false
		}
		if p.quota > 0 && e.RetryAfter > 0 && e.RetryAfter < p.quota {
			return false
		}
	}
	return true
}

// skipOpen reports whether a member with an open breaker is skipped: a
// pool honours on_circuit_open; a single model always fails fast.
func (p *plan) skipOpen() bool { return !p.pool || p.sw.OnCircuitOpen }

// fnv64 is 64-bit FNV-1a: stable across processes and restarts, so that
// every awakend instance homes a session on the same member.
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func fnv64b(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// mix64 is SplitMix64's finalizer: it spreads FNV's output over all bits.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
