// Package harness runs the real awakend binary for the end-to-end suites
// (e2e and e2e/inference): it builds cmd/awakend once per test binary,
// starts daemons on config directories, learns their readiness and every
// reload's end from the sd_notify datagrams they send to a NOTIFY_SOCKET
// it listens on (never from sleeps), collects their logs, reads their
// status and metrics, and stops them with SIGTERM, failing the test that
// started one if it exits uncleanly or reports a data race.
//
// The daemon is built with -race when the tests run under the race
// detector, without it otherwise (so that a benchmark measures a normal
// build). AWAKEND_TEST_BINARY=/path/to/awakend tests a binary built
// elsewhere instead; build it with -race for a run under the race
// detector, whose reports the harness looks for.
package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// BinaryEnv names a prebuilt awakend binary to test instead of building
// cmd/awakend.
const BinaryEnv = "AWAKEND_TEST_BINARY"

// Timeout bounds every wait for a daemon: generous, since the binary may
// run under the race detector on a small shared machine. A wait that runs
// out fails the test; none passes by running out.
const Timeout = 60 * time.Second

// Binary is the awakend binary under test, set by Build.
var Binary string

// Build puts the awakend binary under test in a new temporary directory
// and sets Binary to it: cmd/awakend built (with -race when the tests run
// under the race detector), or a copy of the binary BinaryEnv names. The
// directory and the binary are open to every user, so that a daemon can
// run unprivileged (Options.Unprivileged). Call it from TestMain, before
// m.Run, and call remove after it.
func Build() (remove func(), err error) {
	dir, err := os.MkdirTemp("", "awakend-test-")
	if err != nil {
		return nil, err
	}
	remove = func() { os.RemoveAll(dir) }
	defer func() {
		if err != nil {
			remove()
		}
	}()
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "awakend")
	if prebuilt := os.Getenv(BinaryEnv); prebuilt != "" {
		data, err := os.ReadFile(prebuilt)
		if err == nil {
			err = os.WriteFile(bin, data, 0o755)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", BinaryEnv, err)
		}
	} else if err := build(bin); err != nil {
		return nil, err
	}
	Binary = bin
	return remove, nil
}

// build builds cmd/awakend to bin (with -race under the race detector),
// with the build tags given.
func build(bin string, tags ...string) error {
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.Command("go", append(args, "github.com/awakend/awakend/cmd/awakend")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building awakend: %w", err)
	}
	return nil
}

// BuildTagged builds cmd/awakend with the build tags given, whatever
// BinaryEnv says, into tb's temporary directory, and returns the binary.
func BuildTagged(tb testing.TB, tags ...string) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "awakend")
	if err := build(bin, tags...); err != nil {
		tb.Fatal(err)
	}
	return bin
}

// Environ is the test's environment without what would change how awakend
// runs: its settings (AWAKEND_*, strict: an unknown one is an error), and
// the systemd variables of a test run that is itself a service.
func Environ() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		for _, p := range []string{"AWAKEND_", "NOTIFY_SOCKET=", "JOURNAL_STREAM=", "CREDENTIALS_DIRECTORY=", "WATCHDOG_", "LISTEN_"} {
			if strings.HasPrefix(kv, p) {
				return true
			}
		}
		return false
	})
}

// Result is the outcome of one run of the awakend command.
type Result struct {
	Stdout, Stderr string
	Code           int // the exit code
}

// Run runs Binary with args, and env added to Environ, to completion
// within Timeout.
func Run(tb testing.TB, env []string, args ...string) Result {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, Binary, args...)
	cmd.Env = append(Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		tb.Fatalf("awakend %q did not finish within %v; stderr:\n%s", args, Timeout, stderr.String())
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		tb.Fatalf("awakend %q: %v", args, err)
	}
	return Result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
}
