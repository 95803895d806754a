package h1

import (
	"bufio"
	"net/http"
	"slices"
	"strconv"

	"github.com/awakend/awakend/internal/httphead"
)

// writeHeader writes h as http.Header's Write does: keys in order, each
// value on a line of its own with CR and LF turned to spaces and the
// blanks around it trimmed, and keys that are not tokens left out. It
// neither allocates nor sorts through an interface for the few keys an
// answer carries.
func writeHeader(bw *bufio.Writer, h http.Header) {
	var buf [16]string
	keys := buf[:0]
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !httphead.Token([]byte(k)) {
			continue
		}
		for _, v := range h[k] {
			bw.WriteString(k)
			bw.WriteString(": ")
			writeValue(bw, v)
			bw.WriteString("\r\n")
		}
	}
}

// writeValue writes v with CR and LF as spaces and without the white
// space (net/textproto's TrimString: space, tab, CR, LF) around it.
func writeValue(bw *bufio.Writer, v string) {
	i, j := 0, len(v)
	for i < j && asciiSpace(v[i]) {
		i++
	}
	for j > i && asciiSpace(v[j-1]) {
		j--
	}
	v = v[i:j]
	for len(v) > 0 {
		k := 0
		for k < len(v) && v[k] != '\r' && v[k] != '\n' {
			k++
		}
		bw.WriteString(v[:k])
		if k == len(v) {
			return
		}
		bw.WriteByte(' ')
		v = v[k+1:]
	}
}

func asciiSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n'
}

// writeStatus writes the status line of code.
func writeStatus(bw *bufio.Writer, code int) {
	if code == http.StatusOK {
		bw.WriteString("HTTP/1.1 200 OK\r\n")
		return
	}
	var num [3]byte
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(num[:0], int64(code), 10))
	bw.WriteByte(' ')
	if text := http.StatusText(code); text != "" {
		bw.WriteString(text)
	} else {
		bw.WriteString("status code ")
		bw.Write(strconv.AppendInt(num[:0], int64(code), 10))
	}
	bw.WriteString("\r\n")
}
