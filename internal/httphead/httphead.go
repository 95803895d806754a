// Package httphead reads the head of an HTTP/1.x message — its start line
// and header fields — when it is wholly buffered and plainly formed, into
// what net/http would make of it, at a fraction of the cost; and a body
// of known length after it, as net/http reads one.
//
// It never reports a malformed message: whatever it does not accept (a
// head split across reads, a bare LF, an obsolete line folding, a byte
// net/http rejects or treats specially) it declines, and the caller hands
// the same bytes to net/http, which decides. So a message is either
// parsed here exactly as net/http parses it — the packages' fuzz tests
// hold the callers to that — or by net/http itself.
package httphead

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
)

// Next returns the head buffered at the start of br, through the empty
// line that ends it, split into its start line (without CRLF) and its
// header fields, without consuming it. ok is false when br does not hold
// a whole head, or its start line is empty or holds a CR.
func Next(br *bufio.Reader) (head, line, fields []byte, ok bool) {
	buf, _ := br.Peek(br.Buffered())
	if head = cut(buf); head == nil {
		return nil, nil, nil, false
	}
	line, fields, ok = split(head)
	return head, line, fields, ok
}

// cut returns the head at the start of b, through the empty line that
// ends it, or nil when b does not hold a whole head.
func cut(b []byte) []byte {
	i := bytes.Index(b, crlfcrlf)
	if i < 0 {
		return nil
	}
	return b[:i+4]
}

var crlfcrlf = []byte("\r\n\r\n")

// split splits a head's start line off: it returns the line without its
// CRLF and the header fields after it, or ok false when the line is empty
// or holds a CR of its own.
func split(head []byte) (line, fields []byte, ok bool) {
	i := bytes.IndexByte(head, '\n')
	if i < 2 || head[i-1] != '\r' {
		return nil, nil, false
	}
	line = head[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, false
	}
	return line, head[i+1:], true
}

// Fields parses the header fields of a head, from the line after the
// start line through the empty line that ends the head, into a new
// http.Header as net/textproto's ReadMIMEHeader does: canonical keys,
// values stripped of the blanks around them, repeated fields in order.
// It declines (ok false) a line that starts with a blank (a folding or a
// malformed first line), a key that is not a token (net/textproto
// accepts some, uncanonicalized), a byte in a value that net/textproto
// refuses, and a line not ended by CRLF.
//
// One string holds every key and value that are not already interned,
// so a head costs a few allocations whatever its fields.
func Fields(fields []byte) (http.Header, bool) {
	if len(fields) == 2 && fields[0] == '\r' && fields[1] == '\n' {
		return http.Header{}, true
	}
	if !bytes.HasSuffix(fields, crlfcrlf) {
		return nil, false
	}
	n := bytes.Count(fields, crlf) - 1 // lines before the empty one, at most
	h := make(http.Header, n)
	vals := make([]string, n)
	s := string(fields) // keys and values are cut from it
	for off := 0; ; {
		end := bytes.Index(fields[off:], crlf)
		if end < 0 {
			return nil, false
		}
		if end == 0 {
			return h, off+2 == len(fields)
		}
		end += off
		line := fields[off:end]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return nil, false
		}
		key, ok := canonical(line[:colon], s[off:off+colon])
		if !ok {
			return nil, false
		}
		v0, v1 := off+colon+1, end
		for i := v0; i < v1; i++ {
			if !valueByte(fields[i]) {
				return nil, false
			}
		}
		for v0 < v1 && (fields[v0] == ' ' || fields[v0] == '\t') {
			v0++
		}
		for v1 > v0 && (fields[v1-1] == ' ' || fields[v1-1] == '\t') {
			v1--
		}
		if vv, seen := h[key]; seen {
			h[key] = append(vv, s[v0:v1])
		} else {
			vals[0] = s[v0:v1]
			h[key], vals = vals[:1:1], vals[1:]
		}
		off = end + 2
	}
}

var crlf = []byte("\r\n")

// canonical returns key in canonical form (net/textproto's
// CanonicalMIMEHeaderKey), or ok false when it is not a token. sent is
// key as a string, returned as it is when it is canonical already.
func canonical(key []byte, sent string) (string, bool) {
	if len(key) > maxKey {
		return "", false
	}
	var buf [maxKey]byte
	same, upper := true, true
	for i, c := range key {
		if !tokenByte(c) {
			return "", false
		}
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		same = same && c == key[i]
		buf[i] = c
		upper = c == '-'
	}
	if k, ok := common[string(buf[:len(key)])]; ok {
		return k, true
	}
	if same {
		return sent, true
	}
	return string(buf[:len(key)]), true
}

// maxKey is the longest key canonical takes; a longer one is declined.
const maxKey = 64

// common interns the keys most messages carry, so that they cost no
// memory of their own.
var common = map[string]string{}

func init() {
	for _, k := range []string{
		"Accept", "Accept-Encoding", "Accept-Language", "Anthropic-Version", "Authorization",
		"Cache-Control", "Connection", "Content-Encoding", "Content-Length", "Content-Type",
		"Date", "Expect", "Host", "Keep-Alive", "Openai-Organization", "Openai-Processing-Ms",
		"Openai-Project", "Openai-Version", "Request-Id", "Retry-After", "Server", "Trailer",
		"Transfer-Encoding", "User-Agent", "Vary", "X-Api-Key", "X-Awakend-Session",
		"X-Forwarded-For", "X-Ratelimit-Limit-Requests", "X-Ratelimit-Limit-Tokens",
		"X-Ratelimit-Remaining-Requests", "X-Ratelimit-Remaining-Tokens",
		"X-Ratelimit-Reset-Requests", "X-Ratelimit-Reset-Tokens", "X-Request-Id",
		"X-Stainless-Arch", "X-Stainless-Async", "X-Stainless-Lang", "X-Stainless-Os",
		"X-Stainless-Package-Version", "X-Stainless-Retry-Count", "X-Stainless-Runtime",
		"X-Stainless-Runtime-Version", "X-Stainless-Timeout",
	} {
		common[k] = k
	}
}

// tokenByte reports whether c may appear in a token (RFC 9110 §5.6.2),
// which is what a header key is.
func tokenByte(c byte) bool {
	return c < 0x80 && tokenBytes[c]
}

var tokenBytes = func() (t [0x80]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// valueByte reports whether net/textproto accepts c in a header value:
// visible ASCII, obs-text (0x80 and up), space and tab.
func valueByte(c byte) bool {
	return c >= 0x20 && c != 0x7f || c == '\t'
}

// Token reports whether s is a non-empty token.
func Token(s []byte) bool {
	for _, c := range s {
		if !tokenByte(c) {
			return false
		}
	}
	return len(s) > 0
}

// ContentLength parses a lone Content-Length of 1 to 18 digits, which
// net/http reads as the same number; any other (several, signed, blank,
// huge) is declined.
func ContentLength(v []string) (int64, bool) {
	if len(v) != 1 || len(v[0]) == 0 || len(v[0]) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v[0]); i++ {
		c := v[0][i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// Connection reads a head's Connection header when it is plain: it
// reports whether the header says close; ok is false when there are
// several, or the one is neither close nor keep-alive (a list, an
// upgrade), which net/http reads token by token. present reports whether
// there is one.
func Connection(h http.Header) (closing, present, ok bool) {
	v, present := h["Connection"]
	switch {
	case !present:
		return false, false, true
	case len(v) != 1:
		return false, true, false
	case EqualFold(v[0], "close"):
		return true, true, true
	case EqualFold(v[0], "keep-alive"):
		return false, true, true
	}
	return false, true, false
}

// EqualFold reports whether s equals the lower-case token t, ignoring
// ASCII case, as HTTP compares tokens.
func EqualFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != t[i] {
			return false
		}
	}
	return true
}

// Body returns the body of n > 0 bytes that follows a head on r, read
// as net/http reads it: io.EOF with its last bytes, io.ErrUnexpectedEOF
// if the connection ends before them, then io.EOF. Close does nothing.
func Body(r *bufio.Reader, n int64) io.ReadCloser {
	return &fixedBody{r: r, n: n}
}

type fixedBody struct {
	r *bufio.Reader
	n int64 // bytes left
}

func (b *fixedBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.r.Read(p)
	b.n -= int64(n)
	switch {
	case b.n == 0:
		err = io.EOF
	case err == io.EOF:
		err, b.n = io.ErrUnexpectedEOF, 0 // then io.EOF, as net/http's body
	}
	return n, err
}

func (b *fixedBody) Close() error { return nil }
