package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"reflect"
	"testing"
)

// requestCases are heads parseRequest takes and heads it must decline.
var requestCases = []string{
	"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8700\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 11\r\nContent-Type: application/json\r\nAccept-Encoding: gzip\r\n\r\n{\"model\":1}",
	"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET / HTTP/1.0\r\n\r\n",
	"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n",
	"POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\nx-custom-header:  a b \t\r\nX-Custom-Header: c\r\n\r\nabcdef",
	"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nshort",
	"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 007\r\n\r\nabcdefg",
	"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
	"GET / HTTP/1.1\r\nEmpty:\r\nObs: caf\xc3\xa9\r\n\r\n",
	// Declined: net/http decides.
	"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
	"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
	"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
	"GET /?q=1 HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET /a%20b HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET //evil HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET http://x/ HTTP/1.1\r\nHost: y\r\n\r\n",
	"GET * HTTP/1.1\r\nHost: x\r\n\r\n",
	"CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n",
	"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
	"GET / HTTP/1.1\nHost: x\n\n",
	"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
	"GET / HTTP/1.1\r\n Host: x\r\n\r\n",
	"GET / HTTP/1.1\r\nBad Key: x\r\n\r\n",
	"GET / HTTP/1.1\r\nKey : x\r\n\r\n",
	"GET / HTTP/1.1\r\n: x\r\n\r\n",
	"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
	"GET / HTTP/1.1\r\nCtl: a\x01b\r\n\r\n",
	"GET / HTTP/1.1\r\nCr: a\rb\r\n\r\n",
	"GET / HTTP/1.1\r\nPragma: no-cache\r\n\r\n",
	"GET / HTTP/1.1\r\nConnection: close, upgrade\r\n\r\n",
	"GET / HTTP/1.1\r\nTrailer: X\r\n\r\n",
	"G@T / HTTP/1.1\r\n\r\n",
	"GET  / HTTP/1.1\r\n\r\n",
	"GET / HTTP/1.1 \r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\n",
	"",
}

// TestParseRequestAgreesWithNetHTTP runs the cases through the fuzz
// property and checks which of them the fast path takes.
func TestParseRequestAgreesWithNetHTTP(t *testing.T) {
	taken := 0
	for _, in := range requestCases {
		if checkParseRequest(t, []byte(in)) {
			taken++
		}
	}
	if taken != 10 {
		t.Errorf("parseRequest took %d of the cases, want the first 10", taken)
	}
}

// FuzzParseRequest holds parseRequest to http.ReadRequest: whatever head
// it takes, net/http reads the same request from the same bytes (method,
// URL, protocol, headers, host, framing, close) and both leave the same
// bytes for the next request.
func FuzzParseRequest(f *testing.F) {
	for _, in := range requestCases {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkParseRequest(t, in)
	})
}

// checkParseRequest reports whether parseRequest took in, after failing t
// if what it made differs from what http.ReadRequest makes.
func checkParseRequest(t *testing.T, in []byte) bool {
	t.Helper()
	br := bufio.NewReaderSize(bytes.NewReader(in), 64<<10)
	br.Peek(len(in)) // as a connection's first read would buffer it
	got := parseRequest(br)
	if got == nil {
		if br.Buffered() != len(in) {
			t.Fatalf("%q: declined, but consumed %d bytes", in, len(in)-br.Buffered())
		}
		return false
	}
	wbr := bufio.NewReaderSize(bytes.NewReader(in), 64<<10)
	want, err := http.ReadRequest(wbr)
	if err != nil {
		t.Fatalf("%q: parseRequest took it, http.ReadRequest says %v", in, err)
	}
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"Method", got.Method, want.Method},
		{"URL", *got.URL, *want.URL},
		{"Proto", got.Proto, want.Proto},
		{"ProtoMajor", got.ProtoMajor, want.ProtoMajor},
		{"ProtoMinor", got.ProtoMinor, want.ProtoMinor},
		{"Header", got.Header, want.Header},
		{"Host", got.Host, want.Host},
		{"RequestURI", got.RequestURI, want.RequestURI},
		{"ContentLength", got.ContentLength, want.ContentLength},
		{"TransferEncoding", got.TransferEncoding, want.TransferEncoding},
		{"Close", got.Close, want.Close},
		{"Trailer", got.Trailer, want.Trailer},
		{"NoBody", got.Body == http.NoBody, want.Body == http.NoBody},
	} {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Fatalf("%q: %s = %#v, net/http reads %#v", in, f.name, f.got, f.want)
		}
	}
	gb, gerr := readAll(got.Body)
	wb, werr := readAll(want.Body)
	if !bytes.Equal(gb, wb) || gerr != werr {
		t.Fatalf("%q: body %q, %v; net/http reads %q, %v", in, gb, gerr, wb, werr)
	}
	grest, _ := io.ReadAll(br)
	wrest, _ := io.ReadAll(wbr)
	if !bytes.Equal(grest, wrest) {
		t.Fatalf("%q: leaves %q for the next request, net/http %q", in, grest, wrest)
	}
	return true
}

// readAll reads r to its end and then once more, returning the errors of
// the last two reads: what a handler sees, and what a second look sees.
func readAll(r io.Reader) ([]byte, [2]error) {
	var out []byte
	var errs [2]error
	buf := make([]byte, 3)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			errs[0] = err
			break
		}
	}
	_, errs[1] = r.Read(buf)
	return out, errs
}

// BenchmarkReadRequest compares parseRequest with http.ReadRequest on the
// head an OpenAI SDK sends.
func BenchmarkReadRequest(b *testing.B) {
	in := []byte("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8700\r\nUser-Agent: OpenAI/Go 3.9.0\r\n" +
		"Content-Length: 2\r\nAccept: application/json\r\nContent-Type: application/json\r\nX-Stainless-Lang: go\r\n" +
		"X-Stainless-Retry-Count: 0\r\nAccept-Encoding: gzip\r\n\r\n{}")
	for _, bc := range []struct {
		name string
		read func(*bufio.Reader) (*http.Request, error)
	}{
		{"parseRequest", func(br *bufio.Reader) (*http.Request, error) { return parseRequest(br), nil }},
		{"http.ReadRequest", http.ReadRequest},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := bytes.NewReader(in)
			br := bufio.NewReaderSize(r, 4096)
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(in)
				br.Reset(r)
				br.Peek(len(in))
				req, err := bc.read(br)
				if err != nil || req.ContentLength != 2 {
					b.Fatal(err)
				}
			}
		})
	}
}
