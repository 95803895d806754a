package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/awakend/awakend/config"
	"github.com/awakend/awakend/provider"
	"github.com/awakend/awakend/registry"
	"github.com/awakend/awakend/settings"
)

// checkReport is `awakend check --format json`.
type checkReport struct {
	Valid       bool                `json:"valid"`
	Dir         string              `json:"dir"`
	Fingerprint string              `json:"fingerprint,omitempty"`
	Resources   map[string]int      `json:"resources,omitempty"`
	Diagnostics []config.Diagnostic `json:"diagnostics"`
	Summary     string              `json:"summary"`
}

// check validates a config directory with the daemon's own code path.
func check(args []string, stdout, stderr io.Writer) error {
	oneShot()
	fs := flagSet("check", stderr)
	sf := addSettingsFlags(fs, false)
	format := fs.String("format", "text", "output `format`: text or json")
	if err := parseInterspersed(fs, args); err != nil {
		return usageError(err)
	}
	if *format != "text" && *format != "json" {
		return fmt.Errorf("check: --format %q: want text or json", *format)
	}
	s, dir, err := settingsAndDir(fs, sf)
	if err != nil {
		return err
	}
	set, rep, err := loadDir(dir, s)
	if err != nil {
		return err
	}
	if set != nil {
		rep.Resources = resourceCounts(set)
		rep.Summary = "ok: " + countsLine(set)
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		for _, d := range rep.Diagnostics {
			fmt.Fprintln(stdout, d.String())
		}
		fmt.Fprintln(stdout, rep.Summary)
	}
	if !rep.Valid {
		return invalid(errReported)
	}
	return nil
}

// settingsAndDir reads the settings and the optional DIR argument of check
// and diff; DIR defaults to the settings' config_dir.
func settingsAndDir(fs *flag.FlagSet, sf *settingsFlags) (settings.Settings, string, error) {
	if fs.NArg() > 1 {
		return settings.Settings{}, "", fmt.Errorf("%s takes at most one directory, got %q", fs.Name(), fs.Args())
	}
	s, _, err := settings.Load(*sf.file, os.Environ(), nil)
	if err != nil {
		return s, "", err
	}
	dir := s.ConfigDir
	if fs.NArg() == 1 {
		dir = fs.Arg(0)
	}
	return s, dir, nil
}

// loadDir loads and builds dir as the daemon does. A config that does not
// validate is a report, not an error; an error means the check could not
// run (no such directory, say).
func loadDir(dir string, s settings.Settings) (*registry.Set, checkReport, error) {
	_, set, rep, err := loadFS(dir, os.DirFS(dir), checkOptions(s))
	return set, rep, err
}

// checkOptions are the loader's options as the daemon sets them, from
// this process's environment and credentials.
func checkOptions(s settings.Settings) config.Options {
	return config.Options{
		LookupEnv:      os.LookupEnv,
		ReadFile:       os.ReadFile,
		CredentialsDir: os.Getenv("CREDENTIALS_DIRECTORY"),
		AllowEmpty:     s.AllowEmpty,
	}
}

// loadFS is loadDir over fsys, the directory dir as read (publish records
// what it reads), with the loader's options given.
func loadFS(dir string, fsys fs.FS, opts config.Options) (*config.Config, *registry.Set, checkReport, error) {
	rep := checkReport{Dir: dir, Diagnostics: []config.Diagnostic{}}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, nil, rep, fmt.Errorf("config directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, nil, rep, fmt.Errorf("config directory %s: not a directory", dir)
	}
	cfg, err := config.Load(fsys, opts)
	var set *registry.Set
	if err == nil {
		rep.Fingerprint = cfg.Fingerprint
		set, err = cfg.Build(nil, provider.New)
	}
	var ce *config.Error
	switch {
	case errors.As(err, &ce):
		rep.Diagnostics = ce.Diagnostics
		rep.Summary = errorsLine(ce.Diagnostics)
		return nil, nil, rep, nil
	case err != nil:
		return nil, nil, rep, err
	}
	rep.Valid = true
	return cfg, set, rep, nil
}

// errorsLine summarizes diagnostics: "12 errors in 4 files".
func errorsLine(ds []config.Diagnostic) string {
	files := map[string]bool{}
	for _, d := range ds {
		if d.File != "" {
			files[d.File] = true
		}
	}
	line := plural(len(ds), "error", "errors")
	if len(files) > 0 {
		line += " in " + plural(len(files), "file", "files")
	}
	return line
}

func resourceCounts(s *registry.Set) map[string]int {
	return map[string]int{
		registry.NSProviders:  len(s.ProviderIDs()),
		registry.NSModels:     len(s.ModelIDs()),
		registry.NSModelPools: len(s.PoolIDs()),
		registry.NSAgents:     len(s.AgentIDs()),
		registry.NSClients:    len(s.ClientIDs()),
	}
}

// countsLine is "3 providers, 5 models, 1 pool, 4 agents".
func countsLine(s *registry.Set) string {
	return plural(len(s.ProviderIDs()), "provider", "providers") + ", " +
		plural(len(s.ModelIDs()), "model", "models") + ", " +
		plural(len(s.PoolIDs()), "pool", "pools") + ", " +
		plural(len(s.AgentIDs()), "agent", "agents") + clientsPart(s)
}

// clientsPart is ", 2 clients", or nothing for a directory without.
func clientsPart(s *registry.Set) string {
	if n := len(s.ClientIDs()); n > 0 {
		return ", " + plural(n, "client", "clients")
	}
	return ""
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
