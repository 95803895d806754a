package interp_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/awakend/awakend/internal/interp"
)

func TestExpand(t *testing.T) {
	r := interp.Resolver{
		LookupEnv: func(name string) (string, bool) {
			v, ok := map[string]string{"HOST": "db", "EMPTY": ""}[name]
			return v, ok
		},
		File: func(path string) (string, error) {
			if path == "/missing" {
				return "", errors.New("no such file")
			}
			return "<" + path + ">", nil
		},
		Credential: func(name string) (string, error) { return "cred:" + name, nil },
	}
	for _, tc := range []struct{ in, want, problem string }{
		{in: "plain", want: "plain"},
		{in: "http://${HOST}:5432", want: "http://db:5432"},
		{in: "${EMPTY:-fallback}", want: "fallback"},
		{in: "${NOPE:-${HOST}}", want: "db"},
		{in: "$$HOST costs $5", want: "$HOST costs $5"},
		{in: "${file:/etc/x}", want: "</etc/x>"},
		{in: "${credential:key}", want: "cred:key"},
		{in: "${NOPE}", problem: `undefined environment variable "NOPE"`},
		{in: "${file:/missing}", problem: `cannot read "${file:/missing}": no such file`},
		{in: "${file:}", problem: `cannot read "${file:}": empty path`},
		{in: "${credential:../x}", problem: `cannot read "${credential:../x}": a credential name is a plain file name`},
		{in: "${vault:x}", problem: `unknown interpolation scheme "vault"` + interp.Forms},
		{in: "${}", problem: `invalid reference "${}"` + interp.Forms},
		{in: "${HOST", problem: `unclosed "${"`},
		{in: strings.Repeat("${A:-", 9) + "x" + strings.Repeat("}", 9), problem: "references nested more than 8 deep"},
	} {
		got, problems := interp.Expand(tc.in, r)
		var msgs []string
		for _, p := range problems {
			msgs = append(msgs, p.What+p.Tail)
		}
		if tc.problem != "" {
			if strings.Join(msgs, "; ") != tc.problem {
				t.Errorf("Expand(%q): problems %q, want %q", tc.in, msgs, tc.problem)
			}
			continue
		}
		if got != tc.want || len(msgs) > 0 {
			t.Errorf("Expand(%q) = %q, %q; want %q", tc.in, got, msgs, tc.want)
		}
	}
}

func TestExpandWithoutResolvers(t *testing.T) {
	_, problems := interp.Expand("${file:/x}", interp.Resolver{})
	if len(problems) != 1 || problems[0].Tail != ": not available here" {
		t.Errorf("problems = %+v, want the file reference refused", problems)
	}
	if got, problems := interp.Expand("${HOME:-none}", interp.Resolver{}); got != "none" || problems != nil {
		t.Errorf("a default without LookupEnv = %q, %v; want the default", got, problems)
	}
}

func TestTrimNewline(t *testing.T) {
	for in, want := range map[string]string{"k\n": "k", "k\r\n": "k", "k\n\n": "k\n", "k": "k"} {
		if got := interp.TrimNewline(in); got != want {
			t.Errorf("TrimNewline(%q) = %q, want %q", in, got, want)
		}
	}
}
