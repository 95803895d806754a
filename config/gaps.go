package config

import (
	"bytes"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/awakend/awakend/registry"
)

// gaps records what of a directory could not be decoded, so that a
// reference to a missing resource is reported unless the resource may be
// in a part that did not decode: a reference to "gpt" is not reported when
// a file that failed to parse mentions gpt after its error, but is when
// nothing that failed mentions it.
type gaps struct {
	// unread is set when a file could not be read at all: anything may
	// be in it.
	unread bool
	// kinds are the kinds of which a resource has no usable id; models
	// and pools count as one.
	kinds [len(kinds)]bool
	// words are the scalars of values that were not decoded as resources:
	// the values of unknown top-level keys, lists and items of the wrong
	// kind, documents cut short by a limit.
	words map[string]bool
	// text is the source of what followed syntax errors, unparsed.
	text [][]byte
}

// mayHold reports whether the resource dep names may be in a part of the
// directory that did not decode. Plugins never are: they do not come from
// the directory.
func (g *gaps) mayHold(dep *registry.Ref) bool {
	if dep == nil || dep.Namespace == registry.NSPlugins {
		return false
	}
	if g.unread || g.words[dep.ID] {
		return true
	}
	for k := range kinds {
		if kinds[k].list == dep.Namespace && g.kinds[k] {
			return true
		}
	}
	for _, t := range g.text {
		if containsWord(t, dep.ID) {
			return true
		}
	}
	return false
}

// add adds the gaps of one file.
func (g *gaps) add(o *gaps) {
	g.unread = g.unread || o.unread
	for w := range o.words {
		if g.words == nil {
			g.words = make(map[string]bool, len(o.words))
		}
		g.words[w] = true
	}
	g.text = append(g.text, o.text...)
}

// addNode adds the scalars of n (keys and values, aliases not followed) to
// the words.
func (g *gaps) addNode(n *yaml.Node) {
	if g.words == nil {
		g.words = make(map[string]bool)
	}
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode {
			g.words[n.Value] = true
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
}

// addText adds the source of the part of a file that did not parse.
func (g *gaps) addText(text []byte) {
	if len(text) > 0 {
		g.text = append(g.text, text)
	}
}

// containsWord reports whether word occurs in text as a whole YAML scalar
// or list item would: bounded by the start or end of the text, white space,
// quotes or flow punctuation.
func containsWord(text []byte, word string) bool {
	const bounds = " \t\r\n\"',[]{}"
	if word == "" {
		return false
	}
	w := []byte(word)
	for off := 0; ; {
		i := bytes.Index(text[off:], w)
		if i < 0 {
			return false
		}
		i += off
		end := i + len(w)
		if (i == 0 || strings.IndexByte(bounds, text[i-1]) >= 0) &&
			(end == len(text) || strings.IndexByte(bounds, text[end]) >= 0) {
			return true
		}
		off = i + 1
	}
}

// maxLine returns the last line of any node in n.
func maxLine(n *yaml.Node) int {
	line := n.Line
	for _, c := range n.Content {
		line = max(line, maxLine(c))
	}
	return line
}

// lineStart returns the offset at which line (1-based) of data starts, or
// len(data) when there are fewer lines.
func lineStart(data []byte, line int) int {
	off := 0
	for ; line > 1; line-- {
		i := bytes.IndexByte(data[off:], '\n')
		if i < 0 {
			return len(data)
		}
		off += i + 1
	}
	return off
}
