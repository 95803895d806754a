package provider

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// The transport never asks for a compressed answer, but an upstream may
// send one anyway. gzip (or x-gzip) and deflate are decoded, so that the
// gateway's client gets the answer in plain, as its headers say; any other
// coding fails the call before a byte is passed on. Passing the encoded
// bytes on without their Content-Encoding, or decoding part of an answer,
// never happens.

// contentCoding reads the Content-Encoding of an answer: "" for none (or
// identity), "gzip" or "deflate" for the codings that are decoded. ok is
// false for any other, or for more than one coding; coding is then the
// header's value.
func contentCoding(h http.Header) (coding string, ok bool) {
	v := h["Content-Encoding"]
	if len(v) == 0 {
		return "", true
	}
	if len(v) == 1 {
		switch strings.ToLower(strings.TrimSpace(v[0])) {
		case "", "identity":
			return "", true
		case "gzip", "x-gzip":
			return "gzip", true
		case "deflate":
			return "deflate", true
		}
	}
	return strings.Join(v, ", "), false
}

// decodedBody is an answer's body decoded of its coding. The decoder
// starts at the first Read, so that a call still returns on the headers
// alone. Its bound is on the decoded bytes.
type decodedBody struct {
	raw    io.ReadCloser
	coding string
	bound

	r   io.Reader // the decoder, once started
	err error
}

func (d *decodedBody) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if d.r == nil {
		if d.r, d.err = newDecoder(d.raw, d.coding); d.err != nil {
			if d.err != io.EOF {
				d.err = &Error{Class: ClassServer, Message: "the upstream's " + d.coding + " answer is not readable: " + d.err.Error(), Type: defaultType(ClassServer), cause: d.err}
			}
			return 0, d.err
		}
	}
	n, err := d.count(d.r.Read(d.room(p)))
	if err != nil {
		d.err = err
	}
	return n, err
}

// bound counts the bytes of a body against a limit, if any (limit > 0).
type bound struct{ limit, n int64 }

// passed reports whether the limit was passed.
func (b *bound) passed() bool { return b.limit > 0 && b.n > b.limit }

// room cuts p to the bytes that may still be read, and one more to see
// the limit passed.
func (b *bound) room(p []byte) []byte {
	if b.limit > 0 && int64(len(p)) > b.limit-b.n+1 {
		return p[:max(b.limit-b.n+1, 0)]
	}
	return p
}

// count adds the result of a read of room's bytes: past the limit, it is
// the bytes within it and an *Error.
func (b *bound) count(n int, err error) (int, error) {
	b.n += int64(n)
	if b.passed() {
		n -= int(min(b.n-b.limit, int64(n)))
		b.n = b.limit + 1
		return n, &Error{Class: ClassServer, Message: "the upstream's answer exceeds " + strconv.FormatInt(b.limit, 10) + " bytes", Type: defaultType(ClassServer)}
	}
	return n, err
}

// Close closes the raw body.
func (d *decodedBody) Close() error { return d.raw.Close() }

// newDecoder starts decoding r. A deflate answer is a zlib stream by the
// HTTP rules, but some servers send raw deflate: the zlib header tells.
// An empty answer is io.EOF.
func newDecoder(r io.Reader, coding string) (io.Reader, error) {
	if coding == "gzip" {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		return zr, nil
	}
	br := bufio.NewReader(r)
	h, err := br.Peek(2)
	if len(h) == 0 && err != nil {
		return nil, err
	}
	if len(h) == 2 && h[0]&0x0f == 8 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0 {
		zr, err := zlib.NewReader(br)
		if err != nil {
			return nil, err
		}
		return zr, nil
	}
	return flate.NewReader(br), nil
}
