// Package lastgood keeps the last configuration that went live in a state
// directory, so that a daemon that cannot load its source when it starts —
// a config directory that does not validate, a fleet's etcd that cannot be
// reached — can serve that one instead. It owns the state file: what is
// saved (the config files as they were read, as one pack — never a
// resolved secret), writing it atomically, reading it back with every
// problem reported, and presenting it as an fs.FS for config.Load.
package lastgood

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/awakend/awakend/pack"
)

// FileName is the state file's name inside the state directory.
const FileName = "last-known-good.json"

// format is the version of the state file's layout.
const format = 2

// maxStateSize bounds the state file read back: a config directory far
// larger than any real one, so that a wrong file cannot exhaust memory.
const maxStateSize = 256 << 20

// File is one config file as it was read.
type File = pack.File

// Origins of a saved configuration.
const (
	OriginDirectory = "directory" // a config directory
	OriginEtcd      = "etcd"      // a fleet's pack
)

// Saved is a configuration that went live.
type Saved struct {
	// Origin says what it came from: OriginDirectory or OriginEtcd.
	Origin string
	// Fingerprint is the config's fingerprint when it was applied.
	Fingerprint string
	// SavedAt is when it was saved.
	SavedAt time.Time
	// Files are the config files, sorted by path.
	Files []File
	// Pack, if set, is Files already packed (a fleet's pack, whose
	// compressed bytes are at hand): Save stores it as it is.
	Pack *pack.Pack
}

// stateFile is the state file's JSON form: the files as a compressed pack,
// checked against its ID when read, so that a file damaged in a way JSON
// does not notice is refused too.
type stateFile struct {
	Format      int       `json:"format"`
	Origin      string    `json:"origin"`
	Fingerprint string    `json:"fingerprint"`
	SavedAt     time.Time `json:"saved_at"`
	PackID      string    `json:"pack_id"`
	Pack        []byte    `json:"pack"`
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
	p := s.Pack
	if p == nil {
		var err error
		if p, err = pack.New(s.Files); err != nil {
			return err
		}
	}
	if len(p.Files) == 0 {
		return errors.New("no config files")
	}
	b, err := json.Marshal(stateFile{
		Format: format, Origin: s.Origin, Fingerprint: s.Fingerprint, SavedAt: s.SavedAt.UTC(),
		PackID: p.ID, Pack: p.Compressed(),
	})
	if err != nil {
		return err
	}
	// A state directory named by hand (not systemd's StateDirectory=)
	// may not exist yet: it is made as etcd and Prometheus make theirs,
	// private, since the state holds the configuration.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, FileName), b)
}

// writeAtomic replaces path with data, durably.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
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
	if st.Format != format {
		return nil, bad("format %d, want %d", st.Format, format)
	}
	if st.PackID == "" {
		return nil, bad("no pack ID")
	}
	p, err := pack.Open(st.Pack, st.PackID)
	if err != nil {
		return nil, bad("%v", err)
	}
	if len(p.Files) == 0 {
		return nil, bad("holds no config files")
	}
	return &Saved{Origin: st.Origin, Fingerprint: st.Fingerprint, SavedAt: st.SavedAt, Files: p.Files}, nil
}
