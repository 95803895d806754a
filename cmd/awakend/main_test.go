package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/awakend/awakend/config"
)

// The program's own flags and the commands without a daemon.
func TestRunCommands(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		code       int
		stdout     string   // exact, when set
		mentions   []string // in stdout
		stderrHas  string
		stderrNone bool
	}{
		{args: []string{"--help"}, mentions: []string{"serve", "check", "reload", "diff", "schema", "version", "--version"}, stderrNone: true},
		{args: []string{"-h"}, mentions: []string{"awakend schema", "awakend diff"}, stderrNone: true},
		{args: []string{"help"}, mentions: []string{"awakend check"}, stderrNone: true},
		{args: []string{"--version"}, stdout: "awakend dev\n", stderrNone: true},
		{args: []string{"version"}, stdout: "awakend dev\n", stderrNone: true},
		{args: []string{"schema"}, stdout: string(config.Schema()), stderrNone: true},
		{args: []string{"schema", "extra"}, code: exitError, stderrHas: "usage: awakend schema"},
		{args: []string{"frobnicate"}, code: exitError, stderrHas: `unknown command "frobnicate"`},
		// The benchmark's reference is in tagged builds only (benchproxy.go).
		{args: []string{"bench-proxy", "http://127.0.0.1:1/v1"}, code: exitError, stderrHas: `unknown command "bench-proxy"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tc.args, &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tc.code, stderr.String())
			}
			if tc.stdout != "" && stdout.String() != tc.stdout {
				t.Errorf("stdout %q, want %q", truncate(stdout.String()), truncate(tc.stdout))
			}
			for _, m := range tc.mentions {
				if !strings.Contains(stdout.String(), m) {
					t.Errorf("stdout lacks %q:\n%s", m, stdout.String())
				}
			}
			if tc.stderrNone && stderr.Len() > 0 {
				t.Errorf("stderr %q", stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.stderrHas) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.stderrHas)
			}
		})
	}
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
