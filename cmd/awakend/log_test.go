package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestNewLogger(t *testing.T) {
	tests := []struct {
		name, format string
		env          logEnv
		want         func(string) bool
	}{
		{"journald", "auto", logEnv{journald: true, tty: true}, func(s string) bool { return strings.HasPrefix(s, "<6>config applied") }},
		{"terminal", "auto", logEnv{tty: true}, func(s string) bool { return strings.Contains(s, "\x1b[") }},
		{"terminal NO_COLOR", "auto", logEnv{tty: true, noColor: true}, func(s string) bool {
			return !strings.Contains(s, "\x1b[") && strings.Contains(s, "config applied")
		}},
		{"pipe", "auto", logEnv{}, func(s string) bool { return strings.HasPrefix(s, "time=") }},
		{"json", "json", logEnv{journald: true}, func(s string) bool { return strings.HasPrefix(s, `{"time":`) }},
		{"text under journald", "text", logEnv{journald: true}, func(s string) bool { return strings.HasPrefix(s, "<6>") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log, _, err := newLogger(&buf, tt.format, "info", tt.env)
			if err != nil {
				t.Fatal(err)
			}
			log.Info("config applied", "version", 2)
			log.Debug("hidden at info")
			if out := buf.String(); !tt.want(out) || strings.Contains(out, "hidden") {
				t.Fatalf("output %q", out)
			}
		})
	}
	// JSON durations are seconds; text keeps Go's form.
	for format, want := range map[string]string{"json": `"took":1.5,"group":{"ttft":0.002}`, "text": "took=1.5s group.ttft=2ms"} {
		var buf bytes.Buffer
		log, _, err := newLogger(&buf, format, "info", logEnv{})
		if err != nil {
			t.Fatal(err)
		}
		log.Info("request", "took", 1500*time.Millisecond, slog.Group("group", "ttft", 2*time.Millisecond))
		if !strings.Contains(buf.String(), want) {
			t.Errorf("%s: %q lacks %q", format, buf.String(), want)
		}
	}
	for _, bad := range [][2]string{{"yaml", "info"}, {"auto", "loud"}} {
		if _, _, err := newLogger(&bytes.Buffer{}, bad[0], bad[1], logEnv{}); err == nil {
			t.Errorf("newLogger(%q, %q) accepted", bad[0], bad[1])
		}
	}
}
