package provider

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"testing"
)

// responseCases are answers parseResponse takes and answers it must
// decline.
var responseCases = []string{
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nDate: Sat, 28 Nov 2026 11:00:00 GMT\r\n\r\n{}",
	"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"e\r\ndata: {\"a\":1}\n\n\r\ne\r\ndata: [DONE]\n\n\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n",
	"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\ncontent-length: 5\r\nconnection: keep-alive\r\n\r\nslow!next",
	"HTTP/1.1 500\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer\r\n\r\n",
	// Declined: net/http decides.
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 204 No Content\r\n\r\n",
	"HTTP/1.1 304 Not Modified\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nto the close",
	"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na",
	"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\na",
	"HTTP/1.1 200 OK\r\nTrailer: X\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n\r\n",
	"HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nConnection: close, te\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 20x OK\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\nContent-Length: 0\n\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n",
}

func TestParseResponseAgreesWithNetHTTP(t *testing.T) {
	taken := 0
	for _, in := range responseCases {
		if checkParseResponse(t, []byte(in)) {
			taken++
		}
	}
	if taken != 9 {
		t.Errorf("parseResponse took %d of the cases, want the first 9", taken)
	}
}

// FuzzParseResponse holds parseResponse to http.ReadResponse: whatever
// answer it takes, net/http reads the same from the same bytes (status,
// headers, framing, close, body, trailer) and both leave the same bytes
// on the connection.
func FuzzParseResponse(f *testing.F) {
	for _, in := range responseCases {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkParseResponse(t, in)
	})
}

func checkParseResponse(t *testing.T, in []byte) bool {
	t.Helper()
	br := bufio.NewReaderSize(bytes.NewReader(in), 64<<10)
	br.Peek(len(in))
	got := parseResponse(br)
	if got == nil {
		if br.Buffered() != len(in) {
			t.Fatalf("%q: declined, but consumed %d bytes", in, len(in)-br.Buffered())
		}
		return false
	}
	wbr := bufio.NewReaderSize(bytes.NewReader(in), 64<<10)
	want, err := http.ReadResponse(wbr, postRequest)
	if err != nil {
		t.Fatalf("%q: parseResponse took it, http.ReadResponse says %v", in, err)
	}
	gb, gerr := readBodyTwice(got.Body)
	wb, werr := readBodyTwice(want.Body)
	if !bytes.Equal(gb, wb) || gerr != werr {
		t.Fatalf("%q: body %q, %v; net/http reads %q, %v", in, gb, gerr, wb, werr)
	}
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"Status", got.Status, want.Status},
		{"StatusCode", got.StatusCode, want.StatusCode},
		{"Proto", got.Proto, want.Proto},
		{"ProtoMajor", got.ProtoMajor, want.ProtoMajor},
		{"ProtoMinor", got.ProtoMinor, want.ProtoMinor},
		{"Header", got.Header, want.Header},
		{"ContentLength", got.ContentLength, want.ContentLength},
		{"TransferEncoding", got.TransferEncoding, want.TransferEncoding},
		{"Close", got.Close, want.Close},
		{"Trailer", got.Trailer, want.Trailer},
		{"Request", got.Request, want.Request},
		{"NoBody", got.Body == http.NoBody, want.Body == http.NoBody},
	} {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Fatalf("%q: %s = %#v, net/http reads %#v", in, f.name, f.got, f.want)
		}
	}
	grest, _ := io.ReadAll(br)
	wrest, _ := io.ReadAll(wbr)
	if !bytes.Equal(grest, wrest) {
		t.Fatalf("%q: leaves %q on the connection, net/http %q", in, grest, wrest)
	}
	return true
}

// readBodyTwice reads r to its end and once more, and returns the errors of the
// last two reads as text (net/http's trailer errors are values of its own).
func readBodyTwice(r io.Reader) ([]byte, string) {
	var out []byte
	buf := make([]byte, 3)
	var first error
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			first = err
			break
		}
	}
	_, second := r.Read(buf)
	return out, fmt.Sprint(first, " / ", second)
}

// BenchmarkReadResponse compares readResponse with http.ReadResponse on
// an OpenAI answer's head.
func BenchmarkReadResponse(b *testing.B) {
	in := []byte("HTTP/1.1 200 OK\r\nDate: Sat, 28 Nov 2026 11:00:00 GMT\r\nContent-Type: application/json\r\n" +
		"Content-Length: 2\r\nConnection: keep-alive\r\nOpenai-Processing-Ms: 412\r\nOpenai-Version: 2020-10-01\r\n" +
		"X-Request-Id: req_0123456789abcdef\r\nX-Ratelimit-Remaining-Requests: 9999\r\n\r\n{}")
	for _, bc := range []struct {
		name string
		read func(*bufio.Reader) (*http.Response, error)
	}{
		{"readResponse", readResponse},
		{"http.ReadResponse", func(br *bufio.Reader) (*http.Response, error) { return http.ReadResponse(br, postRequest) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := bytes.NewReader(in)
			br := bufio.NewReaderSize(r, 4096)
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(in)
				br.Reset(r)
				resp, err := bc.read(br)
				if err != nil || resp.ContentLength != 2 {
					b.Fatal(err)
				}
			}
		})
	}
}
