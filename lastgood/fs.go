package lastgood

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// FS returns the saved configuration as a file system for config.Load: the
// saved files are its whole tree, as discovery sees it. A file that is not
// saved — one that a ${file:…} reference names relative to the config
// directory, a key for instance — is opened in live, the config directory
// as it is now, because such files are read at each load like credentials
// and never saved. A nil live leaves them missing.
func (s *Saved) FS(live fs.FS) fs.FS {
	return &overlay{saved: newTree(s.Files), live: live}
}

// overlay serves the saved tree, and files it does not hold from live.
type overlay struct {
	saved *tree
	live  fs.FS
}

func (o *overlay) Open(name string) (fs.File, error) {
	f, err := o.saved.Open(name)
	if err == nil || o.live == nil || !errors.Is(err, fs.ErrNotExist) {
		return f, err
	}
	return o.live.Open(name)
}

// ReadDir lists the saved tree only.
func (o *overlay) ReadDir(name string) ([]fs.DirEntry, error) { return o.saved.ReadDir(name) }

func (o *overlay) Stat(name string) (fs.FileInfo, error) {
	fi, err := o.saved.Stat(name)
	if err == nil || o.live == nil || !errors.Is(err, fs.ErrNotExist) {
		return fi, err
	}
	return fs.Stat(o.live, name)
}

// tree is an immutable in-memory file system of saved files and the
// directories they imply.
type tree struct {
	files map[string][]byte
	dirs  map[string][]fs.DirEntry // sorted by name
}

func newTree(files []File) *tree {
	t := &tree{files: map[string][]byte{}, dirs: map[string][]fs.DirEntry{".": nil}}
	for _, f := range files {
		t.files[f.Path] = f.Data
		child := entry{name: path.Base(f.Path), size: int64(len(f.Data))}
		for dir := path.Dir(f.Path); ; dir = path.Dir(dir) {
			_, known := t.dirs[dir]
			t.dirs[dir] = append(t.dirs[dir], child)
			if known || dir == "." {
				break
			}
			child = entry{name: path.Base(dir), dir: true}
		}
	}
	for _, entries := range t.dirs {
		slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	}
	return t
}

func (t *tree) stat(op, name string) (entry, error) {
	if !fs.ValidPath(name) {
		return entry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if data, ok := t.files[name]; ok {
		return entry{name: path.Base(name), size: int64(len(data))}, nil
	}
	if _, ok := t.dirs[name]; ok {
		return entry{name: path.Base(name), dir: true}, nil
	}
	return entry{}, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
}

func (t *tree) Open(name string) (fs.File, error) {
	e, err := t.stat("open", name)
	switch {
	case err != nil:
		return nil, err
	case e.dir:
		return &openDir{entry: e, entries: t.dirs[name]}, nil
	}
	return &openFile{entry: e, Reader: bytes.NewReader(t.files[name])}, nil
}

func (t *tree) Stat(name string) (fs.FileInfo, error) {
	e, err := t.stat("stat", name)
	if err != nil {
		return nil, err
	}
	return e, nil
}

func (t *tree) ReadDir(name string) ([]fs.DirEntry, error) {
	e, err := t.stat("readdir", name)
	switch {
	case err != nil:
		return nil, err
	case !e.dir:
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	return slices.Clone(t.dirs[name]), nil
}

// entry is a saved file or directory, as fs.FileInfo and fs.DirEntry.
type entry struct {
	name string
	size int64
	dir  bool
}

func (e entry) Name() string               { return e.name }
func (e entry) Size() int64                { return e.size }
func (e entry) ModTime() time.Time         { return time.Time{} }
func (e entry) IsDir() bool                { return e.dir }
func (e entry) Sys() any                   { return nil }
func (e entry) Type() fs.FileMode          { return e.Mode().Type() }
func (e entry) Info() (fs.FileInfo, error) { return e, nil }
func (e entry) Mode() fs.FileMode {
	if e.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}

type openFile struct {
	entry
	*bytes.Reader
}

func (f *openFile) Stat() (fs.FileInfo, error) { return f.entry, nil }
func (f *openFile) Close() error               { return nil }

type openDir struct {
	entry
	entries []fs.DirEntry
	next    int
}

func (d *openDir) Stat() (fs.FileInfo, error) { return d.entry, nil }
func (d *openDir) Close() error               { return nil }
func (d *openDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errors.New("is a directory")}
}

func (d *openDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.next:]
	if n <= 0 {
		d.next = len(d.entries)
		return slices.Clone(rest), nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	rest = rest[:min(n, len(rest))]
	d.next += len(rest)
	return slices.Clone(rest), nil
}
