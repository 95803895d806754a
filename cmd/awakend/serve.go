package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/awakend/awakend/activation"
	"github.com/awakend/awakend/config"
	"github.com/awakend/awakend/daemon"
	"github.com/awakend/awakend/sdnotify"
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
	s, file, err := config.LoadSettings(*sf.file, os.Environ(), sf.overrides(fs))
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, s.Log.Format, s.Log.Level, detectLogEnv(os.Stderr))
	if err != nil {
		return err
	}
	if file == "" {
		file = "(none)"
	}
	log.Debug("settings", "file", file, "settings", fmt.Sprintf("%+v", s.Redacted()))
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
		Logger:         log,
		Notifier:       sdnotify.New(),
		Hangup:         hup,
		LookupEnv:      os.LookupEnv,
		CredentialsDir: os.Getenv("CREDENTIALS_DIRECTORY"),
		Version:        version,
		Listeners:      lns,
	})
	var se *daemon.StartupError
	if errors.As(err, &se) {
		// Like nginx -t: every diagnostic on its own line, then the verdict.
		fmt.Fprintln(stderr, se.Err)
		log.Error("config rejected at start-up; not starting", "dir", s.ConfigDir)
		return invalid(errReported)
	}
	return err
}

// usageError maps a flag parsing error (already printed by the FlagSet)
// to exit code 2, and -h to success.
func usageError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return &codeError{code: exitError, err: errReported}
}
