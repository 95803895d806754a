package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/awakend/awakend/activation"
	"github.com/awakend/awakend/daemon"
	"github.com/awakend/awakend/journal"
	"github.com/awakend/awakend/sdnotify"
	"github.com/awakend/awakend/settings"
)

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flagSet("serve", stderr)
	sf := addSettingsFlags(fs, true)
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve takes no arguments, got %q", fs.Args())
	}
	// Each reload reads the settings again: the file as it is then, the
	// environment and the flags as they were at start-up.
	environ, flags := os.Environ(), sf.overrides(fs)
	read := func() (settings.Settings, string, error) { return settings.Load(*sf.file, environ, flags) }
	s, file, err := read()
	if err != nil {
		return err
	}
	env := detectLogEnv(os.Stderr)
	log, level, err := newLogger(stderr, s.Log.Format, s.Log.Level, env)
	if err != nil {
		return err
	}
	log.Debug("settings", "file", cmp.Or(file, "(none)"), "settings", fmt.Sprintf("%+v", s.Redacted()))
	passed, err := activation.Listeners()
	if err != nil {
		return err
	}
	var lns []net.Listener
	for _, ln := range passed {
		lns = append(lns, ln)
		log.Info("socket passed by systemd", "name", ln.Name, "addr", ln.Addr().String())
		if ln.Addr().String() != s.Listen {
			// awakend reload and diff find the daemon through the setting.
			log.Warn("the socket systemd passed is not the listen setting; awakend reload and diff connect to the setting",
				"socket", ln.Addr().String(), "listen", s.Listen)
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	err = daemon.Run(ctx, daemon.Options{
		Settings:       s,
		SettingsFile:   file,
		ReadSettings:   read,
		Logger:         log,
		LogLevel:       level,
		Notifier:       sdnotify.New(),
		Hangup:         hup,
		LookupEnv:      os.LookupEnv,
		CredentialsDir: os.Getenv("CREDENTIALS_DIRECTORY"),
		RuntimeDir:     runtimeDir(),
		Version:        version,
		Listeners:      lns,
		Report:         func(err error) { reportDiagnostics(stderr, log, s.Log.Format, env, err) },
	})
	var se *daemon.StartupError
	if errors.As(err, &se) {
		log.Error("config rejected at start-up; not starting", "dir", s.ConfigDir)
		return invalid(errReported)
	}
	return err
}

// runtimeDir is systemd's runtime directory ($RUNTIME_DIRECTORY, its first
// path if it holds several); "" outside a unit that has one.
func runtimeDir() string {
	dir, _, _ := strings.Cut(os.Getenv("RUNTIME_DIRECTORY"), ":")
	return dir
}

// reportDiagnostics prints a rejected configuration's diagnostics like
// nginx -t, each on its own line: under journald each line is an entry at
// error priority, so that `journalctl -p err` shows why; in JSON, one
// record per line.
func reportDiagnostics(w io.Writer, log *slog.Logger, format string, env logEnv, err error) {
	switch {
	case strings.EqualFold(format, "json"):
		for line := range strings.Lines(err.Error()) {
			if line = strings.TrimRight(line, "\n"); line != "" {
				log.Error("config diagnostic", "diagnostic", line)
			}
		}
	case env.journald:
		journal.WriteLines(w, slog.LevelError, err.Error())
	default:
		fmt.Fprintln(w, err)
	}
}

// usageError maps a flag parsing error (already printed by the FlagSet)
// to exit code 2, and -h to success.
func usageError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &codeError{code: exitError, err: errReported}
}
