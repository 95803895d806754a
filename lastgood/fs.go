package lastgood

import (
	"errors"
	"io/fs"

	"github.com/awakend/awakend/pack"
)

// FS returns the saved configuration as a file system for config.Load: the
// saved files are its whole tree, as discovery sees it. A file that is not
// saved — one that a ${file:…} reference names relative to the config
// directory, a key for instance — is opened in live, the config directory
// as it is now, because such files are read at each load like credentials
// and never saved. A nil live leaves them missing.
func (s *Saved) FS(live fs.FS) fs.FS {
	p, err := pack.New(s.Files)
	if err != nil {
		// Read and the applier give only files New takes; an empty tree
		// loads as the error it is.
		p, _ = pack.New(nil)
	}
	return &overlay{saved: p.FS(), live: live}
}

// overlay serves the saved tree, and files it does not hold from live.
type overlay struct {
	saved fs.FS
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
func (o *overlay) ReadDir(name string) ([]fs.DirEntry, error) { return fs.ReadDir(o.saved, name) }

func (o *overlay) Stat(name string) (fs.FileInfo, error) {
	fi, err := fs.Stat(o.saved, name)
	if err == nil || o.live == nil || !errors.Is(err, fs.ErrNotExist) {
		return fi, err
	}
	return fs.Stat(o.live, name)
}
