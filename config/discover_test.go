package config

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestIgnored(t *testing.T) {
	for name, want := range map[string]bool{
		"agents.yaml": false, "a.yml": false, "x.json": false, "conf.d": false, "4913.yaml": false, "a#b#.yaml": false,
		".git": true, "..data": true, "..2024_01_01_00_00_00.123": true, ".agents.yaml.swp": true, ".hidden.yaml": true,
		"agents.yaml~": true, "#agents.yaml#": true, "agents.yaml.swp": true, "agents.yaml.tmp": true, "agents.yaml.bak": true,
		"agents.yaml.dpkg-old": true, "agents.yaml.dpkg-new": true, "agents.yaml.dpkg-dist": true, "agents.yaml.dpkg-bak": true,
		"agents.yaml.rpmnew": true, "agents.yaml.rpmsave": true, "4913": true, "old.bak": true,
	} {
		if got := Ignored(name); got != want {
			t.Errorf("Ignored(%q) = %v, want %v", name, got, want)
		}
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// A Kubernetes ConfigMap volume: the visible files are symlinks into the
// hidden ..data, itself a symlink to the current timestamped directory.
// Plus a symlinked subdirectory outside the tree, and editor leftovers that
// would not parse.
func TestDiscoverySymlinks(t *testing.T) {
	root := t.TempDir()
	conf := filepath.Join(root, "conf")
	ts := filepath.Join(conf, "..2024_01_01_00_00_00.000000001")
	write(t, filepath.Join(ts, "providers.yaml"), "providers: [{id: p, adapter: mock}]\n")
	write(t, filepath.Join(ts, "agents.yaml"), "agents: [{id: a, model_id: m}]\n")
	symlink(t, filepath.Base(ts), filepath.Join(conf, "..data"))
	symlink(t, "..data/providers.yaml", filepath.Join(conf, "providers.yaml"))
	symlink(t, "..data/agents.yaml", filepath.Join(conf, "agents.yaml"))
	write(t, filepath.Join(root, "shared", "models.yaml"), "models: [{id: m, provider_id: p, upstream_model: u}]\n")
	symlink(t, "../shared", filepath.Join(conf, "linked"))
	for _, junk := range []string{".agents.yaml.swp", "agents.yaml~", "#agents.yaml#", "agents.yaml.swp", "agents.yaml.tmp",
		"agents.yaml.bak", "agents.yaml.dpkg-old", "agents.yaml.dpkg-new", "agents.yaml.dpkg-dist", "agents.yaml.rpmnew",
		"agents.yaml.rpmsave", "4913", ".hidden.yaml", ".git/config.yaml", "old.bak/x.yaml", "notes.txt"} {
		write(t, filepath.Join(conf, junk), "this is: [not valid\n")
	}

	c, err := Load(os.DirFS(conf), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"agents.yaml", "linked/models.yaml", "providers.yaml"}; !slices.Equal(c.Files, want) {
		t.Errorf("Files = %q, want %q", c.Files, want)
	}
	if _, err := c.Build(nil, nil); err != nil {
		t.Fatal(err)
	}

	// A ConfigMap update swaps ..data to a new directory: the same links
	// now lead to new contents, and the fingerprint changes.
	ts2 := filepath.Join(conf, "..2024_01_02_00_00_00.000000002")
	write(t, filepath.Join(ts2, "providers.yaml"), "providers: [{id: p, adapter: mock, timeout_secs: 5}]\n")
	write(t, filepath.Join(ts2, "agents.yaml"), "agents: [{id: a, model_id: m}]\n")
	tmp := filepath.Join(conf, "..data_tmp")
	symlink(t, filepath.Base(ts2), tmp)
	if err := os.Rename(tmp, filepath.Join(conf, "..data")); err != nil {
		t.Fatal(err)
	}
	c2, err := Load(os.DirFS(conf), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c2.Fingerprint == c.Fingerprint || c2.Providers()[0].TimeoutSecs != 5 {
		t.Errorf("after the swap: fingerprint %s (was %s), timeout %d", c2.Fingerprint, c.Fingerprint, c2.Providers()[0].TimeoutSecs)
	}
}

func TestDiscoverySymlinkProblems(t *testing.T) {
	conf := t.TempDir()
	write(t, filepath.Join(conf, "sub", "a.yaml"), "providers: [{id: p, adapter: mock}]\n")
	symlink(t, "..", filepath.Join(conf, "sub", "loop"))          // a directory that contains itself
	symlink(t, "gone.yaml", filepath.Join(conf, "dangling.yaml")) // a config file that is not there
	symlink(t, "gone", filepath.Join(conf, "dangling-dir"))       // not a config file: ignored
	_, err := Load(os.DirFS(conf), Options{})
	want := []string{
		"dangling.yaml: error: cannot follow symlink: no such file or directory [read]",
		"sub/loop: error: symlink loop: the directory contains itself [read]",
	}
	if got := diagLines(t, err); !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestFingerprint(t *testing.T) {
	base := map[string]string{"a.yaml": minimalConfig, "b/c.yaml": "agents: [{id: x, model_id: m, system_prompt: \"${file:prompt.txt}\"}]\n", "prompt.txt": "hello"}
	fp := func(files map[string]string) string {
		t.Helper()
		c, err := Load(mapDir(files), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return c.Fingerprint
	}
	// with returns base with files (name, data pairs) replaced; empty data
	// removes the file.
	with := func(files ...string) map[string]string {
		m := maps.Clone(base)
		for i := 0; i < len(files); i += 2 {
			if files[i+1] == "" {
				delete(m, files[i])
			} else {
				m[files[i]] = files[i+1]
			}
		}
		return m
	}
	first := fp(base)
	if first != fp(base) {
		t.Error("fingerprint is not stable")
	}
	for name, files := range map[string]map[string]string{
		"config file changed":     with("a.yaml", minimalConfig+"# comment\n"),
		"referenced file changed": with("prompt.txt", "hello!"),
		"file added":              with("d.yaml", "# empty\n"),
		"file renamed":            with("b/c.yaml", "", "b/d.yaml", base["b/c.yaml"]),
	} {
		if fp(files) == first {
			t.Errorf("%s: fingerprint unchanged", name)
		}
	}
	if got := fp(with("notes.txt", "not config")); got != first {
		t.Error("a file that is neither config nor referenced changed the fingerprint")
	}
	// A rejected directory carries a fingerprint too, so that a reload
	// loop can tell it was already rejected.
	_, err := Load(mapDir(with("a.yaml", "providers: [")), Options{})
	if e, ok := err.(*Error); !ok || len(e.Fingerprint) != 64 {
		t.Errorf("rejected load: %v", err)
	}
}
