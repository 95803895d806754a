package gateway

import (
	"encoding/json"
	"strings"
	"testing"
)

// validCases are inputs at the edges of the JSON grammar; validJSON must
// judge each as json.Valid does.
var validCases = []string{
	``, ` `, `{}`, `[]`, ` { } `, `[ ]`, `{"a":1}`, `{"a":1,}`, `{,"a":1}`, `{"a" 1}`, `{"a":}`, `{"a"}`,
	`{1:2}`, `[1,]`, `[,1]`, `[1 2]`, `[1,2]`, `{"a":[1,{"b":null}],"c":"d"}`, `{"a":1}}`, `[[]`, `[]]`,
	`"x"`, `"\"\\\/\b\f\n\r\t"`, `"\u00e9\uD83D\uDE00"`, `"\u00g0"`, `"\u00"`, `"\x"`, `"a` + "\x01" + `"`,
	"\"a\x7f\xff\"", `"unterminated`, `"\`, `"\u`,
	`0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-1.5e10`, `2x`, `+1`,
	`true`, `false`, `null`, `tru`, `nul`, `True`, `truex`, `[true,false,null]`, `nan`, `Infinity`,
	"{\"a\":\t1\r\n}", "\xef\xbb\xbf{}", `{"a":1} {"b":2}`, `{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
	strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	strings.Repeat(`{"a":`, 3000) + "1" + strings.Repeat("}", 3000),
}

func TestValidJSON(t *testing.T) {
	for _, in := range validCases {
		if got, want := validJSON([]byte(in)), json.Valid([]byte(in)); got != want {
			t.Errorf("validJSON(%.60q) = %v, json.Valid says %v", in, got, want)
		}
	}
}

// FuzzValidJSON checks validJSON against json.Valid on any input.
func FuzzValidJSON(f *testing.F) {
	for _, in := range validCases {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}

// BenchmarkValidJSON compares validJSON with json.Valid on a short chat
// request and on one carrying a long conversation (about 64 KiB).
func BenchmarkValidJSON(b *testing.B) {
	short := []byte(`{"model":"m","messages":[{"role":"system","content":"You are a helpful assistant. Answer briefly and precisely."},` +
		`{"role":"user","content":"What is the capital of France? Please answer in one word and explain nothing."}],"temperature":0.2,"user":"u-1"}`)
	var long strings.Builder
	long.WriteString(`{"model":"m","messages":[`)
	for i := range 200 {
		if i > 0 {
			long.WriteByte(',')
		}
		long.WriteString(`{"role":"user","content":"` + strings.Repeat(`Some text of a long conversation, with \"quotes\" and \u00e9. `, 5) + `"}`)
	}
	long.WriteString(`]}`)
	for _, in := range []struct {
		name string
		b    []byte
	}{{"short", short}, {"long", []byte(long.String())}} {
		if !json.Valid(in.b) || !validJSON(in.b) {
			b.Fatalf("%s: not valid", in.name)
		}
		b.Run(in.name+"/validJSON", func(b *testing.B) {
			b.SetBytes(int64(len(in.b)))
			for b.Loop() {
				validJSON(in.b)
			}
		})
		b.Run(in.name+"/json.Valid", func(b *testing.B) {
			b.SetBytes(int64(len(in.b)))
			for b.Loop() {
				json.Valid(in.b)
			}
		})
	}
}
