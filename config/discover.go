package config

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/awakend/awakend/registry"
)

// maxDirDepth bounds how deep discovery descends, so that a symlink loop the
// file system cannot identify (os.SameFile needs os file infos) ends.
const maxDirDepth = 32

// Ignored reports whether discovery skips a file or directory of this name:
// hidden names (".git", Kubernetes' "..data", editor swap files), backups and
// package-manager leftovers ("x~", "#x#", "*.swp", "*.tmp", "*.bak",
// "*.dpkg-old" and the other "*.dpkg-*", "*.rpmnew", "*.rpmsave") and vim's
// write test file "4913".
func Ignored(name string) bool {
	switch {
	case name == "" || name[0] == '.' || name == "4913":
		return true
	case strings.HasSuffix(name, "~"):
		return true
	case len(name) >= 2 && name[0] == '#' && name[len(name)-1] == '#':
		return true
	case strings.Contains(name, ".dpkg-"):
		return true
	}
	for _, suffix := range [...]string{".swp", ".tmp", ".bak", ".rpmnew", ".rpmsave"} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// configFile reports whether name is a config file by its extension.
func configFile(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") || strings.HasSuffix(name, ".json")
}

// walker lists the config files of a directory tree in lexical order,
// following symlinks.
type walker struct {
	fsys      fs.FS
	files     []string
	diags     []Diagnostic
	ancestors []fs.FileInfo // the directories being walked, to stop symlink loops
}

// walk lists dir, "." for the root. An error reading the root is returned;
// below it, problems become diagnostics.
func (w *walker) walk(dir string, info fs.FileInfo) error {
	entries, err := fs.ReadDir(w.fsys, dir)
	if err != nil {
		if dir == "." {
			return err
		}
		w.fail(dir, CodeRead, "cannot read directory: "+errText(err))
		return nil
	}
	if len(w.ancestors) >= maxDirDepth {
		w.fail(dir, CodeRead, "directory is nested more than "+strconv.Itoa(maxDirDepth)+" levels deep (symlink loop?)")
		return nil
	}
	w.ancestors = append(w.ancestors, info)
	defer func() { w.ancestors = w.ancestors[:len(w.ancestors)-1] }()
	for _, e := range entries {
		name := e.Name()
		if Ignored(name) {
			continue
		}
		p := name
		if dir != "." {
			p = dir + "/" + name
		}
		typ := e.Type()
		var info fs.FileInfo
		if typ&fs.ModeSymlink != 0 {
			info, err = fs.Stat(w.fsys, p)
			if err != nil {
				if configFile(name) {
					w.fail(p, CodeRead, "cannot follow symlink: "+errText(err))
				}
				continue
			}
			typ = info.Mode().Type()
		}
		switch {
		case typ.IsDir():
			if info == nil {
				info, _ = e.Info()
			}
			if w.loops(info) {
				w.fail(p, CodeRead, "symlink loop: the directory contains itself")
				continue
			}
			_ = w.walk(p, info)
		case !configFile(name):
		case typ.IsRegular():
			w.files = append(w.files, p)
		default:
			w.fail(p, CodeRead, "not a regular file")
		}
	}
	return nil
}

// loops reports whether dir is one of the directories being walked.
func (w *walker) loops(dir fs.FileInfo) bool {
	if dir == nil {
		return false
	}
	for _, a := range w.ancestors {
		if a != nil && os.SameFile(a, dir) {
			return true
		}
	}
	return false
}

func (w *walker) fail(file, code, msg string) {
	w.diags = append(w.diags, Diagnostic{File: file, Code: code, Severity: string(registry.SeverityError), Message: msg})
}

// readFile reads a file of fsys, refusing files larger than limit.
func readFile(fsys fs.FS, name string, limit int64) ([]byte, error) {
	data, _, err := readFileInfo(fsys, name, limit)
	return data, err
}

// readFileInfo is readFile that also returns the file's stat from before
// the read.
func readFileInfo(fsys fs.FS, name string, limit int64) ([]byte, fs.FileInfo, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if info.Size() > limit {
		return nil, nil, &tooLargeError{size: info.Size(), limit: limit}
	}
	// Read into a buffer of the size Stat gave, one byte larger so that the
	// end shows without growing it; a file that grows is read to the limit.
	data := make([]byte, 0, info.Size()+1)
	for {
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if int64(len(data)) > limit {
			return nil, nil, &tooLargeError{limit: limit}
		}
		if err == io.EOF {
			return data, info, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
	}
}

// tooLargeError reports a file over the size limit; size is 0 when the
// file grew past the limit while being read.
type tooLargeError struct{ size, limit int64 }

func (e *tooLargeError) Error() string {
	limit := strconv.FormatInt(e.limit, 10)
	if e.size == 0 {
		return "file is larger than the limit of " + limit + " bytes"
	}
	return "file is " + strconv.FormatInt(e.size, 10) + " bytes, over the limit of " + limit + " bytes"
}

// errText is the reason of an I/O error without the operation and path,
// which the diagnostic already names: "permission denied".
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return err.Error()
}
