package main

import (
	"bytes"
	"errors"
	"testing"
)

// TestReportDiagnostics: a start-up rejection's diagnostics, one per line,
// at error priority under journald, as records in JSON, plain otherwise.
func TestReportDiagnostics(t *testing.T) {
	diags := errors.New("a.yaml:1:2: error: one [syntax]\nb.yaml:3:4: error: two [unknown_field]")
	for _, tc := range []struct {
		name, format string
		env          logEnv
		want         string
	}{
		{"journald", "auto", logEnv{journald: true}, "<3>a.yaml:1:2: error: one [syntax]\n<3>b.yaml:3:4: error: two [unknown_field]\n"},
		{"journald, text", "text", logEnv{journald: true}, "<3>a.yaml:1:2: error: one [syntax]\n<3>b.yaml:3:4: error: two [unknown_field]\n"},
		{"terminal", "auto", logEnv{tty: true}, "a.yaml:1:2: error: one [syntax]\nb.yaml:3:4: error: two [unknown_field]\n"},
		{"json", "JSON", logEnv{journald: true},
			`{"level":"ERROR","msg":"config diagnostic","diagnostic":"a.yaml:1:2: error: one [syntax]"}` + "\n" +
				`{"level":"ERROR","msg":"config diagnostic","diagnostic":"b.yaml:3:4: error: two [unknown_field]"}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			log, _, err := newLogger(&out, tc.format, "info", tc.env)
			if err != nil {
				t.Fatal(err)
			}
			reportDiagnostics(&out, log, tc.format, tc.env, diags)
			got := out.String()
			if tc.format == "JSON" {
				got = stripTime(got)
			}
			if got != tc.want {
				t.Errorf("wrote\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

// stripTime removes the "time" member that JSON records start with.
func stripTime(s string) string {
	var out bytes.Buffer
	for _, line := range bytes.SplitAfter([]byte(s), []byte("\n")) {
		if i := bytes.Index(line, []byte(`"level"`)); i > 0 {
			line = append([]byte("{"), line[i:]...)
		}
		out.Write(line)
	}
	return out.String()
}
