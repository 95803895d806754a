// Package jsonscan finds the bounds of JSON tokens in place: where a
// string or a value that starts at an index ends. The gateway rewrites
// request bodies and the provider translates stream events with it,
// touching only the members they need and allocating nothing.
//
// It validates nothing: on valid JSON it finds exactly the tokens'
// bounds; on anything else it still never reads out of bounds and always
// ends, and reports a token it could not close.
package jsonscan

import (
	"bytes"
	"unicode/utf8"
)

// SkipSpace returns the index of the first byte at or after i that is not
// JSON white space, or len(b).
func SkipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// String returns the index just past the closing quote of the string that
// starts at b[i] == '"', and whether the string holds escapes. ok is false
// when the string does not end within b; end is then len(b).
func String(b []byte, i int) (end int, escaped, ok bool) {
	j := i + 1
	for j < len(b) {
		q := bytes.IndexByte(b[j:], '"')
		if q < 0 {
			break
		}
		bs := bytes.IndexByte(b[j:j+q], '\\')
		if bs < 0 {
			return j + q + 1, escaped, true
		}
		escaped = true
		k := j + bs
		for k < j+q {
			if b[k] == '\\' {
				k += 2
			} else {
				k++
			}
		}
		if k == j+q {
			return j + q + 1, escaped, true // the quote is not escaped
		}
		j = k // the quote was escaped: look further
	}
	return len(b), escaped, false
}

// Value returns the index just past the value that starts at b[i]: a
// string, an object or array (to its matching bracket), or a scalar (to
// the next delimiter). ok is false when there is no value at i or it does
// not end within b; end is then where the scan stopped.
func Value(b []byte, i int) (end int, ok bool) {
	if i >= len(b) {
		return i, false
	}
	switch b[i] {
	case '"':
		end, _, ok = String(b, i)
		return end, ok
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				if i, _, ok = String(b, i); !ok {
					return i, false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1, true
				}
			}
			i++
		}
		return i, false
	}
	start := i
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i, i > start
		}
		i++
	}
	return i, i > start
}

// Members and scalars in place, for the stream translations: stream
// events are small objects of which a few members are needed; finding
// them here, and copying JSON strings through as raw tokens, translates an
// event without allocating. Malformed input makes the lookups fail, never
// panic.

// Field returns the raw value of the top-level member key of the JSON
// object obj, or nil when obj is not an object or has no such member. Keys
// are compared as they are written, escapes and all.
func Field(obj []byte, key string) []byte {
	i := SkipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil
	}
	i++
	for {
		i = SkipSpace(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			return nil
		}
		ke, _, ok := String(obj, i)
		if !ok {
			return nil
		}
		k := obj[i+1 : ke-1]
		i = SkipSpace(obj, ke)
		if i >= len(obj) || obj[i] != ':' {
			return nil
		}
		i = SkipSpace(obj, i+1)
		ve, ok := Value(obj, i)
		if !ok {
			return nil
		}
		if string(k) == key {
			return obj[i:ve]
		}
		i = SkipSpace(obj, ve)
		if i >= len(obj) || obj[i] != ',' {
			return nil
		}
		i++
	}
}

// IsString reports whether raw is a JSON string token.
func IsString(raw []byte) bool { return len(raw) >= 2 && raw[0] == '"' }

// Integer parses a raw non-negative JSON integer; anything else is 0.
func Integer(raw []byte) int64 {
	var n int64
	for _, c := range raw {
		if c < '0' || c > '9' || n > 1<<53 {
			return 0
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// AppendString appends s to dst as a JSON string.
func AppendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
