package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSystemd runs the shipped unit, systemd/awakend.service, unchanged under
// this machine's own systemd (252 on Debian 12), booted as PID 1 of a
// throwaway container by ../shared/tools/systemd-sandbox. The scenario is
// testdata/systemd/run.sh: install as `make install` does, start
// (Type=notify), a good `systemctl reload`, a rejected one, a fixed one, a
// SIGHUP, and stop. The script checks each step itself and prints "OK step"
// or "FAIL step: why", then the unit's journal; this test asserts on those
// markers and on the journal.
//
// It needs root; it skips, saying why, only when it cannot run at all.
func TestSystemd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("systemd test needs root (it boots systemd in a container)")
	}
	if _, err := os.Stat("/lib/systemd/systemd"); err != nil {
		t.Skipf("systemd test needs systemd: %v", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	sandbox := os.Getenv("AWAKEND_SYSTEMD_SANDBOX")
	if sandbox != "" {
		if _, err := os.Stat(sandbox); err != nil {
			t.Fatalf("AWAKEND_SYSTEMD_SANDBOX: %v", err)
		}
	} else {
		sandbox = filepath.Join(root, "..", "shared", "tools", "systemd-sandbox")
		if _, err := os.Stat(sandbox); err != nil {
			t.Skipf("systemd test needs the sandbox tool (set AWAKEND_SYSTEMD_SANDBOX): %v", err)
		}
	}

	// The folder the sandbox mounts at /srv/host: a static production
	// build (not the package's race build: this is what gets installed),
	// the unit byte for byte, and the script.
	dir := t.TempDir()
	build := exec.CommandContext(t.Context(), "go", "build", "-trimpath", "-o", filepath.Join(dir, "awakend"), "./cmd/awakend")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building awakend: %v\n%s", err, out)
	}
	for src, dst := range map[string]string{
		filepath.Join(root, "systemd", "awakend.service"): "awakend.service",
		filepath.Join("testdata", "systemd", "run.sh"):    "run.sh",
	} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The container shares the host's network: the daemon listens on a
	// port that is free here.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()

	// -t bounds the script; the context is a backstop for the sandbox
	// itself, stopped with SIGTERM so that it powers its container off.
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, sandbox, "-t", "120", "--", "bash", "run.sh", port)
	cmd.Dir = dir
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	started := time.Now()
	err = cmd.Run()
	t.Logf("systemd sandbox ran for %v", time.Since(started).Round(time.Millisecond))
	out := stdout.String()
	defer func() {
		if t.Failed() {
			t.Logf("script output (with the unit's journal at the end):\n%s", out)
			if stderr.Len() > 0 {
				t.Logf("stderr:\n%s", stderr.String())
			}
		}
	}()
	if err != nil {
		var ee *exec.ExitError
		switch {
		case ctx.Err() != nil:
			t.Fatalf("systemd-sandbox did not finish within 3m: %v", err)
		case errors.As(err, &ee) && ee.ExitCode() == 124:
			t.Fatal("the scenario ran past the sandbox's 120s limit")
		case errors.As(err, &ee) && ee.ExitCode() == 125:
			t.Fatal("systemd-sandbox could not start its container (see stderr)")
		}
		why := "no FAIL line"
		for line := range strings.Lines(out) {
			if strings.HasPrefix(line, "FAIL ") {
				why = strings.TrimSpace(line)
			}
		}
		t.Fatalf("scenario failed (%v): %s", err, why)
	}

	lines := map[string]bool{}
	for line := range strings.Lines(out) {
		lines[strings.TrimRight(line, "\n")] = true
	}
	for _, step := range []string{
		"OK install",         // binary and unit installed, settings and config written
		"OK unit-verify",     // systemd 252 loads the unit, systemd-analyze verify has no complaint
		"OK start",           // systemctl start returns after READY=1, the API answers at once, StatusText
		"OK hardening",       // DynamicUser uid, NoNewPrivs, seccomp, no capabilities
		"OK journal-format",  // <N>-prefixed plain lines, filed at the right priority
		"OK reload-applied",  // good edit: systemctl reload exits 0, new agent, version 2
		"OK reload-rejected", // bad edit: systemctl reload fails, diagnostic in the journal, version 2 serves
		"OK reload-fixed",    // fixed edit: systemctl reload exits 0, version 3
		"OK sighup",          // SIGHUP: RELOADING=1/READY=1 from the daemon, unit active, version 4
		"OK stop",            // systemctl stop: inactive, Result=success, exit status 0, shutdown logged
		"ALL OK",
	} {
		if !lines[step] {
			t.Errorf("missing %q in the script output", step)
		}
	}

	// The journal as the script dumped it (short-monotonic: "[ts] host
	// awakend[pid]: message"). Under journald the daemon writes plain
	// lines: the message itself, no time= or level= of its own.
	_, journal, ok := strings.Cut(out, "\n--- journal\n")
	if !ok {
		t.Fatal("no journal in the script output")
	}
	journal, _, _ = strings.Cut(journal, "--- end journal")
	msgs := []*regexp.Regexp{
		regexp.MustCompile(`^config loaded dir=/etc/awakend/conf\.d version=1 `),
		regexp.MustCompile(`^serving listen=127\.0\.0\.1:` + port + ` version=1$`),
		// The daemon's own record of the rejection, and the diagnostic
		// as `awakend reload` (ExecReload) printed it.
		regexp.MustCompile(`^config reload trigger=api result=rejected version=2 .*\[agent_missing_model\]"$`),
		regexp.MustCompile(`^more-agents\.yaml:\d+:\d+: error: .*\[agent_missing_model\]$`),
		regexp.MustCompile(`^shutting down `),
		regexp.MustCompile(`^stopped$`),
	}
	found := make([]bool, len(msgs))
	sc := bufio.NewScanner(strings.NewReader(journal))
	for sc.Scan() {
		_, msg, ok := strings.Cut(sc.Text(), "]: ")
		if !ok || !strings.Contains(sc.Text(), " awakend[") {
			continue
		}
		if strings.HasPrefix(msg, "time=") || strings.HasPrefix(msg, "level=") || strings.HasPrefix(msg, "<") {
			t.Errorf("journal line not in journald's plain format: %s", sc.Text())
		}
		for i, re := range msgs {
			found[i] = found[i] || re.MatchString(msg)
		}
	}
	for i, re := range msgs {
		if !found[i] {
			t.Errorf("journal: no line matching %s", re)
		}
	}
}
