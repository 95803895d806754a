package etcdhttp

import (
	"context"
	"fmt"
	"time"
)

// Grant grants a lease of ttl (whole seconds) and returns its ID and the
// TTL etcd gave it.
func (c *Client) Grant(ctx context.Context, ttl time.Duration) (id int64, granted time.Duration, err error) {
	var out struct {
		ID  Int64 `json:"ID"`
		TTL Int64 `json:"TTL"`
	}
	err = c.call(ctx, "/v3/lease/grant", struct {
		TTL Int64 `json:"TTL"`
	}{Int64(ttl / time.Second)}, &out)
	if err == nil && out.ID == 0 {
		err = fmt.Errorf("/v3/lease/grant: an answer without a lease ID")
	}
	return int64(out.ID), time.Duration(out.TTL) * time.Second, err
}

// KeepAlive renews lease id once and returns the TTL it has again; 0
// means the lease is gone (expired or revoked). The request is bounded by
// ctx alone: a caller bounds it by the time its lease has left.
func (c *Client) KeepAlive(ctx context.Context, id int64) (time.Duration, error) {
	s, err := c.openStream(ctx, "/v3/lease/keepalive", struct {
		ID Int64 `json:"ID"`
	}{Int64(id)}, nil)
	if err != nil {
		return 0, err
	}
	defer s.close()
	var out struct {
		TTL Int64 `json:"TTL"`
	}
	if err := s.next(&out); err != nil {
		return 0, err
	}
	// The stream ends once the member has answered the one request; read
	// its end so that the connection serves the next request, though not
	// for long: a stream that stays open only costs its connection.
	t := time.AfterFunc(time.Second, func() { s.close() })
	_, _ = s.readLine()
	t.Stop()
	return time.Duration(out.TTL) * time.Second, nil
}

// Revoke revokes lease id, deleting the keys on it.
func (c *Client) Revoke(ctx context.Context, id int64) error {
	var out struct{}
	return c.call(ctx, "/v3/lease/revoke", struct {
		ID Int64 `json:"ID"`
	}{Int64(id)}, &out)
}
