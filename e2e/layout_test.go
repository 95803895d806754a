package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/awakend/awakend/e2e/harness"
)

// Deleting one file applies a registry without its resources.
func TestDeleteFile(t *testing.T) {
	t.Parallel()
	dir := baseDir(t)
	harness.Write(t, dir, "extra.yaml", agentsFile("b"))
	d := start(t, dir)

	harness.Remove(t, dir, "extra.yaml")
	s := d.waitAgents("a")
	if s.Version != 2 || s.Resources["agents"] != 1 {
		t.Fatalf("version %d, resources %v; want version 2 with 1 agent", s.Version, s.Resources)
	}
	if code, _, _ := d.Get("/api/v1/agents/b"); code != http.StatusNotFound {
		t.Fatalf("GET /api/v1/agents/b after its file was deleted: HTTP %d, want 404", code)
	}
}

// A vanished config directory is a rejected reload, not an empty registry:
// the old registry serves and the status says why. Recreated with content,
// it is applied, and it is watched again.
func TestDirectoryVanishes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// One file, so that the directory is either whole or empty (rejected)
	// at any moment of its removal: no partial registry can go live.
	harness.Write(t, dir, "all.yaml", providersYAML+modelsYAML+agentsFile("a"))
	d := start(t, dir)

	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	s := d.WaitStatus("the vanished directory is rejected", func(s harness.Status) bool {
		return s.LastResult() == "rejected" && strings.Contains(s.LastReload.Error, "no such file or directory")
	})
	if s.Version != 1 || len(s.LastReload.Diagnostics) == 0 || !strings.Contains(s.LastReload.Error, dir) {
		t.Fatalf("status after the directory vanished: version %d, last reload %+v; want version 1 and an error naming %s",
			s.Version, s.LastReload, dir)
	}
	if _, ids := d.agents(); !slices.Equal(ids, []string{"a"}) {
		t.Fatalf("agents %v while the directory is gone, want the old [a]", ids)
	}
	if code, _, _ := d.Get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz: HTTP %d while the old registry serves", code)
	}

	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	harness.Write(t, dir, "all.yaml", providersYAML+modelsYAML+agentsFile("b"))
	if s := d.waitAgents("b"); s.Version != 2 {
		t.Fatalf("recreated directory: version %d, want 2", s.Version)
	}

	// The new directory is watched: an edit in it applies.
	harness.Write(t, dir, "all.yaml", providersYAML+modelsYAML+agentsFile("c"))
	s = d.waitAgents("c")
	if s.Version != 3 || !s.Watcher.Up {
		t.Fatalf("edit in the recreated directory: version %d, watcher %+v; want version 3, watcher up", s.Version, s.Watcher)
	}
}

// configMap lays out a directory as the kubelet's atomic writer does for a
// ConfigMap volume: the data in a timestamped directory, ..data a symlink
// to it, and each key a symlink through ..data.
type configMap struct {
	t       *testing.T
	dir     string
	current string // the timestamped directory ..data points to
}

// publish writes files into a new timestamped directory and swaps ..data to
// it atomically (a symlink under a temporary name renamed over ..data),
// links missing keys, and removes the previous directory.
func (c *configMap) publish(ts string, files map[string]string) {
	c.t.Helper()
	for name, content := range files {
		harness.Write(c.t, c.dir, filepath.Join(ts, name), content)
	}
	tmp := filepath.Join(c.dir, "..data_tmp")
	if err := os.Symlink(ts, tmp); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, "..data")); err != nil {
		c.t.Fatal(err)
	}
	for name := range files {
		link := filepath.Join(c.dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			c.t.Fatal(err)
		}
	}
	if c.current != "" {
		harness.Remove(c.t, c.dir, c.current)
	}
	c.current = ts
}

// A Kubernetes ConfigMap update touches only hidden names (..data and the
// timestamped directories); each swap of ..data is applied with its content.
func TestKubernetesConfigMap(t *testing.T) {
	t.Parallel()
	cm := &configMap{t: t, dir: t.TempDir()}
	base := providersYAML + modelsYAML
	cm.publish("..2024_a", map[string]string{"base.yaml": base, "agents.yaml": agentsFile("a")})
	d := start(t, cm.dir)

	cm.publish("..2024_b", map[string]string{"base.yaml": base, "agents.yaml": agentsFile("b")})
	if s := d.waitAgents("b"); s.Version != 2 {
		t.Fatalf("after the swap to ..2024_b: version %d, want 2", s.Version)
	}
	cm.publish("..2024_c", map[string]string{"base.yaml": base, "agents.yaml": agentsFile("c1", "c2")})
	s := d.waitAgents("c1", "c2")
	if s.Version != 3 || s.Count("", "rejected") != 0 {
		t.Fatalf("after the swap to ..2024_c: version %d, %d rejected; want version 3, none rejected", s.Version, s.Count("", "rejected"))
	}
}

// A new subdirectory with a file is applied (the watcher adds a watch on
// it, and rescans for what was written before the watch existed); a later
// edit inside it is applied too, and so is one after the subdirectory was
// renamed.
func TestNewSubdirectory(t *testing.T) {
	t.Parallel()
	dir := baseDir(t)
	d := start(t, dir)

	harness.Write(t, dir, "team/deep/x.yaml", agentsFile("x"))
	if s := d.waitAgents("a", "x"); s.Version != 2 {
		t.Fatalf("new subdirectory: version %d, want 2", s.Version)
	}

	harness.Write(t, dir, "team/deep/x.yaml", agentsFile("x", "y"))
	s := d.waitAgents("a", "x", "y")
	if s.Version != 3 {
		t.Fatalf("edit in the new subdirectory: version %d, want 3", s.Version)
	}
	if s.Watcher.Dirs != 3 || !s.Watcher.Up {
		t.Fatalf("watcher %+v, want up with 3 directories", s.Watcher)
	}

	// Renamed, the subdirectory is still watched under its new name.
	if err := os.Rename(filepath.Join(dir, "team"), filepath.Join(dir, "team2")); err != nil {
		t.Fatal(err)
	}
	harness.Write(t, dir, "team2/deep/x.yaml", agentsFile("x", "y", "z"))
	s = d.waitAgents("a", "x", "y", "z")
	if s.Version != 4 || s.Watcher.Dirs != 3 || !s.Watcher.Up {
		t.Fatalf("edit in the renamed subdirectory: version %d, watcher %+v; want version 4, up with 3 directories", s.Version, s.Watcher)
	}
}

// An unreadable file is a rejected reload with code "read"; readable again,
// the directory is what is being served: unchanged. Root reads anything, so
// when the tests run as root the daemon runs as nobody.
func TestPermissionDenied(t *testing.T) {
	t.Parallel()
	// t.TempDir's parents are private to us; nobody needs to traverse them.
	shared, err := os.MkdirTemp("", "awakend-e2e-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(shared) })
	if err := os.Chmod(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(shared, "conf.d")
	harness.Write(t, dir, "providers.yaml", providersYAML)
	harness.Write(t, dir, "models.yaml", modelsYAML)
	harness.Write(t, dir, "agents.yaml", agentsFile("a"))
	d := startWith(t, dir, options{Options: harness.Options{Unprivileged: true, NotifyDir: shared}})
	if os.Geteuid() == 0 {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.Pid()))
		if err != nil || !regexp.MustCompile(`(?m)^Uid:\s+65534\s`).Match(st) {
			t.Fatalf("the daemon does not run as nobody (%v):\n%s", err, st)
		}
	}

	f := filepath.Join(dir, "agents.yaml")
	if err := os.Chmod(f, 0); err != nil {
		t.Fatal(err)
	}
	s := d.WaitStatus("the unreadable file is rejected", func(s harness.Status) bool {
		return s.LastResult() == "rejected" && s.LastReload.HasCode("read")
	})
	i := slices.IndexFunc(s.LastReload.Diagnostics, func(d harness.Diagnostic) bool { return d.Code == "read" })
	if dg := s.LastReload.Diagnostics[i]; dg.File != "agents.yaml" || !strings.Contains(dg.Message, "permission denied") {
		t.Fatalf("diagnostic %+v, want agents.yaml: permission denied", dg)
	}
	if _, ids := d.agents(); s.Version != 1 || !slices.Equal(ids, []string{"a"}) {
		t.Fatalf("version %d, agents %v while the file is unreadable; want the old version 1, [a]", s.Version, ids)
	}

	if err := os.Chmod(f, 0o644); err != nil {
		t.Fatal(err)
	}
	s = d.WaitReload(s)
	if s.LastResult() != "unchanged" || s.Version != 1 || s.LastReload.Error != "" {
		t.Fatalf("readable again: version %d, last reload %+v; want unchanged version 1 without error", s.Version, s.LastReload)
	}
	if m := d.Metric("awakend_config_last_reload_successful"); m != 1 {
		t.Fatalf("awakend_config_last_reload_successful = %v after recovery, want 1", m)
	}
}

// A directory emptied of every file is a rejected reload with code "empty",
// not an empty registry. The files go providers first, so every state on
// the way is invalid too.
func TestEmptiedDirectory(t *testing.T) {
	t.Parallel()
	dir := baseDir(t)
	d := start(t, dir)

	for _, name := range []string{"providers.yaml", "models.yaml", "agents.yaml"} {
		harness.Remove(t, dir, name)
	}
	s := d.WaitStatus("the empty directory is rejected", func(s harness.Status) bool {
		return s.LastResult() == "rejected" && s.LastReload.HasCode("empty")
	})
	if _, ids := d.agents(); s.Version != 1 || !slices.Equal(ids, []string{"a"}) || s.Count("", "applied") != 1 {
		t.Fatalf("version %d, agents %v, %d applied; want the old version 1 with [a] and only the start-up applied",
			s.Version, ids, s.Count("", "applied"))
	}
}

// The config directory itself is a symlink swapped to a new release
// directory (ln -s v2 cur.new && mv -T cur.new cur, as Capistrano-style
// deploys do): the watcher notices through its watch on the parent, applies
// the new release, and then watches it: an edit there applies too.
func TestConfigDirSymlinkSwapped(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for _, v := range []string{"v1", "v2"} {
		harness.Write(t, root, filepath.Join(v, "all.yaml"), providersYAML+modelsYAML+agentsFile(v))
	}
	cur := filepath.Join(root, "current")
	if err := os.Symlink("v1", cur); err != nil {
		t.Fatal(err)
	}
	d := start(t, cur)

	if err := os.Symlink("v2", cur+".new"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(cur+".new", cur); err != nil {
		t.Fatal(err)
	}
	if s := d.waitAgents("v2"); s.Version != 2 {
		t.Fatalf("after the swap: version %d, want 2", s.Version)
	}
	harness.Write(t, root, "v2/all.yaml", providersYAML+modelsYAML+agentsFile("v2", "v2b"))
	if s := d.waitAgents("v2", "v2b"); s.Version != 3 {
		t.Fatalf("edit in the new release: version %d, want 3", s.Version)
	}
}

// An inotify queue overflow loses events; the watcher sets its watches up
// again and rescans, so a change lost in the overflow is still applied. The
// daemon is stopped (SIGSTOP) while more events than the kernel queues
// (fs.inotify.max_queued_events, 16384 by default) pile up: writes to two
// ignored files in turn (the kernel merges only identical consecutive
// events), then one real edit, whose events the full queue drops. The
// queued events of the ignored files schedule a debounced reload of their
// own, which may read the edit before the overflow at the queue's end is
// reached: what the test asserts is that the edit is served, the overflow
// seen, the watcher up again and a rescan run after it, not which reload
// got to the edit first.
func TestWatcherOverflow(t *testing.T) {
	t.Parallel()
	limit := 16384
	if b, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events"); err == nil {
		fmt.Sscan(string(b), &limit)
	}
	dir := baseDir(t)
	d := start(t, dir)

	created := d.Status()
	var junk [2]*os.File
	for i := range junk {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf(".junk-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		junk[i] = f
	}
	// The junk files' creation schedules a reload: let it run first, so
	// that no timer is pending across the stop.
	before := d.WaitReload(created)
	d.Settle(before)
	d.Signal(syscall.SIGSTOP)
	defer syscall.Kill(d.Pid(), syscall.SIGCONT) // should the test fail before it continues it
	// A signal is delivered asynchronously: wait until the process has
	// stopped (WNOWAIT leaves the state for nobody else to miss).
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, d.Pid(), &info, unix.WSTOPPED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	for range limit {
		for _, f := range junk {
			if _, err := f.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The queue is full: the edit's own events are lost.
	harness.Write(t, dir, "agents.yaml", agentsFile("a", "o"))
	d.Signal(syscall.SIGCONT)

	d.waitAgents("a", "o")
	d.WaitStatus("the overflow seen, the watcher up again and a rescan after it", func(s harness.Status) bool {
		return strings.Contains(s.Watcher.LastError, "overflow") && s.Watcher.Up &&
			s.Count("rescan", "") > before.Count("rescan", "")
	})
}

// Edits behind a symlink that points out of the config directory are
// applied. Discovery follows symlinks, so a file `agents.yaml ->
// /srv/shared/agents.yaml` or a directory `team -> /srv/team` is part of
// the registry and of the fingerprint; the watcher watches where such a
// link leads (a target file's directory, a target directory's tree), so an
// in-place edit there schedules a reload like any other. With the periodic
// rescan off, nothing else would notice it. (Kubernetes ConfigMaps' links
// point into ..data, inside the tree, which is watched anyway.)
func TestSymlinkTargetOutsideTree(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	harness.Write(t, outside, "agents.yaml", agentsFile("a"))
	harness.Write(t, outside, "team/x.yaml", agentsFile("x"))
	dir := t.TempDir()
	harness.Write(t, dir, "providers.yaml", providersYAML)
	harness.Write(t, dir, "models.yaml", modelsYAML)
	for name, target := range map[string]string{"agents.yaml": "agents.yaml", "team": "team"} {
		if err := os.Symlink(filepath.Join(outside, target), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	d := start(t, dir)

	harness.Write(t, outside, "agents.yaml", agentsFile("a", "a2"))
	harness.Write(t, outside, "team/x.yaml", agentsFile("x", "x2"))

	// Bounded wait, as the proof that nothing happened: a change the
	// watcher saw is applied within the max wait (2 s) after it.
	deadline := time.After(3 * time.Second)
	for {
		ch := d.Changed()
		if _, ids := d.agents(); slices.Equal(ids, []string{"a", "a2", "x", "x2"}) {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			_, before := d.agents()
			code, body := d.Post("/api/v1/reload?force=false")
			var ans struct{ Result, Changes string }
			json.Unmarshal(body, &ans)
			t.Fatalf("edits behind symlinks out of the tree were not picked up in 3 s: serving %v; "+
				"an explicit reload then answered HTTP %d %s (%s)", before, code, ans.Result, ans.Changes)
		}
	}
}
