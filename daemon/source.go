package daemon

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/awakend/awakend/pack"
)

// A source is where the applier reads the config: the directory, or a
// fleet's current pack.
type source interface {
	// open returns what the next load reads; an error is a rejected
	// reload (the old snapshot serves).
	open(ctx context.Context) (input, error)
	// served is called when input was applied, or found unchanged.
	served(input)
}

// input is one opening of a source.
type input struct {
	fsys fs.FS
	pack *pack.Pack     // the fleet's pack it holds; nil for a directory
	rec  *pack.Recorder // what fsys reads through, for the last-known-good; nil for a pack
}

// id is the ID of the input's pack, "" for a directory.
func (in input) id() string {
	if in.pack == nil {
		return ""
	}
	return in.pack.ID
}

// dirSource is the config directory, each load read through a recorder
// that keeps its bytes for the last-known-good.
type dirSource struct{ dir string }

func newDirSource(dir string) *dirSource { return &dirSource{dir: dir} }

func (d *dirSource) open(context.Context) (input, error) {
	fi, err := os.Stat(d.dir)
	if err == nil && !fi.IsDir() {
		err = errors.New("not a directory")
	}
	if err != nil {
		return input{}, fmt.Errorf("config directory %s: %w", d.dir, unwrapPath(err))
	}
	rec := pack.Record(os.DirFS(d.dir))
	return input{fsys: rec, rec: rec}, nil
}

func (*dirSource) served(input) {}
