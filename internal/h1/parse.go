package h1

import (
	"bufio"
	"bytes"
	"net/http"
	"net/url"

	"github.com/awakend/awakend/internal/httphead"
)

// parseRequest returns the request whose head br holds whole, and consumes
// the head, or returns nil, consuming nothing, when the head is not whole
// or is anything but plain (http.ReadRequest then reads it; a head is
// nearly always whole, clients sending it in one write, and
// FuzzParseRequest holds this to http.ReadRequest's result): an HTTP/1.0 or 1.1 request for a path of
// unreserved characters, without a query, with at most one Content-Length
// and Host, no Transfer-Encoding, Trailer or Pragma, and a Connection
// header, if any, of close or keep-alive.
func parseRequest(br *bufio.Reader) *http.Request {
	head, line, fields, ok := httphead.Next(br)
	if !ok {
		return nil
	}
	method, rest, ok := bytes.Cut(line, sp)
	if !ok || !httphead.Token(method) {
		return nil
	}
	uri, proto, ok := bytes.Cut(rest, sp)
	if !ok || !plainPath(uri) {
		return nil
	}
	req := &http.Request{ProtoMajor: 1}
	switch string(proto) {
	case "HTTP/1.1":
		req.Proto, req.ProtoMinor = "HTTP/1.1", 1
	case "HTTP/1.0":
		req.Proto, req.Close = "HTTP/1.0", true
	default:
		return nil
	}
	h, ok := httphead.Fields(fields)
	if !ok {
		return nil
	}
	// What http.ReadRequest treats in ways of its own: chunked bodies,
	// trailers, Pragma's Cache-Control, Connection token lists, repeated
	// framing headers (refused, or deduplicated).
	for _, k := range [...]string{"Transfer-Encoding", "Trailer", "Pragma"} {
		if _, ok := h[k]; ok {
			return nil
		}
	}
	if len(h["Host"]) > 1 {
		return nil
	}
	switch closing, present, ok := httphead.Connection(h); {
	case !ok:
		return nil
	case present:
		req.Close = closing // keep-alive keeps an HTTP/1.0 connection too
	}
	req.Body = http.NoBody
	if v, ok := h["Content-Length"]; ok {
		n, ok := httphead.ContentLength(v)
		if !ok {
			return nil
		}
		req.ContentLength = n
		if n > 0 {
			req.Body = httphead.Body(br, n)
		}
	}
	req.Method = internMethod(method)
	req.RequestURI = string(uri)
	req.URL = &url.URL{Path: req.RequestURI}
	req.Header = h
	if v := h["Host"]; len(v) == 1 {
		req.Host = v[0]
		delete(h, "Host") // as http.ReadRequest does
	}
	br.Discard(len(head))
	return req
}

var sp = []byte(" ")

// plainPath reports whether uri is an absolute path of unreserved
// characters (RFC 3986 §2.3) and slashes, not starting with two slashes:
// one url.ParseRequestURI takes as it is.
func plainPath(uri []byte) bool {
	if len(uri) == 0 || uri[0] != '/' || len(uri) > 1 && uri[1] == '/' {
		return false
	}
	for _, c := range uri {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '/', c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}

// internMethod returns the method as a string, without allocating for the
// common ones.
func internMethod(m []byte) string {
	switch string(m) {
	case http.MethodGet:
		return http.MethodGet
	case http.MethodPost:
		return http.MethodPost
	case http.MethodHead:
		return http.MethodHead
	case http.MethodPut:
		return http.MethodPut
	case http.MethodDelete:
		return http.MethodDelete
	case http.MethodOptions:
		return http.MethodOptions
	}
	return string(m)
}
