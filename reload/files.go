package reload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"

	"github.com/fsnotify/fsnotify"
)

// fileWatcher watches single files that are inputs of a reload but live
// outside the config tree, such as a TLS certificate and key. It watches
// each file's directory and the directory of the file its symbolic links
// lead to: certbot renews by pointing the link in live/ at a new file in
// archive/, and Kubernetes by swapping the ..data link beside the file. An
// event asks for a debounced reload when it names a file or its target, or
// when a file's links now lead elsewhere; other names in those directories
// are ignored. When its watches cannot be set up it retries with backoff;
// the periodic rescan covers the gap. All its methods run on one goroutine.
type fileWatcher struct {
	files  []string // absolute and clean
	log    *slog.Logger
	notify func(Request)
	report func(up bool, lastErr string) // publishes health

	fs      *fsnotify.Watcher // nil when none could be created
	dirs    map[string]bool   // directories watched
	targets map[string]string // file → what its links lead to; "" if nothing
	up      bool
	lastErr string

	reported    bool // a report was made
	reportedUp  bool
	reportedErr string
}

func newFileWatcher(files []string, log *slog.Logger, notify func(Request), report func(bool, string)) *fileWatcher {
	w := &fileWatcher{log: log, notify: notify, report: report, dirs: map[string]bool{}, targets: map[string]string{}}
	w.files = absFiles(files)
	return w
}

// absFiles is files made absolute and clean, each once.
func absFiles(files []string) []string {
	var out []string
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			abs = filepath.Clean(f)
		}
		if !slices.Contains(out, abs) {
			out = append(out, abs)
		}
	}
	return out
}

// follow makes files the ones watched: the directories the new ones need
// are watched, those only the old ones needed dropped, and a rescan asked
// for, since a new file may have changed before its watch was in place.
func (w *fileWatcher) follow(files []string) {
	files = absFiles(files)
	if slices.Equal(files, w.files) {
		return
	}
	w.files = files
	clear(w.targets)
	for _, f := range w.files {
		w.targets[f] = target(f)
	}
	if w.fs == nil { // down: the retry sets the new files up
		return
	}
	if err := w.sync(); err != nil {
		w.down(err)
		return
	}
	w.notify(Request{Trigger: TriggerRescan})
	w.log.Info("file watcher follows new files", "files", w.files, "dirs", len(w.dirs))
}

// start sets the watches up for the first time and asks for a rescan: a
// change made before the watches were in place sent no event.
func (w *fileWatcher) start() {
	if err := w.setup(); err != nil {
		w.down(err)
	}
	w.notify(Request{Trigger: TriggerRescan})
}

// run handles events, and sets the watches up again with backoff when they
// fail, until ctx is done. Then it closes every watch.
//
// A receive on changed makes the files those current returns (follow).
func (w *fileWatcher) run(ctx context.Context, changed <-chan struct{}, current func() []string) {
	defer w.close()
	watchLoop(ctx, loopHooks{
		changed: changed,
		follow:  func() { w.follow(current()) },
		fsw:     func() *fsnotify.Watcher { return w.fs },
		up:      func() bool { return w.up },
		setup: func() error {
			err := w.setup()
			if err != nil {
				w.down(err)
			}
			return err
		},
		event: func(ev fsnotify.Event) {
			if w.handle(ev) {
				w.notify(Request{Trigger: TriggerWatch})
			}
		},
		error:  w.down, // events may have been lost: set up again, then rescan
		closed: w.down,
		wait:   w.publish,
		rescan: func() { w.notify(Request{Trigger: TriggerRescan}) },
	})
}

// publish reports the watcher's health if it changed.
func (w *fileWatcher) publish() {
	if w.reported && w.up == w.reportedUp && w.lastErr == w.reportedErr {
		return
	}
	w.reported, w.reportedUp, w.reportedErr = true, w.up, w.lastErr
	if w.report != nil {
		w.report(w.up, w.lastErr)
	}
}

// down closes the watches and logs why, unless it is the error already
// logged; run sets them up again after a backoff.
func (w *fileWatcher) down(err error) {
	w.close()
	if msg := err.Error(); msg != w.lastErr {
		w.lastErr = msg
		w.log.Warn("file watcher down; the rescan still reads the files", "files", w.files, "error", err)
	}
}

// setup watches the directories of the files and of their targets.
func (w *fileWatcher) setup() error {
	w.close()
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("create watcher: %w", err)
	}
	w.fs = fw
	for _, f := range w.files {
		w.targets[f] = target(f)
	}
	if err := w.sync(); err != nil {
		return err
	}
	w.up, w.lastErr = true, ""
	w.log.Info("file watcher up", "files", w.files, "dirs", len(w.dirs))
	return nil
}

// sync watches the directories the files need and drops the others.
func (w *fileWatcher) sync() error {
	want := map[string]bool{}
	for _, f := range w.files {
		want[filepath.Dir(f)] = true
		if t := w.targets[f]; t != "" {
			want[filepath.Dir(t)] = true
		}
	}
	for _, d := range slices.Sorted(maps.Keys(w.dirs)) {
		if !want[d] {
			_ = w.fs.Remove(d) // gone already if the directory was deleted
			delete(w.dirs, d)
		}
	}
	var errs []error
	for _, d := range slices.Sorted(maps.Keys(want)) {
		if w.dirs[d] {
			continue
		}
		if err := w.fs.Add(d); err != nil {
			errs = append(errs, fmt.Errorf("watch %s: %w", d, err))
			continue
		}
		w.dirs[d] = true
	}
	return errors.Join(errs...)
}

// handle reports whether ev concerns a file: it names one or its target, or
// a file's links now lead elsewhere (then the new target's directory is
// watched). A watched directory removed or renamed sets the watches up
// again.
func (w *fileWatcher) handle(ev fsnotify.Event) bool {
	hit := false
	moved := false
	for _, f := range w.files {
		t := target(f)
		if ev.Name == f || ev.Name == w.targets[f] || (t != "" && ev.Name == t) {
			hit = true
		}
		if t != w.targets[f] {
			w.targets[f] = t
			hit, moved = true, true
		}
	}
	if w.dirs[ev.Name] && ev.Has(fsnotify.Remove|fsnotify.Rename) {
		delete(w.dirs, ev.Name)
		moved = true
	}
	if moved {
		if err := w.sync(); err != nil {
			w.down(err)
		}
	}
	return hit
}

// close drops every watch.
func (w *fileWatcher) close() {
	if w.fs != nil {
		_ = w.fs.Close()
		w.fs = nil
	}
	clear(w.dirs)
	w.up = false
}

// target is the file the links at path lead to, or "" if path does not
// resolve to anything.
func target(path string) string {
	t, err := filepath.EvalSymlinks(path)
	if err != nil {
		return ""
	}
	return t
}
