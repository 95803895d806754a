// Package fleet keeps one configuration for many hosts in etcd. A
// publisher writes a validated pack under its content-addressed key and,
// in the same transaction, moves one pointer to it, conditional on the
// pointer being what the publisher saw; daemons follow the pointer from
// the revision they read and acknowledge what they did with each pack
// under a lease, so that a host that dies disappears.
//
// Under the prefix:
//
//	current               the ID of the pack every host should serve
//	packs/<id>            a pack's metadata (JSON)
//	chunks/<id>/<n>       its compressed archive, in chunks under etcd's request limit
//	hosts/<host>          a daemon's acknowledgement (JSON), on its lease
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/awakend/awakend/pack"
)

// DefaultPrefix is where the fleet's keys live when the settings name none.
const DefaultPrefix = "/awakend/"

// DefaultKeep is how many packs a publish keeps for rollback, the current
// one included.
const DefaultKeep = 10

// chunkSize keeps each chunk, with the keys and metadata of the
// transaction it may share, under etcd's default request limit of 1.5 MiB.
var chunkSize = 1 << 20

// Options say how to reach etcd.
type Options struct {
	Endpoints []string
	Prefix    string        // DefaultPrefix if empty; a trailing slash is added
	Timeout   time.Duration // of each request; 5 s if zero
}

// Store is a fleet's keys in etcd.
type Store struct {
	cli     *clientv3.Client
	prefix  string
	timeout time.Duration
}

// Dial connects to etcd. It does not wait for a member to answer: the
// first request does, within its timeout.
func Dial(o Options) (*Store, error) {
	if len(o.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	prefix := o.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   o.Endpoints,
		DialTimeout: timeout,
		// The client's own log would repeat, in its own format, what
		// the callers report in theirs.
		Logger:               zap.NewNop(),
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		PermitWithoutStream:  true,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(o.Endpoints, ","), err)
	}
	return &Store{cli: cli, prefix: prefix, timeout: timeout}, nil
}

// Close closes the connection to etcd.
func (s *Store) Close() error { return s.cli.Close() }

// Prefix is the key prefix, with its trailing slash.
func (s *Store) Prefix() string { return s.prefix }

func (s *Store) currentKey() string         { return s.prefix + "current" }
func (s *Store) metaKey(id string) string   { return s.prefix + "packs/" + id }
func (s *Store) chunkDir(id string) string  { return s.prefix + "chunks/" + id + "/" }
func (s *Store) hostKey(host string) string { return s.prefix + "hosts/" + host }

func (s *Store) chunkKey(id string, i int) string { return fmt.Sprintf("%s%06d", s.chunkDir(id), i) }

// request bounds one etcd request in time.
func (s *Store) request(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// Pointer is the current pointer as read: the pack it names ("" if no pack
// was ever published) and the revision that last wrote it (0 if none).
type Pointer struct {
	ID       string
	Revision int64
}

// Current reads the pointer, and the store's revision at the read.
func (s *Store) Current(ctx context.Context) (Pointer, int64, error) {
	ctx, cancel := s.request(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.currentKey())
	if err != nil {
		return Pointer{}, 0, fmt.Errorf("etcd: reading %s: %w", s.currentKey(), err)
	}
	var p Pointer
	if len(resp.Kvs) > 0 {
		p = Pointer{ID: string(resp.Kvs[0].Value), Revision: resp.Kvs[0].ModRevision}
	}
	return p, resp.Header.Revision, nil
}

// Meta describes a stored pack.
type Meta struct {
	ID          string    `json:"id"`
	Files       int       `json:"files"`
	Size        int       `json:"size"`       // of the archive
	Compressed  int       `json:"compressed"` // stored
	Chunks      int       `json:"chunks"`
	Publisher   string    `json:"publisher,omitempty"`
	PublishedAt time.Time `json:"published_at"`
	Revision    int64     `json:"-"` // that first stored it
}

// PublishOptions qualify a publish or a rollback.
type PublishOptions struct {
	// Seen is the pointer as the publisher read it before it began: the
	// pointer moves only if it is still that.
	Seen Pointer
	// Force moves the pointer whatever it is.
	Force bool
	// Keep is how many packs to keep (DefaultKeep if zero); older ones
	// are deleted, the current one never.
	Keep int
	// Publisher names who published, for fleet status (a host name).
	Publisher string
}

// Published is what a publish or a rollback did.
type Published struct {
	Meta     Meta
	Previous string // the pack the pointer named before
	Revision int64  // of the transaction that moved the pointer; 0 if it already named the pack
	Pruned   int    // old packs deleted
}

// ConflictError is a publish that lost: the pointer moved since the
// publisher read it.
type ConflictError struct{ Seen, Found Pointer }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("the current pack changed while publishing: it was %s (revision %d) and is now %s (revision %d); check the new one and publish again, or publish with --force",
		orNone(e.Seen.ID), e.Seen.Revision, orNone(e.Found.ID), e.Found.Revision)
}

func orNone(id string) string {
	if id == "" {
		return "none"
	}
	return pack.Short(id)
}

// Publish stores p and moves the pointer to it. A pack that fits in one
// chunk is stored in the transaction that moves the pointer; a larger one
// has its chunks written first, then its metadata and the pointer in one
// transaction, so that a daemon following the pointer never sees a pack
// that is not whole. Publishing the current pack again changes nothing.
func (s *Store) Publish(ctx context.Context, p *pack.Pack, o PublishOptions) (Published, error) {
	data := p.Compressed()
	meta := Meta{ID: p.ID, Files: len(p.Files), Size: p.Size(), Compressed: len(data),
		Chunks: max(1, (len(data)+chunkSize-1)/chunkSize), Publisher: o.Publisher, PublishedAt: time.Now().UTC()}
	if old, ok, err := s.meta(ctx, p.ID); err != nil {
		return Published{}, err
	} else if ok {
		return s.move(ctx, old, o, nil) // stored already: only the pointer moves
	}
	var ops []clientv3.Op
	if meta.Chunks == 1 {
		ops = append(ops, clientv3.OpPut(s.chunkKey(p.ID, 0), string(data)))
	} else {
		for i := range meta.Chunks {
			chunk := data[i*chunkSize : min(len(data), (i+1)*chunkSize)]
			rctx, cancel := s.request(ctx)
			_, err := s.cli.Put(rctx, s.chunkKey(p.ID, i), string(chunk))
			cancel()
			if err != nil {
				return Published{}, fmt.Errorf("etcd: storing chunk %d of %d of pack %s: %w", i+1, meta.Chunks, pack.Short(p.ID), err)
			}
		}
	}
	b, err := json.Marshal(meta)
	if err != nil {
		return Published{}, err
	}
	ops = append(ops, clientv3.OpPut(s.metaKey(p.ID), string(b)))
	return s.move(ctx, meta, o, ops)
}

// Rollback moves the pointer to a pack stored earlier, named by its ID or
// a prefix of it that names one pack.
func (s *Store) Rollback(ctx context.Context, id string, o PublishOptions) (Published, error) {
	metas, err := s.Packs(ctx)
	if err != nil {
		return Published{}, err
	}
	var found []Meta
	for _, m := range metas {
		if strings.HasPrefix(m.ID, id) {
			found = append(found, m)
		}
	}
	switch {
	case id == "" || len(found) == 0:
		return Published{}, fmt.Errorf("no stored pack has the ID %q (see awakend fleet packs)", id)
	case len(found) > 1:
		return Published{}, fmt.Errorf("%q names %d packs; give more of the ID", id, len(found))
	}
	return s.move(ctx, found[0], o, nil)
}

// move points current at meta's pack in one transaction with ops,
// conditional on the pointer being o.Seen unless o.Force, then prunes.
func (s *Store) move(ctx context.Context, meta Meta, o PublishOptions, ops []clientv3.Op) (Published, error) {
	out := Published{Meta: meta, Previous: o.Seen.ID}
	if !o.Force && o.Seen.ID == meta.ID && len(ops) == 0 {
		cur, _, err := s.Current(ctx)
		if err != nil {
			return out, err
		}
		if cur == o.Seen {
			return out, nil // already current
		}
		return out, &ConflictError{Seen: o.Seen, Found: cur}
	}
	ops = append(ops, clientv3.OpPut(s.currentKey(), meta.ID))
	rctx, cancel := s.request(ctx)
	defer cancel()
	resp, err := s.cli.Txn(rctx).If(conditions(s, o)...).Then(ops...).Else(clientv3.OpGet(s.currentKey())).Commit()
	if err != nil {
		return out, fmt.Errorf("etcd: moving %s to pack %s: %w", s.currentKey(), pack.Short(meta.ID), err)
	}
	if !resp.Succeeded {
		var found Pointer
		if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
			found = Pointer{ID: string(kvs[0].Value), Revision: kvs[0].ModRevision}
		}
		return out, &ConflictError{Seen: o.Seen, Found: found}
	}
	out.Revision = resp.Header.Revision
	out.Pruned = s.prune(ctx, meta.ID, o.Keep)
	return out, nil
}

func conditions(s *Store, o PublishOptions) []clientv3.Cmp {
	if o.Force {
		return nil
	}
	return []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.currentKey()), "=", o.Seen.Revision)}
}

// prune deletes the oldest packs beyond keep, never current, and returns
// how many it deleted. A failure only leaves old packs behind: the next
// publish tries again.
func (s *Store) prune(ctx context.Context, current string, keep int) int {
	if keep <= 0 {
		keep = DefaultKeep
	}
	metas, err := s.Packs(ctx)
	if err != nil || len(metas) <= keep {
		return 0
	}
	n, kept := 0, 0
	for _, m := range metas { // newest first; current and keep-1 others stay
		if m.ID == current {
			continue
		}
		if kept < keep-1 {
			kept++
			continue
		}
		rctx, cancel := s.request(ctx)
		_, err := s.cli.Txn(rctx).Then(
			clientv3.OpDelete(s.metaKey(m.ID)),
			clientv3.OpDelete(s.chunkDir(m.ID), clientv3.WithPrefix()),
		).Commit()
		cancel()
		if err == nil {
			n++
		}
	}
	return n
}

// Packs lists the stored packs, newest first.
func (s *Store) Packs(ctx context.Context) ([]Meta, error) {
	rctx, cancel := s.request(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.prefix+"packs/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd: listing packs: %w", err)
	}
	metas := make([]Meta, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var m Meta
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			return nil, fmt.Errorf("etcd: %s: %w", kv.Key, err)
		}
		m.Revision = kv.CreateRevision
		metas = append(metas, m)
	}
	slices.SortFunc(metas, func(a, b Meta) int { return int(b.Revision - a.Revision) })
	return metas, nil
}

func (s *Store) meta(ctx context.Context, id string) (Meta, bool, error) {
	rctx, cancel := s.request(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.metaKey(id))
	if err != nil {
		return Meta{}, false, fmt.Errorf("etcd: reading pack %s: %w", pack.Short(id), err)
	}
	if len(resp.Kvs) == 0 {
		return Meta{}, false, nil
	}
	var m Meta
	if err := json.Unmarshal(resp.Kvs[0].Value, &m); err != nil {
		return Meta{}, false, fmt.Errorf("etcd: %s: %w", resp.Kvs[0].Key, err)
	}
	m.Revision = resp.Kvs[0].CreateRevision
	return m, true, nil
}

// Fetch reads pack id: its metadata, every chunk, and the archive checked
// against the ID.
func (s *Store) Fetch(ctx context.Context, id string) (*pack.Pack, error) {
	m, ok, err := s.meta(ctx, id)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("etcd: pack %s is not stored (%s)", pack.Short(id), s.metaKey(id))
	}
	rctx, cancel := s.request(ctx)
	defer cancel()
	resp, err := s.cli.Get(rctx, s.chunkDir(id), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("etcd: reading pack %s: %w", pack.Short(id), err)
	}
	if len(resp.Kvs) != m.Chunks {
		return nil, fmt.Errorf("etcd: pack %s has %d of its %d chunks", pack.Short(id), len(resp.Kvs), m.Chunks)
	}
	data := make([]byte, 0, m.Compressed)
	for _, kv := range resp.Kvs {
		data = append(data, kv.Value...)
	}
	p, err := pack.Open(data, id)
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	return p, nil
}
