package etcdhttp_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/awakend/awakend/internal/etcdhttp"
	"github.com/awakend/awakend/internal/etcdtest"
)

func dial(t *testing.T, endpoints ...string) *etcdhttp.Client {
	t.Helper()
	c, err := etcdhttp.New(endpoints, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// The shapes of etcd's JSON, against a real member: puts, ranges by key
// and by prefix, a conditional transaction both ways, deletes.
func TestKV(t *testing.T) {
	c := dial(t, etcdtest.Start(t, 1).Endpoints()...)
	ctx := t.Context()
	put, err := c.Put(ctx, etcdhttp.PutRequest{Key: []byte("/p/a"), Value: []byte("\x00binary\xff")})
	if err != nil || put.Header.Revision < 2 {
		t.Fatalf("Put: %+v, %v", put, err)
	}
	if _, err := c.Put(ctx, etcdhttp.PutRequest{Key: []byte("/p/b"), Value: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, etcdhttp.PutRequest{Key: []byte("/q"), Value: []byte("3")}); err != nil {
		t.Fatal(err)
	}
	one, err := c.Range(ctx, etcdhttp.RangeRequest{Key: []byte("/p/a")})
	if err != nil || len(one.Kvs) != 1 || string(one.Kvs[0].Value) != "\x00binary\xff" ||
		one.Kvs[0].ModRevision != put.Header.Revision || one.Kvs[0].CreateRevision != put.Header.Revision || one.Kvs[0].Version != 1 {
		t.Fatalf("Range of one key: %+v, %v", one, err)
	}
	key, end := etcdhttp.Prefix("/p/")
	all, err := c.Range(ctx, etcdhttp.RangeRequest{Key: key, RangeEnd: end})
	if err != nil || len(all.Kvs) != 2 || string(all.Kvs[0].Key) != "/p/a" || string(all.Kvs[1].Key) != "/p/b" || all.Count != 2 {
		t.Fatalf("Range of a prefix: %+v, %v", all, err)
	}
	none, err := c.Range(ctx, etcdhttp.RangeRequest{Key: []byte("/nothing")})
	if err != nil || len(none.Kvs) != 0 || none.Header.Revision != all.Header.Revision {
		t.Fatalf("Range of no key: %+v, %v", none, err)
	}

	// A transaction on a stale revision fails and runs its failure branch.
	txn := etcdhttp.TxnRequest{
		Compare: []etcdhttp.Compare{etcdhttp.ModRevisionIs("/p/a", 1)},
		Success: []etcdhttp.Op{{Put: &etcdhttp.PutRequest{Key: []byte("/p/a"), Value: []byte("new")}}},
		Failure: []etcdhttp.Op{{Range: &etcdhttp.RangeRequest{Key: []byte("/p/a")}}},
	}
	lost, err := c.Txn(ctx, txn)
	if err != nil || lost.Succeeded || len(lost.Responses) != 1 || lost.Responses[0].Range == nil || string(lost.Responses[0].Range.Kvs[0].Value) != "\x00binary\xff" {
		t.Fatalf("a failed Txn: %+v, %v", lost, err)
	}
	// On the right one, it runs its success branch.
	txn.Compare[0] = etcdhttp.ModRevisionIs("/p/a", int64(put.Header.Revision))
	txn.Success = append(txn.Success, etcdhttp.Op{DeleteRange: &etcdhttp.DeleteRangeRequest{Key: []byte("/q")}})
	won, err := c.Txn(ctx, txn)
	if err != nil || !won.Succeeded || len(won.Responses) != 2 || won.Responses[0].Put == nil || won.Responses[1].DeleteRange == nil || won.Responses[1].DeleteRange.Deleted != 1 {
		t.Fatalf("a successful Txn: %+v, %v", won, err)
	}
	// A key that does not exist has mod revision 0.
	absent, err := c.Txn(ctx, etcdhttp.TxnRequest{Compare: []etcdhttp.Compare{etcdhttp.ModRevisionIs("/q", 0)}})
	if err != nil || !absent.Succeeded {
		t.Fatalf("comparing an absent key with 0: %+v, %v", absent, err)
	}
	del, err := c.DeleteRange(ctx, etcdhttp.DeleteRangeRequest{Key: key, RangeEnd: end})
	if err != nil || del.Deleted != 2 {
		t.Fatalf("DeleteRange: %+v, %v", del, err)
	}

	// etcd's errors come back parsed.
	if err := c.Compact(ctx, int64(del.Header.Revision)); err != nil {
		t.Fatal(err)
	}
	_, err = c.Range(ctx, etcdhttp.RangeRequest{Key: []byte("/p/a"), Revision: 2})
	var e *etcdhttp.Error
	if !errors.As(err, &e) || e.Code != 11 || !strings.Contains(e.Message, "compacted") {
		t.Fatalf("a range at a compacted revision: %v", err)
	}
}

func TestLease(t *testing.T) {
	c := dial(t, etcdtest.Start(t, 1).Endpoints()...)
	ctx := t.Context()
	id, ttl, err := c.Grant(ctx, 5*time.Second)
	if err != nil || id == 0 || ttl != 5*time.Second {
		t.Fatalf("Grant: %x, %v, %v", id, ttl, err)
	}
	if _, err := c.Put(ctx, etcdhttp.PutRequest{Key: []byte("/h"), Value: []byte("x"), Lease: etcdhttp.Int64(id)}); err != nil {
		t.Fatal(err)
	}
	for range 3 { // one connection serves keepalive after keepalive
		if left, err := c.KeepAlive(ctx, id); err != nil || left != 5*time.Second {
			t.Fatalf("KeepAlive: %v, %v", left, err)
		}
	}
	if err := c.Revoke(ctx, id); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Range(ctx, etcdhttp.RangeRequest{Key: []byte("/h")}); err != nil || len(r.Kvs) != 0 {
		t.Fatalf("the key on a revoked lease: %+v, %v", r, err)
	}
	if left, err := c.KeepAlive(ctx, id); err != nil || left != 0 {
		t.Fatalf("KeepAlive of a revoked lease: %v, %v; want 0", left, err)
	}
	if err := c.Revoke(ctx, id); err == nil || !strings.Contains(err.Error(), "lease not found") {
		t.Fatalf("revoking it again: %v", err)
	}
}

func TestWatch(t *testing.T) {
	cl := etcdtest.Start(t, 1)
	c := dial(t, cl.Endpoints()...)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	first, err := c.Put(ctx, etcdhttp.PutRequest{Key: []byte("/w"), Value: []byte("1")})
	if err != nil {
		t.Fatal(err)
	}
	// From a revision already written: it is the first event.
	w, err := c.Watch(ctx, etcdhttp.WatchRequest{Key: []byte("/w"), StartRevision: first.Header.Revision})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var events []etcdhttp.Event
	next := func(n int) {
		t.Helper()
		for len(events) < n {
			r, err := w.Next()
			if err != nil {
				t.Fatalf("after %d events: %v", len(events), err)
			}
			events = append(events, r.Events...)
		}
	}
	next(1)
	if _, err := c.Put(ctx, etcdhttp.PutRequest{Key: []byte("/w"), Value: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteRange(ctx, etcdhttp.DeleteRangeRequest{Key: []byte("/w")}); err != nil {
		t.Fatal(err)
	}
	next(3)
	if events[0].Type != etcdhttp.Put || string(events[0].Kv.Value) != "1" || events[1].Type != etcdhttp.Put || string(events[1].Kv.Value) != "2" ||
		events[2].Type != etcdhttp.Delete || events[2].Kv.ModRevision <= events[1].Kv.ModRevision {
		t.Fatalf("events %+v", events)
	}
	// The context ends the stream.
	cancel()
	if _, err := w.Next(); err == nil {
		t.Fatal("Next after the context ended")
	}

	// A watch from a revision compacted away ends, and says why.
	rev := cl.Compact()
	w, err = c.Watch(t.Context(), etcdhttp.WatchRequest{Key: []byte("/w"), StartRevision: etcdhttp.Int64(rev - 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r, err := w.Next()
	if err == nil || r.CompactRevision != etcdhttp.Int64(rev) || !strings.Contains(err.Error(), "compacted") {
		t.Fatalf("a watch from a compacted revision: %+v, %v", r, err)
	}
}

// A watch on a member that loses its leader ends (etcd cancels a watch
// that requires a leader); once the cluster is whole, watches work again.
func TestWatchEndsWithoutALeader(t *testing.T) {
	cl := etcdtest.Start(t, 3)
	c := dial(t, cl.Endpoints()...)
	w, err := c.Watch(t.Context(), etcdhttp.WatchRequest{Key: []byte("/w")})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// The watch is on the first endpoint; its peers go.
	cl.Kill(1)
	cl.Kill(2)
	ended := make(chan error, 1)
	go func() {
		_, err := w.Next()
		ended <- err
	}()
	select {
	case err := <-ended:
		if !strings.Contains(err.Error(), cl.Endpoint(0)) {
			t.Errorf("the end does not name the member: %v", err)
		}
		t.Logf("ended: %v", err)
	case <-time.After(20 * time.Second):
		w.Close()
		<-ended
		t.Fatal("the watch on a member without a leader is still open after 20 s")
	}
	cl.Restart(1)
	cl.Restart(2)
	w, err = c.Watch(t.Context(), etcdhttp.WatchRequest{Key: []byte("/w")})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := c.Put(t.Context(), etcdhttp.PutRequest{Key: []byte("/w"), Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	if r, err := w.Next(); err != nil || len(r.Events) != 1 {
		t.Fatalf("a watch once the cluster is whole again: %+v, %v", r, err)
	}
}
