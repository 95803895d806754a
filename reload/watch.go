package reload

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Retry delays for setting up watches that could not be set up.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
)

// watcher keeps an fsnotify watch on every directory of a tree, and one on
// the tree's parent so that it sees the root vanish and come back. Any event
// in the tree, on any name, asks for a debounced reload: the reload's
// fingerprint decides whether anything changed. The watcher never gives up:
// when it cannot set up its watches it reports polling mode and retries with
// backoff. All its methods run on one goroutine.
type watcher struct {
	root   string // absolute and clean
	parent string // "" when the root has none
	log    *slog.Logger
	notify func(Request)       // asks for a debounced reload
	report func(WatcherStatus) // publishes health

	fs       *fsnotify.Watcher // nil when none could be created
	dirs     map[string]bool   // directories of the tree being watched
	up       bool              // every directory of the tree is watched
	lastErr  string
	reported WatcherStatus
}

func newWatcher(dir string, log *slog.Logger, notify func(Request), report func(WatcherStatus)) *watcher {
	root, err := filepath.Abs(dir)
	if err != nil {
		root = filepath.Clean(dir)
	}
	parent := filepath.Dir(root)
	if parent == root {
		parent = ""
	}
	return &watcher{
		root:   root,
		parent: parent,
		log:    log,
		notify: notify,
		report: report,
		dirs:   make(map[string]bool),
	}
}

// start sets up the watches for the first time and asks for a rescan:
// whatever changed between the caller's last read of the directory and the
// watches being in place sent no event. The rescan also reports a directory
// that vanished meanwhile.
func (w *watcher) start() {
	_ = w.setup()
	w.publish()
	w.notify(Request{Trigger: TriggerRescan})
}

// run handles events and errors, and retries a failed setup with backoff,
// until ctx is done. Then it closes every watch.
func (w *watcher) run(ctx context.Context) {
	defer w.close()
	watchLoop(ctx, loopHooks{
		fsw:   func() *fsnotify.Watcher { return w.fs },
		up:    func() bool { return w.up },
		setup: w.setup,
		event: w.handle,
		error: w.error,
		closed: func(err error) {
			w.close()
			_ = w.fail(err)
		},
		wait:   w.publish,
		rescan: func() { w.notify(Request{Trigger: TriggerRescan}) },
	})
}

// loopHooks are what watchLoop runs for one watcher.
type loopHooks struct {
	fsw    func() *fsnotify.Watcher // the current watches; nil when none
	up     func() bool              // whether every watch is set up
	setup  func() error             // sets every watch up anew
	event  func(fsnotify.Event)
	error  func(error) // an error fsnotify reported (an overflow, say)
	closed func(error) // fsnotify closed a channel: the watches are gone
	wait   func()      // before each wait, if set (to publish health)
	rescan func()      // after a retried setup: changes meanwhile sent no event

	changed <-chan struct{} // if set, a receive runs follow
	follow  func()
}

// watchLoop is the loop both watchers run until ctx is done: it hands on
// the events and errors of the current watches and, while they are not all
// set up, retries setting them up with a backoff from minBackoff to
// maxBackoff, asking for a rescan once they are.
func watchLoop(ctx context.Context, h loopHooks) {
	backoff := minBackoff
	retry := time.NewTimer(backoff)
	retry.Stop()
	defer retry.Stop()
	armed := false
	for {
		if h.up() {
			backoff = minBackoff
			if armed {
				retry.Stop()
				armed = false
			}
		} else if !armed {
			retry.Reset(backoff)
			armed = true
		}
		if h.wait != nil {
			h.wait()
		}
		var (
			events <-chan fsnotify.Event
			errs   <-chan error
		)
		if fw := h.fsw(); fw != nil {
			events, errs = fw.Events, fw.Errors
		}
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				h.closed(errors.New("fsnotify event channel closed"))
				continue
			}
			h.event(ev)
		case err, ok := <-errs:
			if !ok {
				h.closed(errors.New("fsnotify error channel closed"))
				continue
			}
			h.error(err)
		case <-h.changed:
			h.follow()
		case <-retry.C:
			armed = false
			if h.setup() != nil {
				backoff = min(2*backoff, maxBackoff)
				continue
			}
			h.rescan()
		}
	}
}

// handle reacts to one event.
func (w *watcher) handle(ev fsnotify.Event) {
	const replaced = fsnotify.Create | fsnotify.Remove | fsnotify.Rename
	switch {
	case (ev.Name == w.root || ev.Name == w.parent) && ev.Has(replaced):
		// The root or its parent was removed, created or replaced (a
		// rename or a symlink swap): start over.
		_ = w.setup()
		w.notify(Request{Trigger: TriggerRescan})
		return
	case ev.Name != w.root && !w.inTree(ev.Name) && !w.dirs[filepath.Dir(ev.Name)]:
		return // the parent itself, or a sibling of the root
	}
	w.notify(Request{Trigger: TriggerWatch})
	if ev.Has(fsnotify.Remove | fsnotify.Rename) {
		w.forget(ev.Name)
	}
	if ev.Has(fsnotify.Create) {
		w.grow(ev.Name)
	}
}

// error reacts to an fsnotify error, an overflow included: events may have
// been lost, new directories among them, so set the watches up anew and
// rescan.
func (w *watcher) error(err error) {
	w.log.Warn("config watcher error", "dir", w.root, "error", err)
	if w.setup() == nil {
		w.lastErr = err.Error()
	}
	w.notify(Request{Trigger: TriggerRescan})
}

// setup closes every watch and sets them all up again.
func (w *watcher) setup() error {
	w.close()
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return w.fail(fmt.Errorf("create watcher: %w", err))
	}
	w.fs = fw
	if w.parent != "" {
		if err := w.add(w.parent); err != nil {
			w.close()
			return w.fail(err)
		}
	}
	// On failure the parent's watch stays: it sees the root come back.
	if err := w.addTree(w.root); err != nil {
		return w.fail(err)
	}
	w.up, w.lastErr = true, ""
	w.log.Info("config watcher up", "dir", w.root, "dirs", len(w.dirs))
	return nil
}

// grow watches name if it is a new directory of the tree, and asks for a
// rescan: files may have been written into it before its watch existed.
func (w *watcher) grow(name string) {
	fi, err := os.Lstat(name)
	if err != nil {
		return
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		w.follow(name) // a new or retargeted link may point out of the tree
		return
	}
	if !fi.IsDir() {
		return
	}
	if err := w.addTree(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		_ = w.fail(err)
	}
	w.notify(Request{Trigger: TriggerRescan})
}

// forget drops the watches of name and of the directories below it, if it
// was a directory that was removed or renamed.
func (w *watcher) forget(name string) {
	for d := range w.dirs {
		if d == name || within(d, name) {
			delete(w.dirs, d)
			_ = w.fs.Remove(d) // gone already if the directory was deleted
		}
	}
}

// addTree watches dir and every directory below it. A symbolic link that
// leads out of the config tree gets its target watched too (see follow):
// the loader follows links, so their targets are config.
func (w *watcher) addTree(dir string) error {
	if w.dirs[dir] {
		return nil // reached twice through links
	}
	if err := w.add(dir); err != nil {
		return err
	}
	w.dirs[dir] = true
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Type()&fs.ModeSymlink != 0 {
			w.follow(filepath.Join(dir, e.Name()))
			continue
		}
		if !e.IsDir() {
			continue
		}
		err := w.addTree(filepath.Join(dir, e.Name()))
		if err != nil && !errors.Is(err, fs.ErrNotExist) { // removed meanwhile
			return err
		}
	}
	return nil
}

// follow watches where the link at name leads when that is outside the
// config tree: the target directory's tree, or a target file's directory.
// Links into the tree (Kubernetes' ..data) need nothing: the tree is
// watched. Broken and looping links are left to the loader to report.
func (w *watcher) follow(name string) {
	target, err := filepath.EvalSymlinks(name)
	if err != nil || target == w.root || w.inTree(target) {
		return
	}
	fi, err := os.Stat(target)
	if err != nil {
		return
	}
	dir := target
	if !fi.IsDir() {
		dir = filepath.Dir(target)
		if w.dirs[dir] {
			return
		}
		if err := w.add(dir); err == nil {
			w.dirs[dir] = true
		}
		return
	}
	if err := w.addTree(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		w.log.Warn("config watcher cannot watch a link's target", "link", name, "target", target, "error", err)
	}
}

// add watches one path.
func (w *watcher) add(path string) error {
	err := w.fs.Add(path)
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("watch %s: %w (inotify watch limit; raise fs.inotify.max_user_watches)", path, err)
	}
	if err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	return nil
}

// fail marks the watcher down and logs err unless it is the error already
// reported.
func (w *watcher) fail(err error) error {
	w.up = false
	if msg := err.Error(); msg != w.lastErr {
		w.lastErr = msg
		w.log.Warn("config watcher down", "dir", w.root, "error", err)
	}
	return err
}

// close drops every watch.
func (w *watcher) close() {
	if w.fs != nil {
		_ = w.fs.Close()
		w.fs = nil
	}
	clear(w.dirs)
	w.up = false
}

// publish reports the watcher's health if it changed.
func (w *watcher) publish() {
	ws := WatcherStatus{Up: w.up, Mode: ModePolling, Dirs: len(w.dirs), LastError: w.lastErr}
	if w.up {
		ws.Mode = ModeFsnotify
	}
	if ws != w.reported {
		w.reported = ws
		w.report(ws)
	}
}

// inTree reports whether name is below the root.
func (w *watcher) inTree(name string) bool { return within(name, w.root) }

// within reports whether path is below dir.
func within(path, dir string) bool {
	if !strings.HasSuffix(dir, string(filepath.Separator)) {
		dir += string(filepath.Separator)
	}
	return strings.HasPrefix(path, dir)
}
