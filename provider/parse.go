package provider

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"

	"github.com/awakend/awakend/internal/httphead"
)

// readResponse reads the answer to a POST on br. A plain answer whose
// head is buffered whole (an upstream sends its head in one write) is
// parsed by parseResponse; any other goes to http.ReadResponse, which
// reads what it needs and decides. FuzzParseResponse holds parseResponse
// to http.ReadResponse's result.
func readResponse(br *bufio.Reader) (*http.Response, error) {
	if _, err := br.Peek(1); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // as http.ReadResponse reports it
		}
		return nil, err
	}
	if resp := parseResponse(br); resp != nil {
		return resp, nil
	}
	return http.ReadResponse(br, postRequest)
}

// parseResponse returns the answer whose head br holds whole, and
// consumes the head, or returns nil, consuming nothing, when the head is
// not whole or is anything but plain: HTTP/1.1, a final status that has a
// body (not 1xx, 204 or 304), a lone Content-Length or a chunked
// Transfer-Encoding (not both), no Trailer or Pragma header, and a
// Connection header, if any, of close or keep-alive.
func parseResponse(br *bufio.Reader) *http.Response {
	head, line, fields, ok := httphead.Next(br)
	if !ok || len(line) < 12 || string(line[:9]) != "HTTP/1.1 " || len(line) > 12 && line[12] != ' ' {
		return nil
	}
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return nil
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		return nil
	}
	h, ok := httphead.Fields(fields)
	if !ok {
		return nil
	}
	for _, k := range [...]string{"Trailer", "Pragma"} {
		if _, ok := h[k]; ok {
			return nil
		}
	}
	resp := &http.Response{
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		StatusCode: code, Header: h, Request: postRequest,
	}
	closing, _, ok := httphead.Connection(h)
	if !ok {
		return nil
	}
	if closing {
		resp.Close = true
		delete(h, "Connection") // as http.ReadResponse does
	}
	te, chunked := h["Transfer-Encoding"]
	cl, sized := h["Content-Length"]
	switch {
	case chunked && (sized || len(te) != 1 || !httphead.EqualFold(te[0], "chunked")):
		return nil
	case chunked:
		delete(h, "Transfer-Encoding")
		resp.ContentLength, resp.TransferEncoding = -1, []string{"chunked"}
		resp.Body = &chunkedBody{cr: httputil.NewChunkedReader(br), br: br, resp: resp}
	case sized:
		n, ok := httphead.ContentLength(cl)
		if !ok {
			return nil
		}
		resp.ContentLength, resp.Body = n, http.NoBody
		if n > 0 {
			resp.Body = httphead.Body(br, n)
		}
	default:
		return nil // read to the connection's close
	}
	resp.Status = status(line[9:])
	br.Discard(len(head))
	return resp
}

// status returns a status line's code and reason, without allocating for
// the usual ones.
func status(s []byte) string {
	switch string(s) {
	case "200 OK":
		return "200 OK"
	}
	return string(s)
}

// chunkedBody is a chunked answer's body, read as net/http reads one: the
// trailer after the last chunk goes into the response's Trailer.
type chunkedBody struct {
	cr   io.Reader
	br   *bufio.Reader
	resp *http.Response
	eof  bool
	err  error // a trailer that could not be read fails the reads after it
}

func (b *chunkedBody) Read(p []byte) (int, error) {
	switch {
	case b.err != nil:
		return 0, b.err
	case b.eof:
		return 0, io.EOF
	}
	n, err := b.cr.Read(p)
	if err == io.EOF {
		b.eof = true
		if terr := b.readTrailer(); terr != nil {
			err, b.err = terr, http.ErrBodyReadAfterClose
		}
	}
	return n, err
}

func (b *chunkedBody) Close() error { return nil }

var errTrailerEOF = errors.New("http: unexpected EOF reading trailer")

// readTrailer reads what follows the last chunk: the empty line that ends
// the body, or trailer fields before it.
func (b *chunkedBody) readTrailer() error {
	buf, err := b.br.Peek(2)
	if bytes.Equal(buf, []byte("\r\n")) {
		b.br.Discard(2)
		return nil
	}
	if len(buf) < 2 {
		return errTrailerEOF
	}
	if err != nil {
		return err
	}
	// The trailer must end within the buffer: no unbounded read.
	for size := 4; ; size++ {
		buf, err := b.br.Peek(size)
		if bytes.HasSuffix(buf, []byte("\r\n\r\n")) {
			break
		}
		if err != nil {
			return errors.New("http: suspiciously long trailer after chunked body")
		}
	}
	hdr, err := textproto.NewReader(b.br).ReadMIMEHeader()
	if err != nil {
		if err == io.EOF {
			return errTrailerEOF
		}
		return err
	}
	if b.resp.Trailer == nil {
		b.resp.Trailer = http.Header(hdr)
	} else {
		for k, v := range hdr {
			b.resp.Trailer[k] = v
		}
	}
	return nil
}
