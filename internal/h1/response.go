package h1

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// errAfterReturn is what a response's methods return once its handler
// has returned.
var errAfterReturn = errors.New("h1: the response was used after its handler returned")

// response is the http.ResponseWriter and http.Flusher of one request.
// Its start is held in the connection's buffer until the handler flushes,
// outgrows the buffer or returns: a complete small answer goes out with
// a Content-Length, a longer or flushed one chunked (or, to an HTTP/1.0
// client, delimited by the connection's close).
type response struct {
	c      *conn
	req    *http.Request
	body   body
	header http.Header
	status int
	head   bool // a HEAD request: the body is counted, not sent

	declared int64 // the Content-Length the handler set, or -1
	written  int64 // body bytes the handler wrote

	wroteHeader bool // the status is chosen
	committed   bool // the status line and headers are in the write buffer
	chunked     bool
	closeAfter  bool // the connection closes after this answer
	done        bool // the handler returned
	expect      bool // the client expects 100 Continue before sending the body
	continued   bool // the 100 Continue is sent, or will not be
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(code int) {
	if w.done {
		return
	}
	if code < 100 || code > 999 {
		panic("h1: invalid WriteHeader code " + strconv.Itoa(code))
	}
	if w.wroteHeader {
		w.c.srv.logger().Warn("superfluous WriteHeader call", "code", code, "path", w.req.URL.Path)
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// An informational answer (103 Early Hints) goes out at once,
		// with the headers set so far; the final one follows.
		bw := w.c.bw
		writeStatus(bw, code)
		writeHeader(bw, w.header)
		bw.WriteString("\r\n")
		bw.Flush()
		if code == http.StatusContinue {
			w.continued = true
		}
		return
	}
	w.wroteHeader, w.status = true, code
	if cl := w.header.Get("Content-Length"); cl != "" {
		n, err := strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 {
			w.c.srv.logger().Warn("invalid Content-Length ignored", "value", cl, "path", w.req.URL.Path)
			delete(w.header, "Content-Length")
		} else {
			w.declared = n
		}
	}
}

func (w *response) Write(p []byte) (int, error) {
	if w.done {
		return 0, errAfterReturn
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.declared >= 0 && w.written+int64(len(p)) > w.declared {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.head {
		// Not sent; its start is held to sniff a Content-Type from, as
		// for a GET.
		if !w.committed && len(w.c.held) < sniffLen {
			w.c.held = append(w.c.held, p[:min(len(p), sniffLen-len(w.c.held))]...)
		}
		return len(p), nil
	}
	if !w.committed {
		if len(w.c.held)+len(p) <= cap(w.c.held) {
			w.c.held = append(w.c.held, p...)
			return len(p), nil
		}
		w.commit(false, p)
	}
	return w.send(p)
}

// send writes p to the connection's buffer, as a chunk if the answer is
// chunked.
func (w *response) send(p []byte) (int, error) {
	bw := w.c.bw
	if w.chunked {
		var hx [16]byte
		bw.Write(strconv.AppendInt(hx[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
		bw.Write(p)
		_, err := bw.WriteString("\r\n")
		if err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return bw.Write(p)
}

// FlushError sends what the handler wrote so far; http.ResponseController
// uses it.
func (w *response) FlushError() error {
	if w.done {
		return errAfterReturn
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false, nil)
	}
	return w.c.bw.Flush()
}

// Flush is FlushError for http.Flusher.
func (w *response) Flush() { _ = w.FlushError() }

// sniffLen is how much of an answer's start http.DetectContentType reads.
const sniffLen = 512

// commit writes the status line and headers, then the held start of the
// body. final is true once the handler has returned: the body is complete
// and its length known. next is the write that outgrew the buffer, if
// that is why the answer commits.
func (w *response) commit(final bool, next []byte) {
	w.committed = true
	h, bw, req := w.header, w.c.bw, w.req
	bodyOK := bodyAllowed(w.status)
	held := w.c.held
	w.c.held = held[:0]

	delete(h, "Transfer-Encoding") // the framing is the server's
	if w.declared < 0 {
		// Set after WriteHeader, which is when the handler's length is
		// read (net/http ignores it too): sent, it would contradict the
		// framing.
		delete(h, "Content-Length")
	}
	length := ""
	if w.declared < 0 && bodyOK && final && (!w.head || w.written > 0) {
		w.declared = w.written
		length = strconv.FormatInt(w.written, 10)
	}
	if w.declared < 0 && bodyOK && !w.head {
		if req.ProtoMinor >= 1 {
			w.chunked = true
		} else {
			w.closeAfter = true // HTTP/1.0: the close ends the body
		}
	}
	if _, ok := h["Content-Type"]; !ok && bodyOK && len(h["Content-Encoding"]) == 0 {
		// Sniff the answer's start, as net/http does: what is held, then
		// the write that outgrew the buffer.
		start := held
		if len(start) < sniffLen && len(next) > 0 {
			var buf [sniffLen]byte
			start = append(append(buf[:0], held...), next[:min(len(next), sniffLen-len(held))]...)
		}
		if len(start) > 0 {
			h["Content-Type"] = []string{http.DetectContentType(start)}
		}
	}

	// Keep the connection unless the client, the handler or the server
	// ends it, or the unread rest of the request body is too long to
	// drain.
	keep := !w.closeAfter && !req.Close && !w.c.srv.closed.Load() && !hasToken(h["Connection"], "close")
	if keep && !w.body.eof && (req.ContentLength < 0 || req.ContentLength > maxDrain || w.expect && !w.continued) {
		keep = false
	}
	if req.ProtoMinor == 0 && w.declared < 0 {
		keep = false
	}
	w.closeAfter = !keep
	delete(h, "Connection")

	writeStatus(bw, w.status)
	writeHeader(bw, h)
	if length != "" {
		bw.WriteString("Content-Length: ")
		bw.WriteString(length)
		bw.WriteString("\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.Write(w.c.srv.dateValue(time.Now()))
		bw.WriteString("\r\n")
	}
	switch {
	case !keep:
		bw.WriteString("Connection: close\r\n")
	case req.ProtoMinor == 0:
		bw.WriteString("Connection: keep-alive\r\n")
	}
	bw.WriteString("\r\n")
	if len(held) > 0 && !w.head {
		w.send(held)
	}
}

// finish completes the answer once the handler has returned, and flushes
// it.
func (w *response) finish() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.done = true
	if !w.committed {
		w.commit(true, nil)
	} else if w.chunked {
		w.c.bw.WriteString("0\r\n\r\n")
	}
	if w.declared >= 0 && w.written < w.declared && bodyAllowed(w.status) && !w.head {
		w.closeAfter = true // the client waits for bytes that will not come
	}
	return w.c.bw.Flush()
}

// bodyAllowed reports whether an answer with status code may have a body.
func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}

// hasToken reports whether a comma-separated header value holds token,
// case-insensitively.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}
