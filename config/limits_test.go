package config

import (
	"strconv"
	"strings"
	"testing"
)

// Inputs built to make the loader slow or deep: each meets a limit and
// is reported, in time linear in its size.
func TestLimits(t *testing.T) {
	t.Run("nested defaults", func(t *testing.T) {
		n := 100_000
		v := strings.Repeat("${A:-", n) + "x" + strings.Repeat("}", n)
		_, err := Load(mapDir(map[string]string{"a.yaml": "providers: [{id: p, adapter: mock, base_url: '" + v + "'}]\n"}), Options{})
		want := []string{`a.yaml:1:46: error: references nested more than 8 deep in base_url of provider "p" [interpolation]`}
		if got := diagLines(t, err); !slicesEqual(got, want) {
			t.Errorf("got %q", got)
		}
	})
	t.Run("too many problems", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("providers:\n  - id: p\n    adapter: mock\n")
		b.WriteString("    " + strings.Repeat("k", 1000) + ": 1\n")
		for i := range 2000 {
			b.WriteString("    unknown_" + strconv.Itoa(i) + ": 1\n")
		}
		b.WriteString("agents: [{id: a}]\n") // not checked any more
		_, err := Load(mapDir(map[string]string{"a.yaml": b.String(), "b.yaml": "agents: [{id: b}]\n"}), Options{})
		got := diagLines(t, err)
		if len(got) != maxFileDiagnostics+2 ||
			got[maxFileDiagnostics] != "a.yaml:504:5: error: more than 500 problems in this file: the rest of it is not checked [too_large]" ||
			!strings.HasPrefix(got[maxFileDiagnostics+1], "b.yaml:1:10: error: missing field \"model_id\"") {
			t.Errorf("got %d diagnostics, the last ones %q", len(got), got[max(0, len(got)-3):])
		}
		if !strings.Contains(got[0], `unknown field "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk..."`) {
			t.Errorf("long key not shortened: %s", got[0])
		}
	})
}

func slicesEqual(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }
