package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/awakend/awakend/internal/etcdhttp"
)

// Ack is a daemon's account of itself, kept under hosts/<host> on its
// lease.
type Ack struct {
	Host        string    `json:"host"`
	Pack        string    `json:"pack"` // the pack it serves; "" before one applied
	Fingerprint string    `json:"fingerprint"`
	Version     uint64    `json:"version"`
	Stale       bool      `json:"stale,omitempty"` // serving its local copy; etcd could not be read
	Last        Attempt   `json:"last"`
	Started     time.Time `json:"started"`
	At          time.Time `json:"at"`
}

// Attempt is the outcome of a daemon's latest reload.
type Attempt struct {
	Pack        string    `json:"pack"` // the pack it tried
	Result      string    `json:"result"`
	Trigger     string    `json:"trigger"`
	Diagnostics []string  `json:"diagnostics,omitempty"`
	At          time.Time `json:"at"`
}

// Tried reports whether the host has applied or rejected pack id.
func (a Ack) Tried(id string) bool { return a.Pack == id || a.Last.Pack == id }

// Hosts reads every live host's acknowledgement, sorted by host, and the
// store's revision at the read.
func (s *Store) Hosts(ctx context.Context) ([]Ack, int64, error) {
	resp, err := s.etcd.Range(ctx, rangePrefix(s.hostKey("")))
	if err != nil {
		return nil, 0, fmt.Errorf("etcd: listing hosts: %w", err)
	}
	acks := make([]Ack, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var a Ack
		if err := json.Unmarshal(kv.Value, &a); err != nil {
			a = Ack{Host: strings.TrimPrefix(string(kv.Key), s.hostKey("")), Last: Attempt{Result: "unreadable: " + err.Error()}}
		}
		acks = append(acks, a)
	}
	slices.SortFunc(acks, func(a, b Ack) int { return strings.Compare(a.Host, b.Host) })
	return acks, int64(resp.Header.Revision), nil
}

// Await waits until every live host has applied or rejected pack id and
// returns their acknowledgements, or returns those it has with ctx's
// error. A host that goes away while it waits is no longer waited for.
func (s *Store) Await(ctx context.Context, id string) ([]Ack, error) {
	for {
		acks, rev, err := s.Hosts(ctx)
		if err != nil {
			return nil, err
		}
		done := true
		for _, a := range acks {
			done = done && a.Tried(id)
		}
		if done {
			return acks, nil
		}
		// Wait for any host to write, or to go; look again at least every
		// second in case the watch misses its moment.
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		s.awaitWrite(wctx, rangePrefix(s.hostKey("")), rev)
		cancel()
		if ctx.Err() != nil {
			return acks, ctx.Err()
		}
	}
}

// awaitWrite returns once a key in r is written after rev, the watch
// ends, or ctx is done.
func (s *Store) awaitWrite(ctx context.Context, r etcdhttp.RangeRequest, rev int64) {
	w, err := s.etcd.Watch(ctx, etcdhttp.WatchRequest{Key: r.Key, RangeEnd: r.RangeEnd, StartRevision: etcdhttp.Int64(rev + 1)})
	if err != nil {
		<-ctx.Done() // no busy loop while etcd cannot be watched
		return
	}
	defer w.Close()
	for {
		resp, err := w.Next()
		if err != nil || len(resp.Events) > 0 {
			return
		}
	}
}

// Announcer keeps one daemon's acknowledgement in etcd on a lease: written
// again on every Set, renewed while the daemon runs, revoked when it
// stops, and expired by etcd when the daemon dies. When etcd goes away it
// keeps trying; the latest Set is written once it is back.
type Announcer struct {
	s   *Store
	key string
	ttl time.Duration
	// OnState, if set, is called from Run when the announcement goes live
	// (nil) and when it is lost (the error).
	OnState func(error)

	mu   sync.Mutex
	ack  Ack
	kick chan struct{}
}

// Announcer returns an announcer for host with a lease of ttl (at least
// 2 s; 10 s if zero). Run must run for it to write anything.
func (s *Store) Announcer(host string, ttl time.Duration) *Announcer {
	if ttl == 0 {
		ttl = 10 * time.Second
	}
	return &Announcer{s: s, key: s.hostKey(host), ttl: max(ttl, 2*time.Second), kick: make(chan struct{}, 1)}
}

// Set replaces the acknowledgement and has Run write it.
func (a *Announcer) Set(ack Ack) {
	a.mu.Lock()
	a.ack = ack
	a.mu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// Run writes the acknowledgement until ctx is done, then revokes its
// lease so that the host leaves the fleet's list at once.
func (a *Announcer) Run(ctx context.Context) {
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(max(2*wait, 200*time.Millisecond), 5*time.Second)
		err := a.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if a.OnState != nil {
			a.OnState(err)
		}
	}
}

// session grants a lease, writes the acknowledgement on it and keeps it
// alive, writing again on every Set, until the lease is lost (the error)
// or ctx is done.
//
// The lease is renewed every third of its TTL; a renewal that fails, or
// that etcd answers with no TTL left, loses it.
func (a *Announcer) session(ctx context.Context) error {
	sent := time.Now()
	lease, ttl, err := a.s.etcd.Grant(ctx, a.ttl)
	if err != nil {
		return fmt.Errorf("etcd: granting a lease: %w", err)
	}
	expires := sent.Add(ttl) // etcd's expiry is no earlier
	renew := time.NewTicker(max(ttl/3, 100*time.Millisecond))
	defer renew.Stop()
	dirty := true
	for {
		if dirty {
			a.mu.Lock()
			b, _ := json.Marshal(a.ack) // an Ack always marshals
			a.mu.Unlock()
			_, err := a.s.etcd.Put(ctx, etcdhttp.PutRequest{Key: []byte(a.key), Value: b, Lease: etcdhttp.Int64(lease)})
			if err == nil && a.OnState != nil {
				a.OnState(nil)
			}
			dirty = err != nil // tried again at the next renewal
		}
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = a.s.etcd.Revoke(rctx, lease)
			cancel()
			return ctx.Err()
		case <-a.kick:
			dirty = true
		case <-renew.C:
			// No answer after the lease would have expired is worth
			// waiting for.
			sent := time.Now()
			deadline := sent.Add(a.s.timeout)
			if expires.Before(deadline) {
				deadline = expires
			}
			rctx, cancel := context.WithDeadline(ctx, deadline)
			left, err := a.s.etcd.KeepAlive(rctx, lease)
			cancel()
			switch {
			case ctx.Err() != nil:
				continue // revoked above
			case err != nil:
				return fmt.Errorf("etcd: lease %x lost: renewing it: %w", lease, err)
			case left <= 0:
				return fmt.Errorf("etcd: lease %x lost: it expired", lease)
			}
			expires = sent.Add(left)
		}
	}
}
