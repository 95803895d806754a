// Package sse reads server-sent event streams from upstreams that cannot be
// trusted to end their lines or their events: one event, and so one line,
// is bounded, and an event over the bound is an error instead of memory
// the stream can grow without end.
//
// Events are returned as the bytes the upstream sent (every line with its
// line ending, through the blank line that ends the event), so that a relay
// can forward them unchanged; Data extracts an event's data for a reader
// that translates it.
package sse

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
)

// ErrTooLong is returned by Next for an event, or a line, longer than the
// reader's limit.
type ErrTooLong struct{ Limit int }

func (e *ErrTooLong) Error() string {
	return "an event of the stream exceeds " + strconv.Itoa(e.Limit) + " bytes"
}

// Reader reads events. It is not safe for concurrent use.
type Reader struct {
	br    *bufio.Reader
	limit int
	ev    []byte
}

// NewReader returns a Reader of the stream r whose events may hold at most
// limit bytes. It reads r through a buffer of bufSize bytes.
func NewReader(r io.Reader, limit, bufSize int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, bufSize), limit: limit}
}

// Reset makes the reader read r from its start, keeping its buffers; a nil
// r releases the stream.
func (s *Reader) Reset(r io.Reader) {
	s.br.Reset(r)
	s.ev = s.ev[:0]
}

// maxKept bounds the event buffer a Reader keeps across Reset.
const maxKept = 64 << 10

// Next returns the next event: its lines, each with its line ending,
// through the blank line that ends it; blank lines between events are
// skipped. The slice is valid until the next call.
//
// At the end of the stream Next returns io.EOF, with the last event's bytes
// when the stream ended within an event (a final event without its blank
// line). Any other error is the stream's, or *ErrTooLong.
func (s *Reader) Next() ([]byte, error) {
	if cap(s.ev) > maxKept {
		s.ev = nil
	}
	s.ev = s.ev[:0]
	for {
		start := len(s.ev)
		var err error
		for {
			var piece []byte
			piece, err = s.br.ReadSlice('\n')
			if len(s.ev)+len(piece) > s.limit {
				return nil, &ErrTooLong{Limit: s.limit}
			}
			s.ev = append(s.ev, piece...)
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if err != nil {
			return s.ev, err
		}
		if line := s.ev[start:]; len(line) == 1 || len(line) == 2 && line[0] == '\r' {
			if start == 0 { // a blank line between events
				s.ev = s.ev[:0]
				continue
			}
			return s.ev, nil
		}
	}
}

// Data appends to dst the data of the event ev, as the SSE rules assemble
// it: the values of its data fields (one space after the colon dropped),
// joined by newlines. Other fields and comments add nothing.
func Data(dst, ev []byte) []byte {
	first := true
	for len(ev) > 0 {
		line := ev
		if i := bytes.IndexByte(ev, '\n'); i >= 0 {
			line, ev = ev[:i], ev[i+1:]
		} else {
			ev = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		v, ok := bytes.CutPrefix(line, []byte("data"))
		if !ok || len(v) > 0 && v[0] != ':' {
			continue
		}
		if len(v) > 0 {
			v = v[1:]
			if len(v) > 0 && v[0] == ' ' {
				v = v[1:]
			}
		}
		if !first {
			dst = append(dst, '\n')
		}
		dst = append(dst, v...)
		first = false
	}
	return dst
}

// IsDone reports whether ev is OpenAI's end of stream, data: [DONE].
func IsDone(ev []byte) bool {
	return bytes.HasPrefix(ev, []byte("data: [DONE]")) || bytes.HasPrefix(ev, []byte("data:[DONE]"))
}

// IsError reports whether ev's data is an object whose first member is
// "error": what OpenAI and compatible servers send when a stream fails
// after it started, and the last event of such a stream.
func IsError(ev []byte) bool {
	d, ok := bytes.CutPrefix(ev, []byte("data:"))
	if !ok {
		return false
	}
	d = bytes.TrimLeft(d, " ")
	d, ok = bytes.CutPrefix(d, []byte("{"))
	return ok && bytes.HasPrefix(bytes.TrimLeft(d, " \t"), []byte(`"error"`))
}
