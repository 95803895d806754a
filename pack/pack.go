// Package pack holds a config directory as a pack: the files a load read,
// paths and bytes, nothing resolved, in one deterministic archive named by
// its content. A pack travels (to etcd, to a state directory) as that
// archive, compressed, and comes back as an fs.FS that the loader reads as
// it reads the directory. ${VAR}, ${credential:…} and absolute ${file:…}
// references are text in a file like any other: each host resolves them.
package pack

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"
)

// MaxSize bounds a pack's archive, before compression: a compressed pack
// that inflates beyond it is refused rather than read into memory.
const MaxSize = 256 << 20

var maxSize = MaxSize // lowered by tests

// File is one file of a pack: its slash-separated path relative to the
// config directory, and its bytes.
type File struct {
	Path string
	Data []byte
}

// Pack is a set of files and the ID that names them: the hex SHA-256 of
// their archive. Equal files, equal ID, on any host.
type Pack struct {
	ID    string
	Files []File // sorted by path
	tar   []byte // the archive the ID hashes

	once       sync.Once
	compressed []byte // the archive compressed, once asked for or as read
}

// New packs files. Paths must be valid fs paths (fs.ValidPath, not ".")
// and distinct.
func New(files []File) (*Pack, error) {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i, f := range files {
		if !fs.ValidPath(f.Path) || f.Path == "." {
			return nil, fmt.Errorf("pack: invalid path %q", f.Path)
		}
		if i > 0 && files[i-1].Path == f.Path {
			return nil, fmt.Errorf("pack: %s twice", f.Path)
		}
		// A fixed mode and no times, owners or names beyond the path: the
		// archive, and so the ID, depends on the paths and bytes alone.
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.Path, Mode: 0o644, Size: int64(len(f.Data)), Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("pack: %s: %w", f.Path, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, fmt.Errorf("pack: %s: %w", f.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("pack: %w", err)
	}
	if buf.Len() > maxSize {
		return nil, fmt.Errorf("pack: %d bytes, over the limit of %d", buf.Len(), maxSize)
	}
	sum := sha256.Sum256(buf.Bytes())
	return &Pack{ID: hex.EncodeToString(sum[:]), Files: files, tar: buf.Bytes()}, nil
}

// Size is the length of the pack's archive, before compression.
func (p *Pack) Size() int { return len(p.tar) }

// Compressed returns the pack's archive, gzip-compressed: what is stored.
// It is computed once; a pack from Open returns the bytes it was read
// from. The caller must not modify it.
func (p *Pack) Compressed() []byte {
	p.once.Do(func() {
		if p.compressed != nil {
			return
		}
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(p.tar) // a bytes.Buffer never fails
		_ = zw.Close()
		p.compressed = buf.Bytes()
	})
	return p.compressed
}

// Open reads a compressed pack and checks it against id, the ID it was
// stored under ("" to accept any). A pack that does not decompress, is not
// an archive of regular files at valid paths in order, inflates beyond
// MaxSize or does not match id is an error; nothing of it is returned.
func Open(compressed []byte, id string) (*Pack, error) {
	zr, err := gzip.NewReader(bytes.NewReader(compressed))
	if err != nil {
		return nil, fmt.Errorf("pack: not gzip-compressed: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, int64(maxSize)+1))
	if err != nil {
		return nil, fmt.Errorf("pack: decompressing: %w", err)
	}
	if len(raw) > maxSize {
		return nil, fmt.Errorf("pack: inflates beyond the limit of %d bytes", maxSize)
	}
	sum := sha256.Sum256(raw)
	got := hex.EncodeToString(sum[:])
	if id != "" && got != id {
		return nil, fmt.Errorf("pack: content is %s, not the %s it was stored as", got[:12], Short(id))
	}
	// The content is the one the ID names; what is left to check is that
	// it is an archive of regular files at valid, distinct paths.
	var files []File
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("pack: reading the archive: %w", err)
		}
		switch {
		case hdr.Typeflag != tar.TypeReg:
			return nil, fmt.Errorf("pack: %s is not a regular file", hdr.Name)
		case !fs.ValidPath(hdr.Name) || hdr.Name == ".":
			return nil, fmt.Errorf("pack: invalid path %q", hdr.Name)
		case len(files) > 0 && files[len(files)-1].Path >= hdr.Name:
			return nil, fmt.Errorf("pack: %s out of order or twice", hdr.Name)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("pack: %s: %w", hdr.Name, err)
		}
		files = append(files, File{Path: hdr.Name, Data: data})
	}
	return &Pack{ID: got, Files: files, tar: raw, compressed: compressed}, nil
}

// Short is the first 12 characters of an ID, as people read it.
func Short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
