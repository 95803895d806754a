package fleet

import (
	"context"
	"time"

	"github.com/awakend/awakend/internal/etcdhttp"
)

// watchLifetime bounds one watch: a member that stops without a word (a
// frozen process, whose kernel still answers for its connections) leaves
// its watches open and silent, and only a new one, elsewhere, sees on.
var watchLifetime = 5 * time.Minute

// Follow calls changed whenever the pointer may have moved since the store
// revision rev (the one Current returned): on every write to it, and each
// time the watch had to be set up again — after a compaction past its
// revision, the loss of its member's leader, etcd going away, or the
// watch's lifetime — when the pointer is read again, so that no publish
// goes unnoticed. It returns
// when ctx is done. With rev 0 (the pointer could not be read), it reads
// the pointer first, and keeps trying until it can.
func (s *Store) Follow(ctx context.Context, rev int64, changed func(Pointer)) {
	seen := int64(0) // the pointer's revision last reported
	wait := time.Duration(0)
	for {
		if rev > 0 {
			rev = s.watch(ctx, rev, func(p Pointer) {
				seen = p.Revision
				changed(p)
			})
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(max(2*wait, 100*time.Millisecond), 5*time.Second)
		p, r, err := s.Current(ctx)
		if err != nil {
			continue // the next watch fails fast too, or works
		}
		wait = 0
		if p.Revision != seen { // it moved while no watch was there to see it
			seen = p.Revision
			changed(p)
		}
		rev = r
	}
}

// watch watches the pointer from after rev until the watch ends (at the
// latest after watchLifetime), calling
// changed for each write, and returns the last revision it has seen.
func (s *Store) watch(ctx context.Context, rev int64, changed func(Pointer)) int64 {
	ctx, cancel := context.WithTimeout(ctx, watchLifetime)
	defer cancel()
	w, err := s.etcd.Watch(ctx, etcdhttp.WatchRequest{Key: []byte(s.currentKey()), StartRevision: etcdhttp.Int64(rev + 1)})
	if err != nil {
		return rev
	}
	defer w.Close()
	for {
		resp, err := w.Next()
		if err != nil { // compacted past rev, canceled, broken, or ctx done
			return rev
		}
		for _, ev := range resp.Events {
			rev = int64(ev.Kv.ModRevision)
			if ev.Type == etcdhttp.Put {
				changed(Pointer{ID: string(ev.Kv.Value), Revision: rev})
			}
		}
	}
}
