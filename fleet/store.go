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

	"github.com/awakend/awakend/internal/etcdhttp"
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
	etcd    *etcdhttp.Client
	prefix  string
	timeout time.Duration
}

// Dial returns a store of the fleet at o's etcd endpoints. It does not
// contact a member: the first request does, within its timeout.
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
	cli, err := etcdhttp.New(o.Endpoints, timeout)
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", strings.Join(o.Endpoints, ","), err)
	}
	return &Store{etcd: cli, prefix: prefix, timeout: timeout}, nil
}

// Close closes the connections to etcd.
func (s *Store) Close() error {
	s.etcd.Close()
	return nil
}

// Prefix is the key prefix, with its trailing slash.
func (s *Store) Prefix() string { return s.prefix }

func (s *Store) currentKey() string         { return s.prefix + "current" }
func (s *Store) metaKey(id string) string   { return s.prefix + "packs/" + id }
func (s *Store) chunkDir(id string) string  { return s.prefix + "chunks/" + id + "/" }
func (s *Store) hostKey(host string) string { return s.prefix + "hosts/" + host }

func (s *Store) chunkKey(id string, i int) string { return fmt.Sprintf("%s%06d", s.chunkDir(id), i) }

// Pointer is the current pointer as read: the pack it names ("" if no pack
// was ever published) and the revision that last wrote it (0 if none).
type Pointer struct {
	ID       string
	Revision int64
}

// Current reads the pointer, and the store's revision at the read.
func (s *Store) Current(ctx context.Context) (Pointer, int64, error) {
	resp, err := s.etcd.Range(ctx, etcdhttp.RangeRequest{Key: []byte(s.currentKey())})
	if err != nil {
		return Pointer{}, 0, fmt.Errorf("etcd: reading %s: %w", s.currentKey(), err)
	}
	return pointer(resp.Kvs), int64(resp.Header.Revision), nil
}

// pointer is the pointer as read in kvs; the zero Pointer if it is not
// there.
func pointer(kvs []etcdhttp.KeyValue) Pointer {
	if len(kvs) == 0 {
		return Pointer{}
	}
	return Pointer{ID: string(kvs[0].Value), Revision: int64(kvs[0].ModRevision)}
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
	var ops []etcdhttp.Op
	if meta.Chunks == 1 {
		ops = append(ops, put(s.chunkKey(p.ID, 0), data))
	} else {
		for i := range meta.Chunks {
			chunk := data[i*chunkSize : min(len(data), (i+1)*chunkSize)]
			if _, err := s.etcd.Put(ctx, etcdhttp.PutRequest{Key: []byte(s.chunkKey(p.ID, i)), Value: chunk}); err != nil {
				return Published{}, fmt.Errorf("etcd: storing chunk %d of %d of pack %s: %w", i+1, meta.Chunks, pack.Short(p.ID), err)
			}
		}
	}
	b, err := json.Marshal(meta)
	if err != nil {
		return Published{}, err
	}
	ops = append(ops, put(s.metaKey(p.ID), b))
	return s.move(ctx, meta, o, ops)
}

func put(key string, value []byte) etcdhttp.Op {
	return etcdhttp.Op{Put: &etcdhttp.PutRequest{Key: []byte(key), Value: value}}
}

func deletePrefix(prefix string) etcdhttp.Op {
	key, end := etcdhttp.Prefix(prefix)
	return etcdhttp.Op{DeleteRange: &etcdhttp.DeleteRangeRequest{Key: key, RangeEnd: end}}
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
func (s *Store) move(ctx context.Context, meta Meta, o PublishOptions, ops []etcdhttp.Op) (Published, error) {
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
	txn := etcdhttp.TxnRequest{
		Success: append(ops, put(s.currentKey(), []byte(meta.ID))),
		Failure: []etcdhttp.Op{{Range: &etcdhttp.RangeRequest{Key: []byte(s.currentKey())}}},
	}
	if !o.Force {
		txn.Compare = []etcdhttp.Compare{etcdhttp.ModRevisionIs(s.currentKey(), o.Seen.Revision)}
	}
	resp, err := s.etcd.Txn(ctx, txn)
	if err != nil {
		return out, fmt.Errorf("etcd: moving %s to pack %s: %w", s.currentKey(), pack.Short(meta.ID), err)
	}
	if !resp.Succeeded {
		var found Pointer
		if len(resp.Responses) > 0 && resp.Responses[0].Range != nil {
			found = pointer(resp.Responses[0].Range.Kvs)
		}
		if found.ID != meta.ID || found.Revision <= o.Seen.Revision {
			return out, &ConflictError{Seen: o.Seen, Found: found}
		}
		// The pointer names this pack, written since the publisher read
		// it: a member took the transaction but could not confirm it,
		// and the client sent it again; or another publisher published
		// this very pack meanwhile. Either way the pack is current.
		resp.Header.Revision = etcdhttp.Int64(found.Revision)
	}
	out.Revision = int64(resp.Header.Revision)
	out.Pruned = s.prune(ctx, meta.ID, o.Keep)
	return out, nil
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
		_, err := s.etcd.Txn(ctx, etcdhttp.TxnRequest{Success: []etcdhttp.Op{
			{DeleteRange: &etcdhttp.DeleteRangeRequest{Key: []byte(s.metaKey(m.ID))}},
			deletePrefix(s.chunkDir(m.ID)),
		}})
		if err == nil {
			n++
		}
	}
	return n
}

// Packs lists the stored packs, newest first.
func (s *Store) Packs(ctx context.Context) ([]Meta, error) {
	resp, err := s.etcd.Range(ctx, rangePrefix(s.prefix+"packs/"))
	if err != nil {
		return nil, fmt.Errorf("etcd: listing packs: %w", err)
	}
	metas := make([]Meta, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var m Meta
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			return nil, fmt.Errorf("etcd: %s: %w", kv.Key, err)
		}
		m.Revision = int64(kv.CreateRevision)
		metas = append(metas, m)
	}
	slices.SortFunc(metas, func(a, b Meta) int { return int(b.Revision - a.Revision) })
	return metas, nil
}

func (s *Store) meta(ctx context.Context, id string) (Meta, bool, error) {
	resp, err := s.etcd.Range(ctx, etcdhttp.RangeRequest{Key: []byte(s.metaKey(id))})
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
	m.Revision = int64(resp.Kvs[0].CreateRevision)
	return m, true, nil
}

func rangePrefix(prefix string) etcdhttp.RangeRequest {
	key, end := etcdhttp.Prefix(prefix)
	return etcdhttp.RangeRequest{Key: key, RangeEnd: end}
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
	resp, err := s.etcd.Range(ctx, rangePrefix(s.chunkDir(id))) // in key order: chunk order
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
