package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
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
	df := addDaemonFlags(fs, 2*time.Minute, "the reload")
	force := fs.Bool("force", true, "rebuild even if no file changed (re-reads secrets)")
	if err := fs.Parse(args); err != nil {
		return usageError(err)
	}
	c, err := daemonClient(*sf.file, df)
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

// daemonFlags say how reload and diff reach the daemon.
type daemonFlags struct {
	url, cert, key, cacert *string
	timeout                *time.Duration
}

// addDaemonFlags adds the flags of a command that talks to the daemon; it
// waits timeout for the answer by default, for what.
func addDaemonFlags(fs *flag.FlagSet, timeout time.Duration, what string) *daemonFlags {
	return &daemonFlags{
		url:     fs.String("url", "", "daemon `URL` (default: from the settings' listen address)"),
		cert:    fs.String("cert", "", "client certificate `file` (PEM) to present: a daemon with tls.client_ca_file takes it for the admin token"),
		key:     fs.String("key", "", "the client certificate's key `file` (PEM)"),
		cacert:  fs.String("cacert", "", "CA certificates `file` (PEM) that verify the daemon at --url (default: the system's)"),
		timeout: fs.Duration("timeout", timeout, "how long to wait for "+what),
	}
}

// daemonClient finds the running daemon: at the URL it wrote in its
// runtime directory (under systemd), or as `serve` would listen, from the
// same settings (over TLS when they set a certificate), or at an explicit
// URL, verified as any client would verify it (with --cacert's CAs, if
// set). It presents the client certificate of --cert and --key, if set.
func daemonClient(settingsFile string, f *daemonFlags) (*client, error) {
	s, _, err := settings.Load(settingsFile, os.Environ(), nil)
	if err != nil {
		return nil, err
	}
	mine, err := clientTLS(*f.cert, *f.key, *f.cacert)
	if err != nil {
		return nil, err
	}
	url := *f.url
	explicit := url != ""
	if !explicit {
		if *f.cacert != "" {
			return nil, errors.New("--cacert verifies the daemon at --url; set --url too")
		}
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
		return newClient(url, s.Admin.Token, *f.timeout, mine), nil
	}
	conf, err := daemonTLS(s.TLS.CertFile, s.TLS.KeyFile, nil)
	if err != nil {
		return nil, err
	}
	if mine != nil {
		conf.Certificates = mine.Certificates
	}
	c := newClient(url, s.Admin.Token, *f.timeout, conf)
	c.settle = s.Reload.MaxWait + time.Second
	return c, nil
}

// clientTLS is the TLS configuration of --cert, --key and --cacert: nil
// when none is set.
func clientTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	if certFile == "" && keyFile == "" && caFile == "" {
		return nil, nil
	}
	conf := &tls.Config{}
	switch {
	case (certFile == "") != (keyFile == ""):
		return nil, errors.New("--cert and --key go together: set both or neither")
	case certFile != "":
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert %s, --key %s: %w", certFile, keyFile, err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert %s: no PEM certificate in it", caFile)
		}
	}
	return conf, nil
}
