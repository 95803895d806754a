package gateway

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/awakend/awakend/registry"
)

// limitWindow is the period the limits are stated for: per minute.
const limitWindow = float64(time.Minute)

// limiter holds a client's requests and tokens per minute as two token
// buckets, each as full as its limit and refilled at limit per minute.
// A request takes one from the requests bucket and needs at least one
// token left in the tokens bucket; the tokens the upstream reports are
// taken afterwards, so that bucket can go below zero (by at most the
// limit, a minute's worth), and refuses requests until it has refilled.
// The zero value has no limits.
type limiter struct {
	on       atomic.Bool // a limit is set: the lock-free test of the fast path
	mu       sync.Mutex
	rpm, tpm float64 // 0: no limit
	req, tok float64 // what is left in each bucket
	at       int64   // the clock the buckets were last refilled at
}

// quota is what a limiter said about one request: the x-ratelimit-*
// headers' values and, when refused, how long to wait.
type quota struct {
	rpm, tpm           float64
	remReq, remTok     float64
	resetReq, resetTok time.Duration
	retry              time.Duration // > 0: refused
	byTokens           bool          // refused for tokens rather than requests
}

// set applies a client's limits at clock now. A limit that appears starts
// full; one that shrinks keeps what is left, capped at the new limit.
func (l *limiter) set(lim registry.ClientLimits, now int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(now)
	rpm, tpm := limitOf(lim.RequestsPerMinute), limitOf(lim.TokensPerMinute)
	if l.rpm == 0 {
		l.req = rpm
	}
	if l.tpm == 0 {
		l.tok = tpm
	}
	l.rpm, l.tpm = rpm, tpm
	l.req, l.tok = min(l.req, rpm), min(l.tok, tpm)
	l.on.Store(rpm > 0 || tpm > 0)
}

func limitOf(v *uint32) float64 {
	if v == nil {
		return 0
	}
	return float64(*v)
}

// refill tops the buckets up for the time since the last refill. Called
// with l.mu held.
func (l *limiter) refill(now int64) {
	if d := float64(now - l.at); d > 0 {
		l.req = min(l.rpm, l.req+d*l.rpm/limitWindow)
		l.tok = min(l.tpm, l.tok+d*l.tpm/limitWindow)
	}
	l.at = max(l.at, now)
}

// admit takes one request at clock now, if the limits allow it, and
// returns the quota after it; q.retry > 0 means refused.
func (l *limiter) admit(now int64) (q quota) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(now)
	if l.rpm > 0 && l.req < 1 {
		q.retry = wait(1-l.req, l.rpm)
	}
	if l.tpm > 0 && l.tok < 1 {
		if w := wait(1-l.tok, l.tpm); w > q.retry {
			q.retry, q.byTokens = w, true
		}
	}
	if q.retry == 0 && l.rpm > 0 {
		l.req--
	}
	q.rpm, q.tpm = l.rpm, l.tpm
	q.remReq, q.remTok = max(l.req, 0), max(l.tok, 0)
	q.resetReq, q.resetTok = wait(l.rpm-l.req, l.rpm), wait(l.tpm-l.tok, l.tpm)
	return q
}

// spend takes n tokens at clock now.
func (l *limiter) spend(n int, now int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tpm == 0 {
		return
	}
	l.refill(now)
	l.tok = max(l.tok-float64(n), -l.tpm)
}

// wait is the time a bucket of limit per minute takes to refill by n,
// rounded up to the millisecond; 0 for n ≤ 0.
func wait(n, limit float64) time.Duration {
	if n <= 0 || limit <= 0 {
		return 0
	}
	ms := math.Ceil(n * limitWindow / limit / float64(time.Millisecond))
	return time.Duration(min(ms, float64(math.MaxInt64/int64(time.Millisecond)))) * time.Millisecond
}

// stamp sets OpenAI's rate-limit headers of q on h, for the limits q has:
// the limit, what remains (whole requests or tokens) and the time until
// the bucket is full again, as a Go duration ("1s", "6m0s", "12ms").
func (q *quota) stamp(h http.Header) {
	if q.rpm > 0 {
		h["X-Ratelimit-Limit-Requests"] = []string{strconv.FormatFloat(q.rpm, 'f', 0, 64)}
		h["X-Ratelimit-Remaining-Requests"] = []string{strconv.FormatFloat(math.Floor(q.remReq), 'f', 0, 64)}
		h["X-Ratelimit-Reset-Requests"] = []string{q.resetReq.String()}
	}
	if q.tpm > 0 {
		h["X-Ratelimit-Limit-Tokens"] = []string{strconv.FormatFloat(q.tpm, 'f', 0, 64)}
		h["X-Ratelimit-Remaining-Tokens"] = []string{strconv.FormatFloat(math.Floor(q.remTok), 'f', 0, 64)}
		h["X-Ratelimit-Reset-Tokens"] = []string{q.resetTok.String()}
	}
}
