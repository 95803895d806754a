// Package etcdhttp is a client of etcd's v3 API over its JSON gateway: the
// HTTP/1.1 endpoints (POST /v3/kv/range, /v3/watch, …) that every etcd
// member of 3.4 or later serves on its client URLs, with the standard
// library's HTTP client. It speaks what the fleet needs — ranges, puts,
// transactions, compaction, leases and watches — to several members,
// moving to the next when one cannot answer.
//
// On the wire, bytes are base64, 64-bit integers are strings (Int64) and
// enums are their names; fields at their zero value are left out.
package etcdhttp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits on what a member's answer may make this client hold (variables
// for the tests).
var (
	maxResponse  = 64 << 20 // a unary answer (a range of every chunk of a pack)
	maxWatchLine = 16 << 20 // one response of a watch stream
)

const maxErrorBody = 64 << 10

// Client talks to the members at its endpoints. It is safe for concurrent
// use.
type Client struct {
	endpoints []string // base URLs, without a trailing slash
	timeout   time.Duration
	http      *http.Client
	transport *http.Transport

	mu        sync.Mutex
	preferred int // the endpoint that answered last: where requests go first
}

// New returns a client of the members at endpoints (http://host:port or
// host:port; https:// is verified against the system's certificate
// authorities). Each unary request, failover included, is bounded by
// timeout; watch and keepalive streams only by their context.
func New(endpoints []string, timeout time.Duration) (*Client, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("no endpoints")
	}
	c := &Client{timeout: timeout}
	for _, ep := range endpoints {
		base, err := baseURL(ep)
		if err != nil {
			return nil, err
		}
		c.endpoints = append(c.endpoints, base)
	}
	dialer := &net.Dialer{
		// A member that does not accept within a third of the timeout
		// leaves time for the next one.
		Timeout: timeout / 3,
		// A member that vanishes without a word (its host powered off,
		// a partition) ends a watch in about 25 s rather than the
		// system's default of minutes.
		KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 10 * time.Second, Interval: 5 * time.Second, Count: 3},
	}
	c.transport = &http.Transport{
		// etcd is reached directly: a proxy from the environment would
		// see every key.
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		TLSHandshakeTimeout: timeout / 3,
		// A member that takes a stream (a watch, a keepalive) but never
		// answers leaves it for the next; a unary request has its
		// deadline already.
		ResponseHeaderTimeout: timeout,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
	}
	c.http = &http.Client{Transport: c.transport}
	return c, nil
}

// baseURL checks an endpoint and returns it as a URL with a scheme and no
// trailing slash.
func baseURL(ep string) (string, error) {
	s := ep
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
		return "", fmt.Errorf("endpoint %q is not http://host:port, https://host:port or host:port", ep)
	}
	return u.Scheme + "://" + u.Host, nil
}

// Close closes the client's idle connections. Streams still open end with
// their context.
func (c *Client) Close() { c.transport.CloseIdleConnections() }

// Endpoints are the client's base URLs.
func (c *Client) Endpoints() []string { return append([]string(nil), c.endpoints...) }

// Error is a request a member answered with an error.
type Error struct {
	Endpoint string // the member's base URL
	Path     string // of the request, /v3/kv/range
	Status   int    // HTTP status; 200 for an error within a stream
	Code     int    // gRPC status code: 14 unavailable, 11 out of range (compacted), …
	Message  string // etcd's, such as "etcdserver: no leader"
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s%s: %s (HTTP %d, code %d)", e.Endpoint, e.Path, e.Message, e.Status, e.Code)
}

// unavailable reports whether another member may answer what this one
// could not: an HTTP 5xx, or gRPC's unavailable.
func (e *Error) unavailable() bool { return e.Status >= 500 || e.Code == 14 }

// errorBody is an error as etcd's gateway writes it: for a unary request
// {"error": "...", "message": "...", "code": 14}, within a stream
// {"error": {"grpc_code": 14, "http_code": 503, "message": "..."}} (later
// gateways: {"code": 14, "message": "..."} and {"error": {"code": 14, …}}).
type errorBody struct {
	Error   json.RawMessage `json:"error"`
	Message string          `json:"message"`
	Code    int             `json:"code"`
}

type streamError struct {
	GRPCCode int    `json:"grpc_code"`
	Code     int    `json:"code"`
	HTTPCode int    `json:"http_code"`
	Message  string `json:"message"`
}

// parseError makes an *Error of an error body; ok is false if b is not one.
func parseError(endpoint, path string, status int, b []byte) (e *Error, ok bool) {
	var body errorBody
	if json.Unmarshal(b, &body) != nil {
		return nil, false
	}
	e = &Error{Endpoint: endpoint, Path: path, Status: status, Code: body.Code, Message: body.Message}
	if len(body.Error) > 0 && body.Error[0] == '{' {
		var se streamError
		if json.Unmarshal(body.Error, &se) != nil {
			return nil, false
		}
		e.Code, e.Message = max(se.GRPCCode, se.Code), se.Message
		if se.HTTPCode != 0 {
			e.Status = se.HTTPCode
		}
	} else if len(body.Error) > 0 && e.Message == "" {
		_ = json.Unmarshal(body.Error, &e.Message)
	}
	return e, e.Message != "" || e.Code != 0
}

func (c *Client) first() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.preferred
}

func (c *Client) prefer(i int) {
	c.mu.Lock()
	c.preferred = i
	c.mu.Unlock()
}

// avoid moves requests away from endpoint i, when it is the preferred
// one: a member whose watch broke may not be the one to ask next.
func (c *Client) avoid(i int) {
	c.mu.Lock()
	if c.preferred == i {
		c.preferred = (i + 1) % len(c.endpoints)
	}
	c.mu.Unlock()
}

// open posts body to path, trying each endpoint in turn from the preferred
// one while a member cannot be reached or answers that it is unavailable,
// and returns the first answer of 200, the endpoint's index, and the
// cancel of the answer's context, to call once its body is read. Any other
// answer is an *Error. Within a deadline, each member tried gets its share
// of the time left, so that one that hangs leaves time for the others.
func (c *Client) open(ctx context.Context, path string, body []byte, header http.Header) (*http.Response, int, context.CancelFunc, error) {
	var failed []string
	start := c.first()
	for n := range c.endpoints {
		i := (start + n) % len(c.endpoints)
		actx, cancel := ctx, context.CancelFunc(func() {})
		if deadline, ok := ctx.Deadline(); ok {
			actx, cancel = context.WithTimeout(ctx, time.Until(deadline)/time.Duration(len(c.endpoints)-n))
		}
		resp, err := c.post(actx, c.endpoints[i], path, body, header)
		if err == nil {
			c.prefer(i)
			return resp, i, cancel, nil
		}
		cancel()
		var ee *Error
		if ctx.Err() != nil || errors.As(err, &ee) && !ee.unavailable() {
			if len(failed) > 0 {
				err = fmt.Errorf("%w (after %s)", err, strings.Join(failed, "; "))
			}
			return nil, i, nil, err
		}
		failed = append(failed, err.Error())
	}
	return nil, start, nil, fmt.Errorf("no member answered: %s", strings.Join(failed, "; "))
}

func (c *Client) post(ctx context.Context, ep, path string, body []byte, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s%s: %w", ep, path, err)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if e, ok := parseError(ep, path, resp.StatusCode, b); ok {
		return nil, e
	}
	return nil, &Error{Endpoint: ep, Path: path, Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
}

// call posts in to path and decodes the answer into out, within the
// client's timeout.
func (c *Client) call(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, i, done, err := c.open(ctx, path, body, nil)
	if err != nil {
		return err
	}
	defer done()
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(maxResponse)+1))
	switch {
	case err != nil:
		return fmt.Errorf("%s%s: reading the answer: %w", c.endpoints[i], path, err)
	case len(b) > maxResponse:
		return fmt.Errorf("%s%s: the answer exceeds %d bytes", c.endpoints[i], path, maxResponse)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s%s: %w", c.endpoints[i], path, err)
	}
	return nil
}

// stream reads a streaming answer: one JSON object a line, each
// {"result": {...}} or {"error": {...}}.
type stream struct {
	c        *Client
	endpoint int
	path     string
	body     io.ReadCloser
	done     context.CancelFunc
	br       *bufio.Reader
	line     []byte
}

// openStream posts in to path and returns the answer's stream, bounded by
// ctx alone; close ends it.
func (c *Client) openStream(ctx context.Context, path string, in any, header http.Header) (*stream, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	resp, i, done, err := c.open(ctx, path, body, header)
	if err != nil {
		return nil, err
	}
	return &stream{c: c, endpoint: i, path: path, body: resp.Body, done: done, br: bufio.NewReaderSize(resp.Body, 16<<10)}, nil
}

// next decodes the next result of the stream into out.
func (s *stream) next(out any) error {
	line, err := s.readLine()
	if err != nil {
		return err
	}
	var msg struct {
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(line, &msg); err != nil {
		return s.errorf("%w", err)
	}
	if len(msg.Error) > 0 && string(msg.Error) != "null" {
		if e, ok := parseError(s.c.endpoints[s.endpoint], s.path, http.StatusOK, line); ok {
			return e
		}
		return s.errorf("%s", msg.Error)
	}
	if len(msg.Result) == 0 {
		return s.errorf("a line without a result: %.200s", line)
	}
	if err := json.Unmarshal(msg.Result, out); err != nil {
		return s.errorf("%w", err)
	}
	return nil
}

// readLine reads one non-empty line, of at most maxWatchLine bytes.
func (s *stream) readLine() ([]byte, error) {
	for {
		s.line = s.line[:0]
		for {
			piece, err := s.br.ReadSlice('\n')
			if len(s.line)+len(piece) > maxWatchLine {
				return nil, s.errorf("a line of the stream exceeds %d bytes", maxWatchLine)
			}
			s.line = append(s.line, piece...)
			if err == bufio.ErrBufferFull {
				continue
			}
			if err == io.EOF && len(bytes.TrimSpace(s.line)) > 0 {
				break // a last line without its newline
			}
			if err == io.EOF {
				return nil, s.errorf("the stream ended")
			}
			if err != nil {
				return nil, s.errorf("%w", err)
			}
			break
		}
		if line := bytes.TrimSpace(s.line); len(line) > 0 {
			return line, nil
		}
	}
}

func (s *stream) errorf(format string, args ...any) error {
	return fmt.Errorf("%s%s: "+format, append([]any{s.c.endpoints[s.endpoint], s.path}, args...)...)
}

func (s *stream) close() error {
	err := s.body.Close()
	s.done()
	return err
}

// Int64 is a 64-bit integer as etcd's JSON carries it: a string, though a
// number is accepted.
type Int64 int64

// MarshalJSON writes n as a string.
func (n Int64) MarshalJSON() ([]byte, error) {
	return strconv.AppendQuote(nil, strconv.FormatInt(int64(n), 10)), nil
}

// UnmarshalJSON reads a string or a number.
func (n *Int64) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	if u, err := strconv.Unquote(s); err == nil {
		s = u
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return fmt.Errorf("not a 64-bit integer: %s", b)
	}
	*n = Int64(v)
	return nil
}
