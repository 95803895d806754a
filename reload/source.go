package reload

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/awakend/awakend/pack"
)

// A Source is where the Applier reads the config: a directory, or a
// fleet's current pack.
type Source interface {
	// Open returns what the next load reads; an error is a rejected
	// reload (the old snapshot serves).
	Open(ctx context.Context) (Input, error)
	// Served is called when in was applied, or found unchanged.
	Served(in Input)
}

// Input is one opening of a Source.
type Input struct {
	FS   fs.FS
	Pack *pack.Pack     // the fleet's pack it holds; nil for a directory
	Rec  *pack.Recorder // what FS reads through, for the last-known-good; nil for a pack
}

// id is the ID of the input's pack, "" for a directory.
func (in Input) id() string {
	if in.Pack == nil {
		return ""
	}
	return in.Pack.ID
}

// Dir is a config directory as a Source, each load read through a recorder
// that keeps its bytes for the last-known-good.
type Dir string

// Open checks that the directory is there and reads it through a recorder.
func (d Dir) Open(context.Context) (Input, error) {
	fi, err := os.Stat(string(d))
	if err == nil && !fi.IsDir() {
		err = errors.New("not a directory")
	}
	if err != nil {
		return Input{}, fmt.Errorf("config directory %s: %w", string(d), unwrapPath(err))
	}
	rec := pack.Record(os.DirFS(string(d)))
	return Input{FS: rec, Rec: rec}, nil
}

// Served does nothing: a directory keeps no state.
func (Dir) Served(Input) {}
