package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/awakend/awakend/config"
	"github.com/awakend/awakend/daemon"
	"github.com/awakend/awakend/journal"
	"github.com/awakend/awakend/settings"
)

// reloadAnswer is the daemon's answer to POST /api/v1/reload.
type reloadAnswer struct {
	apiError
	Result      string              `json:"result"`
	Version     uint64              `json:"version"`
	Changes     string              `json:"changes"`
	Diagnostics []config.Diagnostic `json:"diagnostics"`
	Restart     []string            `json:"restart_required"`
}

// reloadCmd asks the running daemon to reload and waits for the result:
// ExecReload=awakend reload makes `systemctl reload` fail, with the
// diagnostics in the journal, when the config is rejected.
func reloadCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("reload", stderr)
	sf := addSettingsFlags(fs, false)
	url := fs.String("url", "", "daemon `URL` (default: from the settings' listen address)")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait for the reload")
	force := fs.Bool("force", true, "rebuild even if no file changed (re-reads secrets)")
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	c, err := daemonClient(*sf.file, *url, *timeout)
	var se *settings.Error
	if errors.As(err, &se) {
		// The daemon would reject these settings too; it keeps its own.
		return rejected(stderr, se.Error(), len(se.Problems), "the settings do not load; the daemon keeps its running settings")
	}
	if err != nil {
		return err
	}
	path := "/api/v1/reload"
	if !*force {
		path += "?force=false"
	}
	var ans reloadAnswer
	code, err := c.do(ctx, http.MethodPost, path, nil, &ans)
	if err != nil {
		return err
	}
	switch {
	case code == http.StatusOK:
		if ans.Result == "applied" {
			fmt.Fprintf(stdout, "applied: version %d (%s)\n", ans.Version, ans.Changes)
		} else {
			fmt.Fprintf(stdout, "%s: version %d\n", ans.Result, ans.Version)
		}
		for _, r := range ans.Restart {
			fmt.Fprintf(stderr, "awakend: needs a restart to apply (running with the old value): %s\n", r)
		}
		return nil
	case code == http.StatusUnprocessableEntity:
		lines := make([]string, len(ans.Diagnostics))
		for i, d := range ans.Diagnostics {
			lines[i] = d.String()
		}
		return rejected(stderr, strings.Join(lines, "\n"), len(lines), fmt.Sprintf("still serving version %d", ans.Version))
	case ans.Error != nil:
		return fmt.Errorf("reload: %s (HTTP %d)", ans.Error.Message, code)
	}
	return fmt.Errorf("reload: unexpected HTTP %d", code)
}

// rejected prints a rejected reload's n problems, one a line (under
// journald, as ExecReload= runs it, each line an entry at error priority),
// and a last line saying so and what still serves.
func rejected(stderr io.Writer, problems string, n int, serving string) error {
	msg := fmt.Sprintf("%s\nawakend: reload rejected: %s; %s\n", problems, plural(n, "problem", "problems"), serving)
	if journal.Attached() {
		journal.WriteLines(stderr, slog.LevelError, msg)
	} else {
		io.WriteString(stderr, msg)
	}
	return invalid(errReported)
}

// daemonClient finds the running daemon: at the URL it wrote in its
// runtime directory (under systemd), or as `serve` would listen, from the
// same settings (over TLS when they set a certificate), or at an explicit
// URL.
func daemonClient(settingsFile, url string, timeout time.Duration) (*client, error) {
	s, _, err := settings.Load(settingsFile, os.Environ(), nil)
	if err != nil {
		return nil, err
	}
	explicit := url != "" // verified as any client would verify it
	if !explicit {
		written, ok, err := daemon.ReadURL(runtimeDir())
		if err != nil {
			return nil, err
		}
		if ok {
			url = written
		} else if url, err = daemon.URL(s.Listen, s.TLS.CertFile != ""); err != nil {
			return nil, err
		}
	}
	if explicit || !strings.HasPrefix(url, "https://") || s.TLS.CertFile == "" {
		return newClient(url, s.Admin.Token, timeout, nil), nil
	}
	conf, err := daemonTLS(s.TLS.CertFile, s.TLS.KeyFile, nil)
	if err != nil {
		return nil, err
	}
	c := newClient(url, s.Admin.Token, timeout, conf)
	c.settle = s.Reload.MaxWait + time.Second
	return c, nil
}
