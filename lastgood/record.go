package lastgood

import (
	"io"
	"io/fs"
	"sync"
)

// Recorder is a file system that keeps the bytes of every regular file read
// through it to the end, so that what a load read is what gets saved, even
// if a file changes on disk right after.
type Recorder struct {
	fsys fs.FS
	mu   sync.Mutex
	read map[string][]byte
}

// NewRecorder returns a Recorder over fsys.
func NewRecorder(fsys fs.FS) *Recorder {
	return &Recorder{fsys: fsys, read: map[string][]byte{}}
}

// Reset forgets what was read.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	clear(r.read)
}

// Files returns the bytes read of each of paths, in that order; ok is false
// if one of them was not read to the end since the last Reset.
func (r *Recorder) Files(paths []string) (files []File, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	files = make([]File, 0, len(paths))
	for _, p := range paths {
		b, ok := r.read[p]
		if !ok {
			return nil, false
		}
		files = append(files, File{Path: p, Data: b})
	}
	return files, true
}

// Open opens name in the underlying file system; a regular file's bytes
// are kept once it is read to the end.
func (r *Recorder) Open(name string) (fs.File, error) {
	f, err := r.fsys.Open(name)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return f, nil
	}
	return &recording{File: f, r: r, name: name}, nil
}

// ReadDir lists name in the underlying file system.
func (r *Recorder) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(r.fsys, name) }

// Stat stats name in the underlying file system.
func (r *Recorder) Stat(name string) (fs.FileInfo, error) { return fs.Stat(r.fsys, name) }

// recording is a file being read through a Recorder.
type recording struct {
	fs.File
	r    *Recorder
	name string
	data []byte
}

func (f *recording) Read(p []byte) (int, error) {
	n, err := f.File.Read(p)
	f.data = append(f.data, p[:n]...)
	if err == io.EOF {
		f.r.mu.Lock()
		f.r.read[f.name] = f.data
		f.r.mu.Unlock()
	}
	return n, err
}
