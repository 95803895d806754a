package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// URLFile is the file, in the runtime directory ($RUNTIME_DIRECTORY, from
// systemd's RuntimeDirectory=), where a running daemon writes the URL it
// serves at. `awakend reload` reads it, so that it reaches the daemon that
// runs even when the settings file names another listen address, which
// only a restart applies.
const URLFile = "awakend.url"

// URL turns a listen address into the URL the local host reaches it at: a
// wildcard host becomes loopback, and the scheme is https with TLS.
func URL(listen string, tls bool) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", listen, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	scheme := "http"
	if tls {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

// ReadURL returns the URL a daemon running with runtime directory dir wrote;
// ok is false when it wrote none (it does not run, or not under systemd).
func ReadURL(dir string) (url string, ok bool, err error) {
	if dir == "" {
		return "", false, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, URLFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", false, nil
	case err != nil:
		return "", false, err
	}
	url = strings.TrimSpace(string(b))
	if !strings.HasPrefix(url, "http://") && !strings.HasPrefix(url, "https://") {
		return "", false, fmt.Errorf("%s: not a URL", filepath.Join(dir, URLFile))
	}
	return url, true, nil
}

// writeURL writes the URL of addr to the runtime directory dir, atomically;
// the returned func removes it. With no dir it does nothing.
func writeURL(dir string, addr net.Addr, tls bool) (remove func(), err error) {
	if dir == "" {
		return func() {}, nil
	}
	url, err := URL(addr.String(), tls)
	if err != nil {
		return func() {}, err
	}
	path := filepath.Join(dir, URLFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(url+"\n"), 0o644); err != nil {
		return func() {}, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return func() {}, err
	}
	return func() { os.Remove(path) }, nil
}
