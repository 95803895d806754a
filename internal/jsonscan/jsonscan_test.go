package jsonscan

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

var cases = []string{
	`"plain"`, `"esc \" quote"`, `"back\\"`, `"\\\""`, `"\u00e9"`,
	`{"a":[1,"]",{"b":"}"}],"c":null}`, `[]`, `{}`, `-12.5e3`, `true`, `null`,
	` {"x" : "y\\\\" } `, `[[["deep"]]]`,
	`"unterminated`, `{"a":1`, `[`, `"a\"`, ``, `,`,
}

// FuzzValue holds Value to encoding/json: on a valid JSON document it
// ends exactly where the document's value does, and on any input it stays
// in bounds.
func FuzzValue(f *testing.F) {
	for _, c := range cases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		i := SkipSpace(b, 0)
		end, ok := Value(b, i)
		if end < i || end > len(b) {
			t.Fatalf("Value(%q) = %d, out of bounds", b, end)
		}
		if !json.Valid(b) {
			return
		}
		if !ok || SkipSpace(b, end) != len(b) {
			t.Fatalf("Value(%q) = %d, %v; the value ends at %d", b, end, ok, len(bytes.TrimRight(b, " \t\r\n")))
		}
		if b[i] == '"' {
			var s string
			json.Unmarshal(b, &s)
			raw := b[i+1 : end-1]
			if _, escaped, _ := String(b, i); !escaped && utf8.Valid(raw) && string(raw) != s {
				t.Fatalf("String(%q) says no escapes, but it decodes to %q", b, s)
			}
		}
	})
}

func TestString(t *testing.T) {
	for _, tc := range []struct {
		in          string
		end         int
		escaped, ok bool
	}{
		{`"ab"x`, 4, false, true},
		{`"a\"b"x`, 6, true, true},
		{`"a\\"x`, 5, true, true},
		{`"a\\\"b"x`, 8, true, true},
		{`"open`, 5, false, false},
		{`"esc\"`, 6, true, false},
	} {
		end, escaped, ok := String([]byte(tc.in), 0)
		if end != tc.end || escaped != tc.escaped || ok != tc.ok {
			t.Errorf("String(%q) = %d, %v, %v; want %d, %v, %v", tc.in, end, escaped, ok, tc.end, tc.escaped, tc.ok)
		}
	}
}

func TestValueBounds(t *testing.T) {
	for _, tc := range []struct {
		in  string
		end int
		ok  bool
	}{
		{`12,`, 2, true},
		{`,`, 0, false},
		{``, 0, false},
		{`{"a":"}"}]`, 9, true},
		{`[1,2`, 4, false},
		{`{"a":"x`, 7, false},
	} {
		end, ok := Value([]byte(tc.in), 0)
		if end != tc.end || ok != tc.ok {
			t.Errorf("Value(%q) = %d, %v; want %d, %v", tc.in, end, ok, tc.end, tc.ok)
		}
	}
}

func TestField(t *testing.T) {
	obj := []byte(` { "a" : 1, "b":"x\"}y", "c": {"d": [1, {"e": "]"}]}, "t": true, "n": null, "e\"k": 2 } `)
	for key, want := range map[string]string{
		"a": "1", "b": `"x\"}y"`, "c": `{"d": [1, {"e": "]"}]}`, "t": "true", "n": "null", `e\"k`: "2", "zz": "",
	} {
		if got := string(Field(obj, key)); got != want {
			t.Errorf("Field(%q) = %q, want %q", key, got, want)
		}
	}
	for _, bad := range []string{``, `[]`, `{`, `{"a"`, `{"a":`, `{"a":"x`, `{"a":{`, `{"a":1,`, `"s"`} {
		if got := Field([]byte(bad), "a"); got != nil && bad != `{"a":1,` {
			t.Errorf("Field(%q) = %q, want nil", bad, got)
		}
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\`, "nl\n\r\t", "\x00\x1f", "héllo ✓ 😀", "\u2028\u2029", "bad\xffutf8", "<&>"} {
		got := AppendString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("%q: invalid JSON %s: %v", s, got, err)
			continue
		}
		want := strings.ToValidUTF8(s, "\ufffd")
		if back != want {
			t.Errorf("%q: round trip gave %q", s, back)
		}
	}
}
