// Package lastgood keeps the last configuration that went live in a state
// directory, so that a daemon whose config directory does not validate when
// it starts can serve that one instead. It owns the state file: what is
// saved (the config files as they were read, paths and bytes — never a
// resolved secret), writing it atomically, reading it back with every
// problem reported, and presenting it as an fs.FS for config.Load. The
// Recorder captures the bytes a load read.
package lastgood

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// FileName is the state file's name inside the state directory.
const FileName = "last-known-good.json"

// format is the version of the state file's layout.
const format = 1

// maxStateSize bounds the state file read back: a config directory far
// larger than any real one, so that a wrong file cannot exhaust memory.
const maxStateSize = 256 << 20

// File is one config file as it was read.
type File struct {
	Path string `json:"path"` // relative to the config directory, slash-separated
	Data []byte `json:"data"`
}

// Saved is a configuration that went live.
type Saved struct {
	// Fingerprint is the config's fingerprint when it was applied.
	Fingerprint string
	// SavedAt is when it was saved.
	SavedAt time.Time
	// Files are the config files, in load order.
	Files []File
}

// stateFile is the state file's JSON form; Checksum covers Files, so that a
// file damaged in a way JSON does not notice is refused too.
type stateFile struct {
	Format      int       `json:"format"`
	Fingerprint string    `json:"fingerprint"`
	SavedAt     time.Time `json:"saved_at"`
	Checksum    string    `json:"checksum"`
	Files       []File    `json:"files"`
}

// checksum is the hex SHA-256 of the files' paths and contents, each
// length-prefixed.
func checksum(files []File) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%d:%s%d:", len(f.Path), f.Path, len(f.Data))
		h.Write(f.Data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Save writes s to dir/FileName atomically: a temporary file in dir,
// written and synced, then renamed over the old one and the directory
// synced. A crash leaves the old state file or the new one, never a mix.
// The file is readable by the owner only.
func Save(dir string, s Saved) error {
	if err := save(dir, s); err != nil {
		return fmt.Errorf("saving the last-known-good configuration in %s: %w", dir, err)
	}
	return nil
}

func save(dir string, s Saved) error {
	if err := check(s.Files); err != nil {
		return err
	}
	b, err := json.Marshal(stateFile{
		Format: format, Fingerprint: s.Fingerprint, SavedAt: s.SavedAt.UTC(),
		Checksum: checksum(s.Files), Files: s.Files,
	})
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+FileName+".*.tmp")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, FileName))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	// The rename itself survives a crash once the directory is synced.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Read reads the configuration saved in dir. No state file is an error
// that errors.Is fs.ErrNotExist; a file that cannot be read, is not a state
// file, or is damaged is an error naming the file and what is wrong.
func Read(dir string) (*Saved, error) {
	path := filepath.Join(dir, FileName)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("last-known-good configuration: %w", err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, maxStateSize+1)); err != nil {
		return nil, fmt.Errorf("last-known-good configuration %s: %w", path, err)
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("last-known-good configuration %s: %s (delete it, or let the next applied configuration replace it)", path, fmt.Sprintf(format, args...))
	}
	if buf.Len() > maxStateSize {
		return nil, bad("larger than %d MiB", maxStateSize>>20)
	}
	var st stateFile
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return nil, bad("not a state file: %v", err)
	}
	switch {
	case st.Format != format:
		return nil, bad("format %d, want %d", st.Format, format)
	case len(st.Files) == 0:
		return nil, bad("holds no config files")
	case st.Checksum != checksum(st.Files):
		return nil, bad("checksum mismatch: the file is damaged")
	}
	if err := check(st.Files); err != nil {
		return nil, bad("%v", err)
	}
	return &Saved{Fingerprint: st.Fingerprint, SavedAt: st.SavedAt, Files: st.Files}, nil
}

// check refuses paths that are not inside a directory, and duplicates.
func check(files []File) error {
	seen := make(map[string]bool, len(files))
	for _, f := range files {
		switch {
		case !fs.ValidPath(f.Path) || f.Path == ".":
			return fmt.Errorf("file path %q is not relative to the config directory", f.Path)
		case seen[f.Path]:
			return fmt.Errorf("file %q saved twice", f.Path)
		}
		seen[f.Path] = true
	}
	return nil
}
