package digest

import (
	"crypto/sha256"
	"errors"
	"hash"
	"io/fs"
	"testing"
)

// sum is the SHA-256 of what write puts in.
func sum(write func(h hash.Hash)) string {
	h := sha256.New()
	write(h)
	return string(h.Sum(nil))
}

// TestInputUnambiguous: inputs that would run together, or differ only by
// tag or by whether they could be read, give different sums; a read error
// counts by its reason, not by the path it repeats.
func TestInputUnambiguous(t *testing.T) {
	ab := sum(func(h hash.Hash) { Input(h, 'f', "a", []byte("bc"), nil) })
	if sum(func(h hash.Hash) { Input(h, 'f', "ab", []byte("c"), nil) }) == ab {
		t.Error("name and contents run together")
	}
	if sum(func(h hash.Hash) { Input(h, 'k', "a", []byte("bc"), nil) }) == ab {
		t.Error("the tag is not in the sum")
	}
	if sum(func(h hash.Hash) { Input(h, 'f', "a", nil, errors.New("bc")) }) == ab {
		t.Error("an error reads as contents")
	}
	p1 := sum(func(h hash.Hash) {
		Input(h, 'f', "a", nil, &fs.PathError{Op: "open", Path: "/x/a", Err: fs.ErrNotExist})
	})
	p2 := sum(func(h hash.Hash) {
		Input(h, 'f', "a", nil, &fs.PathError{Op: "stat", Path: "/y/a", Err: fs.ErrNotExist})
	})
	if p1 != p2 {
		t.Error("a path error counts by its operation and path, not its reason")
	}
}
