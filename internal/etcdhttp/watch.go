package etcdhttp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// WatchRequest watches Key, or with RangeEnd the keys in [Key, RangeEnd),
// from StartRevision (0: from the next write).
type WatchRequest struct {
	Key           []byte `json:"key"`
	RangeEnd      []byte `json:"range_end,omitempty"`
	StartRevision Int64  `json:"start_revision,omitempty"`
}

// EventType is what an event did to its key.
type EventType int

// The event types.
const (
	Put EventType = iota
	Delete
)

// UnmarshalJSON reads the type's name (PUT, DELETE) or number.
func (t *EventType) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"PUT"`, "0":
		*t = Put
	case `"DELETE"`, "1":
		*t = Delete
	default:
		return fmt.Errorf("unknown event type %s", b)
	}
	return nil
}

// Event is one write to a watched key; Kv is the key after it (for a
// delete, only its key and mod revision).
type Event struct {
	Type EventType `json:"type"`
	Kv   KeyValue  `json:"kv"`
}

// WatchResponse is one answer of a watch stream.
type WatchResponse struct {
	Header          Header  `json:"header"`
	Created         bool    `json:"created"`
	Canceled        bool    `json:"canceled"`
	CompactRevision Int64   `json:"compact_revision"`
	CancelReason    string  `json:"cancel_reason"`
	Events          []Event `json:"events"`
}

// Watch is a watch stream. Next reads it; it is not safe for concurrent
// use.
type Watch struct {
	ctx context.Context // the stream's, to tell its end from its member's fault
	s   *stream
}

// Watch opens a watch and waits until the member has created it. The
// watch needs its member to have a leader: one that loses it cancels the
// watch, so that a member cut off from the others does not leave it
// silent. The stream is bounded by ctx alone; Close ends it.
func (c *Client) Watch(ctx context.Context, r WatchRequest) (*Watch, error) {
	// grpc-gateway passes Grpc-Metadata-* headers as gRPC metadata: this
	// is the "hasleader" that etcd's own client sets to require a leader.
	h := http.Header{"Grpc-Metadata-Hasleader": {"true"}}
	s, err := c.openStream(ctx, "/v3/watch", struct {
		Create WatchRequest `json:"create_request"`
	}{r}, h)
	if err != nil {
		return nil, err
	}
	w := &Watch{ctx: ctx, s: s}
	var first WatchResponse
	if err := w.s.next(&first); err != nil {
		w.end()
		return nil, err
	}
	if !first.Created || first.Canceled {
		w.end()
		return nil, w.s.errorf("the watch was not created: %s", describe(first))
	}
	return w, nil
}

// Next reads the stream's next answer. A watch that ends — canceled by
// its member (a compaction past its revision: the answer's
// CompactRevision says so; its member lost the leader), its stream broken
// or its context done — is an error, after which it reads no more.
func (w *Watch) Next() (WatchResponse, error) {
	var r WatchResponse
	if err := w.s.next(&r); err != nil {
		w.end()
		return r, err
	}
	if r.Canceled || r.CompactRevision != 0 {
		w.end()
		return r, w.s.errorf("the watch ended: %s", describe(r))
	}
	return r, nil
}

// end closes the stream and, unless its context ended it, has requests
// go elsewhere first: the member may be the reason it ended.
func (w *Watch) end() {
	w.s.close()
	if w.ctx.Err() == nil {
		w.s.c.avoid(w.s.endpoint)
	}
}

// Close ends the watch.
func (w *Watch) Close() error { return w.s.close() }

func describe(r WatchResponse) string {
	switch {
	case r.CompactRevision != 0:
		return fmt.Sprintf("compacted past its revision (compact revision %d)", r.CompactRevision)
	case r.CancelReason != "":
		return "canceled: " + r.CancelReason
	case r.Canceled:
		return "canceled"
	}
	b, _ := json.Marshal(r)
	return string(b)
}
