package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/awakend/awakend/e2e/harness"
)

// An in-place overwrite (`cat > f`, most programs) is applied and the new
// content served.
func TestInPlaceOverwrite(t *testing.T) {
	t.Parallel()
	dir := baseDir(t)
	d := start(t, dir)

	harness.Write(t, dir, "agents.yaml", agentsFile("a", "b"))
	s := d.waitAgents("a", "b")
	if s.Version != 2 || s.LastResult() != "applied" || s.LastReload.Trigger != "watch" {
		t.Fatalf("after overwrite: version %d, last reload %+v; want version 2 applied by watch", s.Version, s.LastReload)
	}
	if code, _, body := d.Get("/api/v1/agents/b"); code != http.StatusOK {
		t.Fatalf("GET /api/v1/agents/b: HTTP %d: %s", code, body)
	}
	// The outcome is logged with trigger, result, version, fingerprint,
	// duration and what changed.
	m := d.WaitLog(regexp.MustCompile(`level=INFO msg="config reload" trigger=watch result=applied version=2 fingerprint=([0-9a-f]{64}) took=\S+ changes="\+1 agent"`))
	// The start-up line gives the fingerprint as the reload lines and the
	// status do: all 64 hex digits.
	var st struct {
		Fingerprint string `json:"fingerprint"`
	}
	d.GetJSON("/api/v1/status", &st)
	first := d.WaitLog(regexp.MustCompile(`msg="config loaded" .*fingerprint=(\S+)`))
	if len(first[1]) != 64 || st.Fingerprint != m[1] {
		t.Fatalf("fingerprints: %q at start-up, %q in the reload line, %q in the status; want 64 hex digits, the last two equal", first[1], m[1], st.Fingerprint)
	}
}

// A slow writer truncates the file, pauses, writes half, pauses, writes the
// rest, with pauses well under the 250 ms debounce. Each partial state is a
// valid registry that differs from the final one (no agents, then a and b),
// so if one had gone live it would show as an extra version. Only the final
// content is ever applied.
func TestSlowWriter(t *testing.T) {
	dir := baseDir(t)
	d := start(t, dir)

	half := agentsFile("a", "b")
	rest := strings.TrimPrefix(agentsFile("c", "d"), "agents:\n")
	f, err := os.OpenFile(filepath.Join(dir, "agents.yaml"), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	steps := []time.Time{time.Now()}  // truncated: a registry without agents
	time.Sleep(60 * time.Millisecond) // the writer's pause: the scenario, not synchronization
	if _, err := f.WriteString(half); err != nil {
		t.Fatal(err)
	}
	steps = append(steps, time.Now()) // half: agents a and b
	time.Sleep(60 * time.Millisecond)
	if _, err := f.WriteString(rest); err != nil {
		t.Fatal(err)
	}
	steps = append(steps, time.Now()) // complete: agents a, b, c, d
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(steps); i++ {
		if gap := steps[i].Sub(steps[i-1]); gap >= 250*time.Millisecond {
			t.Fatalf("the writer paused %v between steps, not under the debounce: the machine is too loaded for this scenario", gap)
		}
	}

	s := d.waitAgents("a", "b", "c", "d")
	if s.Version != 2 || s.Watched("applied") != 1 {
		t.Fatalf("final content is version %d after %d applied watcher reloads; want version 2, 1 applied (an intermediate state went live)",
			s.Version, s.Watched("applied"))
	}
	if n := s.Count("", "rejected"); n != 0 {
		t.Fatalf("%d rejected reloads", n)
	}
}

// Write-temp-then-rename over the file (atomic save, as most tools and
// config management do) is applied once with the new content.
func TestRenameOver(t *testing.T) {
	t.Parallel()
	dir := baseDir(t)
	d := start(t, dir)

	harness.Replace(t, dir, "agents.yaml", agentsFile("c"))
	s := d.waitAgents("c")
	if s.Version != 2 || s.Watched("applied") != 1 {
		t.Fatalf("version %d after %d applied reloads, want version 2 after 1", s.Version, s.Watched("applied"))
	}
}

// vim's :w with 'writebackup': probe the directory with 4913, rename f to
// f~, write a new f, delete f~. While f is missing the directory is a valid
// registry without agents; it must never go live: exactly the new content is
// applied, once.
func TestVimSave(t *testing.T) {
	dir := baseDir(t)
	d := start(t, dir)

	f := filepath.Join(dir, "agents.yaml")
	probe, err := os.OpenFile(filepath.Join(dir, "4913"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	probe.Close()
	if err := os.Remove(probe.Name()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f, f+"~"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, []byte(agentsFile("a", "v")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f + "~"); err != nil {
		t.Fatal(err)
	}

	s := d.waitAgents("a", "v")
	if s.Version != 2 || s.Watched("applied") != 1 || s.Count("", "rejected") != 0 {
		t.Fatalf("version %d, %d applied, %d rejected; want version 2, 1 applied, 0 rejected",
			s.Version, s.Watched("applied"), s.Count("", "rejected"))
	}
}

// emacs leaves a lock symlink (.#f.yaml, dangling), an auto-save file
// (#f.yaml#) and a backup (f.yaml~). Holding invalid YAML under those names
// must not reject anything; then emacs's save (rename f to f~, write f,
// drop the auto-save and the lock) applies exactly the new content, and the
// backup, now a copy of the old agents.yaml that would duplicate agent a,
// stays ignored.
func TestEmacsFilesIgnored(t *testing.T) {
	dir := baseDir(t)
	d := start(t, dir)

	const broken = "agents: [ {id: broken\n"
	lock := filepath.Join(dir, ".#agents.yaml")
	if err := os.Symlink("root@host.1234:1700000000", lock); err != nil {
		t.Fatal(err)
	}
	harness.Write(t, dir, "#agents.yaml#", broken)
	harness.Write(t, dir, "agents.yaml~", broken)
	// Any event schedules a reload, so one comes; it finds nothing new.
	s := d.WaitReload(d.base)
	if s.LastResult() != "unchanged" || s.Version != 1 {
		t.Fatalf("reload after emacs's files appeared: version %d, %+v; want unchanged version 1", s.Version, s.LastReload)
	}

	f := filepath.Join(dir, "agents.yaml")
	if err := os.Rename(f, f+"~"); err != nil {
		t.Fatal(err)
	}
	harness.Write(t, dir, "agents.yaml", agentsFile("a", "e"))
	harness.Remove(t, dir, "#agents.yaml#")
	harness.Remove(t, dir, ".#agents.yaml")

	s = d.waitAgents("a", "e")
	if s.Version != 2 || s.Watched("applied") != 1 || s.Count("", "rejected") != 0 {
		t.Fatalf("version %d, %d applied, %d rejected; want version 2, 1 applied, 0 rejected",
			s.Version, s.Watched("applied"), s.Count("", "rejected"))
	}
}

// Swap files, hidden files and package-manager leftovers are ignored, as
// are hidden directories: each holds invalid YAML (several would even load
// by their extension if their names were not ignored), and nothing is
// rejected; a real edit made while they lie around applies.
func TestIgnoredNames(t *testing.T) {
	t.Parallel()
	dir := baseDir(t)
	d := start(t, dir)

	const broken = "agents: [ {id: broken\n"
	for _, name := range []string{
		".agents.yaml.swp", ".agents.yaml.swx", ".hidden.yaml", ".git/config.yaml",
		"x.tmp", "x.bak", "x.dpkg-new", "x.rpmnew",
		"agents.yaml.tmp", "agents.yaml.bak", "agents.yaml.dpkg-dist", "agents.yaml.dpkg-old", "agents.yaml.rpmsave",
		"agents.dpkg-new.yaml",
	} {
		harness.Write(t, dir, name, broken)
	}
	s := d.WaitReload(d.base)
	if s.LastResult() != "unchanged" || s.Version != 1 {
		t.Fatalf("reload after the ignored files appeared: version %d, %+v; want unchanged version 1", s.Version, s.LastReload)
	}

	harness.Write(t, dir, "agents.yaml", agentsFile("a", "i"))
	s = d.waitAgents("a", "i")
	if s.Version != 2 || s.Count("", "rejected") != 0 {
		t.Fatalf("version %d with %d rejected reloads; want version 2, none rejected", s.Version, s.Count("", "rejected"))
	}
}

// A symlinked file retargeted atomically (new link renamed over the old one)
// serves the new target; an in-place edit of the current target applies
// too. The targets live in a hidden directory of the config dir, which
// discovery skips but the watcher watches.
func TestSymlinkRetarget(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	harness.Write(t, dir, "providers.yaml", providersYAML)
	harness.Write(t, dir, "models.yaml", modelsYAML)
	harness.Write(t, dir, ".versions/a.yaml", agentsFile("a"))
	harness.Write(t, dir, ".versions/b.yaml", agentsFile("b"))
	link := filepath.Join(dir, "agents.yaml")
	if err := os.Symlink(".versions/a.yaml", link); err != nil {
		t.Fatal(err)
	}
	d := start(t, dir)
	if _, ids := d.agents(); len(ids) != 1 || ids[0] != "a" {
		t.Fatalf("agents %v through agents.yaml -> a.yaml, want [a]", ids)
	}

	tmp := filepath.Join(dir, ".agents.yaml.new")
	if err := os.Symlink(".versions/b.yaml", tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	if s := d.waitAgents("b"); s.Version != 2 {
		t.Fatalf("retargeted to b.yaml: version %d, want 2", s.Version)
	}

	harness.Write(t, dir, ".versions/b.yaml", agentsFile("b", "b2"))
	if s := d.waitAgents("b", "b2"); s.Version != 3 {
		t.Fatalf("edited the target: version %d, want 3", s.Version)
	}
}

// Constant writes, every 50 ms for 3.5 s, never leave a 250 ms quiet
// period: the 2 s max wait still applies one reload while they go on, and
// the final content is applied after them.
func TestConstantWritesConverge(t *testing.T) {
	dir := baseDir(t)
	d := start(t, dir)

	before := d.NoteCount("READY=1")
	began := time.Now()
	n := 0
	for ; time.Since(began) < 3500*time.Millisecond; n++ {
		harness.Write(t, dir, "agents.yaml", agentsFile("a", fmt.Sprintf("w%03d", n)))
		time.Sleep(50 * time.Millisecond) // the writer's pace: the scenario, not synchronization
	}
	// The last write's own reload comes 250 ms after it: what finished so
	// far was forced by the max wait.
	during := d.NoteCount("READY=1") - before
	if during < 1 {
		t.Fatalf("no reload finished during %v of constant writes; the max wait should force one every 2 s", time.Since(began))
	}
	s := d.waitAgents("a", fmt.Sprintf("w%03d", n-1))
	if s.Count("", "rejected") != 0 {
		t.Fatalf("%d rejected reloads", s.Count("", "rejected"))
	}
	t.Logf("%d writes: %d reloads during them, %d in all", n, during, s.Watched("")-d.base.Watched(""))
}
