package provider

import (
	"unicode/utf8"

	"github.com/awakend/awakend/internal/jsonscan"
)

// JSON in place for the stream translation path. Stream events are small
// objects of which a few members are needed; finding them with jsonscan,
// and copying JSON strings through as raw tokens, translates an event
// without allocating. Inputs are trusted to be JSON as upstream sent it;
// malformed input makes the lookups fail, never panic.

// field returns the raw value of the top-level member key of the JSON
// object obj, or nil when obj is not an object or has no such member. Keys
// are compared as they are written, escapes and all.
func field(obj []byte, key string) []byte {
	i := jsonscan.SkipSpace(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil
	}
	i++
	for {
		i = jsonscan.SkipSpace(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			return nil
		}
		ke, _, ok := jsonscan.String(obj, i)
		if !ok {
			return nil
		}
		k := obj[i+1 : ke-1]
		i = jsonscan.SkipSpace(obj, ke)
		if i >= len(obj) || obj[i] != ':' {
			return nil
		}
		i = jsonscan.SkipSpace(obj, i+1)
		ve, ok := jsonscan.Value(obj, i)
		if !ok {
			return nil
		}
		if string(k) == key {
			return obj[i:ve]
		}
		i = jsonscan.SkipSpace(obj, ve)
		if i >= len(obj) || obj[i] != ',' {
			return nil
		}
		i++
	}
}

// isString reports whether raw is a JSON string token.
func isString(raw []byte) bool { return len(raw) >= 2 && raw[0] == '"' }

// integer parses a raw non-negative JSON integer; anything else is 0.
func integer(raw []byte) int64 {
	var n int64
	for _, c := range raw {
		if c < '0' || c > '9' || n > 1<<53 {
			return 0
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// appendString appends s to dst as a JSON string.
func appendString(dst []byte, s string) []byte {
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
