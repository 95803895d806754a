package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
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
	rctx, cancel := s.request(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.hostKey(""), clientv3.WithPrefix())
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
	return acks, resp.Header.Revision, nil
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
		wch := s.cli.Watch(clientv3.WithRequireLeader(wctx), s.hostKey(""), clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		select {
		case <-wch:
		case <-wctx.Done():
		}
		cancel()
		if ctx.Err() != nil {
			return acks, ctx.Err()
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
func (a *Announcer) session(ctx context.Context) error {
	rctx, cancel := a.s.request(ctx)
	lease, err := a.s.cli.Grant(rctx, int64(a.ttl/time.Second))
	cancel()
	if err != nil {
		return fmt.Errorf("etcd: granting a lease: %w", err)
	}
	kctx, stop := context.WithCancel(ctx)
	defer stop()
	alive, err := a.s.cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		return fmt.Errorf("etcd: keeping the lease alive: %w", err)
	}
	dirty := true
	for {
		if dirty {
			a.mu.Lock()
			b, _ := json.Marshal(a.ack) // an Ack always marshals
			a.mu.Unlock()
			rctx, cancel := a.s.request(ctx)
			_, err := a.s.cli.Put(rctx, a.key, string(b), clientv3.WithLease(lease.ID))
			cancel()
			if err == nil && a.OnState != nil {
				a.OnState(nil)
			}
			dirty = err != nil // tried again at the next renewal
		}
		select {
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_, _ = a.s.cli.Revoke(rctx, lease.ID)
			cancel()
			return ctx.Err()
		case <-a.kick:
			dirty = true
		case _, ok := <-alive:
			if !ok {
				return fmt.Errorf("etcd: lease %x lost", lease.ID)
			}
		}
	}
}
