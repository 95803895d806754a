package main

import (
	"io"

	"github.com/awakend/awakend/config"
)

// schema prints the JSON Schema of a config file.
func schema(args []string, stdout, stderr io.Writer) error {
	fs := flagSet("schema", stderr)
	fs.Usage = func() {
		io.WriteString(stderr, "usage: awakend schema\n\nPrints the JSON Schema (draft 2020-12) of a config file, for editors.\n")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errReported
	}
	_, err := stdout.Write(config.Schema())
	return err
}
