package httphead

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"reflect"
	"testing"
)

// fieldCases are header blocks (through the empty line) Fields takes, and
// ones it declines.
var fieldCases = []string{
	"\r\n",
	"Host: x\r\n\r\n",
	"content-type: application/json\r\nX-API-KEY:k\r\nx-request-id:  id 1 \t\r\n\r\n",
	"A: 1\r\na: 2\r\nA: 3\r\n\r\n",
	"Empty:\r\nSpaces:   \r\n\r\n",
	"Obs-Text: caf\xc3\xa9\r\nTab:\ta\tb\t\r\n\r\n",
	"Weird-Token!#$%&'*+.^_`|~: v\r\n\r\n",
	// Declined.
	" Folded: x\r\n\r\n",
	"A: x\r\n continued\r\n\r\n",
	"Bad Key: x\r\n\r\n",
	"Key : x\r\n\r\n",
	": x\r\n\r\n",
	"NoColon\r\n\r\n",
	"Ctl: a\x01b\r\n\r\n",
	"Del: a\x7fb\r\n\r\n",
	"Cr: a\rb\r\n\r\n",
	"Lf: a\nb\r\n\r\n",
	"Bare: lf\n\n",
	"A: x\r\n",
	"",
}

func TestFieldsAgreesWithTextproto(t *testing.T) {
	taken := 0
	for _, in := range fieldCases {
		if checkFields(t, []byte(in)) {
			taken++
		}
	}
	if taken != 7 {
		t.Errorf("Fields took %d of the cases, want the first 7", taken)
	}
}

// FuzzFields holds Fields to net/textproto: a block it takes,
// ReadMIMEHeader reads to the same header.
func FuzzFields(f *testing.F) {
	for _, in := range fieldCases {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkFields(t, in)
	})
}

func checkFields(t *testing.T, in []byte) bool {
	t.Helper()
	got, ok := Fields(in)
	if !ok {
		return false
	}
	want, err := textproto.NewReader(bufio.NewReader(bytes.NewReader(in))).ReadMIMEHeader()
	if err != nil {
		t.Fatalf("%q: Fields took it, ReadMIMEHeader says %v", in, err)
	}
	if !reflect.DeepEqual(got, http.Header(want)) {
		t.Fatalf("%q: Fields reads %#v, ReadMIMEHeader %#v", in, got, want)
	}
	return true
}

func TestNext(t *testing.T) {
	next := func(in string) (head, line, fields []byte, ok bool) {
		br := bufio.NewReader(bytes.NewReader([]byte(in)))
		br.Peek(len(in))
		head, line, fields, ok = Next(br)
		if br.Buffered() != len(in) {
			t.Errorf("Next(%q) consumed bytes", in)
		}
		return head, line, fields, ok
	}
	head, line, fields, ok := next("GET / HTTP/1.1\r\nHost: x\r\n\r\nbody")
	if !ok || string(head) != "GET / HTTP/1.1\r\nHost: x\r\n\r\n" || string(line) != "GET / HTTP/1.1" || string(fields) != "Host: x\r\n\r\n" {
		t.Fatalf("Next = %q, %q, %q, %v", head, line, fields, ok)
	}
	for _, bad := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n", // unfinished
		"GET /\rx HTTP/1.1\r\n\r\n",
		"\r\n\r\n",
		"GET / HTTP/1.1\n\r\n\r\n",
	} {
		if _, _, _, ok := next(bad); ok {
			t.Errorf("Next took %q", bad)
		}
	}
}

func TestToken(t *testing.T) {
	for s, want := range map[string]bool{"GET": true, "M-SEARCH": true, "": false, "G T": false, "G\x80": false, "a:b": false} {
		if got := Token([]byte(s)); got != want {
			t.Errorf("Token(%q) = %v", s, got)
		}
	}
}
