package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/awakend/awakend/config"
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
		return nil
	case code == http.StatusUnprocessableEntity:
		var b strings.Builder
		for _, d := range ans.Diagnostics {
			fmt.Fprintln(&b, d.String())
		}
		fmt.Fprintf(&b, "awakend: reload rejected: %s; still serving version %d\n",
			plural(len(ans.Diagnostics), "problem", "problems"), ans.Version)
		if journal.Attached() {
			// ExecReload=: each line a journal entry at error priority.
			journal.WriteLines(stderr, slog.LevelError, b.String())
		} else {
			io.WriteString(stderr, b.String())
		}
		return invalid(errReported)
	case ans.Error != nil:
		return fmt.Errorf("reload: %s (HTTP %d)", ans.Error.Message, code)
	}
	return fmt.Errorf("reload: unexpected HTTP %d", code)
}

// daemonClient finds the running daemon as `serve` would listen: from the
// same settings (over TLS when they set a certificate), or from an explicit
// URL.
func daemonClient(settingsFile, url string, timeout time.Duration) (*client, error) {
	s, _, err := settings.Load(settingsFile, os.Environ(), nil)
	if err != nil {
		return nil, err
	}
	if url != "" {
		return newClient(url, s.Admin.Token, timeout, nil), nil
	}
	if url, err = daemonURL(s.Listen); err != nil {
		return nil, err
	}
	if s.TLS.CertFile == "" {
		return newClient(url, s.Admin.Token, timeout, nil), nil
	}
	conf, err := daemonTLS(s.TLS.CertFile, s.TLS.KeyFile, nil)
	if err != nil {
		return nil, err
	}
	c := newClient("https"+strings.TrimPrefix(url, "http"), s.Admin.Token, timeout, conf)
	c.settle = s.Reload.MaxWait + time.Second
	return c, nil
}
