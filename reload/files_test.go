package reload

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// readFiles reads files the way a reload would, links followed; a file that
// cannot be read shows as "<missing>".
func readFiles(files ...string) string {
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			data = []byte("<missing>")
		}
		b.WriteString(filepath.Base(f) + "=" + string(data) + ";")
	}
	return b.String()
}

// watchFiles runs a Loop that watches files (no directory, no rescan) and
// whose Func reports what it read of them.
func watchFiles(t *testing.T, files ...string) (*Loop, <-chan string) {
	t.Helper()
	seen := make(chan string, 100)
	fn := func(ctx context.Context, req Request) Result {
		select {
		case seen <- readFiles(files...):
		case <-ctx.Done():
		}
		return Result{Outcome: OutcomeUnchanged}
	}
	l, _ := start(t, fn, Options{
		Files:          files,
		Debounce:       20 * time.Millisecond,
		MaxWait:        200 * time.Millisecond,
		RescanInterval: -1,
	})
	return l, seen
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	must(t, os.Symlink(target, link))
}

// swapLink points link at target as certbot and the kubelet do: a new link
// renamed over the old one.
func swapLink(t *testing.T, target, link string) {
	t.Helper()
	symlink(t, target, link+".tmp")
	must(t, os.Rename(link+".tmp", link))
}

func TestFileWatcher(t *testing.T) {
	type step struct {
		do   func(t *testing.T, dir string)
		want string // what some reload must read after do
	}
	tests := []struct {
		name  string
		files []string // relative to the test's directory
		setup func(t *testing.T, dir string)
		steps []step
	}{
		{
			name:  "files written in place, and renamed over",
			files: []string{"tls/cert.pem", "tls/key.pem"},
			setup: func(t *testing.T, dir string) {
				write(t, dir+"/tls/cert.pem", "c1")
				write(t, dir+"/tls/key.pem", "k1")
			},
			steps: []step{
				{func(t *testing.T, dir string) { write(t, dir+"/tls/cert.pem", "c2") }, "cert.pem=c2;key.pem=k1;"},
				{func(t *testing.T, dir string) {
					write(t, dir+"/tls/.key.pem.tmp", "k2")
					must(t, os.Rename(dir+"/tls/.key.pem.tmp", dir+"/tls/key.pem"))
				}, "cert.pem=c2;key.pem=k2;"},
				{func(t *testing.T, dir string) { must(t, os.Remove(dir+"/tls/key.pem")) }, "cert.pem=c2;key.pem=<missing>;"},
				{func(t *testing.T, dir string) { write(t, dir+"/tls/key.pem", "k3") }, "cert.pem=c2;key.pem=k3;"},
			},
		},
		{
			name:  "certbot: live/ links into archive/",
			files: []string{"le/live/example.com/fullchain.pem", "le/live/example.com/privkey.pem"},
			setup: func(t *testing.T, dir string) {
				write(t, dir+"/le/archive/example.com/fullchain1.pem", "c1")
				write(t, dir+"/le/archive/example.com/privkey1.pem", "k1")
				must(t, os.MkdirAll(dir+"/le/live/example.com", 0o755))
				symlink(t, "../../archive/example.com/fullchain1.pem", dir+"/le/live/example.com/fullchain.pem")
				symlink(t, "../../archive/example.com/privkey1.pem", dir+"/le/live/example.com/privkey.pem")
			},
			steps: []step{
				{func(t *testing.T, dir string) {
					write(t, dir+"/le/archive/example.com/fullchain2.pem", "c2")
					write(t, dir+"/le/archive/example.com/privkey2.pem", "k2")
					swapLink(t, "../../archive/example.com/fullchain2.pem", dir+"/le/live/example.com/fullchain.pem")
					swapLink(t, "../../archive/example.com/privkey2.pem", dir+"/le/live/example.com/privkey.pem")
				}, "fullchain.pem=c2;privkey.pem=k2;"},
				// The new target's directory is watched too.
				{func(t *testing.T, dir string) { write(t, dir+"/le/archive/example.com/privkey2.pem", "k3") }, "fullchain.pem=c2;privkey.pem=k3;"},
			},
		},
		{
			name:  "kubernetes secret volume: ..data swapped",
			files: []string{"secret/tls.crt", "secret/tls.key"},
			setup: func(t *testing.T, dir string) {
				write(t, dir+"/secret/..2025_a/tls.crt", "c1")
				write(t, dir+"/secret/..2025_a/tls.key", "k1")
				symlink(t, "..2025_a", dir+"/secret/..data")
				symlink(t, "..data/tls.crt", dir+"/secret/tls.crt")
				symlink(t, "..data/tls.key", dir+"/secret/tls.key")
			},
			steps: []step{{func(t *testing.T, dir string) {
				write(t, dir+"/secret/..2025_b/tls.crt", "c2")
				write(t, dir+"/secret/..2025_b/tls.key", "k2")
				swapLink(t, "..2025_b", dir+"/secret/..data")
				must(t, os.RemoveAll(dir+"/secret/..2025_a"))
			}, "tls.crt=c2;tls.key=k2;"}},
		},
		{
			name:  "a file missing at the start",
			files: []string{"tls/cert.pem"},
			setup: func(t *testing.T, dir string) { must(t, os.Mkdir(dir+"/tls", 0o755)) },
			steps: []step{{func(t *testing.T, dir string) { write(t, dir+"/tls/cert.pem", "c1") }, "cert.pem=c1;"}},
		},
		{
			name:  "a directory missing at the start: retried",
			files: []string{"tls/cert.pem"},
			steps: []step{
				{func(t *testing.T, dir string) { write(t, dir+"/tls/cert.pem", "c1") }, "cert.pem=c1;"},
				{func(t *testing.T, dir string) { write(t, dir+"/tls/cert.pem", "c2") }, "cert.pem=c2;"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			files := make([]string, len(tc.files))
			for i, f := range tc.files {
				files[i] = filepath.Join(dir, f)
			}
			l, seen := watchFiles(t, files...)
			for _, s := range tc.steps {
				settle(t, l, seen)
				s.do(t, dir)
				await(t, seen, s.want)
			}
		})
	}
}

func TestFileWatcherHandle(t *testing.T) {
	dir := t.TempDir()
	write(t, dir+"/tls/cert.pem", "c")
	write(t, dir+"/archive/key1.pem", "k1")
	write(t, dir+"/archive/key2.pem", "k2")
	symlink(t, "../archive/key1.pem", dir+"/tls/key.pem")
	tests := []struct {
		name  string
		do    func(t *testing.T)
		event string // relative to dir
		op    fsnotify.Op
		want  bool
	}{
		{name: "a write to the file", event: "tls/cert.pem", op: fsnotify.Write, want: true},
		{name: "a write to a link's target", event: "archive/key1.pem", op: fsnotify.Write, want: true},
		{name: "another file beside it", event: "tls/other.pem", op: fsnotify.Write},
		{name: "an editor's temporary file", event: "tls/.cert.pem.swp", op: fsnotify.Create},
		{name: "another file beside the target", event: "archive/key2.pem", op: fsnotify.Create},
		{
			name:  "the link retargeted",
			do:    func(t *testing.T) { swapLink(t, "../archive/key2.pem", dir+"/tls/key.pem") },
			event: "tls/key.pem", op: fsnotify.Create, want: true,
		},
		{name: "the old target, no longer used", event: "archive/key1.pem", op: fsnotify.Write},
		{name: "the new target", event: "archive/key2.pem", op: fsnotify.Write, want: true},
		{
			name: "a link swapped under any name changes the target",
			do: func(t *testing.T) {
				write(t, dir+"/archive2/key.pem", "k3")
				swapLink(t, "../archive2/key.pem", dir+"/tls/key.pem")
			},
			event: "tls/unrelated", op: fsnotify.Create, want: true,
		},
	}
	var got []string
	w := newFileWatcher([]string{dir + "/tls/cert.pem", dir + "/tls/key.pem"}, discard(), func(r Request) { got = append(got, string(r.Trigger)) }, nil)
	defer w.close()
	w.start()
	if !w.up || len(got) != 1 || got[0] != string(TriggerRescan) {
		t.Fatalf("start: up %v, notified %v; want up, one rescan", w.up, got)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.do != nil {
				tc.do(t)
			}
			if hit := w.handle(fsnotify.Event{Name: filepath.Join(dir, tc.event), Op: tc.op}); hit != tc.want {
				t.Errorf("handle = %v, want %v", hit, tc.want)
			}
		})
	}
	// Watched: tls/ and the current target's directory only.
	if want := map[string]bool{dir + "/tls": true, dir + "/archive2": true}; !equalSets(w.dirs, want) {
		t.Errorf("watching %v, want %v", w.dirs, want)
	}
}

func equalSets(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// TestFileWatcherFollows: SetFiles moves the watches to the files named
// now, while the loop runs: a change to a file in a directory no watch
// covered before reloads once the file is named.
func TestFileWatcherFollows(t *testing.T) {
	dir := t.TempDir()
	old, cur := filepath.Join(dir, "old", "old.pem"), filepath.Join(dir, "new", "new.pem")
	write(t, old, "o1")
	write(t, cur, "n1")
	seen := make(chan string, 100)
	fn := func(ctx context.Context, req Request) Result {
		select {
		case seen <- readFiles(old, cur):
		case <-ctx.Done():
		}
		return Result{Outcome: OutcomeUnchanged}
	}
	l, _ := start(t, fn, Options{Files: []string{old}, Debounce: 20 * time.Millisecond, MaxWait: 200 * time.Millisecond, RescanInterval: -1})
	settle(t, l, seen)
	write(t, old, "o2")
	await(t, seen, "old.pem=o2;new.pem=n1;")

	settle(t, l, seen)
	l.SetFiles([]string{cur, cur})
	if n := l.Status().Watcher.Files; n != 1 {
		t.Errorf("status counts %d files, want 1", n)
	}
	// Following asks for a rescan: a change before the watch was in
	// place sent no event.
	await(t, seen, "old.pem=o2;new.pem=n1;")
	write(t, cur, "n2")
	await(t, seen, "old.pem=o2;new.pem=n2;")
}
