package reload

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

// These tests use real files and the real watcher, so they cannot run in a
// synctest bubble. They synchronise on what the Func saw, never on sleeps.

const patience = 10 * time.Second

// snapshot reads dir the way a loader would: every regular file not under a
// hidden name, symbolic links followed. It returns "<missing>" if dir is gone.
func snapshot(dir string) string {
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != dir && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil // a dangling link, or removed meanwhile
		}
		rel, _ := filepath.Rel(dir, path)
		b.WriteString(filepath.ToSlash(rel) + "=" + string(data) + ";")
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return "<missing>"
	}
	return b.String()
}

// watchDir runs a Loop on dir whose Func reports each snapshot it reads.
func watchDir(t *testing.T, dir string) (*Loop, <-chan string) {
	t.Helper()
	seen := make(chan string, 100)
	fn := func(ctx context.Context, req Request) Result {
		select {
		case seen <- snapshot(dir):
		case <-ctx.Done():
		}
		return Result{Outcome: OutcomeUnchanged}
	}
	l, _ := start(t, fn, Options{
		Dir:            dir,
		Debounce:       20 * time.Millisecond,
		MaxWait:        200 * time.Millisecond,
		RescanInterval: -1,
	})
	return l, seen
}

// await reads snapshots until one equals want.
func await(t *testing.T, seen <-chan string, want string) {
	t.Helper()
	timeout := time.After(patience)
	var last string
	for {
		select {
		case got := <-seen:
			if got == want {
				return
			}
			last = got
		case <-timeout:
			t.Fatalf("no reload saw %q within %v; last saw %q", want, patience, last)
		}
	}
}

// settle runs a reload and drains what it and earlier reloads saw, so that
// a later snapshot can only come from a later trigger.
func settle(t *testing.T, l *Loop, seen <-chan string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	if _, err := l.Reload(ctx, Request{Trigger: TriggerAPI}); err != nil {
		t.Fatal(err)
	}
	for len(seen) > 0 {
		<-seen
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

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestWatcher(t *testing.T) {
	type step struct {
		do   func(t *testing.T, dir string)
		want string // a snapshot some reload must see after do
	}
	tests := []struct {
		name     string
		setup    func(t *testing.T, dir string)
		steps    []step
		wantDirs int // watched at the end, the root included
	}{
		{
			name:  "write a file",
			setup: func(t *testing.T, dir string) { write(t, dir+"/a.yaml", "v1") },
			steps: []step{
				{func(t *testing.T, dir string) { write(t, dir+"/a.yaml", "v2") }, "a.yaml=v2;"},
				{func(t *testing.T, dir string) { must(t, os.Remove(dir+"/a.yaml")) }, ""},
			},
			wantDirs: 1,
		},
		{
			name: "new subdirectory",
			steps: []step{
				{func(t *testing.T, dir string) { write(t, dir+"/sub/b.yaml", "v1") }, "sub/b.yaml=v1;"},
				{func(t *testing.T, dir string) { write(t, dir+"/sub/b.yaml", "v2") }, "sub/b.yaml=v2;"},
				{func(t *testing.T, dir string) { write(t, dir+"/sub/x/y/c.yaml", "v1") }, "sub/b.yaml=v2;sub/x/y/c.yaml=v1;"},
				{func(t *testing.T, dir string) { write(t, dir+"/sub/x/y/c.yaml", "v2") }, "sub/b.yaml=v2;sub/x/y/c.yaml=v2;"},
			},
			wantDirs: 4,
		},
		{
			name:  "subdirectory renamed",
			setup: func(t *testing.T, dir string) { write(t, dir+"/sub/a.yaml", "v1") },
			steps: []step{
				{func(t *testing.T, dir string) { must(t, os.Rename(dir+"/sub", dir+"/moved")) }, "moved/a.yaml=v1;"},
				{func(t *testing.T, dir string) { write(t, dir+"/moved/a.yaml", "v2") }, "moved/a.yaml=v2;"},
			},
			wantDirs: 2,
		},
		{
			name:  "rename over a file",
			setup: func(t *testing.T, dir string) { write(t, dir+"/a.yaml", "v1") },
			steps: []step{{func(t *testing.T, dir string) {
				write(t, dir+"/.a.yaml.tmp", "v2")
				must(t, os.Rename(dir+"/.a.yaml.tmp", dir+"/a.yaml"))
			}, "a.yaml=v2;"}},
			wantDirs: 1,
		},
		{
			name:  "vim save",
			setup: func(t *testing.T, dir string) { write(t, dir+"/a.yaml", "v1") },
			steps: []step{{func(t *testing.T, dir string) {
				write(t, dir+"/4913", "")
				must(t, os.Remove(dir+"/4913"))
				must(t, os.Rename(dir+"/a.yaml", dir+"/a.yaml~"))
				write(t, dir+"/a.yaml", "v2")
				must(t, os.Remove(dir+"/a.yaml~"))
			}, "a.yaml=v2;"}},
			wantDirs: 1,
		},
		{
			name: "configmap symlink swap",
			setup: func(t *testing.T, dir string) {
				write(t, dir+"/..2025_a/x.yaml", "v1")
				must(t, os.Symlink("..2025_a", dir+"/..data"))
				must(t, os.Symlink("..data/x.yaml", dir+"/x.yaml"))
			},
			steps: []step{{func(t *testing.T, dir string) {
				// As the kubelet does it: new timestamped directory, a
				// temporary link to it renamed over ..data, old one removed.
				write(t, dir+"/..2025_b/x.yaml", "v2")
				must(t, os.Symlink("..2025_b", dir+"/..data_tmp"))
				must(t, os.Rename(dir+"/..data_tmp", dir+"/..data"))
				must(t, os.RemoveAll(dir+"/..2025_a"))
			}, "x.yaml=v2;"}},
			wantDirs: 2,
		},
		{
			name:  "directory removed and recreated",
			setup: func(t *testing.T, dir string) { write(t, dir+"/sub/a.yaml", "v1") },
			steps: []step{
				{func(t *testing.T, dir string) { must(t, os.RemoveAll(dir)) }, "<missing>"},
				{func(t *testing.T, dir string) { write(t, dir+"/a.yaml", "v2") }, "a.yaml=v2;"},
				{func(t *testing.T, dir string) { write(t, dir+"/a.yaml", "v3") }, "a.yaml=v3;"},
				{func(t *testing.T, dir string) { write(t, dir+"/sub/b.yaml", "v1") }, "a.yaml=v3;sub/b.yaml=v1;"},
			},
			wantDirs: 2,
		},
		{
			name:  "directory renamed away and back",
			setup: func(t *testing.T, dir string) { write(t, dir+"/a.yaml", "v1") },
			steps: []step{
				{func(t *testing.T, dir string) { must(t, os.Rename(dir, dir+".old")) }, "<missing>"},
				{func(t *testing.T, dir string) { write(t, dir+".old/a.yaml", "v2"); must(t, os.Rename(dir+".old", dir)) }, "a.yaml=v2;"},
				{func(t *testing.T, dir string) { write(t, dir+"/a.yaml", "v3") }, "a.yaml=v3;"},
			},
			wantDirs: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "conf.d")
			must(t, os.Mkdir(dir, 0o755))
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			l, seen := watchDir(t, dir)
			settle(t, l, seen) // Run set the watches up before this reload
			if w := l.Status().Watcher; !w.Up || w.Mode != ModeFsnotify {
				t.Fatalf("watcher = %+v, want up", w)
			}
			for _, s := range tc.steps {
				settle(t, l, seen)
				s.do(t, dir)
				await(t, seen, s.want)
			}
			settle(t, l, seen)
			w := l.Status().Watcher
			if !w.Up || w.Mode != ModeFsnotify || w.Dirs != tc.wantDirs || w.LastError != "" {
				t.Errorf("watcher = %+v, want up with %d dirs", w, tc.wantDirs)
			}
		})
	}
}

func TestWatcherDown(t *testing.T) {
	tests := []struct {
		name string
		dir  string // below a temporary directory; does not exist yet
	}{
		{name: "directory missing, parent watched", dir: "conf.d"},
		{name: "parent missing, retried with backoff", dir: "etc/conf.d"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), tc.dir)
			l, seen := watchDir(t, dir)
			settle(t, l, seen)
			w := l.Status().Watcher
			if w.Up || w.Mode != ModePolling || !strings.Contains(w.LastError, "no such file") {
				t.Errorf("watcher = %+v, want down, polling, with the error", w)
			}

			write(t, dir+"/a.yaml", "v1")
			await(t, seen, "a.yaml=v1;")
			settle(t, l, seen)
			write(t, dir+"/a.yaml", "v2")
			await(t, seen, "a.yaml=v2;")
			if w := l.Status().Watcher; !w.Up || w.Mode != ModeFsnotify || w.Dirs != 1 || w.LastError != "" {
				t.Errorf("watcher = %+v, want up again", w)
			}
		})
	}
}

// recorder is a watcher's notify func that records what it asked for.
type recorder []Trigger

func (r *recorder) notify(req Request) { *r = append(*r, req.Trigger) }

func TestWatcherHandle(t *testing.T) {
	tests := []struct {
		name     string
		mkdir    string      // made before the event, below the root
		event    string      // the event's name, relative to the root; "" for an overflow
		op       fsnotify.Op //
		want     []Trigger
		wantDirs int
	}{
		{name: "sibling of the root is ignored", event: "../conf.d-other", op: fsnotify.Write, wantDirs: 1},
		{name: "hidden name schedules a reload", event: ".a.yaml.swp", op: fsnotify.Create, want: []Trigger{TriggerWatch}, wantDirs: 1},
		{name: "..data rename schedules a reload", event: "..data", op: fsnotify.Rename, want: []Trigger{TriggerWatch}, wantDirs: 1},
		{name: "chmod of the parent is ignored", event: "..", op: fsnotify.Chmod, wantDirs: 1},
		{name: "parent renamed: set up again", event: "..", op: fsnotify.Rename, want: []Trigger{TriggerRescan}, wantDirs: 1},
		{name: "root replaced: set up again", event: ".", op: fsnotify.Create, want: []Trigger{TriggerRescan}, wantDirs: 1},
		{name: "chmod schedules a reload", event: "a.yaml", op: fsnotify.Chmod, want: []Trigger{TriggerWatch}, wantDirs: 1},
		{
			name: "new directory is watched, then rescanned", mkdir: "new/deeper",
			event: "new", op: fsnotify.Create, want: []Trigger{TriggerWatch, TriggerRescan}, wantDirs: 3,
		},
		{name: "overflow sets up the watches again and rescans", want: []Trigger{TriggerRescan}, wantDirs: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "conf.d")
			must(t, os.Mkdir(dir, 0o755))
			var got recorder
			var status WatcherStatus
			w := newWatcher(dir, discard(), got.notify, func(s WatcherStatus) { status = s })
			defer w.close()
			w.start()
			// Changes made before the watches were up sent no event.
			if !slices.Equal(got, recorder{TriggerRescan}) {
				t.Fatalf("start notified %v, want one rescan", got)
			}
			got = nil
			if tc.mkdir != "" {
				must(t, os.MkdirAll(filepath.Join(dir, tc.mkdir), 0o755))
			}
			if tc.event != "" {
				w.handle(fsnotify.Event{Name: filepath.Join(dir, tc.event), Op: tc.op})
			} else {
				w.error(fsnotify.ErrEventOverflow)
				if w.lastErr != fsnotify.ErrEventOverflow.Error() {
					t.Errorf("lastErr = %q, want the overflow", w.lastErr)
				}
			}
			w.publish()
			if !slices.Equal(got, tc.want) {
				t.Errorf("notified %v, want %v", got, tc.want)
			}
			if !status.Up || status.Dirs != tc.wantDirs {
				t.Errorf("status = %+v, want up with %d dirs", status, tc.wantDirs)
			}
		})
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
