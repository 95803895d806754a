package gateway

import "github.com/awakend/awakend/internal/jsonscan"

// maxDepth is encoding/json's nesting limit, which validJSON keeps so
// that it accepts exactly what json.Valid accepts.
const maxDepth = 10000

// plain marks the bytes a JSON string holds as they are: not the quote,
// the backslash or a control character.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// validJSON reports whether b is one JSON value, as json.Valid does. It
// is one pass with no call per byte: json.Valid's scanner makes one, and
// a chat request's bulk is the text of its messages, which this walks
// through in a tight loop (about four times faster).
func validJSON(b []byte) bool {
	var fixed [64]byte
	open := fixed[:0] // the containers open: '{' or '['
	i := jsonscan.SkipSpace(b, 0)
	for {
		// A value starts at i.
		if i >= len(b) {
			return false
		}
		ok := true
		switch c := b[i]; c {
		case '{', '[':
			if len(open) == maxDepth {
				return false
			}
			open = append(open, c)
			i = jsonscan.SkipSpace(b, i+1)
			if i < len(b) && b[i] == c+2 { // '}' or ']'
				open = open[:len(open)-1]
				i++
				break
			}
			if c == '{' {
				if i, ok = member(b, i); !ok {
					return false
				}
			}
			continue
		case '"':
			i, ok = str(b, i)
		case 't':
			i, ok = literal(b, i, "true")
		case 'f':
			i, ok = literal(b, i, "false")
		case 'n':
			i, ok = literal(b, i, "null")
		default:
			i, ok = number(b, i)
		}
		if !ok {
			return false
		}
		// A value ended at i: close containers until another value is
		// due, or the end.
		for {
			i = jsonscan.SkipSpace(b, i)
			if len(open) == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			top := open[len(open)-1]
			if b[i] == top+2 {
				open = open[:len(open)-1]
				i++
				continue
			}
			if b[i] != ',' {
				return false
			}
			i = jsonscan.SkipSpace(b, i+1)
			if top == '{' {
				if i, ok = member(b, i); !ok {
					return false
				}
			}
			break
		}
	}
}

// member checks an object member's key and colon at b[i:], and returns
// where its value starts.
func member(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return i, false
	}
	i, ok := str(b, i)
	if !ok {
		return i, false
	}
	i = jsonscan.SkipSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return i, false
	}
	return jsonscan.SkipSpace(b, i+1), true
}

// str checks the string that starts at b[i] == '"' and returns the index
// just past it.
func str(b []byte, i int) (int, bool) {
	i++
	for {
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			return i, false
		}
		switch b[i] {
		case '"':
			return i + 1, true
		case '\\':
			if i+1 >= len(b) {
				return i, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return i, false
				}
				for _, h := range b[i+2 : i+6] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return i, false
					}
				}
				i += 6
			default:
				return i, false
			}
		default: // a control character
			return i, false
		}
	}
}

// literal checks that b[i:] starts with word.
func literal(b []byte, i int, word string) (int, bool) {
	if string(b[i:min(len(b), i+len(word))]) != word {
		return i, false
	}
	return i + len(word), true
}

// number checks the number at b[i:]: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func number(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		i = digits(b, i)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return i, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return i, false
		}
		i = j
	}
	return i, true
}

// digits returns the index past the decimal digits at b[i:].
func digits(b []byte, i int) int {
	for i < len(b) && '0' <= b[i] && b[i] <= '9' {
		i++
	}
	return i
}
