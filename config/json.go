package config

import (
	"bytes"
	"strconv"
)

// jsonCompat rewrites the two JSON string escapes that yaml.v3 rejects
// although YAML 1.2 has them: "\/" becomes "/", and a UTF-16 surrogate pair
// "\ud83d\ude00" becomes "\U0001F600" (a lone surrogate becomes U+FFFD, as
// encoding/json does). Columns after a rewritten escape shift left on its
// line; everything else is left alone.
func jsonCompat(data []byte) []byte {
	if !bytes.Contains(data, []byte(`\/`)) && !bytes.Contains(data, []byte(`\u`)) {
		return data
	}
	var out []byte
	inString := false
	last := 0 // data[last:i] is not yet copied to out
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '"':
			inString = !inString
		case c == '\\' && inString && i+1 < len(data):
			repl, n := jsonEscape(data[i:])
			if repl != nil {
				out = append(append(out, data[last:i]...), repl...)
				last = i + n
			}
			i += n - 1
		}
	}
	if out == nil {
		return data
	}
	return append(out, data[last:]...)
}

// jsonEscape looks at the escape at the start of s. It returns its
// replacement (nil to keep it) and its length.
func jsonEscape(s []byte) ([]byte, int) {
	switch {
	case s[1] == '/':
		return []byte{'/'}, 2
	case s[1] != 'u':
		return nil, 2
	}
	hi, ok := hex4(s[2:])
	if !ok || hi < 0xD800 || hi > 0xDFFF {
		return nil, 2
	}
	if hi <= 0xDBFF && len(s) >= 12 && s[6] == '\\' && s[7] == 'u' {
		if lo, ok := hex4(s[8:]); ok && lo >= 0xDC00 && lo <= 0xDFFF {
			r := 0x10000 + (hi-0xD800)<<10 + (lo - 0xDC00)
			return []byte(`\U` + pad8(strconv.FormatUint(uint64(r), 16))), 12
		}
	}
	return []byte(`\uFFFD`), 6
}

func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(s[:4]), 16, 32)
	return rune(v), err == nil
}

func pad8(s string) string {
	for len(s) < 8 {
		s = "0" + s
	}
	return s
}
