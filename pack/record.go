package pack

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"sync"
)

// Recorder is an fs.FS that keeps the bytes of every regular file read
// through it to the end, so that a pack holds exactly the files a load
// read — not a second reading that could differ from the one validated.
// A file a load only stat'd (a load with a config.Cache trusts the stat of
// a file as it was at its last read) is read when packed, and only if its
// stat is still the one the load saw.
type Recorder struct {
	fsys fs.FS

	mu   sync.Mutex
	read map[string][]byte
	stat map[string]fs.FileInfo // of regular files stat'd and not read
}

// Record wraps fsys.
func Record(fsys fs.FS) *Recorder {
	return &Recorder{fsys: fsys, read: map[string][]byte{}, stat: map[string]fs.FileInfo{}}
}

// Open opens name on the wrapped file system; a regular file's bytes are
// kept once it is read to its end.
func (r *Recorder) Open(name string) (fs.File, error) {
	f, err := r.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return f, nil
	}
	return &recorded{File: f, r: r, name: name}, nil
}

// Stat stats name on the wrapped file system without opening it (when
// that supports fs.StatFS): a reload that trusts unchanged files' stats
// makes one per file. A regular file's stat is kept for Pack.
func (r *Recorder) Stat(name string) (fs.FileInfo, error) {
	fi, err := fs.Stat(r.fsys, name)
	if err == nil && fi.Mode().IsRegular() {
		r.mu.Lock()
		r.stat[name] = fi
		r.mu.Unlock()
	}
	return fi, err
}

// Pack packs the named files as they were read. A file that was only
// stat'd is read now, if its stat is still the one seen; any other file
// that was not read to its end is an error.
func (r *Recorder) Pack(names []string) (*Pack, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	files := make([]File, 0, len(names))
	for _, name := range names {
		data, ok := r.read[name]
		if !ok {
			var err error
			if data, err = r.reread(name); err != nil {
				return nil, &fs.PathError{Op: "pack", Path: name, Err: err}
			}
		}
		files = append(files, File{Path: name, Data: data})
	}
	return New(files)
}

// reread reads a file the load only stat'd, if it is as the load saw it
// before and after the read.
func (r *Recorder) reread(name string) ([]byte, error) {
	seen, ok := r.stat[name]
	if !ok {
		return nil, errors.New("not read by the load")
	}
	f, err := r.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	after, err := fs.Stat(r.fsys, name)
	if err != nil {
		return nil, err
	}
	if !sameStat(seen, before) || !sameStat(seen, after) || int64(len(data)) != seen.Size() {
		return nil, errors.New("changed since the load")
	}
	return data, nil
}

// sameStat reports whether two stats of a file agree on its size,
// modification time and mode.
func sameStat(a, b fs.FileInfo) bool {
	return a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && a.Mode() == b.Mode()
}

type recorded struct {
	fs.File
	r    *Recorder
	name string
	buf  bytes.Buffer
}

func (f *recorded) Read(p []byte) (int, error) {
	n, err := f.File.Read(p)
	f.buf.Write(p[:n])
	if errors.Is(err, io.EOF) {
		f.r.mu.Lock()
		f.r.read[f.name] = bytes.Clone(f.buf.Bytes())
		f.r.mu.Unlock()
	}
	return n, err
}
