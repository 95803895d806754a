package provider

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"
	"strings"

	"github.com/awakend/awakend/internal/jsonscan"
)

// secrets are a provider's credentials: its API key and the values of its
// configured headers. No error, and no header passed on, may hold one of
// them, whole or a telling part of it.
type secrets []string

// redacted replaces a secret in a text.
const redacted = "[redacted]"

// minPartial is the shortest run of a secret's bytes that is redacted when
// it is not the whole secret: a secret echoed cut short still goes, and no
// text holds such a run by chance. A secret shorter than that goes only
// whole.
const minPartial = 16

// redact replaces with [redacted] every occurrence in s of a secret and of
// any run of at least minPartial consecutive bytes of one. It returns s
// itself when there is nothing to redact.
func (sec secrets) redact(s string) string {
	for _, x := range sec {
		if len(x) < minPartial {
			if strings.Contains(s, x) {
				s = strings.ReplaceAll(s, x, redacted)
			}
			continue
		}
		s = redactRuns(s, x)
	}
	return s
}

// redactRuns redacts from s the runs of at least minPartial bytes of x.
//
// Any such run holds one of x's blocks of minPartial/2 bytes that start at
// a multiple of minPartial/2, so a search for those blocks finds every run
// (and nothing else costs more than those few searches); each block found
// is grown both ways as far as s goes on matching x.
func redactRuns(s, x string) string {
	const block = minPartial / 2
	var spans [][2]int
	for off := 0; off+block <= len(x); off += block {
		b := x[off : off+block]
		for i := 0; ; {
			j := strings.Index(s[i:], b)
			if j < 0 {
				break
			}
			lo, xl := i+j, off
			for lo > 0 && xl > 0 && s[lo-1] == x[xl-1] {
				lo, xl = lo-1, xl-1
			}
			hi, xh := i+j+block, off+block
			for hi < len(s) && xh < len(x) && s[hi] == x[xh] {
				hi, xh = hi+1, xh+1
			}
			if hi-lo >= minPartial {
				spans = append(spans, [2]int{lo, hi})
			}
			i += j + 1
		}
	}
	if len(spans) == 0 {
		return s
	}
	slices.SortFunc(spans, func(a, b [2]int) int { return cmp.Compare(a[0], b[0]) })
	var out strings.Builder
	end := 0
	for i := 0; i < len(spans); {
		lo, hi := spans[i][0], spans[i][1]
		for i++; i < len(spans) && spans[i][0] <= hi; i++ {
			hi = max(hi, spans[i][1])
		}
		out.WriteString(s[end:lo])
		out.WriteString(redacted)
		end = hi
	}
	out.WriteString(s[end:])
	return out.String()
}

// Redact returns b with the provider's secrets removed; b itself when it
// holds none. The JSON strings in b that hold escapes are read decoded
// too, so that a secret an upstream echoes escaped (a "\/" for a slash,
// every byte as "\u00XX") goes as well: such a string is written again,
// redacted.
func (e *Executor) Redact(b []byte) []byte {
	if len(e.secrets) == 0 {
		return b
	}
	if bytes.IndexByte(b, '\\') >= 0 {
		// First: the plain pass could cut an escape in two.
		b = e.secrets.redactEscaped(b)
	}
	s := string(b)
	if r := e.secrets.redact(s); r != s {
		return []byte(r)
	}
	return b
}

// redactEscaped redacts the JSON strings of b that hold escapes, decoded,
// and returns b itself when none held a secret. Quotes are taken to
// delimit strings from the start of b: in an SSE event ("data: {…}") and
// in a JSON text they do.
func (sec secrets) redactEscaped(b []byte) []byte {
	var out []byte // b up to done, with the strings redacted so far
	done := 0
	for i := 0; i < len(b); {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			break
		}
		start := i + q
		end, escaped, ok := jsonscan.String(b, start)
		if !ok {
			break
		}
		i = end
		var v string
		if !escaped || json.Unmarshal(b[start:end], &v) != nil {
			continue
		}
		r := sec.redact(v)
		if r == v {
			continue
		}
		out = append(out, b[done:start]...)
		out = jsonscan.AppendString(out, r)
		done = end
	}
	if out == nil {
		return b
	}
	return append(out, b[done:]...)
}
