package etcdhttp

import "context"

// Header is the header of every answer.
type Header struct {
	Revision Int64 `json:"revision"` // the store's, when the member answered
}

// KeyValue is a key as stored.
type KeyValue struct {
	Key            []byte `json:"key"`
	Value          []byte `json:"value"`
	CreateRevision Int64  `json:"create_revision"`
	ModRevision    Int64  `json:"mod_revision"`
	Version        Int64  `json:"version"`
	Lease          Int64  `json:"lease"`
}

// RangeRequest reads Key, or with RangeEnd the keys in [Key, RangeEnd),
// in key order.
type RangeRequest struct {
	Key      []byte `json:"key"`
	RangeEnd []byte `json:"range_end,omitempty"`
	Revision Int64  `json:"revision,omitempty"` // 0: the latest
}

// RangeResponse holds the keys read.
type RangeResponse struct {
	Header Header     `json:"header"`
	Kvs    []KeyValue `json:"kvs"`
	Count  Int64      `json:"count"`
}

// PutRequest writes Value at Key, on a lease if Lease is not 0.
type PutRequest struct {
	Key   []byte `json:"key"`
	Value []byte `json:"value"`
	Lease Int64  `json:"lease,omitempty"`
}

// PutResponse is a put's answer.
type PutResponse struct {
	Header Header `json:"header"`
}

// DeleteRangeRequest deletes Key, or with RangeEnd the keys in [Key,
// RangeEnd).
type DeleteRangeRequest struct {
	Key      []byte `json:"key"`
	RangeEnd []byte `json:"range_end,omitempty"`
}

// DeleteRangeResponse says how many keys went.
type DeleteRangeResponse struct {
	Header  Header `json:"header"`
	Deleted Int64  `json:"deleted"`
}

// Prefix returns the range of every key that starts with prefix:
// prefix itself and the end for RangeEnd.
func Prefix(prefix string) (key, end []byte) {
	key = []byte(prefix)
	end = append([]byte(nil), key...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return key, end[:i+1]
		}
	}
	return key, []byte{0} // every key from prefix on
}

// Compare is a condition of a transaction on a key's mod revision (0 for
// a key that does not exist).
type Compare struct {
	Key         []byte `json:"key"`
	ModRevision Int64  `json:"mod_revision"`
	Target      string `json:"target"` // MOD
	Result      string `json:"result"` // EQUAL
}

// ModRevisionIs is the condition that key was last written at rev.
func ModRevisionIs(key string, rev int64) Compare {
	return Compare{Key: []byte(key), ModRevision: Int64(rev), Target: "MOD", Result: "EQUAL"}
}

// Op is one request of a transaction: set one of its fields.
type Op struct {
	Range       *RangeRequest       `json:"request_range,omitempty"`
	Put         *PutRequest         `json:"request_put,omitempty"`
	DeleteRange *DeleteRangeRequest `json:"request_delete_range,omitempty"`
}

// TxnRequest does Success if every Compare holds, else Failure, in one
// revision.
type TxnRequest struct {
	Compare []Compare `json:"compare,omitempty"`
	Success []Op      `json:"success,omitempty"`
	Failure []Op      `json:"failure,omitempty"`
}

// TxnResponse holds the answers of the branch that ran, in order.
type TxnResponse struct {
	Header    Header   `json:"header"`
	Succeeded bool     `json:"succeeded"`
	Responses []OpResp `json:"responses"`
}

// OpResp is the answer to one Op: the field of its kind is set.
type OpResp struct {
	Range       *RangeResponse       `json:"response_range"`
	Put         *PutResponse         `json:"response_put"`
	DeleteRange *DeleteRangeResponse `json:"response_delete_range"`
}

// Range reads keys.
func (c *Client) Range(ctx context.Context, r RangeRequest) (*RangeResponse, error) {
	var out RangeResponse
	return &out, c.call(ctx, "/v3/kv/range", r, &out)
}

// Put writes a key.
func (c *Client) Put(ctx context.Context, r PutRequest) (*PutResponse, error) {
	var out PutResponse
	return &out, c.call(ctx, "/v3/kv/put", r, &out)
}

// DeleteRange deletes keys.
func (c *Client) DeleteRange(ctx context.Context, r DeleteRangeRequest) (*DeleteRangeResponse, error) {
	var out DeleteRangeResponse
	return &out, c.call(ctx, "/v3/kv/deleterange", r, &out)
}

// Txn runs a transaction. A transaction that a member took but could not
// confirm (it lost its leader, or the connection broke) is sent again to
// the next member: a caller whose transaction must not apply twice makes
// it conditional, and reads a failed condition with that in mind.
func (c *Client) Txn(ctx context.Context, r TxnRequest) (*TxnResponse, error) {
	var out TxnResponse
	return &out, c.call(ctx, "/v3/kv/txn", r, &out)
}

// Compact discards the history before revision rev.
func (c *Client) Compact(ctx context.Context, rev int64) error {
	var out struct{}
	return c.call(ctx, "/v3/kv/compaction", struct {
		Revision Int64 `json:"revision"`
	}{Int64(rev)}, &out)
}
