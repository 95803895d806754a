// Command awakend serves a registry of LLM providers, models, model pools
// and agents declared in a directory of YAML files, and reloads it safely.
//
//	awakend [serve] [--config-dir DIR] [--settings FILE] [--listen ADDR] [--log-level L] [--log-format F]
//	awakend check [DIR] [--format text|json]
//	awakend reload [--timeout D] [--url URL]
//	awakend diff [DIR] [--url URL]
//	awakend publish [DIR] [--wait] [--rollback ID] [--force] [--assume-secrets]
//	awakend fleet status|packs
//	awakend schema
//	awakend version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time (-X main.version=…).
var version = "dev"

// hidden are the commands a build tag adds (see benchproxy.go), left out
// of the usage; the builds that ship have none.
var hidden = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) error{}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes, as `awakend check` documents them and nginx -t uses them.
const (
	exitOK      = 0
	exitInvalid = 1 // the config (or the reload it asked for) was rejected
	exitError   = 2 // could not run: bad flags or settings, daemon unreachable
)

const usage = `usage:
  awakend [serve] [flags]        serve the registry and reload it on change
  awakend check [DIR] [flags]    validate a config directory (exit 0 valid, 1 invalid, 2 could not run)
  awakend reload [flags]         ask the running daemon to reload; exit 1 with the diagnostics if rejected
  awakend diff [DIR] [flags]     what reloading DIR would change in the running daemon
  awakend publish [DIR] [flags]  validate DIR and publish it to the fleet's etcd; --wait for every host
  awakend fleet status           one line per live host of the fleet; exit 1 unless all serve the current pack
  awakend fleet packs            the packs stored for rollback (publish --rollback ID)
  awakend schema                 print the JSON Schema of a config file, for editors
  awakend version                print the version (also --version)

Run 'awakend COMMAND -h' for a command's flags.
`

// run dispatches to a subcommand and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	} else if len(args) > 0 {
		switch args[0] { // the program's own flags, before any command
		case "-h", "-help", "--help":
			cmd = "help"
		case "-version", "--version":
			cmd = "version"
		}
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, args, stderr)
	case "check":
		err = check(args, stdout, stderr)
	case "reload":
		err = reloadCmd(ctx, args, stdout, stderr)
	case "diff":
		err = diff(ctx, args, stdout, stderr)
	case "publish":
		err = publish(ctx, args, stdout, stderr)
	case "fleet":
		err = fleetCmd(ctx, args, stdout, stderr)
	case "schema":
		err = schema(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "awakend", version)
	case "help":
		fmt.Fprint(stdout, usage)
	default:
		h, ok := hidden[cmd]
		if !ok {
			fmt.Fprintf(stderr, "awakend: unknown command %q\n\n%s", cmd, usage)
			return exitError
		}
		err = h(ctx, args, stdout, stderr)
	}
	return exitCode(err, stderr)
}

// oneShot tunes the garbage collector for a command that loads a whole
// config directory once and exits (check, diff, publish): with Go's
// default a check of a large directory spends a good part of its time
// collecting what it is about to exit with, so it trades memory (about
// 80 MiB for 10,000 agents) for time. GOGC, when set, has the last word.
func oneShot() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}

// codeError carries the exit code an error should end the command with.
type codeError struct {
	code int
	err  error
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

// invalid marks an error as "the config was rejected" (exit 1).
func invalid(err error) error { return &codeError{code: exitInvalid, err: err} }

// errReported marks an error whose details were already printed.
var errReported = errors.New("reported")

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	code := exitError
	var ce *codeError
	if errors.As(err, &ce) {
		code = ce.code
	}
	if !errors.Is(err, errReported) {
		fmt.Fprintln(stderr, "awakend:", err)
	}
	return code
}

// flagSet returns a FlagSet for cmd that prints its usage to stderr.
func flagSet(cmd string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("awakend "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// settingsFlags are the flags every command that reads settings takes.
type settingsFlags struct {
	file      *string
	configDir *string
	listen    *string
	logLevel  *string
	logFormat *string
}

func addSettingsFlags(fs *flag.FlagSet, serve bool) *settingsFlags {
	f := &settingsFlags{file: fs.String("settings", "", "settings `file` (default /etc/awakend/awakend.yaml if present)")}
	if serve {
		f.configDir = fs.String("config-dir", "", "config `directory` (default /etc/awakend/conf.d)")
		f.listen = fs.String("listen", "", "listen `address` (default 127.0.0.1:8700)")
		f.logLevel = fs.String("log-level", "", "log `level`: debug, info, warn or error (default info)")
		f.logFormat = fs.String("log-format", "", "log `format`: auto, text or json (default auto)")
	}
	return f
}

// overrides returns the flags the user set, keyed by settings path.
func (f *settingsFlags) overrides(fs *flag.FlagSet) map[string]any {
	keys := map[string]string{"config-dir": "config_dir", "listen": "listen", "log-level": "log.level", "log-format": "log.format"}
	out := map[string]any{}
	fs.Visit(func(fl *flag.Flag) {
		if k, ok := keys[fl.Name]; ok {
			out[k] = fl.Value.String()
		}
	})
	return out
}

// parseInterspersed parses flags that may come before or after the
// positional arguments (`awakend check DIR --format json`).
func parseInterspersed(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return fs.Parse(pos) // leaves pos as the positional arguments
}
