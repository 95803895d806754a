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
type Recorder struct {
	fsys fs.FS

	mu   sync.Mutex
	read map[string][]byte
}

// Record wraps fsys.
func Record(fsys fs.FS) *Recorder { return &Recorder{fsys: fsys, read: map[string][]byte{}} }

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
// that supports fs.StatFS): a stat reads no bytes, so there is nothing to
// keep, and a reload that trusts unchanged files' stats makes one per file.
func (r *Recorder) Stat(name string) (fs.FileInfo, error) { return fs.Stat(r.fsys, name) }

// Pack packs the named files as they were read. A file that was not read
// to its end is an error.
func (r *Recorder) Pack(names []string) (*Pack, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	files := make([]File, 0, len(names))
	for _, name := range names {
		data, ok := r.read[name]
		if !ok {
			return nil, &fs.PathError{Op: "pack", Path: name, Err: errors.New("not read by the load")}
		}
		files = append(files, File{Path: name, Data: data})
	}
	return New(files)
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
