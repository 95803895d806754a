package h1

import (
	"bufio"
	"bytes"
	"net/http"
	"strconv"
	"testing"
)

// FuzzWriteHeader holds writeHeader to http.Header's Write on any header:
// the same bytes.
func FuzzWriteHeader(f *testing.F) {
	f.Add("Content-Type", "application/json", "X-Request-Id", " id\r\n1 ", "bad key", "x")
	f.Add("A", "", "a", "\t", "", "v")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string) {
		h := http.Header{}
		h[k1] = append(h[k1], v1)
		h[k2] = append(h[k2], v2)
		h[k3] = append(h[k3], v3)
		var want bytes.Buffer
		h.Write(&want)
		var got bytes.Buffer
		bw := bufio.NewWriter(&got)
		writeHeader(bw, h)
		bw.Flush()
		if got.String() != want.String() {
			t.Fatalf("%q: writeHeader wrote %q, Header.Write %q", h, got.String(), want.String())
		}
	})
}

func TestWriteStatus(t *testing.T) {
	for _, code := range []int{200, 101, 204, 404, 499, 599, 999} {
		var got bytes.Buffer
		bw := bufio.NewWriter(&got)
		writeStatus(bw, code)
		bw.Flush()
		want := "HTTP/1.1 " + strconv.Itoa(code) + " " + http.StatusText(code) + "\r\n"
		if http.StatusText(code) == "" {
			want = "HTTP/1.1 " + strconv.Itoa(code) + " status code " + strconv.Itoa(code) + "\r\n"
		}
		if got.String() != want {
			t.Errorf("writeStatus(%d) = %q, want %q", code, got.String(), want)
		}
	}
}
