package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// client talks to a running daemon's admin API.
type client struct {
	base  string // http://host:port
	token string
	http  *http.Client
	// settle is how long the daemon may take to apply certificate files
	// that changed (its reload.max_wait, and some): a request refused for
	// the daemon's certificate is tried once more after it. 0 tries once.
	settle time.Duration
}

// newClient returns a client of the daemon at base; tlsConf, if set,
// verifies the daemon's certificate.
func newClient(base, token string, timeout time.Duration, tlsConf *tls.Config) *client {
	hc := &http.Client{Timeout: timeout}
	if tlsConf != nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tlsConf
		hc.Transport = tr
	}
	return &client{base: strings.TrimRight(base, "/"), token: token, http: hc}
}

// do sends a request and decodes a JSON answer into out, whatever the
// status; it returns the status code.
func (c *client) do(ctx context.Context, method, path string, body []byte, out any) (int, error) {
	resp, err := c.send(ctx, method, path, body)
	var mismatch *certMismatch
	if errors.As(err, &mismatch) && c.settle > 0 {
		// The files may be newer than the daemon's certificate: give its
		// watcher the time to apply them.
		select {
		case <-time.After(c.settle):
			c.http.CloseIdleConnections()
			resp, err = c.send(ctx, method, path, body)
		case <-ctx.Done():
		}
	}
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return 0, fmt.Errorf("awakend is not running at %s: %w", c.base, err)
		}
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("reading the answer of %s %s: %w", method, path, err)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: not JSON: %.200s", method, path, resp.Status, data)
	}
	return resp.StatusCode, nil
}

// send sends one request.
func (c *client) send(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return c.http.Do(req)
}

// apiError is OpenAI's error envelope, as the daemon answers errors.
type apiError struct {
	Error *struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    string `json:"code"`
	} `json:"error"`
}
