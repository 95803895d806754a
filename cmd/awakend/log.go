package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/lmittmann/tint"
	"golang.org/x/sys/unix"

	"github.com/awakend/awakend/journal"
)

// logEnv is what the logger choice depends on besides the settings.
type logEnv struct {
	journald bool // stderr is journald's stream (JOURNAL_STREAM matches)
	tty      bool // stderr is a terminal
	noColor  bool // NO_COLOR is set (https://no-color.org)
}

func detectLogEnv(f *os.File) logEnv {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return logEnv{
		journald: journal.Attached(),
		tty:      err == nil,
		noColor:  os.Getenv("NO_COLOR") != "",
	}
}

// durationSeconds writes durations as seconds, a float (1.5), as
// Prometheus and the status API do, rather than slog's JSON nanoseconds.
func durationSeconds(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.Float64(a.Key, a.Value.Duration().Seconds())
	}
	return a
}

// newLogger picks the handler: journald's <N>-prefixed lines when stderr is
// the journal, tint on a terminal, JSON on request, plain text otherwise.
// It logs at the level the LevelVar it returns holds, which a reload sets.
func newLogger(w io.Writer, format, level string, env logEnv) (*slog.Logger, *slog.LevelVar, error) {
	lvl := new(slog.LevelVar)
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: lvl, ReplaceAttr: durationSeconds})), lvl, nil
	case "text":
		if env.journald {
			return slog.New(journal.NewHandler(w, opts)), lvl, nil
		}
		return slog.New(slog.NewTextHandler(w, opts)), lvl, nil
	case "auto", "":
		switch {
		case env.journald:
			return slog.New(journal.NewHandler(w, opts)), lvl, nil
		case env.tty:
			return slog.New(tint.NewHandler(w, &tint.Options{Level: lvl, TimeFormat: "15:04:05.000", NoColor: env.noColor})), lvl, nil
		}
		return slog.New(slog.NewTextHandler(w, opts)), lvl, nil
	}
	return nil, nil, fmt.Errorf("log format %q: want auto, text or json", format)
}
