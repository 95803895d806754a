// Package jsonscan finds the bounds of JSON tokens in place: where a
// string or a value that starts at an index ends. The gateway rewrites
// request bodies and the provider translates stream events with it,
// touching only the members they need and allocating nothing.
//
// It validates nothing: on valid JSON it finds exactly the tokens'
// bounds; on anything else it still never reads out of bounds and always
// ends, and reports a token it could not close.
package jsonscan

import "bytes"

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
