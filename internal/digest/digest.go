// Package digest writes the inputs of a reload into a fingerprint, each
// one unambiguously, so that the config directory's fingerprint and the
// TLS files' are made the same way.
package digest

import (
	"encoding/binary"
	"errors"
	"hash"
	"io"
	"io/fs"
)

// Input writes one input to h: a tag, the length-prefixed name, whether it
// could be read, and the length-prefixed contents, or, when err is set,
// the text of err (without the operation and path of an *fs.PathError,
// which name repeats).
func Input(h hash.Hash, tag byte, name string, data []byte, err error) {
	var buf [binary.MaxVarintLen64 + 1]byte
	buf[0] = tag
	h.Write(binary.AppendUvarint(buf[:1], uint64(len(name))))
	io.WriteString(h, name)
	buf[0] = 0
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		buf[0], data = 1, []byte(err.Error())
	}
	h.Write(binary.AppendUvarint(buf[:1], uint64(len(data))))
	h.Write(data)
}
